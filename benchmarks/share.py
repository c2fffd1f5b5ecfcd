"""The cores' share spent training: raysweep's plain sweep against the same search on plain Ray Tune.

    python -m benchmarks.share                           # adult, 120 s budgets, 2 pairs
    python -m benchmarks.share --dataset letter --pairs 3

The nested-validation issue's goal is that at least 85% of 2 cores' time goes to training, as a
plain sweep on letter reaches. On adult a plain raysweep sweep reaches about 69% (ANALYSIS.md): its
XGBoost trials last about 0.3 s, most stopped by ASHA at the first rung. This asks what Ray Tune
itself reaches on the same trials, with no tracking at all, so that raysweep's figure can be read
against what the engine allows on this machine.

* ``raysweep``: the XGBoost recipe on the dataset with a ``--time-budget`` (the nested suite's
  "plain budget" cell: one sweep, MLflow on, refit and model at the end).
* ``tune``: the same search written by hand with Ray Tune, as an expert would for speed: the same
  trial arrays (raysweep's split and encoding), the recipe's space and starting point, HyperOpt's
  TPE (Ray Tune's ``HyperOptSearch``, 10 random configs first) two at a time, ASHA on 50-round
  steps up to 300 (first rung at 100, reduction factor 3), ``time_budget_s``, actors reused, one
  CPU and one XGBoost thread per trial, each trial keeping one ``QuantileDMatrix`` and one booster
  for all its steps (as raysweep's trials do), none of Tune's loggers (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``); then the
  best config refit on train + validation.

Both report the training share as the nested suite measures it: the trials' step time (the wall
time of each step's training and validation score) over the cores' time from the start of the run
to its end, and the CPU seconds /proc gave the trial processes over the same. Each arm runs in a
fresh process with a cold Ray, in pairs taken in turn (A B A B). Writes
``benchmarks/results/share/<dataset>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import DEFAULT_DATA_DIR, REPO
from benchmarks.nested import DATASETS  # the nested suite's files, targets and metrics: the same cells

ARMS = ("raysweep", "tune")


def _raysweep_arm(dataset: str, budget: float, scratch: Path) -> dict[str, Any]:
    from benchmarks._common import Settings
    from benchmarks.nested import run_cell

    settings = Settings(out=str(scratch), data_dir=str(DEFAULT_DATA_DIR), budget=budget)
    cell = {"suite": "share", "id": f"share-{dataset}", "dataset": dataset, "schedule": "plain_budget"}
    record = run_cell(cell, settings, scratch)
    return {key: record[key] for key in ("trials", "elapsed_s", "cpus", "training_share", "cpu_share", "cpu_breakdown", "test_score")}


def _tune_arm(dataset: str, budget: float, scratch: Path) -> dict[str, Any]:
    # Ray Tune at its leanest: no JSON, CSV or TensorBoard logger either (the step times are summed
    # by a callback instead of read back from the trials' result files)
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    import numpy as np
    import ray
    import xgboost as xgb
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.hyperopt import HyperOptSearch
    from sklearn.metrics import accuracy_score, log_loss

    from benchmarks.startup import TrialCpuSampler, refuse_foreign_cluster
    from benchmarks.tune_demo import DEFAULTS, GRACE_STEPS, INITIAL_POINTS, MAX_ROUNDS, REDUCTION, SEED, STEP, recipe_space
    from raysweep.data import load_dataset, prepare
    from raysweep.families import get_family

    file, target, metric = DATASETS[dataset]
    refuse_foreign_cluster()
    prepared = prepare(load_dataset(str(DEFAULT_DATA_DIR / file), target=target, seed=SEED), get_family("xgboost"), seed=SEED)
    data = prepared.trial
    n_classes = data.n_classes
    objective = {"objective": "binary:logistic"} if n_classes == 2 else {"objective": "multi:softprob", "num_class": n_classes}

    def score(probabilities: Any, y: Any) -> float:
        if metric == "log_loss":
            return float(log_loss(y, probabilities, labels=list(range(n_classes))))
        labels = (probabilities > 0.5).astype(int) if probabilities.ndim == 1 else probabilities.argmax(axis=1)
        return float(accuracy_score(y, labels))

    class Trial(tune.Trainable):
        """One config: 50 rounds a step on a kept matrix and booster (a class trainable, Ray
        Tune's cheaper kind per trial; the actor is reused, so the matrix is built once)."""

        def setup(self, config: dict, arrays: tuple = ()) -> None:
            self.X_val, self.y_val = arrays[2], arrays[3]
            if getattr(self, "train_matrix", None) is None:
                self.train_matrix = xgb.QuantileDMatrix(arrays[0], arrays[1], nthread=1)
            self.reset_config(config)

        def reset_config(self, new_config: dict) -> bool:
            self.params = {**objective, "tree_method": "hist", "nthread": 1, "seed": SEED, **new_config}
            self.booster, self.rounds = None, 0
            return True

        def step(self) -> dict:
            started = time.perf_counter()
            if self.booster is None:
                self.booster = xgb.train(self.params, self.train_matrix, STEP, verbose_eval=False)
            else:
                for iteration in range(self.rounds, self.rounds + STEP):
                    self.booster.update(self.train_matrix, iteration)
            self.rounds += STEP
            value = score(self.booster.inplace_predict(self.X_val), self.y_val)
            return {metric: value, "rounds": self.rounds, "step_time": time.perf_counter() - started,
                    "done": self.rounds >= MAX_ROUNDS}

        def save_checkpoint(self, checkpoint_dir: str) -> None:  # Tune saves a trial when it ends it
            if self.booster is not None:
                self.booster.save_model(os.path.join(checkpoint_dir, "booster.ubj"))

        def load_checkpoint(self, checkpoint_dir: str) -> None:
            self.booster = xgb.Booster(model_file=os.path.join(checkpoint_dir, "booster.ubj"))
            self.rounds = self.booster.num_boosted_rounds()

    space = recipe_space()
    mode = "min" if metric == "log_loss" else "max"

    class StepTimes(tune.Callback):
        def __init__(self) -> None:
            self.total = 0.0

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self.total += float(result.get("step_time", 0.0))

    steps = StepTimes()
    started = time.perf_counter()
    with TrialCpuSampler(actor_names=("Trial", "ResourceTrainable")) as sampler:
        ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        cpus = int(ray.cluster_resources().get("CPU", 2))
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(Trial, arrays=(data.X_train, data.y_train, data.X_val, data.y_val)), {"cpu": 1}),
            param_space=space,
            tune_config=tune.TuneConfig(
                metric=metric, mode=mode, num_samples=-1, time_budget_s=budget, reuse_actors=True,
                search_alg=ConcurrencyLimiter(HyperOptSearch(points_to_evaluate=[DEFAULTS], random_state_seed=SEED,
                                                           n_initial_points=INITIAL_POINTS), max_concurrent=cpus),
                scheduler=ASHAScheduler(time_attr="rounds", max_t=MAX_ROUNDS, grace_period=GRACE_STEPS * STEP, reduction_factor=REDUCTION),
            ),
            run_config=tune.RunConfig(name="share", storage_path=str(scratch / "ray"), verbose=0, callbacks=[steps]),
        )  # fmt: skip
        results = tuner.fit()
        best = results.get_best_result(scope="all")
        X_pool = np.concatenate([data.X_train, data.X_val])
        y_pool = np.concatenate([data.y_train, data.y_val])
        refit = xgb.train({**objective, "tree_method": "hist", "nthread": cpus, "seed": SEED, **best.config},
                          xgb.QuantileDMatrix(X_pool, y_pool), MAX_ROUNDS)  # fmt: skip
        elapsed = time.perf_counter() - started
    training = steps.total
    ray.shutdown()
    return {
        "trials": len(results),
        "elapsed_s": elapsed,
        "cpus": cpus,
        "training_share": training / (cpus * elapsed),
        "cpu_share": sampler.cpu_seconds / (cpus * elapsed) if sampler.cpu_seconds else None,
        "cpu_breakdown": sampler.breakdown(),
        "refit_trees": refit.num_boosted_rounds(),
    }


def _one(arm: str, dataset: str, budget: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="raysweep-share-") as scratch:
        run = _raysweep_arm if arm == "raysweep" else _tune_arm
        return {"arm": arm, "dataset": dataset, "budget_s": budget, **run(dataset, budget, Path(scratch))}


def _spread(values: list[float], scale: float = 100.0, unit: str = "%") -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.0f}{unit} ({min(values):.0f}-{max(values):.0f})"


def table(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| | trials | wall s | training share (step time) | CPU share (trial processes) |", "| --- | ---: | ---: | --- | --- |"]
    for arm in ARMS:
        mine = [r for r in records if r["arm"] == arm]
        if not mine:
            continue
        lines.append(
            f"| {arm} | {_spread([r['trials'] for r in mine], 1, '')} | {_spread([r['elapsed_s'] for r in mine], 1, '')} "
            f"| {_spread([r['training_share'] for r in mine])} | {_spread([r['cpu_share'] for r in mine])} |"
        )
    pairs = list(zip([r for r in records if r["arm"] == "raysweep"], [r for r in records if r["arm"] == "tune"]))
    if pairs:
        ratios = [a["cpu_share"] / b["cpu_share"] for a, b in pairs if a.get("cpu_share") and b.get("cpu_share")]
        if ratios:
            lines += ["", f"raysweep's CPU share against plain Ray Tune's, pair by pair: {statistics.median(ratios):.2f}x "
                          f"({min(ratios):.2f}-{max(ratios):.2f}x), {len(ratios)} pair{'s' if len(ratios) > 1 else ''}"]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.share", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="adult")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of each sweep's time budget (default 120)")
    parser.add_argument("--pairs", type=int, default=2, help="pairs of runs, raysweep then plain Ray Tune (default 2)")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # one run, in a fresh process
    args = parser.parse_args(argv)
    if args.arm:
        print(json.dumps(_one(args.arm, args.dataset, args.budget)))
        return
    if not (DEFAULT_DATA_DIR / DATASETS[args.dataset][0]).is_file():
        sys.exit(f"no {DATASETS[args.dataset][0]} in {DEFAULT_DATA_DIR}")
    records = []
    for pair in range(args.pairs):
        for arm in ARMS:
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.share", "--arm", arm, "--dataset", args.dataset, "--budget", str(args.budget)],
                cwd=REPO, capture_output=True, text=True, check=True,
            )  # fmt: skip
            record = json.loads(done.stdout.strip().splitlines()[-1])
            record["pair"] = pair
            records.append(record)
            print(f"pair {pair + 1}, {arm}: {record['trials']} trials in {record['elapsed_s']:.0f} s, "
                  f"{100 * record['training_share']:.0f}% by step time, {100 * (record['cpu_share'] or 0):.0f}% by CPU", flush=True)  # fmt: skip
    out = REPO / "benchmarks" / "results" / "share"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.dataset}.json").write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M"), "records": records}, indent=1))
    print("\n".join(table(records)))


if __name__ == "__main__":
    main()
