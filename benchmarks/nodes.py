"""Scheduling across nodes, simulated on this machine: trials per second on 1, 2 and 4 worker nodes.

    python -m benchmarks.nodes                               # 1, 2, 4 nodes x 8 CPUs, 4 waves of 5-step trials
    python -m benchmarks.nodes --waves 2 --steps 2           # a quick look

For each size a local Ray cluster is started with ``raysweep.cluster.local.start_local_cluster``
(a head that schedules only, and N worker nodes each declaring ``--cpus-per-node`` CPUs, token
authentication on, the GCS on a free port, never 6379). A driver process joins it with
``address=`` and runs a raysweep sweep with MLflow on (sqlite) of ``bench_sleep`` trials: each
step sleeps 1 s, so a trial holds its CPU slot without using a core, and the CPUs the nodes
declare are the limit, not this machine's cores. ``waves`` x the cluster's CPUs trials run, all
slots busy. Trials per second come from the trial runs' start and end times in MLflow; the node
tag (``raysweep.node_id``) on each run shows how the trials spread.

Plain Ray Tune runs the same trials on the same kind of cluster, alternating with raysweep at each
size (``--tools``; the order reversed every other repeat): a function trainable that sleeps 1 s per step, ``reuse_actors=True``, the same
number of trials at once, no scheduler. Its trials' start and end are taken where raysweep takes
them for its runs (Tune's ``on_trial_start`` and ``on_trial_complete``), and each trial reports its
node. What plain Ray Tune gets on a simulated cluster separates the simulation's limit (every
node's worker processes start on the same 2 cores) from raysweep's. Writes
``results/nodes/*.json`` and the scheduling section of ``LOAD.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import BENCHMARKS_DIR, REPO, median_range, replace_section

HEADING = "## 3. Scheduling across nodes"
GOAL = 3.5
NODE_TAG = "raysweep.node_id"
TOOLS = {"raysweep": "raysweep (MLflow on)", "ray_tune": "plain Ray Tune (function trainable, reuse)"}


def child(tool: str, address: str, trials: int, slots: int, steps: int, scratch: Path, seed: int) -> dict[str, Any]:
    if tool == "ray_tune":
        return _plain_child(address, trials, slots, steps, scratch, seed)
    from raysweep import run_sweep

    from benchmarks.families import analytic_dataset, steps_recipe

    began = time.time()
    result = run_sweep(
        steps_recipe("sleep", steps),
        analytic_dataset("noop"),
        progress=False,
        num_samples=trials,
        max_concurrent=slots,
        seed=seed,
        name="nodes",
        storage=str(scratch / "ray"),
        tracking_uri=f"sqlite:///{scratch / 'mlflow.db'}",
        experiment="nodes",
        address=address,
    )
    return {"trials": result.num_trials, "errors": result.num_errors, "parent_run_id": result.parent_run_id,
            "experiment_id": result.experiment_id, "tracking_uri": result.tracking_uri,
            "began": began, "ended": time.time()}  # fmt: skip


def _plain_child(address: str, trials: int, slots: int, steps: int, scratch: Path, seed: int) -> dict[str, Any]:
    """The same trials in plain Ray Tune; each trial's start and end as its callbacks see them."""
    import logging

    import ray
    from ray import tune

    began = time.time()
    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    times: dict[str, dict[str, Any]] = {}

    class Times(tune.Callback):
        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            times.setdefault(trial.trial_id, {})["start"] = time.time()

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            times.setdefault(trial.trial_id, {}).update(end=time.time(), node=(trial.last_result or {}).get("node"))

    def trainable(config: dict[str, Any]) -> None:
        node = ray.get_runtime_context().get_node_id()
        for step in range(1, steps + 1):
            time.sleep(1.0)
            tune.report({"value": config["x"] * step, "node": node})

    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(metric="value", mode="min", num_samples=trials, reuse_actors=True,
                                    max_concurrent_trials=slots, search_alg=tune.search.BasicVariantGenerator(random_state=seed)),
        run_config=tune.RunConfig(name="nodes-plain", storage_path=str(scratch / "ray"), verbose=0, callbacks=[Times()]),
    )  # fmt: skip
    results = tuner.fit()
    return {"trials": len(results), "errors": sum(1 for r in results if r.error is not None),
            "trial_times": list(times.values()), "began": began, "ended": time.time()}  # fmt: skip


def _free_port() -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port != 6379:
            return port


def measure(tool: str, nodes: int, cpus: int, waves: int, steps: int, scratch: Path, seed: int) -> dict[str, Any]:
    from raysweep.cluster.local import start_local_cluster

    scratch.mkdir(parents=True, exist_ok=True)
    slots, trials = nodes * cpus, waves * nodes * cpus
    base = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    base.pop("MLFLOW_TRACKING_URI", None)
    up = time.monotonic()
    # The nodes inherit this environment (PYTHONPATH included: the benchmark families import there).
    saved = dict(os.environ)
    os.environ.update(PYTHONPATH=base["PYTHONPATH"])
    try:
        cluster = start_local_cluster(workers=nodes, cpus_per_node=cpus, head_cpus=0, state_dir=scratch / "cluster", port=_free_port())
    finally:
        os.environ.clear()
        os.environ.update(saved)
    cluster_up_s = time.monotonic() - up
    try:
        outcome_file = scratch / "outcome.json"
        command = [sys.executable, "-m", "benchmarks.nodes", "--child", cluster.address, "--tools", tool, "--nodes", str(nodes),
                   "--cpus-per-node", str(cpus), "--waves", str(waves), "--steps", str(steps), "--scratch", str(scratch),
                   "--seed", str(seed), "--outcome", str(outcome_file)]  # fmt: skip
        completed = subprocess.run(command, cwd=REPO, env=cluster.driver_env(base))
        if completed.returncode != 0:
            raise SystemExit(f"{TOOLS[tool]}, {nodes} node(s): the driver exited {completed.returncode}")
        worker_ids = {node.node_id: f"worker {node.index}" for node in cluster.workers}
    finally:
        cluster.stop()
    outcome = json.loads(outcome_file.read_text())
    trial_times = outcome.pop("trial_times", [])
    record: dict[str, Any] = {"tool": tool, "nodes": nodes, "cpus_per_node": cpus, "slots": slots, "trials_requested": trials,
                              "steps": steps, "cluster_up_s": round(cluster_up_s, 1), **outcome}  # fmt: skip
    record["loadavg_end"] = [round(x, 1) for x in os.getloadavg()]
    record["recorded_at"] = time.strftime("%Y-%m-%d %H:%M")
    if tool == "ray_tune":
        record.update(_from_callbacks(trial_times, outcome["began"], slots, worker_ids))
    else:
        record.update(_from_mlflow(outcome, slots, worker_ids))
    return record


def _from_callbacks(trials: list[dict[str, Any]], began: float, slots: int, worker_ids: dict[str | None, str]) -> dict[str, Any]:
    spread: dict[str, int] = {}
    for trial in trials:
        label = worker_ids.get(trial.get("node"), "head" if trial.get("node") else "no node")
        spread[label] = spread.get(label, 0) + 1
    finished = [t for t in trials if "start" in t and "end" in t]
    figures: dict[str, Any] = {"trials_finished": len(finished), "node_spread": dict(sorted(spread.items()))}
    figures.update(_rates(sorted(t["start"] for t in finished), sorted(t["end"] for t in finished), slots, began))
    return figures


def _from_mlflow(outcome: dict[str, Any], slots: int, worker_ids: dict[str | None, str]) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(outcome["tracking_uri"])
    children = client.search_runs(
        [outcome["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{outcome['parent_run_id']}'", max_results=50_000
    )
    statuses: dict[str, int] = {}
    spread: dict[str, int] = {}
    for run in children:
        statuses[run.info.status] = statuses.get(run.info.status, 0) + 1
        node = run.data.tags.get(NODE_TAG)
        label = worker_ids.get(node, "head" if node else "no node tag")
        spread[label] = spread.get(label, 0) + 1
    starts = sorted(run.info.start_time / 1000 for run in children)
    ends = sorted((run.info.end_time or run.info.start_time) / 1000 for run in children)
    figures: dict[str, Any] = {"mlflow_child_runs": len(children), "mlflow_child_statuses": statuses,
                               "trials_finished": statuses.get("FINISHED", 0), "node_spread": dict(sorted(spread.items()))}  # fmt: skip
    figures.update(_rates(starts, ends, slots, outcome["began"]))
    return figures


def _rates(starts: list[float], ends: list[float], slots: int, began: float) -> dict[str, Any]:
    """Trials per second from sorted start and end times (seconds since the epoch)."""
    figures: dict[str, Any] = {}
    if starts and ends[-1] > starts[0]:
        figures["trials_per_s"] = round(len(ends) / (ends[-1] - starts[0]), 2)
        figures["span_s"] = round(ends[-1] - starts[0], 1)
    # After the first wave (every slot's actor started): the steady rate.
    if len(ends) > slots + 1 and ends[-1] > ends[slots - 1]:
        figures["trials_per_s_after_first_wave"] = round((len(ends) - slots) / (ends[-1] - ends[slots - 1]), 2)
    # How far apart the first wave's trials started: its actors coming up
    if len(starts) >= slots:
        figures["first_wave_start_spread_s"] = round(starts[slots - 1] - starts[0], 1)
    figures["first_trial_start_s"] = round(starts[0] - began, 1) if starts else None
    return figures


def section(records: list[dict[str, Any]], argv: list[str]) -> list[str]:
    records = [{"tool": "raysweep", **r} for r in records]  # records from before the plain arm are raysweep's
    tools = [t for t in TOOLS if any(r["tool"] == t for r in records)]
    first = records[0]
    loads = "; ".join(", ".join(str(x) for x in r["loadavg_end"]) for r in records)
    lines = [
        HEADING,
        "",
        f"`python -m benchmarks.nodes {' '.join(argv)}`".replace(" `", "`"),
        "",
        f"Worker nodes of {first['cpus_per_node']} declared CPUs each (a head that only schedules), all on this machine; "
        f"trials of {first['steps']} steps of 1 s sleep, {first['trials_requested'] // first['slots']} waves (trials = waves x "
        f"CPUs); {' and '.join(TOOLS[t] for t in tools)}, alternating at each size; on {records[-1]['recorded_at']}, "
        f"{os.cpu_count()} CPUs, load average at the end of each run {loads}. raysweep's trials per second come from its "
        "trial runs' times in MLflow (sqlite)"
        + (", plain Ray Tune's from its trial callbacks, where raysweep takes the runs' times." if "ray_tune" in tools else "."),
        "",
    ]
    for tool in tools:
        mine = [r for r in records if r["tool"] == tool]
        sizes = sorted({r["nodes"] for r in mine})
        by_size = {n: [r for r in mine if r["nodes"] == n] for n in sizes}
        node_column = "`raysweep.node_id`" if tool == "raysweep" else "the node each trial reported"
        lines += [
            f"{TOOLS[tool]}:",
            "",
            "| worker nodes | trials | trials/s (first start to last end) | trials/s after the first wave | "
            f"first wave's starts spread over, s | first trial started after, s | trials per node ({node_column}) | trials finished |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
        ]
        for n in sizes:
            rows = by_size[n]
            spread = "; ".join(", ".join(f"{k}: {v}" for k, v in r["node_spread"].items()) for r in rows)
            finished = "; ".join(f"{_finished(r)}/{r['trials_requested']}" for r in rows)
            lines.append(
                f"| {n} | {rows[0]['trials_requested']} | {median_range([r.get('trials_per_s') for r in rows], 2)} | "
                f"{median_range([r.get('trials_per_s_after_first_wave') for r in rows], 2)} | "
                f"{median_range([r.get('first_wave_start_spread_s') for r in rows], 1)} | "
                f"{median_range([r.get('first_trial_start_s') for r in rows], 1)} | {spread} | {finished} |"
            )
        lines.append("")
        if 1 in by_size and max(sizes) > 1:
            top = max(sizes)
            for key, what in (("trials_per_s", "first start to last end"), ("trials_per_s_after_first_wave", "after the first wave")):
                ratios = [b.get(key, 0) / a[key] for a, b in zip(by_size[1], by_size[top]) if a.get(key)]
                goal = f"goal >= {GOAL}x from 1 to 4 nodes; " if tool == "raysweep" else ""
                lines.append(f"- {TOOLS[tool]}, {top} nodes against 1, trials per second ({what}): {median_range(ratios, 2)}x "
                             f"({goal}ideal {top}x).")  # fmt: skip
            lines.append("")
    if len(tools) == 2:
        for n in sorted({r["nodes"] for r in records}):
            pairs = list(zip(*[[r for r in records if r["tool"] == t and r["nodes"] == n] for t in tools]))
            ratios = [a["trials_per_s"] / b["trials_per_s"] for a, b in pairs if a.get("trials_per_s") and b.get("trials_per_s")]
            if ratios:
                lines.append(f"- {n} worker node(s): raysweep's trials per second (first start to last end) against plain Ray "
                             f"Tune's, run by run: {median_range(ratios, 2)}x.")  # fmt: skip
        lines.append("")
    return lines


def _finished(record: dict[str, Any]) -> int:
    if "trials_finished" in record:
        return record["trials_finished"]
    return record.get("mlflow_child_statuses", {}).get("FINISHED", 0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nodes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="1,2,4", help="worker node counts, in order (default 1,2,4)")
    parser.add_argument("--cpus-per-node", type=int, default=8)
    parser.add_argument("--waves", type=int, default=4, help="trials = waves x the cluster's CPUs (default 4)")
    parser.add_argument("--steps", type=int, default=5, help="1 s steps per trial (default 5)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every size, in alternating order")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tools", default="raysweep,ray_tune", help="raysweep and/or ray_tune, alternating at each size (default both)")
    parser.add_argument("--out", default=str(BENCHMARKS_DIR))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--outcome", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        nodes = int(args.nodes)
        slots = nodes * args.cpus_per_node
        outcome = child(args.tools, args.child, args.waves * slots, slots, args.steps, Path(args.scratch), args.seed)
        Path(args.outcome).write_text(json.dumps(outcome))
        return 0
    sizes = [int(n) for n in args.nodes.split(",")]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown or not tools:
        parser.error(f"--tools: {', '.join(unknown) or 'none given'}; choose from {', '.join(TOOLS)}")
    out = Path(args.out)
    scratch = out / "out" / "scratch" / "nodes" if out.resolve() == BENCHMARKS_DIR else out / "scratch" / "nodes"
    folder = out / "results" / "nodes"
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for repeat in range(args.repeats):
        for nodes in sizes:
            # each size's tools in turn, the order reversed every other repeat (A B, then B A)
            for tool in tools if repeat % 2 == 0 else tools[::-1]:
                # raysweep's records keep the names they had before the plain arm
                stem = f"n{nodes}-r{repeat}" if tool == "raysweep" else f"{tool}-n{nodes}-r{repeat}"
                place = scratch / stem
                if place.exists():
                    import shutil

                    shutil.rmtree(place)
                record = measure(tool, nodes, args.cpus_per_node, args.waves, args.steps, place, args.seed + repeat)
                record["repeat"] = repeat
                records.append(record)
                (folder / f"{stem}.json").write_text(json.dumps(record, indent=1))
                print(json.dumps(record), flush=True)
    from benchmarks.load import LOAD_TITLE

    print(f"wrote {replace_section(out / 'LOAD.md', HEADING, section(records, argv), LOAD_TITLE, ('## 4. A 100-node cluster',))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
