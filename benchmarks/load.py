"""Load: a sweep of many cheap trials with MLflow on, against plain Ray Tune, with both drivers' memory.

    python -m benchmarks.load --trials 10000 --repeats 3   # the full run (about an hour on 2 idle cores)
    python -m benchmarks.load --trials 500                 # a quick look
    python -m benchmarks.load --trials 1000 --heap         # where the driver's memory per trial goes

Each tool runs in a process of its own (``--child``); this process samples that driver's
resident memory (and that of raysweep's MLflow writer process) from ``/proc`` twice a second,
together with how many trials the driver has started (the child writes it to a file), so
memory per trial is the slope of memory against trials started. Plain Ray Tune (function
trainable, ``reuse_actors=True``, its default loggers on) runs the same trials; with
``--repeats`` the tools alternate (A B A B) and the report gives medians with ranges.
Afterwards the MLflow store is counted: one parent run, one child run per trial, none left
RUNNING. ``--heap`` diffs two tracemalloc snapshots of each driver (at 20% and 95% of its
trials started) and reports where the Python heap grew. Writes
``benchmarks/results/load/<tool>-r<repeat>.json`` and the load section of ``benchmarks/LOAD.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import BENCHMARKS_DIR, REPO, median_range, replace_section

TOOLS = ("raysweep_mlflow", "ray_function_reuse")
LABELS = {
    "raysweep_mlflow": "raysweep (MLflow on)",
    "ray_function_reuse": "plain Ray Tune (function trainable, reuse)",
    "ray_class_reuse": "plain Ray Tune (class trainable, reuse)",
}
WORKLOAD = "branin"
MB_PER_KB = 1 / 1024  # /proc reports kB
LOAD_TITLE = "# Load, result throughput and scheduling across nodes"
HEADING = "## 1. Load: many trials"
#: the issue's goals
TIME_GOAL, MEMORY_GOAL = 1.1, 1.2


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * MB_PER_KB
    except (OSError, ValueError):
        return None
    return None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def writer_pid(driver: int) -> int | None:
    """raysweep's MLflow writer process among the driver's children, if it runs."""
    for child in _children(driver):
        try:
            if b"raysweep.tracking._writer_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        except OSError:
            continue
    return None


# -- the measured process ------------------------------------------------------------------------
class _Progress:
    """Counts the trials the driver started (into a file the sampler reads) and, with ``heap``,
    takes the two tracemalloc snapshots."""

    def __init__(self, path: Path, trials: int, heap: bool) -> None:
        self.path, self.trials, self.heap = path, trials, heap
        self.started = 0
        self.snapshots: list[Any] = []
        self.marks = (max(1, int(0.2 * trials)), max(2, int(0.95 * trials)))

    def trial_started(self) -> None:
        self.started += 1
        if self.started % 10 == 0 or self.started == self.trials:
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(str(self.started))
            temporary.replace(self.path)
        if self.heap and self.started in self.marks:
            import gc
            import tracemalloc

            gc.collect()
            self.snapshots.append(tracemalloc.take_snapshot())


_STDLIB = os.path.dirname(os.__file__)


def _owner(traceback: Any) -> tuple[str, str]:
    """The innermost frame of an allocation that is not Python's standard library, and its package."""
    frames = list(traceback)  # oldest first
    frame = next((f for f in reversed(frames) if not f.filename.startswith(_STDLIB + "/") or "site-packages" in f.filename), frames[-1])
    name = frame.filename
    if "/raysweep/" in name:
        package = "raysweep"
    elif "/benchmarks/" in name:
        package = "benchmarks (this harness)"
    elif "site-packages/" in name:
        package = name.split("site-packages/")[-1].split("/")[0].removesuffix(".py")
    else:
        package = "python"
    where = name.split("site-packages/")[-1].replace(str(REPO) + "/", "").replace(_STDLIB + "/", "")
    return f"{where}:{frame.lineno}", package


def _heap_growth(snapshots: list[Any], trials_between: int) -> dict[str, Any]:
    """Where the Python heap grew between the two snapshots, per trial: by package and by line,
    each allocation charged to its innermost caller outside the standard library."""
    if len(snapshots) < 2:
        return {}
    first, last = snapshots
    by_package: dict[str, float] = {}
    by_line: dict[str, list[float]] = {}
    for stat in last.compare_to(first, "traceback"):
        where, package = _owner(stat.traceback)
        by_package[package] = by_package.get(package, 0.0) + stat.size_diff
        line = by_line.setdefault(where, [0.0, 0.0])
        line[0] += stat.size_diff
        line[1] += stat.count_diff
    top = sorted(by_line.items(), key=lambda kv: -kv[1][0])[:15]
    return {
        "heap_trials_between": trials_between,
        "heap_bytes_per_trial": round(sum(by_package.values()) / trials_between),
        "heap_by_package": {k: round(v / trials_between) for k, v in sorted(by_package.items(), key=lambda kv: -kv[1]) if abs(v) >= trials_between},
        "heap_top_lines": [
            {"where": where, "bytes_per_trial": round(size / trials_between), "blocks_per_trial": round(count / trials_between, 2)}
            for where, (size, count) in top
        ],
    }


def child(tool: str, trials: int, scratch: Path, seed: int, heap: bool) -> dict[str, Any]:
    from benchmarks._common import Settings, start_ray

    settings = Settings(out=str(scratch), data_dir=None, cpus=2, concurrency=2)
    start_ray(settings)
    progress = _Progress(scratch / "started", trials, heap)
    if heap:
        import tracemalloc

        tracemalloc.start(6)
    started = time.perf_counter()
    if tool == "raysweep_mlflow":
        from raysweep import run_sweep
        from raysweep.sweep import ledger

        from benchmarks.families import analytic_dataset, analytic_recipe

        # Count the trials at the hook of raysweep's own callback that sees every trial start.
        counted = ledger.TrialLedger.on_trial_start

        def on_trial_start(self: Any, *args: Any, **kwargs: Any) -> None:
            progress.trial_started()
            counted(self, *args, **kwargs)

        ledger.TrialLedger.on_trial_start = on_trial_start  # type: ignore[method-assign]
        result = run_sweep(
            analytic_recipe(WORKLOAD),
            analytic_dataset(WORKLOAD),
            progress=False,
            num_samples=trials,
            max_concurrent=2,
            seed=seed,
            name=f"load-{trials}",
            storage=str(scratch / "ray"),
            tracking_uri=f"sqlite:///{scratch / 'mlflow.db'}",
            experiment=f"load-{trials}",
        )
        outcome = {"trials": result.num_trials, "errors": result.num_errors, "parent_run_id": result.parent_run_id,
                   "experiment_id": result.experiment_id, "tracking_uri": result.tracking_uri}  # fmt: skip
    else:
        from ray.tune import Callback

        from benchmarks.overhead import _ray_tune

        class Counting(Callback):
            def on_trial_start(self, *args: Any, **kwargs: Any) -> None:
                progress.trial_started()

        kind = "function" if tool == "ray_function_reuse" else "class"
        measured = _ray_tune(kind, True, (Counting(),))(WORKLOAD, seed, trials, settings, scratch)
        outcome = {"trials": measured["trials"], "errors": measured["errors"]}
    outcome["seconds"] = time.perf_counter() - started
    outcome.update(_heap_growth(progress.snapshots, progress.marks[1] - progress.marks[0]))
    return outcome


# -- the sampler ---------------------------------------------------------------------------------
def measure(tool: str, trials: int, scratch: Path, seed: int, heap: bool = False) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)
    outcome_file = scratch / f"{tool}.outcome.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", "benchmarks.load", "--child", tool, "--trials", str(trials),
               "--scratch", str(scratch), "--seed", str(seed), "--outcome", str(outcome_file)]  # fmt: skip
    if heap:
        command.append("--heap")
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO, env=env)
    samples: list[tuple[float, float, float, int]] = []  # (seconds, driver MB, writer MB, trials started)
    counter = scratch / "started"
    while process.poll() is None:
        driver = _rss_mb(process.pid)
        writer = writer_pid(process.pid)
        writer_mb = _rss_mb(writer) if writer else 0.0
        try:
            count = int(counter.read_text())
        except (OSError, ValueError):
            count = 0
        if driver is not None:
            samples.append((time.monotonic() - started, driver, writer_mb or 0.0, count))
        time.sleep(0.5)
    if process.returncode != 0:
        raise SystemExit(f"{tool}: the measured process exited {process.returncode}")
    outcome = json.loads(outcome_file.read_text())
    record: dict[str, Any] = {"tool": tool, "trials_requested": trials, **outcome}
    record["loadavg_end"] = [round(x, 1) for x in os.getloadavg()]
    record["recorded_at"] = time.strftime("%Y-%m-%d %H:%M")
    record.update(memory_figures(samples, trials))
    if tool == "raysweep_mlflow":
        record.update(_count_runs(outcome))
    return record


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x."""
    if len(points) < 3:
        return None
    mean_x = statistics.fmean(p[0] for p in points)
    mean_y = statistics.fmean(p[1] for p in points)
    spread = sum((p[0] - mean_x) ** 2 for p in points)
    return sum((p[0] - mean_x) * (p[1] - mean_y) for p in points) / spread if spread else None


def memory_figures(samples: list[tuple[float, float, float, int]], trials: int) -> dict[str, Any]:
    """Driver and writer memory: peaks, and kB per trial as the slope of resident memory against
    the trials started, from 10% to 95% of them (Ray's start, imports and the end left out)."""
    if not samples:
        return {}
    body = [s for s in samples if 0.1 * trials <= s[3] <= 0.95 * trials]
    driver_slope = _slope([(s[3], s[1]) for s in body])
    writer_slope = _slope([(s[3], s[2]) for s in body if s[2]])
    figures: dict[str, Any] = {
        "driver_rss_mb_peak": round(max(s[1] for s in samples), 1),
        "driver_rss_mb_at_10pct": round(body[0][1], 1) if body else None,
        "driver_rss_mb_at_95pct": round(body[-1][1], 1) if body else None,
        "writer_rss_mb_peak": round(max(s[2] for s in samples), 1),
        "samples": len(samples),
        "samples_in_body": len(body),
        #: (seconds, driver MB, writer MB, trials started) every half second
        "trace": [(round(t, 1), round(d, 1), round(w, 1), n) for t, d, w, n in samples],
    }
    if driver_slope is not None:
        figures["driver_kb_per_trial"] = round(1024 * driver_slope, 1)
    if writer_slope is not None:
        figures["writer_kb_per_trial"] = round(1024 * writer_slope, 1)
    return figures


def _count_runs(outcome: dict[str, Any]) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(outcome["tracking_uri"])
    runs = client.search_runs([outcome["experiment_id"]], max_results=50_000)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == outcome["parent_run_id"]]
    statuses: dict[str, int] = {}
    for run in children:
        statuses[run.info.status] = statuses.get(run.info.status, 0) + 1
    parent = client.get_run(outcome["parent_run_id"])
    trial_ids = {r.data.tags.get("raysweep.trial_id") for r in children}
    return {
        "mlflow_parent_runs": sum(1 for r in runs if "mlflow.parentRunId" not in r.data.tags),
        "mlflow_parent_status": parent.info.status,
        "mlflow_child_runs": len(children),
        "mlflow_distinct_trials": len(trial_ids),
        "mlflow_child_statuses": statuses,
        "mlflow_running": statuses.get("RUNNING", 0),
        "mlflow_runs_with_metrics": sum(1 for r in children if "val_rmse" in r.data.metrics),
    }


# -- the report ----------------------------------------------------------------------------------
def _ratios(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], key: str) -> list[float]:
    """Repeat i of raysweep against repeat i of the other tool (they ran side by side)."""
    return [a[key] / b[key] for a, b in zip(ours, theirs) if a.get(key) and b.get(key)]


def section(records: list[dict[str, Any]], argv: list[str]) -> list[str]:
    tools = list(dict.fromkeys(r["tool"] for r in records))
    by_tool = {tool: [r for r in records if r["tool"] == tool] for tool in tools}
    repeats = max(len(v) for v in by_tool.values())
    trials = records[0]["trials_requested"]
    loads = "; ".join(", ".join(str(x) for x in r["loadavg_end"]) for r in records if r.get("loadavg_end"))
    lines = [
        HEADING,
        "",
        f"`python -m benchmarks.load {' '.join(argv)}`".replace(" `", "`"),
        "",
        f"{trials} trials per run, {repeats} run(s) per tool in alternating order"
        f"{' (figures: median (min-max))' if repeats > 1 else ''}; on {records[-1].get('recorded_at', '?')}, "
        f"{os.cpu_count()} CPUs, load average at the end of each run {loads or 'not recorded'}. Workload: the "
        f"`{WORKLOAD}` analytic recipe (one evaluation per trial), 2 trials at a time; MLflow in a local sqlite store. "
        "Memory per trial is the slope of resident memory against trials started (10% to 95% of them).",
        "",
        "| | " + " | ".join(LABELS.get(t, t) for t in tools) + " |",
        "| --- |" + " ---: |" * len(tools),
    ]

    def row(label: str, key: str, digits: int = 1) -> None:
        lines.append(f"| {label} | " + " | ".join(median_range([r.get(key) for r in by_tool[t]], digits) for t in tools) + " |")

    row("trials finished", "trials", 0)
    row("trials failed", "errors", 0)
    row("wall time, s", "seconds")
    row("driver memory per trial, kB", "driver_kb_per_trial")
    row("MLflow writer memory per trial, kB", "writer_kb_per_trial")
    row("driver RSS peak, MB", "driver_rss_mb_peak")
    row("MLflow writer RSS peak, MB", "writer_rss_mb_peak")
    if any("heap_bytes_per_trial" in r for r in records):
        row("driver Python heap per trial (tracemalloc), kB", "heap_kb_per_trial")
    lines.append("")
    ours = by_tool.get("raysweep_mlflow", [])
    other = next((t for t in tools if t != "raysweep_mlflow"), None)
    if ours and other:
        theirs = by_tool[other]
        time_ratio = _ratios(ours, theirs, "seconds")
        driver_ratio = _ratios(ours, theirs, "driver_kb_per_trial")
        total = [
            (a.get("driver_kb_per_trial", 0) + a.get("writer_kb_per_trial", 0)) / b["driver_kb_per_trial"]
            for a, b in zip(ours, theirs)
            if b.get("driver_kb_per_trial")
        ]
        lines += [
            "| raysweep against plain Ray Tune | measured | goal |",
            "| --- | ---: | ---: |",
            f"| total time | {median_range(time_ratio, 2)}x | <= {TIME_GOAL}x |",
            f"| driver memory per trial | {median_range(driver_ratio, 2)}x | <= {MEMORY_GOAL}x |",
            f"| driver + MLflow writer memory per trial | {median_range(total, 2)}x | <= {MEMORY_GOAL}x |",
            "",
        ]
    for number, record in enumerate(ours, start=1):
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(record["mlflow_child_statuses"].items()))
        which = f"raysweep's run {number} of {len(ours)}" if len(ours) > 1 else "raysweep's run"
        lines.append(
            f"- MLflow after {which}: {record['mlflow_parent_runs']} parent run ({record['mlflow_parent_status']}), "
            f"{record['mlflow_child_runs']} child runs for {record['mlflow_distinct_trials']} distinct trials ({statuses}), "
            f"{record['mlflow_runs_with_metrics']} with their validation metric; {record['mlflow_running']} left RUNNING."
        )
    lines.append("")
    for record in records:
        if "heap_by_package" not in record:
            continue
        packages = ", ".join(f"{k} {v / 1024:.2f} kB" for k, v in record["heap_by_package"].items())
        lines += [
            f"Python heap growth per trial in {LABELS.get(record['tool'], record['tool'])}'s driver between trial "
            f"{int(0.2 * record['trials_requested'])} and trial {int(0.95 * record['trials_requested'])} (tracemalloc): "
            f"{record['heap_bytes_per_trial'] / 1024:.2f} kB in all; {packages}. Largest growing lines:",
            "",
            "| where | bytes per trial | blocks per trial |",
            "| --- | ---: | ---: |",
            *(f"| `{x['where']}` | {x['bytes_per_trial']} | {x['blocks_per_trial']} |" for x in record["heap_top_lines"][:10]),
            "",
        ]
    return lines


def write_report(records: list[dict[str, Any]], out: Path, argv: list[str]) -> Path:
    for record in records:
        if "heap_bytes_per_trial" in record:
            record["heap_kb_per_trial"] = record["heap_bytes_per_trial"] / 1024
    return replace_section(out / "LOAD.md", HEADING, section(records, argv), LOAD_TITLE, ("## 2. Result throughput", "## 3. Scheduling across nodes", "## 4. A 100-node cluster"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2000, help="trials per run (the full run: 10000)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per tool, in alternating order (A B A B)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"of {', '.join(LABELS)}")
    parser.add_argument("--heap", action="store_true", help="tracemalloc snapshots in the drivers (slower; use <= 1000 trials)")
    parser.add_argument("--out", default=str(BENCHMARKS_DIR))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--outcome", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        outcome = child(args.child, args.trials, Path(args.scratch), args.seed, args.heap)
        Path(args.outcome).write_text(json.dumps(outcome))
        return 0
    tools = args.tools.split(",")
    unknown = [t for t in tools if t not in LABELS]
    if unknown:
        parser.error(f"--tools: unknown {', '.join(unknown)}; pick from {', '.join(LABELS)}")
    out = Path(args.out)
    scratch = out / "out" / "scratch" / "load" if out.resolve() == BENCHMARKS_DIR else out / "scratch" / "load"
    records = []
    folder = out / "results" / "load"
    folder.mkdir(parents=True, exist_ok=True)
    for repeat in range(args.repeats):
        for tool in tools:
            place = scratch / f"{tool}-r{repeat}"
            if place.exists():
                import shutil

                shutil.rmtree(place)
            record = measure(tool, args.trials, place, args.seed + repeat, args.heap)
            record["repeat"] = repeat
            records.append(record)
            (folder / f"{tool}-r{repeat}.json").write_text(json.dumps(record, indent=2))
            print(json.dumps({k: v for k, v in record.items() if not k.startswith("heap_top") and k != "trace"}), flush=True)
    print(f"wrote {write_report(records, out, argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
