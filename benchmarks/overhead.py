"""Suite 1, orchestration overhead: wall time per trial when a trial does (almost) nothing.

Every tool runs the same workload (a no-op, Branin or Hartmann-6) for the same number of
trials, two at a time where the tool can run trials side by side. The clock covers what a user
waits for once their process is up: building the search and running it (for raysweep:
``run_sweep`` from the call to its return, refit and MLflow bookkeeping included). Starting Ray
is outside the clock for every Ray-based tool; suite 3 measures it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks._common import Settings, cpus_busy, start_ray, warm_mlflow
from benchmarks.families import FUNCTIONS


@dataclass(frozen=True)
class Tool:
    """One contender: how it is labelled, what it needs, and how it runs one workload."""

    name: str
    label: str
    run: Callable[..., dict[str, Any]]
    needs_ray: bool = False
    peer: str | None = None  # an optional package (see benchmarks._peers)
    concurrency: str = "2"
    slow: bool = False  # about 1 s per trial: runs settings.noreuse_trials trials


def _measure(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    outcome = function()
    return time.perf_counter() - started, outcome


# -- raysweep -------------------------------------------------------------------------------------
def _raysweep(tracking: bool) -> Callable[..., dict[str, Any]]:
    def run(workload: str, seed: int, trials: int, settings: Settings, scratch: Path) -> dict[str, Any]:
        from raysweep import run_sweep

        from benchmarks.families import analytic_dataset, analytic_recipe

        start_ray(settings)
        if tracking:
            warm_mlflow(settings)
        recipe, dataset = analytic_recipe(workload), analytic_dataset(workload)
        started_epoch = time.time()
        seconds, result = _measure(
            lambda: run_sweep(
                recipe,
                dataset,
                tracking=tracking,
                progress=False,
                num_samples=trials,
                max_concurrent=settings.concurrency,
                seed=seed,
                name=f"overhead-{workload}-{seed}",
                storage=str(scratch / "ray"),
                tracking_uri=settings.tracking_uri if tracking else None,
                experiment=f"bench-overhead-{workload}",
            )
        )
        best = result.best_validation_score + FUNCTIONS[workload].floor
        outcome = {"seconds": seconds, "trials": result.num_trials, "errors": result.num_errors, "best": best}
        if tracking:
            outcome.update(sweep_phases(result, started_epoch, started_epoch + seconds))
        return outcome

    return run


def sweep_phases(result: Any, started: float, ended: float) -> dict[str, float]:
    """Where a tracked sweep's time went, from its MLflow child runs' start and end times (ms).

    ``head_s``: the call to the first trial's start (data, MLflow parent run, Tune setup, first
    actor); ``body_s``: first trial start to last trial end; ``tail_s``: from there to the return
    (refit, outcome logging, the model's MLflow log).
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(result.tracking_uri)
    children = client.search_runs(
        [result.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'", max_results=50_000
    )
    first = min(run.info.start_time for run in children) / 1000
    last = max((run.info.end_time or run.info.start_time) for run in children) / 1000
    return {"head_s": first - started, "body_s": last - first, "tail_s": ended - last}


# -- plain Ray Tune -------------------------------------------------------------------------------
def _ray_function_trainable(workload: str) -> Callable[[dict[str, Any]], None]:
    function = FUNCTIONS[workload].function

    def trainable(config: dict[str, Any]) -> None:
        from ray import tune

        tune.report({"value": function(config)})

    return trainable


def _ray_class_trainable(workload: str) -> type:
    from ray import tune

    function = FUNCTIONS[workload].function

    class AnalyticTrainable(tune.Trainable):
        """The same work as the function trainable, plus what a class trainable must do."""

        def setup(self, config: dict[str, Any]) -> None:
            self.value = None

        def step(self) -> dict[str, Any]:
            self.value = function(self.config)
            return {"value": self.value, "done": True}

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            Path(checkpoint_dir, "value.txt").write_text(repr(self.value))

        def load_checkpoint(self, checkpoint_dir: str) -> None:
            self.value = float(Path(checkpoint_dir, "value.txt").read_text())

        def reset_config(self, new_config: dict[str, Any]) -> bool:
            self.value = None
            return True

    return AnalyticTrainable


def _ray_tune(kind: str, reuse: bool, callbacks: tuple[Any, ...] = ()) -> Callable[..., dict[str, Any]]:
    """Plain Ray Tune on ``workload``; ``callbacks`` go to Tune besides its default loggers."""

    def run(workload: str, seed: int, trials: int, settings: Settings, scratch: Path) -> dict[str, Any]:
        from ray import tune
        from ray.tune.search import BasicVariantGenerator

        start_ray(settings)
        trainable = _ray_function_trainable(workload) if kind == "function" else _ray_class_trainable(workload)
        bounds = FUNCTIONS[workload].bounds

        def fit() -> Any:
            # Tune's defaults otherwise: its CSV, JSON and TensorBoard loggers stay on, as a
            # user gets them.
            tuner = tune.Tuner(
                trainable,
                param_space={name: tune.uniform(low, high) for name, (low, high) in bounds.items()},
                tune_config=tune.TuneConfig(
                    metric="value",
                    mode="min",
                    num_samples=trials,
                    reuse_actors=reuse,
                    max_concurrent_trials=settings.concurrency,
                    search_alg=BasicVariantGenerator(random_state=seed),
                ),
                run_config=tune.RunConfig(
                    name=f"overhead-{kind}-{reuse}-{workload}-{seed}",
                    storage_path=str(scratch / "ray"),
                    verbose=0,
                    stop={"training_iteration": 1},
                    callbacks=list(callbacks) or None,
                ),
            )
            return tuner.fit()

        seconds, results = _measure(fit)
        errors = sum(1 for r in results if r.error is not None)
        best = results.get_best_result(metric="value", mode="min").metrics["value"]
        return {"seconds": seconds, "trials": len(results), "errors": errors, "best": best}

    return run


# -- Optuna, hyperopt, FLAML ----------------------------------------------------------------------
def _optuna(workload: str, seed: int, trials: int, settings: Settings, scratch: Path) -> dict[str, Any]:
    from benchmarks._peers import require

    optuna = require("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = FUNCTIONS[workload]

    def objective(trial: Any) -> float:
        config = {name: trial.suggest_float(name, low, high) for name, (low, high) in spec.bounds.items()}
        return spec.function(config)

    def fit() -> Any:
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=trials, n_jobs=settings.concurrency)
        return study

    seconds, study = _measure(fit)
    return {"seconds": seconds, "trials": len(study.trials), "errors": 0, "best": study.best_value}


def _hyperopt(workload: str, seed: int, trials: int, settings: Settings, scratch: Path) -> dict[str, Any]:
    from hyperopt import STATUS_OK, Trials, fmin, hp, tpe

    spec = FUNCTIONS[workload]
    space = {name: hp.uniform(name, low, high) for name, (low, high) in spec.bounds.items()}

    def objective(config: dict[str, float]) -> dict[str, Any]:
        return {"loss": spec.function(config), "status": STATUS_OK}

    def fit() -> Any:
        history = Trials()
        fmin(objective, space, algo=tpe.suggest, max_evals=trials, trials=history,
             rstate=np.random.default_rng(seed), show_progressbar=False)
        return history

    seconds, history = _measure(fit)
    return {"seconds": seconds, "trials": len(history.trials), "errors": 0, "best": min(history.losses())}


def _flaml(workload: str, seed: int, trials: int, settings: Settings, scratch: Path) -> dict[str, Any]:
    from benchmarks._peers import require

    flaml_tune = require("flaml.tune")
    spec = FUNCTIONS[workload]
    config = {name: flaml_tune.uniform(low, high) for name, (low, high) in spec.bounds.items()}

    def evaluate(sample: dict[str, Any]) -> dict[str, float]:
        return {"value": spec.function(sample)}

    def fit() -> Any:
        np.random.seed(seed)  # FLAML's search takes no seed of its own
        return flaml_tune.run(
            evaluate, config=config, metric="value", mode="min", num_samples=trials, verbose=0, use_ray=False,
            local_dir=str(scratch / "flaml"),
        )

    seconds, analysis = _measure(fit)
    values = [t.last_result.get("value") for t in analysis.trials if t.last_result]
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return {"seconds": seconds, "trials": len(analysis.trials), "errors": len(analysis.trials) - len(finite), "best": min(finite)}


#: every contender, in the order of the tables
TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool("raysweep_mlflow", "raysweep, MLflow on", _raysweep(True), needs_ray=True),
        Tool("raysweep_nomlflow", "raysweep, MLflow off", _raysweep(False), needs_ray=True),
        Tool("ray_function_reuse", "Ray Tune, function trainable, reuse_actors=True", _ray_tune("function", True), needs_ray=True),
        Tool("ray_class_reuse", "Ray Tune, class trainable, reuse_actors=True", _ray_tune("class", True), needs_ray=True),
        Tool("ray_function_noreuse", "Ray Tune, function trainable, reuse_actors=False (default)", _ray_tune("function", False), needs_ray=True, slow=True),
        Tool("ray_class_noreuse", "Ray Tune, class trainable, reuse_actors=False (default)", _ray_tune("class", False), needs_ray=True, slow=True),
        Tool("optuna", "Optuna TPE (n_jobs=2 threads)", _optuna, peer="optuna"),
        Tool("hyperopt", "hyperopt TPE (fmin, 1 at a time)", _hyperopt, concurrency="1"),
        Tool("flaml", "FLAML tune.run (1 at a time)", _flaml, peer="flaml", concurrency="1"),
    )
}


def trials_for(tool: Tool, settings: Settings) -> int:
    return min(settings.trials, settings.noreuse_trials) if tool.slow else settings.trials


#: smoke mode: one of each code path (raysweep, both trainable kinds, both reuse settings, each peer)
SMOKE_TOOLS = ("raysweep_mlflow", "ray_class_reuse", "ray_function_noreuse", "optuna", "hyperopt", "flaml")


def cells(settings: Settings) -> list[dict[str, Any]]:
    """Every (tool, workload, seed, turn) measurement of the suite, in the order they run.

    Each tool runs ``settings.pairs`` times per workload and seed, the tools taking turns
    (A B C A B C ...), each run in a worker process (and a Ray) of its own: a stretch of load
    from elsewhere then falls on every tool of a turn alike, and the ratio of two tools is taken
    within each turn.
    """
    out = []
    tools = [tool for tool in TOOLS.values() if not settings.smoke or tool.name in SMOKE_TOOLS]
    for workload in settings.functions:
        for seed in range(settings.seeds):
            for turn in range(settings.pairs):
                for tool in tools:
                    out.append({"suite": "overhead", "id": f"{tool.name}-{workload}-s{seed}-t{turn}", "tool": tool.name,
                                "workload": workload, "seed": seed, "turn": turn, "trials": trials_for(tool, settings),
                                "group": f"overhead-{tool.name}-{workload}-s{seed}-t{turn}"})
    return out


def run_cell(cell: dict[str, Any], settings: Settings, scratch: Path) -> dict[str, Any]:
    tool = TOOLS[cell["tool"]]
    load_before = os.getloadavg()[0]
    busy_before = cpus_busy()
    outcome = tool.run(cell["workload"], cell["seed"], cell["trials"], settings, scratch)
    outcome["ms_per_trial"] = 1000 * outcome["seconds"] / max(outcome["trials"], 1)
    return {**cell, **outcome, "label": tool.label, "concurrency": tool.concurrency, "pid": os.getpid(),
            "loadavg_before": load_before, "cpus_busy_before": busy_before}


def summary(record: dict[str, Any]) -> str:
    return (f"{record['tool']:<22} {record['workload']:<9} seed {record['seed']}: "
            f"{record['ms_per_trial']:8.1f} ms/trial over {record['trials']} trials, best {record['best']:.4g}"
            f", turn {record.get('turn', 0) + 1}, {_busy_text(record)} before")


def _busy_text(record: dict[str, Any]) -> str:
    if record.get("cpus_busy_before") is not None:
        return f"{record['cpus_busy_before']:.1f} CPUs busy"
    return f"load {record.get('loadavg_before', float('nan')):.1f}"


def turn_summary(records: list[dict[str, Any]]) -> list[str]:
    """The closing lines of a run: each tool's median over its turns, then raysweep's ratios per turn."""
    from benchmarks.report import OVERHEAD_REFERENCES, busy_turns, median, turn_ratios

    ok = [r for r in records if "error" not in r and "skipped" not in r]
    lines = []
    for workload in sorted({r["workload"] for r in ok}):
        for seed in sorted({r["seed"] for r in ok if r["workload"] == workload}):
            for tool in TOOLS:
                values = [r["ms_per_trial"] for r in ok if (r["tool"], r["workload"], r["seed"]) == (tool, workload, seed)]
                if values:
                    trials = max(r["trials"] for r in ok if r["tool"] == tool)
                    lines.append(f"{tool:<22} {workload:<9} seed {seed}: {median(values):8.1f} ms/trial over {trials} trials, "
                                 f"median of {len(values)} turn(s) ({min(values):.1f}-{max(values):.1f})")
        for tool, reference in OVERHEAD_REFERENCES:
            ratios = turn_ratios(ok, workload, tool, reference)
            if ratios:
                busy = busy_turns(ok, workload)
                lines.append(f"{tool} / {reference} {workload}: {median(ratios):.2f}x, median of {len(ratios)} turn(s) "
                             f"({min(ratios):.2f}-{max(ratios):.2f}x); busy machine in {len(busy)} of them")
    return lines
