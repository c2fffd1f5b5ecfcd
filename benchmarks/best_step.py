"""Best step or last step: which meaning of a trial's "best" gives the better refit model.

    python -m benchmarks.best_step                  # every pair, about 25 min on 2 cores
    python -m benchmarks.best_step --pairs mlp/digits --seeds 2   # a quick look
    python -m benchmarks.best_step --report-only    # rebuild the RESULTS.md section

A paired experiment. Each cell is one sweep (the recipe's own scheduler and searcher, a fixed
``--num-samples``, so the machine's load cannot change what is measured) of one recipe on one
dataset for one seed. From that one finished sweep, two choices are refit on train+validation
and scored once on the untouched test split:

- *last step*: the trial whose last reported validation score is best, refit with its config
  for as many resource steps as it ran (Ray Tune's ``get_best_result(scope="last")``);
- *best step*: the best validation score at any step of any trial, refit with the config of
  that result for that many steps (as XGBoost's own early stopping keeps the best iteration).

Both choices come from the trials' own results (``result.json``: every step, with the config
in force at it), not from the sweep's summary, so the experiment does not depend on which
meaning raysweep itself uses. Writes ``results/best_step/<id>.json`` and the "Best step or last
step" section of ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    BENCHMARKS_DIR,
    DEFAULT_DATA_DIR,
    Settings,
    machine_info,
    progress,
    read_records,
    write_record,
    write_results_section,
)

SUITE = "best_step"
HEADING = "## 5. Best step or last step"

#: (recipe, dataset, data file and target or None for a built-in, num_samples, seeds)
PAIRS: dict[str, tuple[str, str, tuple[str, str] | None, int, int]] = {
    "mlp/digits": ("mlp", "digits", None, 12, 5),
    "mlp/breast_cancer": ("mlp", "breast_cancer", None, 12, 5),
    "xgboost/digits": ("xgboost", "digits", None, 12, 5),
    "xgboost/breast_cancer": ("xgboost", "breast_cancer", None, 12, 5),
    # One seed: a sweep of the MLP on letter's 20,000 rows takes five minutes on 2 cores.
    "mlp/letter": ("mlp", "letter", ("letter.csv", "Letter"), 8, 1),
    "xgboost/california_housing": ("xgboost", "california_housing", ("california_housing.csv", "median_house_value"), 8, 3),
    "xgboost/adult": ("xgboost", "adult", ("adult.csv.gz", "income"), 8, 3),
}


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def choices(frames: list[Any], metric_key: str, mode: str) -> dict[str, dict[str, Any]]:
    """The last-step and the best-step choice from the trials' result tables (rows in time order)."""
    picked: dict[str, dict[str, Any]] = {}
    for trial, frame in enumerate(frames):
        if frame is None or len(frame) == 0 or metric_key not in frame:
            continue
        rows = [row for _, row in frame.iterrows() if _finite(row.get(metric_key))]
        if not rows:
            continue
        for kind, row in (("last", rows[-1]), ("best", _best_row(rows, metric_key, mode))):
            if kind not in picked or _better(float(row[metric_key]), picked[kind]["validation"], mode):
                picked[kind] = {
                    "trial": trial,
                    "trial_id": str(row.get("trial_id", "")),
                    "validation": float(row[metric_key]),
                    "steps": int(row["training_iteration"]),
                    "config": {k[len("config/"):]: _plain(v) for k, v in row.items() if k.startswith("config/")},
                }
    return picked


def _best_row(rows: list[Any], metric_key: str, mode: str) -> Any:
    best = rows[0]
    for row in rows[1:]:
        if _better(float(row[metric_key]), float(best[metric_key]), mode):
            best = row
    return best


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def run_cell(pair: str, seed: int, settings: Settings, scratch: Path) -> dict[str, Any]:
    from ray.tune import ExperimentAnalysis

    from raysweep.data import prepare
    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.result import refit
    from raysweep.sweep.run import run_planned

    recipe, dataset, source, num_samples, _ = PAIRS[pair]
    spec = dataset if source is None else str(Path(settings.data_dir or DEFAULT_DATA_DIR) / source[0])
    identifier = f"{recipe}-{dataset}-s{seed}"
    plan = plan_sweep(recipe, spec, target=None if source is None else source[1], num_samples=num_samples, seed=seed,
                      name=f"{identifier}-{time.strftime('%Y%m%d-%H%M%S')}", storage=str(scratch / "ray"))
    started = time.perf_counter()
    result = run_planned(plan, progress=False, tracking=False)
    sweep_s = time.perf_counter() - started
    analysis = ExperimentAnalysis(result.storage_path)
    picked = choices(list(analysis.trial_dataframes.values()), plan.metric_key, plan.mode)
    prepared = prepare(plan.dataset, plan.family, seed=plan.seed, test_size=plan.test_size, val_size=plan.val_size, cv=plan.cv)
    tests: dict[tuple, float] = {}
    for choice in picked.values():
        key = (choice["trial_id"], choice["steps"])
        if key not in tests:
            if result.best_resource == plan.recipe.resource.at(choice["steps"]) and result.best_config == choice["config"]:
                tests[key] = result.test_score  # the sweep's own refit of this very choice
            else:
                tests[key] = float(refit(plan, prepared, choice["config"], choice["steps"])[1])
        choice["resource"] = plan.recipe.resource.at(choice["steps"])
        choice["test"] = tests[key]
    return {
        "id": identifier, "pair": pair, "recipe": recipe, "dataset": dataset, "seed": seed,
        "metric": plan.metric, "mode": plan.mode, "num_samples": num_samples, "trials": result.num_trials,
        "resource": plan.recipe.resource.name, "max_steps": plan.recipe.resource.max_steps,
        "last": picked["last"], "best": picked["best"], "sweep_s": round(sweep_s, 2),
        "elapsed_s": round(time.perf_counter() - started, 2),
    }


def gain(record: dict[str, Any]) -> float:
    """How much better the best-step choice scored on test than the last-step one (positive: better)."""
    difference = record["best"]["test"] - record["last"]["test"]
    return difference if record["mode"] == "max" else -difference


def section(settings: Settings) -> list[str]:
    """The RESULTS.md section, from the stored records ([] when there are none)."""
    records = [r for r in read_records(settings, SUITE) if "best" in r]
    if not records:
        return []
    lines = [
        HEADING, "",
        "From one finished sweep per cell (recipe defaults: ASHA + HyperOpt, a fixed number of trials, "
        "no time budget), the *last-step* choice (the trial whose last validation score is best, refit "
        "for the steps it ran) and the *best-step* choice (the best validation score at any step, refit "
        "with that result's config for that many steps) are both refit on train+validation and scored "
        "on the same untouched test split. Gain = best-step test score minus last-step test score, "
        "signed so that positive means best step did better (for rmse: last minus best). "
        "`python -m benchmarks.best_step`.", "",
        "| recipe / dataset | metric | seeds | trials | same choice | test, last step (median) | "
        "test, best step (median) | best step wins / ties / losses | gain: mean ± sd | steps refit, last → best (median) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | :---: | ---: | ---: |",
    ]
    gains_all: list[float] = []
    for pair in PAIRS:
        rows = sorted((r for r in records if r["pair"] == pair), key=lambda r: r["seed"])
        if not rows:
            continue
        gains = [gain(r) for r in rows]
        gains_all += gains
        same = sum(r["best"]["trial_id"] == r["last"]["trial_id"] and r["best"]["steps"] == r["last"]["steps"] for r in rows)
        wins = sum(g > 1e-12 for g in gains)
        losses = sum(g < -1e-12 for g in gains)
        sd = statistics.stdev(gains) if len(gains) > 1 else 0.0
        lines.append(
            f"| {pair} | {rows[0]['metric']} | {len(rows)} | {rows[0]['trials']} | {same}/{len(rows)} "
            f"| {statistics.median(r['last']['test'] for r in rows):.4f} | {statistics.median(r['best']['test'] for r in rows):.4f} "
            f"| {wins} / {len(rows) - wins - losses} / {losses} | {statistics.mean(gains):+.4f} ± {sd:.4f} "
            f"| {statistics.median(r['last']['steps'] for r in rows):g} → {statistics.median(r['best']['steps'] for r in rows):g} |"
        )
    wins = sum(g > 1e-12 for g in gains_all)
    losses = sum(g < -1e-12 for g in gains_all)
    lines += [
        "",
        f"All {len(gains_all)} cells: best step wins {wins}, ties {len(gains_all) - wins - losses}, loses {losses}; "
        f"mean gain {statistics.mean(gains_all):+.4f} (sd {statistics.stdev(gains_all) if len(gains_all) > 1 else 0.0:.4f}, "
        f"median {statistics.median(gains_all):+.4f}). The rmse rows (california_housing) are in the target's units.",
        "",
    ]
    return lines


def write_section(settings: Settings) -> Path:
    """Put the section into RESULTS.md in place (before the analysis), replacing an older one."""
    return write_results_section(settings, HEADING, section(settings))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.best_step", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", help=f"comma-separated subset of {', '.join(PAIRS)}")
    parser.add_argument("--seeds", type=int, help="seeds per pair (default: 5 for the built-in datasets, 3 for the files, 1 for mlp/letter)")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--out", default=str(BENCHMARKS_DIR))
    parser.add_argument("--scratch", help="Ray's storage (default: <out>/out/scratch/best_step)")
    parser.add_argument("--resume", action="store_true", help="keep stored records, run only the missing cells")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the RESULTS.md section")
    args = parser.parse_args(argv)
    settings = Settings(out=args.out, data_dir=args.data_dir, argv=list(argv or []))
    if not args.report_only:
        pairs = args.pairs.split(",") if args.pairs else list(PAIRS)
        unknown = [p for p in pairs if p not in PAIRS]
        if unknown:
            parser.error(f"--pairs {','.join(unknown)}: unknown; use some of {', '.join(PAIRS)}")
        done = {r["id"] for r in read_records(settings, SUITE)} if args.resume else set()
        scratch = Path(args.scratch or settings.out_dir / "out" / "scratch" / SUITE)
        most = max(args.seeds or PAIRS[p][4] for p in pairs)
        # Seed by seed across the pairs: a run cut short still has every pair.
        for seed in range(most):
            for pair in pairs:
                recipe, dataset, source, _, seeds = PAIRS[pair]
                if seed >= (args.seeds or seeds) or f"{recipe}-{dataset}-s{seed}" in done:
                    continue
                if source is not None and not (Path(args.data_dir) / source[0]).is_file():
                    progress(f"best_step: {pair} skipped: {source[0]} not in {args.data_dir}")
                    continue
                record = run_cell(pair, seed, settings, scratch)
                write_record(settings, SUITE, {**record, "machine": machine_info() if seed == 0 else None})
                progress(f"best_step: {record['id']}: test last {record['last']['test']:.4f} "
                         f"best {record['best']['test']:.4f} ({record['elapsed_s']:.0f} s)")
    progress(f"best_step: wrote {write_section(settings)}")


if __name__ == "__main__":
    main()
