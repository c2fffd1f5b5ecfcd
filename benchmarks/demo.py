"""The README's demo end to end, against the same search written by hand with Optuna.

    python -m benchmarks.demo              # 5 rounds, 5 breakdown runs, 5 floors
    python -m benchmarks.demo --pairs 3    # a quicker look (3 rounds)

* Rounds: ``raysweep run xgboost --dataset breast_cancer --num-samples 12`` as a user types it (a
  cold process in an empty folder, so a cold Ray and a new ``mlflow.db``); the same command as on
  a machine where raysweep never ran (its cache of empty MLflow tables empty, see
  ``raysweep/tracking/new_store.py``: MLflow builds the tables); and
  ``benchmarks/optuna_demo.py`` (same space, 50-round steps to 300 rounds, Hyperband pruner, two
  threads, refit, test score), round after round: the ratio of each round's wall times, their
  median and range. Goal: at most 3x.
* Breakdown: the same command in a probe that stamps the time of each part of raysweep's run
  (imports and validation, Ray's start, the MLflow store opened beside it, the dataset to the
  object store, the first actor, the first result, the trials, importance, refit, plots, model
  logging, the writer's last writes, exit after the summary); medians of the runs.
* The same search written by hand with Ray Tune (``benchmarks/tune_demo.py``: ASHA, HyperOpt's
  TPE, two trials at a time, actors reused, refit, test score), bare and with Ray's
  ``MLflowLoggerCallback``, in each round beside the pair (``--no-tune`` leaves it out): what a Ray
  Tune user who skips raysweep waits for. The order of a round's commands turns by one each round.
* Floor: a cold ``ray.init()`` and one actor's first result, in a fresh process: what any sweep
  on Ray pays before its first trial reports.

Writes ``benchmarks/results/demo.json`` and ``benchmarks/DEMO.md`` (``--report-only`` rebuilds
the page from the JSON).
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

from benchmarks._common import BENCHMARKS_DIR, REPO, median_range

DEMO = ["run", "xgboost", "--dataset", "breast_cancer", "--num-samples", "12"]

#: runs the demo in-process with time stamps ("@@ <seconds since start> <label>") on stderr
_PROBE = r"""
import sys, time
T0 = float(sys.argv[1])
def mark(label): sys.stderr.write(f"@@ {time.time() - T0:.3f} {label}\n"); sys.stderr.flush()
mark("interpreter up")
import atexit, threading
def wrap(owner, name, label):
    original = getattr(owner, name, None)
    if original is None:
        return
    def wrapped(*args, **kwargs):
        mark(label + " start")
        try:
            return original(*args, **kwargs)
        finally:
            mark(label + " end")
    setattr(owner, name, wrapped)
import raysweep.sweep.run as run_module
import raysweep.sweep.early as early
wrap(run_module, "run_planned", "run_planned")
wrap(run_module, "connect_ray", "ray start")
wrap(run_module, "prepare", "data prepared")
wrap(run_module, "summarise", "summary work")
original_background = early.in_background
def timed_background(name, work):
    def timed():
        mark(f"background {name} start")
        try:
            work()
        finally:
            mark(f"background {name} end")
    return original_background(name, timed)
early.in_background = timed_background
import raysweep.tracking.callback as callback_module
wrap(callback_module, "start_trial_logging", "trial logging started")
import raysweep.progress as progress_module
original_phase = progress_module.LiveProgress.phase
def phase(self, text):
    mark("phase " + " ".join(text.split(" ")[:3]))
    return original_phase(self, text)
progress_module.LiveProgress.phase = phase
from ray import tune
wrap(tune, "with_parameters", "dataset to the object store")
from ray.tune import Tuner
wrap(Tuner, "fit", "trials")
from raysweep.sweep.ledger import TrialLedger
seen = set()
for hook, label in (("on_trial_start", "first actor started"), ("on_trial_result", "first result")):
    original = getattr(TrialLedger, hook, None)
    def make(original, label):
        def hooked(self, *args, **kwargs):
            if label not in seen:
                seen.add(label)
                mark(label)
            return original(self, *args, **kwargs) if original else None
        return hooked
    setattr(TrialLedger, hook, make(original, label))
import raysweep.cli.run as cli_run
wrap(cli_run, "report", "summary printed")
sys.argv = ["raysweep", *sys.argv[2:]]
from raysweep.cli import main
main()
"""

_FLOOR = r"""
import json, sys, time
started = time.perf_counter()
import ray
ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False, _system_config=json.loads(sys.argv[1]) or None)
@ray.remote
class Probe:
    def ready(self):
        return 1
ray.get(Probe.remote().ready.remote())
print(time.perf_counter() - started)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # a cold, embedded Ray, as on a fresh machine
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["COLUMNS"] = "160"
    return env


def _raysweep() -> list[str]:
    script = Path(sys.executable).with_name("raysweep")
    return [str(script)] if script.exists() else [sys.executable, "-m", "raysweep"]


def _first_run_env(folder: Path) -> dict[str, str]:
    """The environment of a machine where raysweep never ran: an empty cache folder for raysweep
    (``XDG_CACHE_HOME``), matplotlib's own cache kept where it is (it reads the same variable)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
    return {"XDG_CACHE_HOME": str(folder / "empty-cache"), "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR") or str(cache / "matplotlib")}


def _timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=_env() | (env or {}), capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {completed.returncode}: {completed.stderr.strip()[-400:]}")
    return seconds, completed


def pair(scratch: Path, tune: bool = True, turn: int = 0) -> dict[str, Any]:
    """One round: the raysweep demo, the same on a machine where raysweep never ran, the Optuna
    script, and (``tune``) the Ray Tune script bare and with Ray's MLflow callback; each a cold
    process in an empty folder. The order turns by one each round (``turn``), so that no command
    always follows the same one."""
    commands = {"raysweep": _raysweep() + DEMO, "raysweep_first": _raysweep() + DEMO,
                "optuna": [sys.executable, str(BENCHMARKS_DIR / "optuna_demo.py")]}
    if tune:
        commands["tune"] = [sys.executable, str(BENCHMARKS_DIR / "tune_demo.py")]
        commands["tune_mlflow"] = [sys.executable, str(BENCHMARKS_DIR / "tune_demo.py"), "--mlflow"]
    keys = list(commands)
    order = keys[turn % len(keys):] + keys[: turn % len(keys)]
    record: dict[str, Any] = {"order": order}
    for key in order:
        with tempfile.TemporaryDirectory(dir=scratch) as folder:
            env = _first_run_env(Path(folder)) if key == "raysweep_first" else None
            seconds, completed = _timed(commands[key], Path(folder), env)
        record[f"{key}_s"] = seconds
        if not key.startswith("raysweep"):
            record[key] = json.loads(completed.stdout.strip().splitlines()[-1])
    record["ratio"] = record["raysweep_s"] / record["optuna_s"]
    return record | {"loadavg": list(os.getloadavg())}


def breakdown(scratch: Path) -> dict[str, float]:
    """One probed demo run: the time of each part, in seconds."""
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        started = time.time()
        completed = subprocess.run([sys.executable, "-c", _PROBE, repr(started), *DEMO], cwd=folder, env=_env(),
                                   capture_output=True, text=True, timeout=600)  # fmt: skip
        ended = time.time() - started
    if completed.returncode != 0:
        raise RuntimeError(f"probe exited {completed.returncode}: {completed.stderr.strip()[-400:]}")
    marks: dict[str, float] = {}
    for line in completed.stderr.splitlines():
        if line.startswith("@@ "):
            _, seconds, label = line.split(" ", 2)
            marks.setdefault(label.strip(), float(seconds))
    return parts(marks, ended)


def parts(marks: dict[str, float], ended: float) -> dict[str, float]:
    """The parts of the run from its time stamps (a part whose stamps are missing is left out)."""

    def span(start: str, end: str) -> float | None:
        return marks[end] - marks[start] if start in marks and end in marks else None

    phases = sorted((t, label) for label, t in marks.items() if label.startswith("phase "))
    phase_spans = {}
    last = marks.get("summary printed start", phases[-1][0] if phases else 0.0)
    for (t, label), following in zip(phases, phases[1:] + [(last, "end")]):
        phase_spans[label.removeprefix("phase ").strip()] = following[0] - t
    found = {
        "python and imports, data loaded and checked": marks.get("run_planned start"),
        "Ray start (cold ray.init)": span("ray start start", "ray start end"),
        "MLflow store open and database creation (beside Ray's start)": span("background mlflow-store start", "background mlflow-store end"),
        "dataset to the object store": span("dataset to the object store start", "dataset to the object store end"),
        "MLflow writer start (driver side)": span("trial logging started start", "trial logging started end"),
        "Tune start to the first actor": span("trials start", "first actor started"),
        "first actor to its first result": span("first actor started", "first result"),
        "command to the first result": marks.get("first result"),
        "trials (first result to the last)": span("first result", "trials end"),
        "importance": phase_spans.get("computing the parameter"),
        "refit": phase_spans.get("refitting the best"),
        "scores and leaderboard to MLflow": phase_spans.get("logging the scores"),
        "plots (handed to the drawing process; drawn beside the model's logging)": phase_spans.get("drawing the plots"),
        "model logging (signature, input example), then the plots logged": phase_spans.get("logging the model"),
        "MLflow writer's last writes, and Ray's shutdown (begun after the trials)": phase_spans.get("waiting for the"),
        "command to the summary": marks.get("summary printed end"),
        "exit after the summary": ended - marks["summary printed end"] if "summary printed end" in marks else None,
        "whole process": ended,
    }
    return {name: round(value, 3) for name, value in found.items() if value is not None}


def floor(config: dict[str, Any] | None = None) -> float:
    """A cold ``ray.init()`` and one actor's first result, in seconds; ``config``: Ray's ``_system_config``."""
    completed = subprocess.run([sys.executable, "-c", _FLOOR, json.dumps(config or {})], env=_env(), capture_output=True, text=True, timeout=300)
    if completed.returncode != 0:
        raise RuntimeError(f"floor probe exited {completed.returncode}: {completed.stderr.strip()[-400:]}")
    return float(completed.stdout.strip().splitlines()[-1])


def _rounds(pairs: list[dict[str, Any]]) -> str:
    """How the ratio was taken: pair by pair (A B A B), or round by round with the order turning."""
    if any("order" in p for p in pairs):
        return f"round by round ({len(pairs)} rounds, the order turned by one each round)"
    return f"pair by pair ({len(pairs)} pairs, A B A B)"


def markdown(record: dict[str, Any]) -> str:
    """``benchmarks/DEMO.md`` from a run's record."""
    pairs, floors, table = record["pairs"], record["floors"], record["breakdown_median"]
    ratios = [p["ratio"] for p in pairs]
    lines = [
        "# The README's demo against the same search written by hand with Optuna and with Ray Tune", "",
        f"`python -m benchmarks.demo` on {record['recorded_at']}, {record['cpus']} CPUs, load average "
        f"{record['loadavg_start'][0]:.1f} at the start and {record['loadavg_end'][0]:.1f} at the end (the benchmark's own).", "",
        "| | median s (range) | goal |", "| --- | ---: | --- |",
        f"| `raysweep run xgboost --dataset breast_cancer --num-samples 12`, whole process | {median_range([p['raysweep_s'] for p in pairs], 2)} | |",
        f"| `benchmarks/optuna_demo.py` (same search by hand), whole process | {median_range([p['optuna_s'] for p in pairs], 2)} | |",
        f"| ratio, {_rounds(pairs)} | {median_range(ratios, 2)}x | <= 3x: **{'met' if statistics.median(ratios) <= 3 else 'missed'}** |",
    ]
    if all("raysweep_first_s" in p for p in pairs):
        first_ratios = [p["raysweep_first_s"] / p["optuna_s"] for p in pairs]
        lines += [
            f"| the same on a machine where raysweep never ran (MLflow builds the store's tables), whole process | {median_range([p['raysweep_first_s'] for p in pairs], 2)} | |",
            f"| its ratio to the Optuna script, round by round | {median_range(first_ratios, 2)}x | <= 3x: **{'met' if statistics.median(first_ratios) <= 3 else 'missed'}** |",
        ]
    if all("tune_s" in p for p in pairs):
        lines += [
            f"| `benchmarks/tune_demo.py` (same search by hand with Ray Tune, no tracking), whole process | {median_range([p['tune_s'] for p in pairs], 2)} | |",
            f"| `benchmarks/tune_demo.py --mlflow` (and Ray's `MLflowLoggerCallback`), whole process | {median_range([p['tune_mlflow_s'] for p in pairs], 2)} | |",
            f"| the Ray Tune script (no tracking) against the Optuna script, round by round | {median_range([p['tune_s'] / p['optuna_s'] for p in pairs], 2)}x | |",
            f"| raysweep against the Ray Tune script with MLflow, round by round | {median_range([p['raysweep_s'] / p['tune_mlflow_s'] for p in pairs], 2)}x | |",
            f"| raysweep against the Ray Tune script with no tracking, round by round | {median_range([p['raysweep_s'] / p['tune_s'] for p in pairs], 2)}x | |",
        ]
    if floors:
        first = table.get("command to the first result")
        lines.append(f"| floor: cold `ray.init()` + one actor's first result | {median_range(floors, 2)} | |")
        lowest = statistics.median(floors)
        tuned = record.get("floors_tuned")
        if tuned:
            lines.append(f"| the same with the settings raysweep starts its Ray with (the object store retried every 0.1 s, not 1 s) | {median_range(tuned, 2)} | |")
            lowest = min(lowest, statistics.median(tuned))
        which = "the lower floor" if tuned else "the floor"
        if first is not None:
            above = first - lowest
            lines.append(f"| first trial's result, from the command | {first:.2f} ({above:.2f} above {which}) | <= 2 s above: **{'met' if above <= 2 else 'missed'}** |")
        tune_first = [p["tune"]["first_result_s"] for p in pairs if p.get("tune", {}).get("first_result_s") is not None]
        if tune_first:
            above = statistics.median(tune_first) - lowest
            lines.append(f"| the Ray Tune script's first result, from its first line | {median_range(tune_first, 2)} ({above:.2f} above {which}) | |")
    exit_s = table.get("exit after the summary")
    if exit_s is not None:
        lines.append(f"| process gone after the summary | {exit_s:.2f} | <= 1 s: **{'met' if exit_s <= 1 else 'missed'}** |")
    lines += ["", f"Where raysweep's time goes (median of {len(record['breakdowns'])} probed runs; the MLflow store opens in a "
              "thread beside Ray's start, so its row overlaps the one above it):", "", "| part | s |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in table.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5, help="rounds of raysweep (with raysweep's cache, and as on a machine where it never ran), the Optuna script and the Ray Tune script, the order turned each round (default 5)")
    parser.add_argument("--breakdowns", type=int, default=5, help="probed raysweep runs for the breakdown (default 5)")
    parser.add_argument("--floors", type=int, default=5, help="cold ray.init + one actor runs (default 5)")
    parser.add_argument("--no-tune", action="store_true", help="leave out the hand-written Ray Tune script")
    parser.add_argument("--out", default=str(BENCHMARKS_DIR / "results" / "demo.json"))
    parser.add_argument("--page", default=str(BENCHMARKS_DIR / "DEMO.md"))
    parser.add_argument("--report-only", action="store_true", help="rebuild the page from --out, run nothing")
    args = parser.parse_args(argv)
    if args.report_only:
        Path(args.page).write_text(markdown(json.loads(Path(args.out).read_text())))
        return
    from ray._common.utils import get_default_ray_temp_dir

    if (Path(get_default_ray_temp_dir()) / "ray_current_cluster").exists():
        raise SystemExit("a Ray cluster started with `ray start` is running here; the demo would join it: stop it first")
    scratch = Path(tempfile.mkdtemp(prefix="raysweep-demo-bench-"))
    loadavg_start = list(os.getloadavg())
    pairs = []
    for index in range(args.pairs):
        pairs.append(pair(scratch, tune=not args.no_tune, turn=index))
        p = pairs[-1]
        tune_part = f", ray tune {p['tune_s']:.2f}s, with mlflow {p['tune_mlflow_s']:.2f}s" if "tune_s" in p else ""
        first_part = f" (first on the machine {p['raysweep_first_s']:.2f}s)" if "raysweep_first_s" in p else ""
        print(f"round {index + 1}: raysweep {p['raysweep_s']:.2f}s{first_part}, optuna {p['optuna_s']:.2f}s{tune_part}, ratio {p['ratio']:.2f}x", flush=True)
    runs = [breakdown(scratch) for _ in range(args.breakdowns)]
    # Ray's own settings and the ones raysweep starts its Ray with, in turn.
    from raysweep.cluster._nodes import ray_start_config

    floors, floors_tuned = [], []
    for _ in range(args.floors):
        floors.append(floor())
        floors_tuned.append(floor(ray_start_config()))
    names = list(dict.fromkeys(name for run in runs for name in run))
    table = {name: statistics.median([run[name] for run in runs if name in run]) for name in names}
    record = {
        "recorded_at": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "loadavg_start": loadavg_start,
        "loadavg_end": list(os.getloadavg()),
        "pairs": pairs,
        "breakdowns": runs,
        "breakdown_median": table,
        "floors": floors,
        "floors_tuned": floors_tuned,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    if pairs and runs:
        Path(args.page).write_text(markdown(record))
    if pairs:
        print(f"\ndemo wall time: raysweep {median_range([p['raysweep_s'] for p in pairs], 2)} s, "
              f"Optuna script {median_range([p['optuna_s'] for p in pairs], 2)} s; "
              f"ratio {median_range([p['ratio'] for p in pairs], 2)}x (goal <= 3x), median of {len(pairs)} pairs")
    if floors:
        first = table.get("command to the first result")
        lowest = min(statistics.median(floors), statistics.median(floors_tuned))
        print(f"floor (cold ray.init + one actor's first result): {median_range(floors, 2)} s, "
              f"with raysweep's settings for Ray's start {median_range(floors_tuned, 2)} s"
              + (f"; first result {first:.2f} s from the command, {first - lowest:.2f} s above the lower floor" if first else ""))
    print("\n| part | median s |\n| --- | ---: |")
    for name, value in table.items():
        print(f"| {name} | {value:.2f} |")
    print(f"\nload average at the start {loadavg_start}, at the end {record['loadavg_end']}")


if __name__ == "__main__":
    main()
