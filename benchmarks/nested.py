"""Suite 4, nested validation (``--nested-cv 5``) on letter and adult.

* The nested estimate (mean ± std of the outer folds' scores) beside the test score of the final
  sweep's refit model and beside that final sweep's best validation score: the final sweep is a
  plain sweep on train+validation, so its best validation score is what a plain sweep reports.
* The share of the cores' time spent training while the K inner sweeps and the final sweep run
  at once (the trainable's ``step_time`` summed over every sweep, and the trial processes' CPU
  seconds from /proc), against the goal of 85% on 2 cores; and the same with the K+1 refits of
  the best configs added (their wall and CPU seconds in the driver, timed here): the outer folds'
  refits are the models the nested estimate scores.
* The wall time of the job against the same K+1 sweeps (same folds, same seeds, same trial
  counts) run one after another (goal: no slower).
* The same shares for a job bound by time, as the plain sweep's 91% is measured (startup suite:
  a 120 s budget): each of the K+1 sweeps gets ``--budget`` seconds and starts trials until it is
  spent, all at once. A 20-trial job on adult is over in under a minute and is mostly its sweeps'
  fixed costs; this one shows what the cores do while a nested job has work to do.

Smoke mode runs nothing here (a nested job is K+1 sweeps; the smoke run stays under a minute):
``python -m benchmarks --suite nested`` on an idle machine measures it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from benchmarks._common import Settings, warm_mlflow

K = 5
#: trials per sweep (inner and final): a count, not a time budget, so the two schedules do the same work
TRIALS = 20
DATASETS = {"letter": ("letter.csv", "Letter", "accuracy"), "adult": ("adult.csv.gz", "income", "log_loss")}


#: turns of the two trial-count schedules, taken in turn (at once, one after another, at once, ...):
#: the wall-time ratio is the median of the turns' ratios, which a slower hour moves together
TURNS = 3


def cells(settings: Settings) -> list[dict[str, Any]]:
    if settings.smoke or not settings.data_dir:
        return []  # see the module's docstring
    out = []
    for name in DATASETS:
        if not (Path(settings.data_dir) / DATASETS[name][0]).is_file():
            continue
        for turn in range(TURNS):
            for schedule in ("at_once", "one_after_another"):
                # turn 0 keeps the id records had before there were turns
                id_ = f"nested-{name}-{schedule}" + (f"-t{turn}" if turn else "")
                out.append({"suite": "nested", "id": id_, "dataset": name, "schedule": schedule, "turn": turn, "group": id_})
        for schedule in ("budget", "plain_budget"):
            out.append({"suite": "nested", "id": f"nested-{name}-{schedule}", "dataset": name, "schedule": schedule, "group": f"nested-{name}-{schedule}"})
    return out


def timeout(cell: dict[str, Any], settings: Settings) -> float:
    return 4 * 3600


def run_cell(cell: dict[str, Any], settings: Settings, scratch: Path) -> dict[str, Any]:
    from benchmarks.quality import trial_reports
    from benchmarks.startup import TrialCpuSampler, refuse_foreign_cluster
    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.run import run_planned

    file, target, metric = DATASETS[cell["dataset"]]
    os.environ.pop("RAY_ADDRESS", None)
    refuse_foreign_cluster()
    warm_mlflow(settings)
    # "budget": every sweep starts trials until its --time-budget is spent (no trial count);
    # "plain_budget": one plain sweep so, for the share a sweep without nesting reaches on the data.
    budgeted = cell["schedule"] in ("budget", "plain_budget")
    size = {"time_budget": settings.budget} if budgeted else {"num_samples": TRIALS}
    nested = None if cell["schedule"] == "plain_budget" else K
    plan = plan_sweep(
        "xgboost", str(Path(settings.data_dir) / file), target=target, metric=metric, nested_cv=nested, **size,
        seed=0, name=cell["id"], experiment="bench-nested", storage=str(scratch / "ray"), tracking_uri=settings.tracking_uri,
    )  # fmt: skip
    started = time.perf_counter()
    with TrialCpuSampler() as sampler, timed_refits() as refits:
        if cell["schedule"] in ("at_once", "budget", "plain_budget"):
            result = run_planned(plan, progress=False)
            estimate = result.nested
        else:
            result, estimate = _one_after_another(plan, run_planned)
    elapsed = time.perf_counter() - started
    import ray

    cpus = int(ray.cluster_resources().get("CPU", settings.cpus))
    storage = Path(plan.storage)
    names = [f"{plan.name}-fold{i}" for i in range(1, K + 1)] + [f"{plan.name}-final"] if nested else [plan.name]
    training = sum(float(r.get("step_time", 0.0)) for name in names for r in trial_reports(storage / name))
    return {
        **cell,
        "metric": metric,
        "k": K,
        "trials_per_sweep": None if budgeted else TRIALS,
        "budget_s": settings.budget if budgeted else None,
        "trials": sum(len(list((storage / name).glob("*/result.json"))) for name in names),
        "nested_mean": estimate.mean if estimate else None,
        "nested_std": estimate.std if estimate else None,
        "optimism": estimate.optimism if estimate else None,
        "test_score": result.test_score,
        "plain_best_validation": result.best_validation_score,
        "elapsed_s": elapsed,
        "cpus": cpus,
        "training_share": training / (cpus * elapsed),
        "cpu_share": sampler.cpu_seconds / (cpus * elapsed) if sampler.cpu_seconds else None,
        # the K+1 refits, in the driver: wall seconds, and the CPU seconds of the threads that ran them
        "refits": len(refits["wall"]),
        "refit_wall_s": sum(refits["wall"]),
        "refit_cpu_s": sum(refits["cpu"]),
        "training_share_with_refits": (training + sum(refits["wall"])) / (cpus * elapsed),
        "cpu_share_with_refits": (sampler.cpu_seconds + sum(refits["cpu"])) / (cpus * elapsed) if sampler.cpu_seconds else None,
        "trial_processes": sampler.processes,
        # CPU seconds by process kind, and the whole machine's busy seconds, over the same window
        "cpu_breakdown": sampler.breakdown(),
    }


@contextlib.contextmanager
def timed_refits() -> Iterator[dict[str, list[float]]]:
    """Wall and CPU seconds of each refit of a best config while in the block (the sweeps' threads
    call ``raysweep.sweep.result.refit``; a refit trains on one thread, so that thread's CPU time is its own)."""
    from raysweep.sweep import result as sweep_result

    times: dict[str, list[float]] = {"wall": [], "cpu": []}
    lock, original = threading.Lock(), sweep_result.refit

    def refit(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                times["wall"].append(time.perf_counter() - wall)
                times["cpu"].append(time.thread_time() - cpu)

    sweep_result.refit = refit
    try:
        yield times
    finally:
        sweep_result.refit = original


def _one_after_another(plan: Any, run_planned: Any) -> tuple[Any, Any]:
    """The job's K+1 sweeps (the same folds and seeds), each started when the one before ended."""
    from raysweep.splits import outer_folds
    from raysweep.sweep.nested import FoldScore, NestedEstimate, Part, _part_plan, part_names

    names = part_names(plan.name, K)
    folds = outer_folds(plan.dataset, plan.seed, plan.test_size, K)
    scores = []
    for i, rows in enumerate(folds):
        fold = run_planned(_part_plan(plan, names[i], final=False), progress=False, part=Part(rows, None, {}, names[i]))
        scores.append(FoldScore(i + 1, fold.test_score, fold.best_validation_score, fold.best_config))
    final = run_planned(_part_plan(plan, names[-1], final=True), progress=False, part=Part(None, None, {}, names[-1]))
    return final, NestedEstimate(plan.metric, plan.mode, scores)


def summary(record: dict[str, Any]) -> str:
    nested = (f"nested {record['metric']} {record['nested_mean']:.4f} ± {record['nested_std']:.4f}, "
              if record.get("nested_mean") is not None else f"{record['metric']} ")
    return (
        f"{record['dataset']} ({record['schedule']}): {nested}"
        f"test {record['test_score']:.4f}, plain sweep's best validation {record['plain_best_validation']:.4f}; "
        f"{record['elapsed_s']:.0f}s, {100 * record['training_share']:.0f}% of the cores' time training"
    )


def unit(figure: str, mark: str) -> str:
    """``"1.05 (1.00-1.08)"`` as ``"1.05x (1.00-1.08)"``: the unit after the median."""
    middle, _, spread = figure.partition(" ")
    return f"{middle}{mark}" + (f" {spread}" if spread else "")


def settings_budget(records: list[dict[str, Any]]) -> float:
    """The time budget the budget-bound records ran with (0 if none did)."""
    return next((r["budget_s"] for r in records if r.get("budget_s")), 0)


def section(records: list[dict[str, Any]]) -> list[str]:
    """RESULTS.md's section on nested validation."""
    lines = ["## Nested validation (`--nested-cv 5`)", ""]
    measured = [r for r in records if "error" not in r and "skipped" not in r]
    if not measured:
        return lines + ["Not run yet: `python -m benchmarks --suite nested` (needs letter.csv and adult.csv.gz in --data-dir).", ""]
    from benchmarks._common import median_range

    def percent(value: float | None) -> str:
        return f"{100 * value:.0f}%" if value else "n/a"

    lines += ["| dataset | wall time, at once ÷ one after another | training share at once | CPU share at once "
              "| training share, refits in | CPU share, refits in |", "| --- | --- | --- | --- | --- | --- |"]
    for name in sorted({r["dataset"] for r in measured}):
        mine = [r for r in measured if r["dataset"] == name]
        walls = {(r["schedule"], r.get("turn", 0)): r["elapsed_s"] for r in mine}
        ratios = [walls[("at_once", t)] / walls[("one_after_another", t)] for (kind, t) in walls if kind == "at_once" and ("one_after_another", t) in walls]
        budget = settings_budget(mine)
        for schedule, label in (("at_once", "trial counts"), ("budget", f"a {budget:g} s budget each"),
                                ("plain_budget", f"one plain sweep, a {budget:g} s budget")):
            shares = [r for r in mine if r["schedule"] == schedule]
            if not shares:
                continue

            def share(key: str) -> str:
                values = [100 * r[key] for r in shares if r.get(key)]
                return unit(median_range(values, 0), "%") if values else "n/a"

            wall = f"{unit(median_range(ratios, 2), 'x')}, {len(ratios)} turns" if schedule == "at_once" and ratios else "-"
            lines.append(f"| {name} ({label}) | {wall} | {share('training_share')} | {share('cpu_share')} | "
                         f"{share('training_share_with_refits')} | {share('cpu_share_with_refits')} |")
    lines += ["", "Medians over the turns, their range in brackets. Every run:", "",
              "| dataset | schedule | turn | trials | nested estimate | test score | plain sweep's best validation | optimism | wall time (s) "
              "| training share | CPU share | training share, refits in | CPU share, refits in |",
              "| --- | --- | ---: | ---: | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(measured, key=lambda r: (r["dataset"], r.get("turn", 0), r["schedule"])):
        lines.append(
            f"| {r['dataset']} ({r['metric']}) | {r['schedule'].replace('_', ' ')} | {r.get('turn', 0)} | {r.get('trials', '')} | "
            + (f"{r['nested_mean']:.4f} ± {r['nested_std']:.4f} | " if r.get("nested_mean") is not None else "- | ")
            + f"{r['test_score']:.4f} | {r['plain_best_validation']:.4f} | "
            + (f"{r['optimism']:+.4f}" if r.get("optimism") is not None else "-") + f" | {r['elapsed_s']:.0f} | "
            f"{percent(r['training_share'])} | {percent(r.get('cpu_share'))} | "
            f"{percent(r.get('training_share_with_refits'))} | {percent(r.get('cpu_share_with_refits'))} |"
        )
    lines += ["", f"XGBoost, {TRIALS} trials per sweep (\"budget\": each sweep starts trials until its time budget is spent, "
                  f"as the plain sweep's 91% is measured; \"plain budget\": one sweep without nesting so), K = {K}; goals: at least 85% training share at once on 2 cores, "
                  "and the job no slower than its K+1 sweeps one after another. Training share: the trainable's "
                  "`step_time` summed over every trial of the job (wall time inside steps, which a contended core "
                  "inflates). CPU share: the CPU seconds /proc gave the trial processes (titled `ray::ResourceTrainable`, "
                  "Tune's `with_resources` wrapper; records made before 2026-12-01 counted only `ray::SweepTrainable` "
                  "titles and read low), what a process used after its last sample and before it ended included "
                  "(from its parent's reaped CPU time). Refits in: the K+1 refits of the best configs added, timed in "
                  "the driver (wall time for the training share, the refitting thread's CPU time for the CPU share); "
                  "the outer folds' refits are the models the nested estimate scores. Denominator throughout: the "
                  "cores times the whole job's wall time, its start and end included (the plain sweep's 91% is over "
                  "its time budget only).", ""]
    broken = [r for r in sorted(measured, key=lambda r: (r["dataset"], r.get("turn", 0), r["schedule"])) if r.get("cpu_breakdown")]
    if broken:
        lines += [
            "Where the cores' time went (CPU seconds from /proc over the job's wall time; the machine's busy time from /proc/stat; "
            "\"outside\" is busy time of processes that are not this job's):", "",
            "| dataset | schedule | cores × wall (s) | trial processes (how many) | driver (refits among it) | MLflow writers "
            "| Ray's own | outside the job | idle |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in broken:
            b, whole = r["cpu_breakdown"], r["cpus"] * r["elapsed_s"]
            idle = whole - b.get("machine", whole)
            count = f" ({r['trial_processes']})" if "trial_processes" in r else ""
            refits = f" ({r['refit_cpu_s']:.0f})" if "refit_cpu_s" in r else ""
            lines.append(
                f"| {r['dataset']} | {r['schedule'].replace('_', ' ')} | {whole:.0f} | {b['trials']:.0f}{count} | {b['driver']:.0f}{refits} | "
                f"{b['writer']:.0f} | {b['ray'] + b.get('unseen', 0.0):.0f} | {b.get('outside_job', float('nan')):.0f} | {idle:.0f} |"
            )
        lines.append("")
    return lines
