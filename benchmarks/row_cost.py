"""What MLflow's own store costs per metric row, in CPU seconds: in the process and over HTTP.

    python -m benchmarks.row_cost                 # 3 rounds, sqlite and HTTP in turn
    python -m benchmarks.row_cost --rounds 1      # a quick look

The throughput benchmark (``python -m benchmarks.throughput``) runs this after its runs and sets the
figures against them: on 2 cores every result Tune processes already uses both cores fully, so
whatever CPU MLflow needs for a result's rows comes out of Tune's. With plain Ray Tune's busy
core-seconds per result ``B`` (measured there) and MLflow's CPU per row ``c`` (measured here), a
sweep that writes ``R`` rows per result can reach at most ``B / (B + R * c)`` of plain Ray Tune's
results per second, even if everything else it does cost nothing.

Each round writes the same rows the way raysweep's writer does: 16 trial runs, one ``log_batch``
per run at a time with 60 results of 3 metrics each, through ``MlflowClient``:

- ``sqlite``: into a sqlite store in this process (the store is MLflow's SQLAlchemy store; its
  CPU is this process's).
- ``http``: into an ``mlflow server`` on 127.0.0.1 (a free port, one worker, sqlite behind it, its
  job runner off, as ``raysweep ui`` runs it); the CPU of this process (the client) and of the
  server's whole process tree are counted apart.

Telemetry is off (``MLFLOW_DISABLE_TELEMETRY``) in this process and the server, so no thread of
it runs in the measured window. Rounds alternate the two stores; figures are medians with their
range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import median_range

#: the rows a round writes: 16 runs x BATCHES x ROWS_PER_BATCH
RUNS = 16
BATCHES = 8
ROWS_PER_BATCH = 180
KEYS = ("val_rmse", "best_val_rmse", "step_time")
KINDS = ("sqlite", "http")


def tree_cpu_seconds(root_pid: int) -> float:
    """User and system CPU seconds of a process and all its descendants (read from ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parent_and_cpu: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent_and_cpu[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    tree, grown = {root_pid}, True
    while grown:
        grown = False
        for pid, (parent, _) in parent_and_cpu.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grown = True
    return sum(parent_and_cpu[pid][1] for pid in tree if pid in parent_and_cpu)


def write_rows(client: Any, label: str) -> int:
    """Write one round's rows into a new experiment through ``client``; the number of rows."""
    from mlflow.entities import Metric

    experiment = client.create_experiment(f"{label}-{time.time_ns()}")
    runs = [client.create_run(experiment).info.run_id for _ in range(RUNS)]
    per_batch = ROWS_PER_BATCH // len(KEYS)
    rows = 0
    for batch in range(BATCHES):
        for run_id in runs:
            metrics = [
                Metric(key, float(step % 97), 1_700_000_000_000 + step, step)
                for step in range(batch * per_batch + 1, (batch + 1) * per_batch + 1)
                for key in KEYS
            ]  # fmt: skip
            client.log_batch(run_id, metrics=metrics)
            rows += len(metrics)
    return rows


def measure(kind: str, root: Path) -> dict[str, Any]:
    """One round into a fresh store: CPU microseconds per row, of the client and of a server."""
    from mlflow import MlflowClient

    root.mkdir(parents=True, exist_ok=True)
    server = None
    if kind == "http":
        from benchmarks.throughput import start_mlflow_server
        from raysweep.cli.review import stop_server

        server, uri = start_mlflow_server(root)
    else:
        uri = f"sqlite:///{root / 'mlflow.db'}"
    try:
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)  # the schema (and the connection) before the clock
        client_before, server_before = time.process_time(), tree_cpu_seconds(server.pid) if server else 0.0
        began = time.perf_counter()
        rows = write_rows(client, kind)
        wall = time.perf_counter() - began
        client_cpu = time.process_time() - client_before
        server_cpu = tree_cpu_seconds(server.pid) - server_before if server else 0.0
    finally:
        if server is not None:
            stop_server(server)
    return {
        "kind": kind,
        "rows": rows,
        "client_us_per_row": round(client_cpu / rows * 1e6, 1),
        "server_us_per_row": round(server_cpu / rows * 1e6, 1),
        "us_per_row": round((client_cpu + server_cpu) / rows * 1e6, 1),
        "wall_us_per_row": round(wall / rows * 1e6, 1),
        "recorded_at": time.strftime("%Y-%m-%d %H:%M"),
    }


def run_rounds(rounds: int, scratch: Path | None = None) -> list[dict[str, Any]]:
    """``rounds`` rounds of each store, in turn (sqlite, http, sqlite, http, ...)."""
    from raysweep.tracking.store import write_sqlite_lightly

    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # here and in the server this process starts
    write_sqlite_lightly()  # sqlite stores opened here commit as raysweep's writer's do
    records = []
    with tempfile.TemporaryDirectory(dir=scratch) as place:
        for round_index in range(rounds):
            for kind in KINDS:
                record = measure(kind, Path(place) / f"{kind}-{round_index}")
                record["round"] = round_index
                records.append(record)
                print(json.dumps(record), flush=True)
    return records


def cost_per_row(records: list[dict[str, Any]], kind: str) -> float | None:
    """The median CPU seconds per row of ``kind``'s rounds (client and server together)."""
    values = [r["us_per_row"] / 1e6 for r in records if r.get("kind") == kind and r.get("us_per_row")]
    return statistics.median(values) if values else None


def busy_seconds_per_result(results_per_s: float, idle_share: float, cpus: int) -> float:
    """Core-seconds the whole machine was busy per result Tune processed."""
    return (1.0 - idle_share) * cpus / results_per_s


def ceiling(busy_per_result: float, rows_per_result: float, seconds_per_row: float) -> float:
    """The most of plain Ray Tune's results per second a sweep can reach when every result's rows
    cost MLflow ``seconds_per_row`` each on the same, already busy cores."""
    return busy_per_result / (busy_per_result + rows_per_result * seconds_per_row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.row_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each store, in turn (default 3)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    records = run_rounds(args.rounds)
    for kind in KINDS:
        mine = [r for r in records if r["kind"] == kind]
        print(f"{kind}: {median_range([r['us_per_row'] for r in mine])} us of CPU per row "
              f"(client {median_range([r['client_us_per_row'] for r in mine])}, "
              f"server {median_range([r['server_us_per_row'] for r in mine])})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
