"""Load: a 2,000-trial sweep of a cheap recipe, with every trial in MLflow and the driver's memory.

    python -m benchmarks.load                 # 2,000 trials: raysweep (MLflow on), then plain Ray Tune
    python -m benchmarks.load --trials 200    # a quick look

Each tool runs in a process of its own (``--child``); this process samples that driver's
resident memory (and that of raysweep's MLflow writer process) from ``/proc`` twice a second.
Plain Ray Tune (class trainable, ``reuse_actors=True``) runs the same number of trials in the
same invocation: Tune keeps every trial object on the driver, so some growth is Tune's own, and
the figure that matters is raysweep's growth against it. Afterwards the MLflow store is
counted: one parent run, one child run per trial, none left RUNNING. Writes
``benchmarks/results/load/<tool>.json`` and ``benchmarks/LOAD.md``.
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

from benchmarks._common import BENCHMARKS_DIR, REPO

TOOLS = ("raysweep_mlflow", "ray_class_reuse")
WORKLOAD = "branin"
MB_PER_KB = 1 / 1024  # /proc reports kB


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


def _writer_pid(driver: int) -> int | None:
    for child in _children(driver):
        try:
            if b"raysweep.tracking._writer_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        except OSError:
            continue
    return None


# -- the measured process ------------------------------------------------------------------------
def child(tool: str, trials: int, scratch: Path, seed: int) -> dict[str, Any]:
    from benchmarks._common import Settings, start_ray

    settings = Settings(out=str(scratch), data_dir=None, cpus=2, concurrency=2)
    start_ray(settings)
    started = time.perf_counter()
    if tool == "raysweep_mlflow":
        from raysweep import run_sweep

        from benchmarks.families import analytic_dataset, analytic_recipe

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
        from benchmarks.overhead import _ray_tune

        measured = _ray_tune("class", True)(WORKLOAD, seed, trials, settings, scratch)
        outcome = {"trials": measured["trials"], "errors": measured["errors"]}
    outcome["seconds"] = time.perf_counter() - started
    return outcome


# -- the sampler ---------------------------------------------------------------------------------
def measure(tool: str, trials: int, scratch: Path, seed: int) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)
    outcome_file = scratch / f"{tool}.outcome.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "benchmarks.load", "--child", tool, "--trials", str(trials),
               "--scratch", str(scratch), "--seed", str(seed), "--outcome", str(outcome_file)]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO, env=env)
    samples: list[tuple[float, float, float]] = []  # (seconds, driver MB, writer MB)
    while process.poll() is None:
        driver = _rss_mb(process.pid)
        writer_pid = _writer_pid(process.pid)
        writer = _rss_mb(writer_pid) if writer_pid else 0.0
        if driver is not None:
            samples.append((time.monotonic() - started, driver, writer or 0.0))
        time.sleep(0.5)
    if process.returncode != 0:
        raise SystemExit(f"{tool}: the measured process exited {process.returncode}")
    outcome = json.loads(outcome_file.read_text())
    record: dict[str, Any] = {"tool": tool, "trials_requested": trials, **outcome}
    record["loadavg_end"] = [round(x, 1) for x in os.getloadavg()]
    record["recorded_at"] = time.strftime("%Y-%m-%d %H:%M")
    record.update(_memory_figures(samples))
    if tool == "raysweep_mlflow":
        record.update(_count_runs(outcome))
    return record


def _memory_figures(samples: list[tuple[float, float, float]]) -> dict[str, Any]:
    """Driver memory once the sweep is under way, at the middle, at the peak, and its growth."""
    if not samples:
        return {}
    # The sweep's part: from when the driver stopped growing fast (Ray, imports) to the end.
    span = samples[-1][0]
    body = [s for s in samples if 0.2 * span <= s[0] <= 0.95 * span] or samples
    early = statistics.median(s[1] for s in body[: max(1, len(body) // 10)])
    late = statistics.median(s[1] for s in body[-max(1, len(body) // 10) :])
    return {
        "driver_rss_mb_early": round(early, 1),
        "driver_rss_mb_late": round(late, 1),
        "driver_rss_mb_peak": round(max(s[1] for s in samples), 1),
        "driver_growth_mb": round(late - early, 1),
        "writer_rss_mb_peak": round(max(s[2] for s in samples), 1),
        "samples": len(samples),
    }


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
        "mlflow_runs_with_metrics": sum(1 for r in children if "val_rmse" in r.data.metrics),
    }


def write_report(records: list[dict[str, Any]], out: Path, argv: list[str]) -> None:
    by_tool = {r["tool"]: r for r in records}
    ours, ray = by_tool.get("raysweep_mlflow"), by_tool.get("ray_class_reuse")
    lines = [
        "# Load: a 2,000-trial sweep",
        "",
        f"`python -m benchmarks.load {' '.join(argv)}`".replace(" `", "`"),
        f"on {records[-1].get('recorded_at', '?')}, {os.cpu_count()} CPUs, load average at the end of each run "
        f"{'; '.join(', '.join(str(x) for x in r['loadavg_end']) if r.get('loadavg_end') else 'not recorded' for r in records)}. Workload: the `{WORKLOAD}` analytic recipe "
        "(one evaluation per trial), 2 trials at a time; MLflow in a local sqlite store.",
        "",
        "| | raysweep (MLflow on) | plain Ray Tune (class trainable, reuse) |",
        "| --- | ---: | ---: |",
    ]

    def row(label: str, key: str, unit: str = "") -> None:
        cells = [f"{r[key]}{unit}" if r and key in r else "-" for r in (ours, ray)]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")

    row("trials finished", "trials")
    row("trials failed", "errors")
    row("wall time, s", "seconds_rounded")
    row("driver RSS once under way, MB", "driver_rss_mb_early")
    row("driver RSS at the end, MB", "driver_rss_mb_late")
    row("driver RSS peak, MB", "driver_rss_mb_peak")
    row("driver growth over the sweep, MB", "driver_growth_mb")
    row("MLflow writer process RSS peak, MB", "writer_rss_mb_peak")
    lines.append("")
    if ours:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(ours["mlflow_child_statuses"].items()))
        lines += [
            f"MLflow afterwards: {ours['mlflow_parent_runs']} parent run ({ours['mlflow_parent_status']}), "
            f"{ours['mlflow_child_runs']} child runs for {ours['mlflow_distinct_trials']} distinct trials "
            f"({statuses}), {ours['mlflow_runs_with_metrics']} with their validation metric.",
            "",
        ]
    if ours and ray and ray.get("driver_growth_mb"):
        per_trial = [1024 * r["driver_growth_mb"] / max(1, r["trials"]) for r in (ours, ray)]
        lines += [
            f"Growth per trial: raysweep {per_trial[0]:.0f} kB, plain Ray Tune {per_trial[1]:.0f} kB "
            f"({ours['driver_growth_mb'] / ray['driver_growth_mb']:.2f}x). Both drivers grow linearly with the "
            "number of trials (not with their results): Tune keeps every Trial object, with running statistics "
            "of every numeric metric it reported, until the sweep ends. A tracemalloc comparison inside a "
            "600-trial raysweep sweep (Python heap at Tune step 200 against step 1150) put all of the ten "
            "largest growing allocation sites in Ray Tune (`ray/tune/trainable/metadata.py` first, then result "
            "deserialization and trial creation), none in raysweep, whose own state per trial is one small "
            "record of its MLflow run; results go to the writer process and are not kept on the driver. The "
            "rest of the gap is resident memory outside the Python heap that this benchmark does not break down.",
            "",
        ]
    (out / "LOAD.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--out", default=str(BENCHMARKS_DIR))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--outcome", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        outcome = child(args.child, args.trials, Path(args.scratch), args.seed)
        Path(args.outcome).write_text(json.dumps(outcome))
        return 0
    out = Path(args.out)
    scratch = out / "out" / "scratch" / "load" if out.resolve() == BENCHMARKS_DIR else out / "scratch" / "load"
    if scratch.exists():
        import shutil

        shutil.rmtree(scratch)
    records = []
    for tool in args.tools.split(","):
        record = measure(tool, args.trials, scratch / tool, args.seed)
        record["seconds_rounded"] = round(record["seconds"], 1)
        records.append(record)
        folder = out / "results" / "load"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{tool}.json").write_text(json.dumps(record, indent=2))
        print(json.dumps({k: v for k, v in record.items() if k != "samples"}), flush=True)
    write_report(records, out, argv)
    print(f"wrote {out / 'LOAD.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
