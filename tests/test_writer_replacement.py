"""The MLflow writer process killed mid-sweep, without Ray: the trial callback is fed Tune's
events for trials of our own (Ray's result files written as Tune's JSON logger writes them), and
the writer process is killed with SIGKILL between them. A new writer must take over and leave
MLflow complete: one run per trial, each step once, every run ended."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fast_support import empty_store, store_uri  # noqa: F401 (fixtures)

pytest.importorskip("mlflow")
pytest.importorskip("ray.tune")

MAX_STEPS = 5


@dataclass
class FakeTrial:
    """What the callback reads of a Tune trial."""

    trial_id: str
    local_path: str
    config: dict[str, Any]
    status: str = "PENDING"
    last_result: dict[str, Any] = field(default_factory=dict)


def report(callback: Any, trials: list[FakeTrial], trial: FakeTrial, step: int) -> None:
    """One result, as Tune hands it to the callbacks: raysweep's first, then the JSON logger."""
    row = {
        "trial_id": trial.trial_id, "training_iteration": step, "resource": 10 * step, "val_accuracy": 0.5 + step / 100,
        "timestamp": time.time(), "config": trial.config, "done": step == MAX_STEPS, "node_id": "n1",
    }  # fmt: skip
    trial.last_result = row
    callback.on_trial_result(0, trials, trial, row)
    with open(Path(trial.local_path) / "result.json", "a") as handle:
        handle.write(json.dumps(row) + "\n")


def start(callback: Any, trials: list[FakeTrial], trial: FakeTrial) -> None:
    trial.status = "RUNNING"
    Path(trial.local_path).mkdir(parents=True)
    callback.on_trial_start(0, trials, trial)


def complete(callback: Any, trials: list[FakeTrial], trial: FakeTrial) -> None:
    trial.status = "TERMINATED"
    callback.on_trial_complete(0, trials, trial)


def kill_writer(callback: Any) -> None:
    process = callback._channel.process
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    deadline = time.monotonic() + 10
    while not callback._channel.dead and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_killed_writer_is_replaced_and_mlflow_ends_complete(tmp_path, store_uri, caplog):  # noqa: F811
    from mlflow.tracking import MlflowClient

    from raysweep.tracking.callback import start_trial_logging
    from raysweep.tracking.store import SweepTracker

    uri = store_uri  # an empty store at tmp_path/mlflow.db
    tracker = SweepTracker(uri, "exp", "takeover", "val_accuracy", MAX_STEPS, integer_resource=True)
    tracker.start()
    callback = start_trial_logging(tracker)
    trials = [
        FakeTrial(f"abcde_{i:05d}", str(tmp_path / "ray" / f"train_abcde_{i:05d}_{i}"), {"x": i}) for i in range(4)
    ]
    first_writer = callback._channel.process.pid
    for trial in trials[:3]:
        start(callback, trials, trial)
    for step in range(1, MAX_STEPS + 1):
        report(callback, trials, trials[0], step)
    complete(callback, trials, trials[0])
    report(callback, trials, trials[1], 1)
    assert callback.wait_idle(60)
    # Sent, and not confirmed by the writer that gets killed now
    report(callback, trials, trials[1], 2)
    report(callback, trials, trials[2], 1)
    kill_writer(callback)
    for step in range(3, MAX_STEPS + 1):
        report(callback, trials, trials[1], step)
    complete(callback, trials, trials[1])
    for step in range(2, MAX_STEPS + 1):
        report(callback, trials, trials[2], step)
    start(callback, trials, trials[3])
    report(callback, trials, trials[3], 1)
    kill_writer(callback)  # the second writer too, right after it took over
    for step in range(2, MAX_STEPS + 1):
        report(callback, trials, trials[3], step)
    complete(callback, trials, trials[2])
    complete(callback, trials, trials[3])
    callback.on_experiment_end(trials)
    assert tracker.finish("FINISHED") is None
    assert callback._channel.process.pid != first_writer
    assert "the MLflow writer process was killed by SIGKILL; a new one writes what it had not" in caplog.text

    client = MlflowClient(uri)
    runs = client.search_runs([tracker.experiment_id], max_results=100)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert [run.info.status for run in parents] == ["FINISHED"]
    assert sorted(run.data.tags["raysweep.trial_id"] for run in children) == [trial.trial_id for trial in trials]
    for run in children:
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy"))
        assert steps == [10, 20, 30, 40, 50], (run.info.run_name, steps)
        assert run.info.status == "FINISHED", run.info.run_name
        assert run.data.tags["raysweep.outcome"] == "completed", run.data.tags
        assert run.data.params == {"x": run.data.tags["raysweep.trial_id"][-1]}
        assert run.data.tags["raysweep.node_id"] == "n1"
