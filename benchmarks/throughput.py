"""Result throughput: many concurrent trials reporting as fast as they can, into MLflow.

    python -m benchmarks.throughput                            # 16 trials x 300 results, sqlite and HTTP
    python -m benchmarks.throughput --trials 8 --steps 100     # a quick look

Five runs, each in a process of its own, on a local Ray that declares one CPU per trial (all
trials at once): plain Ray Tune (function trainable reporting ``--steps`` results in a loop, its
own loggers off: ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``), raysweep with MLflow off (what its
trainable and callbacks cost without the writer), raysweep into a sqlite store,
raysweep into an HTTP ``mlflow server`` this benchmark starts on 127.0.0.1 (a free port, sqlite
behind it), and plain Ray Tune again with Ray's own ``MLflowLoggerCallback`` into a sqlite store
(what a Ray Tune user adds for MLflow: one run per trial, each result logged from the driver as
Tune reports it; it logs every numeric key of the result, Tune's own among them). raysweep's trials run the ``bench_steps`` family: a step does no work, so each
trial reports as fast as raysweep's trainable can.

While raysweep runs, this process counts the validation metric's history rows in the store's
database once a second (every 0.1 s from the first row to the last): the results that reached
MLflow so far. Figures: results per second that Tune processed (from the first trial's start to
its last result), results per second that reached MLflow (from the first trial's start until the
last one was in), the backlog when Tune had processed its last result, the time it took to
drain, and the rows at the end against the results the trials reported (nothing lost). Writes ``results/throughput/*.json`` and the
throughput section of ``LOAD.md``.

A thread samples ``/proc/stat`` every 0.1 s: how idle the cores were while Tune processed the
results. After the runs, ``benchmarks.row_cost`` measures MLflow's own CPU per metric row (in the
process, and over HTTP); with plain Ray Tune's busy core time per result, that gives the most a
sweep writing as many rows per result as raysweep did can reach against plain Ray Tune.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import BENCHMARKS_DIR, REPO, machine_cpu_seconds, median_range, replace_section

TOOLS = ("ray_tune", "raysweep_off", "raysweep_sqlite", "raysweep_http", "ray_tune_mlflow")
LABELS = {
    "ray_tune": "plain Ray Tune, loggers off",
    "raysweep_off": "raysweep, MLflow off",
    "raysweep_sqlite": "raysweep, MLflow in sqlite",
    "raysweep_http": "raysweep, MLflow over HTTP (`mlflow server`)",
    "ray_tune_mlflow": "plain Ray Tune, loggers off, Ray's `MLflowLoggerCallback` into sqlite",
}
#: the tools whose results go to MLflow (their rows are counted)
INTO_MLFLOW = ("raysweep_sqlite", "raysweep_http", "ray_tune_mlflow")
HEADING = "## 2. Result throughput"
METRIC = "val_rmse"
GOAL = 0.9
#: how often the store's rows are counted, in seconds; from the first row until the last, every
#: FINE_POLL_S, so that the last row's time (the end of the window into MLflow) is known to 0.1 s
#: rather than to the second (a 1 s poll put it 0.5 s late on average, in a window of 6-8 s; the
#: rows come in bursts, a flush per trial per second). A count costs about 1.1 ms of CPU.
POLL_S = 1.0
FINE_POLL_S = 0.1


# -- the measured process ------------------------------------------------------------------------
class Clock:
    """When the driver saw the first trial start, each result and the middle one (seconds since the epoch)."""

    def __init__(self, expected: int = 0) -> None:
        self.first_start: float | None = None
        self.last_result: float | None = None
        self.results = 0
        self.half = expected // 2
        #: when the driver had seen half the expected results: every trial has started by then
        #: and done its first steps' imports, so the second half runs at the steady rate
        self.half_result: float | None = None

    def started(self) -> None:
        if self.first_start is None:
            self.first_start = time.time()

    def result(self) -> None:
        self.results += 1
        self.last_result = time.time()
        if self.results == self.half:
            self.half_result = self.last_result


def child(tool: str, trials: int, steps: int, scratch: Path, tracking_uri: str | None, seed: int) -> dict[str, Any]:
    import logging

    import ray

    ray.init(address="local", num_cpus=trials, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    clock = Clock(trials * steps)
    began = time.time()
    if tool in ("ray_tune", "ray_tune_mlflow"):
        from ray import tune
        from ray.tune import Callback

        class Timing(Callback):
            def on_trial_start(self, *args: Any, **kwargs: Any) -> None:
                clock.started()

            def on_trial_result(self, *args: Any, **kwargs: Any) -> None:
                clock.result()

        def trainable(config: dict[str, Any]) -> None:
            for step in range(1, steps + 1):
                tune.report({METRIC: config["x1"] * step, "step": step})

        callbacks: list[Any] = [Timing()]
        if tool == "ray_tune_mlflow":
            # Ray's own MLflow integration, as its docs set it up: one run per trial, every result
            # logged from the driver as Tune reports it.
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            callbacks.append(MLflowLoggerCallback(tracking_uri=tracking_uri, experiment_name="throughput", save_artifact=False))
        tuner = tune.Tuner(
            trainable,
            param_space={"x1": tune.uniform(-5.0, 10.0), "x2": tune.uniform(0.0, 15.0)},
            tune_config=tune.TuneConfig(metric=METRIC, mode="min", num_samples=trials, reuse_actors=True,
                                        max_concurrent_trials=trials),  # fmt: skip
            run_config=tune.RunConfig(name="throughput", storage_path=str(scratch / "ray"), verbose=0, callbacks=callbacks),
        )
        results = tuner.fit()
        outcome: dict[str, Any] = {"trials": len(results), "errors": sum(1 for r in results if r.error is not None)}
    else:
        from raysweep import run_sweep
        from raysweep.sweep import ledger

        from benchmarks.families import analytic_dataset, steps_recipe

        # Timing at raysweep's own callback, which Tune tells of every trial start and result.
        ledger.TrialLedger.on_trial_result = lambda self, *a, **k: clock.result()  # type: ignore[attr-defined]
        counted = ledger.TrialLedger.on_trial_start

        def on_trial_start(self: Any, *args: Any, **kwargs: Any) -> None:
            clock.started()
            counted(self, *args, **kwargs)

        ledger.TrialLedger.on_trial_start = on_trial_start  # type: ignore[method-assign]
        result = run_sweep(
            steps_recipe("steps", steps),
            analytic_dataset("noop"),
            progress=False,
            num_samples=trials,
            max_concurrent=trials,
            seed=seed,
            name="throughput",
            storage=str(scratch / "ray"),
            tracking=tool != "raysweep_off",
            tracking_uri=tracking_uri,
            experiment="throughput",
        )
        outcome = {"trials": result.num_trials, "errors": result.num_errors}
    outcome.update(
        began=began, ended=time.time(), first_start=clock.first_start, last_result=clock.last_result, results_seen=clock.results,
        half_result=clock.half_result,
    )
    return outcome


# -- the orchestrator ----------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_mlflow_server(root: Path) -> tuple[subprocess.Popen, str]:
    """An ``mlflow server`` on 127.0.0.1 (a free port) with a sqlite store in ``root``; its URI once it answers.

    As ``raysweep ui`` runs it: in a process group of its own (stopped with ``raysweep.cli.review.stop_server``)
    and without MLflow's job runner, whose eight processes would spend about 20 s of CPU starting
    while the measured sweep starts (a tracking server is up long before a sweep, and no
    tracking call uses the runner)."""
    import urllib.request

    from raysweep.cli.review import server_environment, stop_server

    port = _free_port()
    log = open(root / "mlflow-server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True, env=server_environment(),
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"mlflow server exited {process.returncode}; see {root / 'mlflow-server.log'}")
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2):
                return process, uri
        except OSError:
            time.sleep(0.5)
    stop_server(process)
    raise SystemExit(f"mlflow server did not answer within 120 s; see {root / 'mlflow-server.log'}")


def count_rows(database: Path, every_key: bool = False) -> int | None:
    """The validation metric's history rows in an MLflow sqlite store (read only, one short query);
    with ``every_key``, the rows of every metric."""
    if not database.exists():
        return None
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.2) as connection:
            if every_key:
                return connection.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
            return connection.execute("SELECT COUNT(*) FROM metrics WHERE key = ?", (METRIC,)).fetchone()[0]
    except sqlite3.Error:
        return None  # no table yet, or the writer holds the lock right now


def measure(tool: str, trials: int, steps: int, scratch: Path, seed: int) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)
    server, tracking_uri, database = None, None, scratch / "mlflow.db"
    if tool == "raysweep_http":
        server, tracking_uri = start_mlflow_server(scratch)
    elif tool in ("raysweep_sqlite", "ray_tune_mlflow"):
        tracking_uri = f"sqlite:///{database}"
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri).search_experiments(max_results=1)  # the schema, before any clock
    outcome_file = scratch / "outcome.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    if tool in ("ray_tune", "ray_tune_mlflow"):
        env["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    polled = tool in INTO_MLFLOW
    command = [sys.executable, "-m", "benchmarks.throughput", "--child", tool, "--trials", str(trials),
               "--steps", str(steps), "--scratch", str(scratch), "--seed", str(seed), "--outcome", str(outcome_file),
               "--tracking-uri", tracking_uri or ""]  # fmt: skip
    curve: list[tuple[float, int]] = []
    sampler = CpuSampler()
    sampler.start()
    try:
        process = subprocess.Popen(command, cwd=REPO, env=env)
        while process.poll() is None:
            rows = count_rows(database) if polled else None
            if rows is not None:
                curve.append((time.time(), rows))
            time.sleep(FINE_POLL_S if rows and rows < trials * steps else POLL_S)
        if process.returncode != 0:
            raise SystemExit(f"{tool}: the measured process exited {process.returncode}")
        final_rows = count_rows(database) if polled else None
        all_rows = count_rows(database, every_key=True) if polled else None
    finally:
        sampler.stop()
        if server is not None:
            from raysweep.cli.review import stop_server

            stop_server(server)
    outcome = json.loads(outcome_file.read_text())
    record: dict[str, Any] = {"tool": tool, "trials_requested": trials, "steps": steps, "expected_results": trials * steps, **outcome}
    record["loadavg_end"] = [round(x, 1) for x in os.getloadavg()]
    record["recorded_at"] = time.strftime("%Y-%m-%d %H:%M")
    record.update(figures(record, curve, final_rows))
    record.update(idle_shares(record, sampler.samples))
    if all_rows is not None:
        record["metric_rows_per_result"] = round(all_rows / record["expected_results"], 2)
    return record


class CpuSampler:
    """The machine's idle and total CPU seconds (:func:`benchmarks._common.machine_cpu_seconds`) every 0.1 s, in a thread."""

    def __init__(self, every: float = FINE_POLL_S) -> None:
        import threading

        self.every = every
        self.samples: list[tuple[float, float, float]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.is_set():
            seconds = machine_cpu_seconds()
            if seconds is not None:
                busy, every = seconds
                self.samples.append((time.time(), every - busy, every))
            self._done.wait(self.every)


def idle_share(samples: list[tuple[float, float, float]], start: float | None, end: float | None) -> float | None:
    """The share of the machine's CPU time that was idle between ``start`` and ``end`` (the samples nearest them)."""
    if not samples or start is None or end is None or end <= start:
        return None
    first = min(samples, key=lambda sample: abs(sample[0] - start))
    last = min(samples, key=lambda sample: abs(sample[0] - end))
    if last[2] <= first[2]:
        return None
    return (last[1] - first[1]) / (last[2] - first[2])


def idle_shares(record: dict[str, Any], samples: list[tuple[float, float, float]]) -> dict[str, Any]:
    """How idle the cores were while Tune processed the results: all of them, and the second half."""
    out = {}
    for key, start in (("idle_share", record.get("first_start")), ("idle_share_steady", record.get("half_result"))):
        share = idle_share(samples, start, record.get("last_result"))
        if share is not None:
            out[key] = round(share, 4)
    return out


def figures(record: dict[str, Any], curve: list[tuple[float, int]], final_rows: int | None) -> dict[str, Any]:
    start, last = record["first_start"], record["last_result"]
    out: dict[str, Any] = {"wall_s": round(record["ended"] - record["began"], 2)}
    if start and last and last > start:
        out["tune_results_per_s"] = round(record["results_seen"] / (last - start), 1)
    half = record.get("half_result")
    if half and last and last > half:
        out["tune_steady_per_s"] = round((record["results_seen"] - record["expected_results"] // 2) / (last - half), 1)
    if final_rows is None:
        return out
    expected = record["expected_results"]
    out["mlflow_rows"] = final_rows
    out["lost"] = expected - final_rows
    all_in = next((t for t, rows in curve if rows >= expected), record["ended"])
    at_tune_end = next((rows for t, rows in curve if t >= last), final_rows) if last else None
    if start and all_in > start:
        out["mlflow_results_per_s"] = round(final_rows / (all_in - start), 1)
    if last:
        out["backlog_at_tune_end"] = max(0, expected - at_tune_end) if at_tune_end is not None else None
        out["drain_s"] = round(max(0.0, all_in - last), 1)
    # Sustained: the steadiest stretch, rows between the curve's 10% and 90% marks.
    marks = [(t, rows) for t, rows in curve if 0.1 * expected <= rows <= 0.9 * expected]
    if len(marks) >= 2 and marks[-1][0] > marks[0][0]:
        out["mlflow_sustained_per_s"] = round((marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0]), 1)
    out["curve"] = [(round(t - start, 1) if start else t, rows) for t, rows in curve]
    return out


def section(records: list[dict[str, Any]], argv: list[str], row_costs: list[dict[str, Any]] | None = None) -> list[str]:
    tools = list(dict.fromkeys(r["tool"] for r in records))
    by_tool = {tool: [r for r in records if r["tool"] == tool] for tool in tools}
    first = records[0]
    repeats = max(len(v) for v in by_tool.values())
    loads = "; ".join(", ".join(str(x) for x in r["loadavg_end"]) for r in records)
    lines = [
        HEADING,
        "",
        f"`python -m benchmarks.throughput {' '.join(argv)}`".replace(" `", "`"),
        "",
        f"{first['trials_requested']} trials at once, each reporting {first['steps']} results as fast as it can "
        f"({first['expected_results']} results per run), {repeats} run(s) per tool in alternating order"
        f"{' (median (min-max))' if repeats > 1 else ''}; on {records[-1]['recorded_at']}, {os.cpu_count()} CPUs, "
        f"load average at the end of each run {loads}.",
        "",
        "| | " + " | ".join(LABELS[t] for t in tools) + " |",
        "| --- |" + " ---: |" * len(tools),
    ]

    def row(label: str, key: str, digits: int = 1) -> None:
        lines.append(f"| {label} | " + " | ".join(median_range([r.get(key) for r in by_tool[t]], digits) for t in tools) + " |")

    row("results per second Tune processed", "tune_results_per_s")
    row("... in the second half of the results (every trial started, its first imports done)", "tune_steady_per_s")
    row("results per second that reached MLflow (first trial start to last row in)", "mlflow_results_per_s")
    row("sustained rate into MLflow (10% to 90% of the rows), per s", "mlflow_sustained_per_s")
    row("backlog when Tune had its last result, results", "backlog_at_tune_end", 0)
    row("time to drain it, s", "drain_s")
    row("results in MLflow at the end", "mlflow_rows", 0)
    row("results lost", "lost", 0)
    row("wall time of the run, s", "wall_s")
    percent = [{**r, **{k: 100 * r[k] for k in ("idle_share", "idle_share_steady") if r.get(k) is not None}} for r in records]
    by_tool_percent = {tool: [r for r in percent if r["tool"] == tool] for tool in tools}
    for label, key in (("cores idle while Tune processed the results, %", "idle_share"), ("... in the second half, %", "idle_share_steady")):
        lines.append(f"| {label} | " + " | ".join(median_range([r.get(key) for r in by_tool_percent[t]], 1) for t in tools) + " |")
    row("metric rows written per result", "metric_rows_per_result", 2)
    lines.append("")
    if "ray_tune" in by_tool:
        base = [r.get("tune_results_per_s") for r in by_tool["ray_tune"]]
        for tool in tools:
            if tool in ("ray_tune", "raysweep_off"):
                continue
            ratios = [r.get("mlflow_results_per_s", 0) / b for r, b in zip(by_tool[tool], base) if b]
            goal = f" (goal >= {GOAL}x)" if tool.startswith("raysweep") else ""
            lines.append(f"- {LABELS[tool]}: results into MLflow per second against plain Ray Tune's processed: "
                         f"{median_range(ratios, 2)}x{goal}.")  # fmt: skip
        steady = [r.get("tune_steady_per_s") for r in by_tool["ray_tune"]]
        for tool in tools:
            ratios = [r["tune_steady_per_s"] / b for r, b in zip(by_tool[tool], steady) if b and r.get("tune_steady_per_s")]
            if tool != "ray_tune" and ratios:
                lines.append(f"- {LABELS[tool]}: results per second Tune processed in the second half of the results, "
                             f"against plain Ray Tune's: {median_range(ratios, 2)}x.")
        lines.append("")
    if row_costs and "ray_tune" in by_tool:
        lines += ceiling_lines(by_tool, row_costs)
    if "ray_tune_mlflow" in by_tool:
        theirs = [r.get("mlflow_results_per_s") for r in by_tool["ray_tune_mlflow"]]
        for tool in ("raysweep_sqlite", "raysweep_http"):
            ratios = [r["mlflow_results_per_s"] / b for r, b in zip(by_tool.get(tool, []), theirs) if b and r.get("mlflow_results_per_s")]
            if ratios:
                lines.append(f"- {LABELS[tool]}: results into MLflow per second against Ray's `MLflowLoggerCallback` into "
                             f"sqlite, run by run: {median_range(ratios, 2)}x.")  # fmt: skip
        lines.append("")
    return lines


def ceiling_lines(by_tool: dict[str, list[dict[str, Any]]], row_costs: list[dict[str, Any]]) -> list[str]:
    """What MLflow's own CPU per row leaves of plain Ray Tune's rate, for each raysweep store."""
    import statistics

    from benchmarks import row_cost

    cpus = os.cpu_count() or 1
    busy = [
        row_cost.busy_seconds_per_result(r["tune_results_per_s"], r["idle_share"], cpus)
        for r in by_tool["ray_tune"] if r.get("tune_results_per_s") and r.get("idle_share") is not None
    ]  # fmt: skip
    if not busy:
        return []
    b = statistics.median(busy)
    rounds = max(sum(1 for r in row_costs if r["kind"] == kind) for kind in row_cost.KINDS)
    lines = [
        f"MLflow's own CPU per metric row (`python -m benchmarks.row_cost`, run after the runs above: {rounds} round(s) "
        f"of each store in turn, {row_cost.RUNS} runs, `log_batch` of {row_cost.ROWS_PER_BATCH} rows): "
        + "; ".join(
            f"{kind} {median_range([r['us_per_row'] for r in row_costs if r['kind'] == kind])} us"
            + (f" (client {median_range([r['client_us_per_row'] for r in row_costs if r['kind'] == kind])}, server "
               f"{median_range([r['server_us_per_row'] for r in row_costs if r['kind'] == kind])})" if kind == "http" else "")
            for kind in row_cost.KINDS
        )
        + f". Plain Ray Tune kept the cores busy ({median_range([100 * r['idle_share'] for r in by_tool['ray_tune'] if r.get('idle_share') is not None])}% idle): "
        f"{b * 1000:.2f} ms of core time per result. Whatever MLflow needs for a result's rows comes out of that time; "
        "even if raysweep itself cost nothing, a sweep writing R rows per result can reach at most "
        "B / (B + R x cost per row) of plain Ray Tune's rate:",
        "",
    ]  # fmt: skip
    for tool, kind in (("raysweep_sqlite", "sqlite"), ("raysweep_http", "http")):
        cost = row_cost.cost_per_row(row_costs, kind)
        rows = [r["metric_rows_per_result"] for r in by_tool.get(tool, []) if r.get("metric_rows_per_result")]
        if cost is None or not rows:
            continue
        r = statistics.median(rows)
        lines.append(
            f"- {LABELS[tool]}: {r:.2f} rows per result, so at most {row_cost.ceiling(b, r, cost):.2f}x "
            f"(goal >= {GOAL}x); with the validation metric alone (1 row), at most {row_cost.ceiling(b, 1.0, cost):.2f}x."
        )
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16, help="trials at once (default 16)")
    parser.add_argument("--steps", type=int, default=300, help="results each trial reports (default 300)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per tool, in alternating order")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"of {', '.join(TOOLS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--row-cost-rounds", type=int, default=3,
                        help="afterwards, rounds of MLflow's CPU per row (benchmarks.row_cost); 0 skips them")
    parser.add_argument("--out", default=str(BENCHMARKS_DIR))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--outcome", help=argparse.SUPPRESS)
    parser.add_argument("--tracking-uri", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        outcome = child(args.child, args.trials, args.steps, Path(args.scratch), args.tracking_uri or None, args.seed)
        Path(args.outcome).write_text(json.dumps(outcome))
        return 0
    tools = args.tools.split(",")
    if any(t not in TOOLS for t in tools):
        parser.error(f"--tools: pick from {', '.join(TOOLS)}")
    out = Path(args.out)
    scratch = out / "out" / "scratch" / "throughput" if out.resolve() == BENCHMARKS_DIR else out / "scratch" / "throughput"
    folder = out / "results" / "throughput"
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for repeat in range(args.repeats):
        for tool in tools:
            place = scratch / f"{tool}-r{repeat}"
            if place.exists():
                import shutil

                shutil.rmtree(place)
            record = measure(tool, args.trials, args.steps, place, args.seed + repeat)
            record["repeat"] = repeat
            records.append(record)
            (folder / f"{tool}-r{repeat}.json").write_text(json.dumps(record, indent=1))
            print(json.dumps({k: v for k, v in record.items() if k != "curve"}), flush=True)
    row_costs = None
    if args.row_cost_rounds > 0 and any(t in INTO_MLFLOW for t in tools):
        from benchmarks.row_cost import run_rounds

        row_costs = run_rounds(args.row_cost_rounds, scratch)
        (folder / "row_cost.json").write_text(json.dumps(row_costs, indent=1))
    from benchmarks.load import LOAD_TITLE

    print(f"wrote {replace_section(out / 'LOAD.md', HEADING, section(records, argv, row_costs), LOAD_TITLE, ('## 3. Scheduling across nodes', '## 4. A 100-node cluster'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
