"""Searchers: regret at equal numbers of trials on Branin and Hartmann-6, and the GP's suggest time.

    python -m benchmarks.searchers                   # every cell; about 2 min on 2 cores
    python -m benchmarks.searchers --seeds 2 --trials 30 --timing-trials 0   # a quick look
    python -m benchmarks.searchers --report-only     # rebuild the RESULTS.md section

Each cell drives one searcher, exactly as raysweep builds it (``build_searcher`` over the
``param_space`` raysweep gives Ray Tune), through Ray Tune's ``Searcher`` calls (``suggest``,
``on_trial_complete``) with two trials in flight at a time, as a sweep with
``--max-concurrent 2`` has. The trial is the function itself, evaluated in-process: Ray's
scheduling does not change what a searcher proposes, only when, and leaving it out lets the
regret be measured on many seeds. ``random`` samples each Ray Tune domain, which is what
Ray's ``BasicVariantGenerator`` does.

Regret = best value found so far minus the function's global minimum. The timing cells run the
GP on Hartmann-6 to 500 finished trials and record each ``suggest``'s wall time. Writes
``results/searchers/<id>.json`` and the "Searchers" section of ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import (
    BENCHMARKS_DIR, Settings, machine_info, progress, read_records, write_record, write_results_section,
)  # fmt: skip

SUITE = "searchers"
HEADING = "## 6. Searchers: regret at equal trials"
SEARCHERS = ("gp", "optuna", "hyperopt", "anneal", "random")
FUNCTIONS = ("branin", "hartmann6")
CHECKPOINTS = (30, 100)
#: the searchers the check holds to "below random"
CHECKED = ("gp", "optuna", "hyperopt")
TIMING_AT = (50, 200, 500)
CONCURRENT = 2
#: 5 seeds left the check to chance: seeds 0-4 missed two cells that 10 and 20 seeds meet, and
#: random's Branin regret at 100 trials ranges from 0.0003 to 0.83 across seeds
SEEDS = 20


def _space(function: str) -> dict[str, dict[str, Any]]:
    from benchmarks.families import FUNCTIONS as ANALYTIC

    return {name: {"type": "uniform", "low": low, "high": high} for name, (low, high) in ANALYTIC[function].bounds.items()}


def run_cell(function: str, searcher: str, seed: int, trials: int) -> dict[str, Any]:
    """One searcher on one function for one seed: the value and suggest time of every trial."""
    import logging

    from raysweep import space as dsl
    from raysweep.strategies.registry import build_searcher

    from benchmarks.families import FUNCTIONS as ANALYTIC

    logging.getLogger("optuna").setLevel(logging.WARNING)
    workload = ANALYTIC[function]
    param_space = dsl.param_space(_space(function), searcher)
    values: list[float] = []
    suggest_s: list[float] = []
    if searcher == "random":
        rng = np.random.default_rng(seed)
        for _ in range(trials):
            started = time.perf_counter()
            config = {name: domain.sample(random_state=rng) for name, domain in param_space.items()}
            suggest_s.append(time.perf_counter() - started)
            values.append(workload.function(config))
    else:
        algorithm = build_searcher(searcher, "value", "min", seed, CONCURRENT)
        algorithm.set_search_properties("value", "min", param_space)
        in_flight: list[tuple[str, dict[str, Any]]] = []
        made = 0
        while len(values) < trials:
            while len(in_flight) < CONCURRENT and made < trials:
                trial_id = f"t{made:05d}"
                started = time.perf_counter()
                config = algorithm.suggest(trial_id)
                suggest_s.append(time.perf_counter() - started)
                in_flight.append((trial_id, config))
                made += 1
            trial_id, config = in_flight.pop(0)  # the older of the two ends first
            value = workload.function(config)
            values.append(value)
            algorithm.on_trial_complete(trial_id, {"value": value, "training_iteration": 1})
    best = np.minimum.accumulate(values)
    return {
        "id": f"{function}-{searcher}-s{seed}-n{trials}",
        "function": function,
        "searcher": searcher,
        "seed": seed,
        "trials": trials,
        "regret": (best - workload.minimum).tolist(),
        "suggest_s": suggest_s,
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _quartiles(values: list[float]) -> tuple[float, float]:
    """The 25th and 75th percentiles: the middle half of the seeds lies between them."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def section(settings: Settings) -> list[str]:
    """The RESULTS.md section, from the stored records."""
    records = [r for r in read_records(settings, SUITE) if "regret" in r]
    if not records:
        return []
    lines = [
        HEADING,
        "",
        "Regret (best value found minus the global minimum; lower is better) after the same number of trials, "
        "median over seeds with the middle half of the seeds (25th to 75th percentile) in brackets, each searcher as "
        "raysweep builds it, two trials in flight at a time. Suggest time: "
        "median wall time of one `suggest` over the run. `python -m benchmarks.searchers`; the searchers are driven "
        "through Ray Tune's `Searcher` calls with the function evaluated in-process (no Ray trial overhead).",
        "",
    ]
    verdicts: list[str] = []
    cells: list[list[str]] = []
    for function in FUNCTIONS:
        rows = [r for r in records if r["function"] == function]
        if not rows:
            continue
        seeds = sorted({r["seed"] for r in rows})
        lines += [f"### {function} ({len(seeds)} seeds)", ""]
        header = "| searcher | " + " | ".join(f"regret @ {n}" for n in CHECKPOINTS) + " | suggest time (median) |"
        lines += [header, "| --- |" + " ---: |" * (len(CHECKPOINTS) + 1)]
        medians: dict[str, dict[int, float]] = {}
        for searcher in SEARCHERS:
            mine = [r for r in rows if r["searcher"] == searcher]
            if not mine:
                continue
            values = {n: [r["regret"][n - 1] for r in mine if len(r["regret"]) >= n] for n in CHECKPOINTS}
            at = {n: _median(values[n]) for n in CHECKPOINTS}
            medians[searcher] = at
            suggest = _median([s for r in mine for s in r["suggest_s"]])
            cells_ = " | ".join(f"{at[n]:.4g} ({_quartiles(values[n])[0]:.3g}–{_quartiles(values[n])[1]:.3g})" for n in CHECKPOINTS)
            lines.append(f"| {searcher} | {cells_} | {suggest * 1000:.1f} ms |")
        lines.append("")
        if "random" in medians:
            for n in CHECKPOINTS:
                row = [function, str(n), f"{medians['random'][n]:.4g}"]
                for searcher in CHECKED:
                    if searcher not in medians:
                        row.append("—")
                        continue
                    met = medians[searcher][n] < medians["random"][n]
                    row.append(f"{'met' if met else 'missed'} ({medians[searcher][n]:.4g})")
                    if not met:
                        verdicts.append(f"{searcher} on {function} at {n} trials")
                cells.append(row)
    lines += ["Check (GP and both TPEs below random at 30 and 100 trials on both functions, median of the seeds): "
              + ("met in every cell." if not verdicts else f"missed in {len(verdicts)} of {len(cells) * len(CHECKED)} cells: "
                 + "; ".join(verdicts) + "."), ""]
    lines += ["| function | trials | random | " + " | ".join(CHECKED) + " |", "| --- | ---: | ---: |" + " --- |" * len(CHECKED)]
    lines += ["| " + " | ".join(row) + " |" for row in cells] + [""]
    lines.append(
        "At 30 trials the models have had little to learn from: raysweep's `hyperopt` draws its first 10 trials at "
        "random (Ray's `HyperOptSearch` default is 20), Optuna's TPE its first 10, the GP its first 5 (Branin) or 10 "
        "(Hartmann-6) from a Latin hypercube."
    )
    lines.append("")
    timing = [r for r in read_records(settings, SUITE) if "suggest_at" in r]
    if timing:
        lines += ["GP suggest time as the history grows (Hartmann-6, one run, two trials in flight; median of the 10 "
                  "suggestions up to that many finished trials, and the slowest of them, a kernel refit when one falls among them):", ""]
        lines += ["| finished trials | suggest, median | suggest, slowest |", "| ---: | ---: | ---: |"]
        for record in timing:
            for n, (median, slowest) in sorted(record["suggest_at"].items(), key=lambda kv: int(kv[0])):
                lines.append(f"| {n} | {median * 1000:.0f} ms | {slowest * 1000:.0f} ms |")
            load = record.get("loadavg") or ["?"]
            lines += ["", f"1-minute load average {load[0]} on {(record.get('machine') or {}).get('usable_cpus', '?')} "
                          "cores at the run's end, the benchmark's own threads included; a busier machine gives slower "
                          "suggestions, so read the times as upper bounds on an idle one."]
        lines.append("")
    quality = {r.get("tool") for r in read_records(settings, "quality") if "error" not in r and "skipped" not in r}
    where = ("`gp` and `optuna` are tools of the quality suite (section 2: `raysweep_gp`, `raysweep_optuna`, the XGBoost "
             "recipe on california_housing and adult)")
    if {"raysweep_gp", "raysweep_optuna"} <= quality:
        lines += [f"{where}: their test scores at 120 s are there, beside the recipe's own TPE.", ""]
    else:
        lines += [f"{where}; those cells have not been run at 120 s yet: `python -m benchmarks --suite quality --tools "
                  "raysweep_gp,raysweep_optuna --seeds 3 --budget 120 --data-dir FOLDER` runs only them.", ""]
    return lines


def timing_cell(trials: int, seed: int = 0) -> dict[str, Any]:
    """The GP on Hartmann-6 to ``trials`` finished trials, with each suggestion's time."""
    record = run_cell("hartmann6", "gp", seed, trials)
    suggest = record["suggest_s"]
    at = {}
    for n in TIMING_AT:
        if n <= trials:
            window = suggest[max(0, n - 10) : n]
            at[str(n)] = (statistics.median(window), max(window))
    return {"id": f"timing-gp-hartmann6-n{trials}", "suggest_at": at, "suggest_s": suggest, "trials": trials}


def write_section(settings: Settings) -> Path:
    """Put the section into RESULTS.md in place (before the analysis), replacing an older one."""
    return write_results_section(settings, HEADING, section(settings))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.searchers", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=SEEDS, help=f"seeds per searcher and function (default {SEEDS})")
    parser.add_argument("--trials", type=int, default=max(CHECKPOINTS), help="trials per run (default 100)")
    parser.add_argument("--searchers", default=",".join(SEARCHERS), help="comma-separated subset")
    parser.add_argument("--functions", default=",".join(FUNCTIONS), help="comma-separated subset")
    parser.add_argument("--timing-trials", type=int, default=max(TIMING_AT), help="GP suggest-time run length; 0 skips it")
    parser.add_argument("--out", default=str(BENCHMARKS_DIR))
    parser.add_argument("--resume", action="store_true", help="keep stored records, run only the missing cells")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the RESULTS.md section")
    args = parser.parse_args(argv)
    settings = Settings(out=args.out, data_dir=None, argv=list(argv or []))
    if not args.report_only:
        done = {r["id"] for r in read_records(settings, SUITE)} if args.resume else set()
        machine = machine_info()
        # Seed by seed: a run cut short still has every searcher on every function.
        for seed in range(args.seeds):
            for function in args.functions.split(","):
                for searcher in args.searchers.split(","):
                    if f"{function}-{searcher}-s{seed}-n{args.trials}" in done:
                        continue
                    started = time.perf_counter()
                    record = run_cell(function, searcher, seed, args.trials)
                    write_record(settings, SUITE, {**record, "machine": machine if seed == 0 else None})
                    progress(f"searchers: {record['id']}: regret {record['regret'][-1]:.4g} "
                             f"({time.perf_counter() - started:.0f} s)")
        if args.timing_trials and f"timing-gp-hartmann6-n{args.timing_trials}" not in done:
            record = timing_cell(args.timing_trials)
            write_record(settings, SUITE, {**record, "machine": machine})
            progress(f"searchers: {record['id']}: {record['suggest_at']}")
    progress(f"searchers: wrote {write_section(settings)}")


if __name__ == "__main__":
    main()
