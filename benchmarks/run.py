"""Run raysweep's benchmarks against its peers and write RESULTS.md with tables and plots.

    python -m benchmarks --suite all --seeds 3 --budget 120 --trials 500   # the full run, hours
    python -m benchmarks --smoke                                            # < 1 min, proves it runs

Each tool runs in its own worker process (its own Ray, imports and environment); records land
in ``results/`` as they are measured, and the report is rebuilt from them at the end. Nothing
is installed: a missing optional peer is skipped with the command that installs it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    BENCHMARKS_DIR,
    DEFAULT_DATA_DIR,
    SMOKE_OUT,
    SUITES,
    Settings,
    machine_info,
    progress,
    read_records,
    worker_env,
    write_record,
)
from benchmarks._peers import missing_reason  # noqa: E402

#: files in --data-dir the quality and auto suites need
REQUIRED_DATA = ("letter.csv", "california_housing.csv", "adult.csv.gz")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark raysweep against plain Ray Tune, Optuna, hyperopt, FLAML and scikit-learn's halving "
        "search; writes RESULTS.md and plots. The peers come from the optional extra: pip install -e \".[bench]\".",
    )
    parser.add_argument("--suite", choices=(*SUITES, "all"), default="all", help="which suite to run (default: all)")
    parser.add_argument("--seeds", type=int, help="seeds per measurement; every figure is their median (default 3)")
    parser.add_argument("--budget", type=float, help="seconds per quality run and per utilization sweep (default 120)")
    parser.add_argument("--trials", type=int, help="trials per overhead run (default 500)")
    parser.add_argument("--noreuse-trials", type=int,
                        help="trials for plain Ray Tune without actor reuse, about 1 s each (default 100)")
    parser.add_argument("--pairs", type=int,
                        help="overhead: runs of each tool per seed, in turns (A B A B ...); ratios are medians over turns (default 5)")
    parser.add_argument("--functions", help="overhead workloads, comma-separated (default noop,branin,hartmann6)")
    parser.add_argument("--tools", help="only these tools, comma-separated (e.g. raysweep_mlflow,ray_class_reuse)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and synthetic data, < 1 min; writes to benchmarks/out/smoke, never RESULTS.md")
    parser.add_argument("--data-dir", default=None,
                        help=f"folder with letter.csv, california_housing.csv, adult.csv.gz (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--out", help="where RESULTS.md, plots/ and results/ go (default benchmarks/, smoke: benchmarks/out/smoke)")
    parser.add_argument("--resume", action="store_true", help="keep this suite's stored records and run only the missing ones")
    parser.add_argument("--report-only", action="store_true", help="rebuild RESULTS.md and the plots from stored records")
    args = parser.parse_args(argv)
    for name in ("seeds", "trials", "noreuse_trials", "pairs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget must be > 0 seconds, got {args.budget}")
    return args


def make_settings(args: argparse.Namespace, argv: list[str]) -> Settings:
    data_dir = Path(args.data_dir).expanduser().resolve() if args.data_dir else DEFAULT_DATA_DIR
    if args.smoke:
        settings = Settings(out=str(Path(args.out).resolve() if args.out else SMOKE_OUT), data_dir=None, seeds=1,
                            trials=10, noreuse_trials=2, budget=2.0, functions=("branin",), pbt_population=4,
                            startup_repeats=1, smoke=True, pairs=1)
    else:
        settings = Settings(out=str(Path(args.out).resolve() if args.out else BENCHMARKS_DIR),
                            data_dir=str(data_dir) if data_dir.is_dir() else None)
    for name in ("seeds", "trials", "noreuse_trials", "budget", "pairs"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    if args.functions:
        settings.functions = tuple(f.strip() for f in args.functions.split(",") if f.strip())
    settings.argv = argv
    return settings


def _suite_module(name: str) -> Any:
    import importlib

    return importlib.import_module(f"benchmarks.{name}")


def plan(suite: str, settings: Settings, tools: set[str] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The cells to run and the reasons for those left out."""
    notes: list[str] = []
    if suite == "overhead":
        from benchmarks.families import FUNCTIONS

        unknown = [f for f in settings.functions if f not in FUNCTIONS]
        if unknown:
            raise SystemExit(f"--functions: unknown {', '.join(unknown)}; use {', '.join(FUNCTIONS)}")
    if suite in ("quality", "auto") and not settings.smoke:
        missing = [f for f in REQUIRED_DATA if not settings.data_dir or not (Path(settings.data_dir) / f).is_file()]
        if missing:
            where = settings.data_dir or DEFAULT_DATA_DIR
            return [], [f"skipping the {suite} suite: {', '.join(missing)} not found in {where}; pass --data-dir FOLDER"]
    cells = _suite_module(suite).cells(settings)
    if tools:
        cells = [c for c in cells if c.get("tool", c.get("kind")) in tools or c["id"] in tools]
    if suite == "overhead":
        from benchmarks.overhead import TOOLS

        for cell in cells:
            cell["peer"] = TOOLS[cell["tool"]].peer
    if suite == "startup" and not settings.smoke and not settings.data_dir:
        notes.append(f"startup: no datasets at {DEFAULT_DATA_DIR}; the first-trial and utilization runs use synthetic data")
    return cells, notes


def run_group(cells: list[dict[str, Any]], settings: Settings, log: Path, timeout: float) -> None:
    """Run one worker process over ``cells``, echoing its progress lines; records a timeout as failures."""
    from benchmarks.worker import PROGRESS_PREFIX

    spec = settings.scratch_dir / f"spec-{cells[0]['suite']}-{cells[0]['group']}.json"
    spec.write_text(json.dumps({"settings": settings.to_json(), "cells": cells}))
    workdir = settings.scratch_dir / "cwd"  # stray files (mlruns/, ...) land here, not in the checkout
    workdir.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", str(spec)], cwd=workdir, env=worker_env(settings),
            stdout=subprocess.PIPE, stderr=handle, text=True, start_new_session=True,
        )

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith(PROGRESS_PREFIX):
                    progress("  " + line[len(PROGRESS_PREFIX):].rstrip())
                else:
                    handle.write(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            for cell in cells:
                if not (settings.raw_dir / cell["suite"] / f"{cell['id']}.json").exists():
                    write_record(settings, cell["suite"], {**cell, "error": f"timed out after {timeout:.0f} s"})
            progress(f"  group {cells[0]['group']}: timed out after {timeout:.0f} s")
        reader.join(timeout=10)
    if process.returncode not in (0, 1, None) and process.returncode > 0:
        for cell in cells:
            if not (settings.raw_dir / cell["suite"] / f"{cell['id']}.json").exists():
                write_record(settings, cell["suite"], {**cell, "error": f"worker exited {process.returncode}; see {log}"})


def _stop(process: subprocess.Popen) -> None:
    """End a worker and what it started (its own Ray), by its process group."""
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def pending_cells(suite: str, settings: Settings, tools: set[str] | None, resume: bool) -> list[dict[str, Any]]:
    """The suite's cells still to run; stale records go first (unless resuming), missing peers are recorded as skipped."""
    cells, notes = plan(suite, settings, tools)
    for note in notes:
        progress(note)
    folder = settings.raw_dir / suite
    if not cells:
        return []
    if not resume and folder.exists():
        if tools is None:
            shutil.rmtree(folder)  # a fresh run: no records from another configuration mix in
        else:  # a subset: replace its records, keep the others'
            for cell in cells:
                (folder / f"{cell['id']}.json").unlink(missing_ok=True)
    done = {r["id"] for r in read_records(settings, suite) if "error" not in r}
    pending = []
    told: set[str] = set()
    for cell in cells:
        if cell["id"] in done:
            continue
        reason = missing_reason(cell["peer"]) if cell.get("peer") else None
        if reason:
            if cell["peer"] not in told:
                progress(f"skipping {cell['peer']}: {reason}")
                told.add(cell["peer"])
            write_record(settings, suite, {**cell, "skipped": reason})
            continue
        if settings.smoke:
            cell["group"] = "smoke"  # one worker for everything: one interpreter and one Ray to start
        pending.append(cell)
    return pending


def run_cells(cells: list[dict[str, Any]], settings: Settings) -> dict[str, dict[str, float]]:
    """Run every cell, one worker process per group; returns each suite's start and end times."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        groups[cell["group"]].append(cell)
    logs = settings.scratch_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    progress(f"{len(cells)} runs in {len(groups)} worker process(es); worker logs in {logs}")
    times: dict[str, dict[str, float]] = {}
    for group, members in groups.items():
        suites = {cell["suite"] for cell in members}
        for suite in suites:
            if suite not in times:
                _settle(settings)
                times[suite] = {"started": time.time(), "loadavg_start": list(os.getloadavg())}
        limit = sum(_timeout(_suite_module(cell["suite"]), cell, settings) for cell in members)
        run_group(members, settings, logs / f"{group}.log", limit)
        for suite in suites:
            times[suite].update(ended=time.time(), loadavg_end=list(os.getloadavg()))
    return times


def _settle(settings: Settings, wait_s: float = 150.0) -> None:
    """Wait (up to ``wait_s``) for the load a previous suite left to fall below the busy mark.

    The 1-minute load average decays over about a minute after two busy cores go idle; a suite
    that started at once would be flagged busy by the load of the one before it.
    """
    from benchmarks.report import BUSY_LOAD_PER_CPU

    limit = BUSY_LOAD_PER_CPU * settings.cpus
    deadline = time.monotonic() + (0 if settings.smoke else wait_s)
    while os.getloadavg()[0] > limit and time.monotonic() < deadline:
        time.sleep(2)


def _timeout(module: Any, cell: dict[str, Any], settings: Settings) -> float:
    if hasattr(module, "timeout"):
        return module.timeout(cell, settings)
    # overhead: a generous bound on the slowest tool (about 1 s per trial without actor reuse)
    return 120 + 4.0 * cell["trials"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    settings = make_settings(args, argv)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    settings.raw_dir.mkdir(parents=True, exist_ok=True)
    settings.scratch_dir.mkdir(parents=True, exist_ok=True)
    from benchmarks import report

    meta = report.load_meta(settings)
    meta["machine"] = machine_info()
    if not args.report_only:
        if not settings.smoke and not settings.data_dir:
            progress(f"no datasets at {args.data_dir or DEFAULT_DATA_DIR}: the quality suite will be skipped (pass --data-dir)")
        tools = {t.strip() for t in args.tools.split(",")} if args.tools else None
        suites = SUITES if args.suite == "all" else (args.suite,)
        if settings.smoke and args.suite == "all":
            # The auto suite's smoke run (two sweeps) is left out of `--smoke` alone, which
            # tests/test_benchmarks_smoke.py runs under a 240 s limit; `--suite auto --smoke` runs it.
            suites = tuple(s for s in suites if s != "auto")
        cells = [cell for suite in suites for cell in pending_cells(suite, settings, tools, args.resume)]
        times = run_cells(cells, settings)
        for suite, info in times.items():
            meta.setdefault("suites", {})[suite] = {
                "command": "python -m benchmarks " + " ".join(settings.argv),
                "started": info["started"],
                "duration_s": info["ended"] - info["started"],
                "loadavg_start": info["loadavg_start"],
                "loadavg_end": info["loadavg_end"],
                "reduced": settings.reduced(suite),
                "machine": machine_info(),
                "settings": settings.to_json(),
            }
        (settings.raw_dir / "meta.json").write_text(json.dumps(meta, indent=1))
        if "overhead" in times:
            from benchmarks.overhead import turn_summary

            for line in turn_summary(read_records(settings, "overhead")):
                progress(line)
    failed = [r["id"] for suite in SUITES for r in read_records(settings, suite) if "error" in r]
    path = report.write(settings, meta)
    progress(f"wrote {path}")
    if failed:
        progress(f"{len(failed)} run(s) failed ({', '.join(failed)}); see RESULTS.md and {settings.scratch_dir / 'logs'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
