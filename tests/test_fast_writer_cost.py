"""Fast tests of what keeps the MLflow writer process cheap for the sweep, on a real sqlite store.

The writer process runs below the sweep's CPU priority and commits in sqlite's write-ahead-log
mode; the sweep's end (not Tune's experiment end) waits for it. No Ray is started.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from fast_support import EXPERIMENT, METRIC, SWEEP, empty_store, fake_trial, store_uri, trial_runs, tune_result
from raysweep.tracking._writer_process import NICENESS
from raysweep.tracking.callback import start_trial_logging
from raysweep.tracking.store import SweepTracker

__all__ = ["empty_store", "store_uri"]  # fixtures

TRIAL = "c0ffe_00000"


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_writer_process_runs_below_the_sweep_and_leaves_the_store_in_wal_mode(store_uri: str) -> None:
    tracker = SweepTracker(store_uri, EXPERIMENT, SWEEP, METRIC, 1, True, params={"num_samples": 1})
    tracker.start()
    callback = start_trial_logging(tracker)
    trial = fake_trial(TRIAL, {"x": 1})
    callback.on_trial_start(0, [trial], trial)
    trial.last_result = tune_result(TRIAL, 1, 0.75, config=trial.config, done=True)
    callback.on_trial_result(0, [trial], trial, dict(trial.last_result))
    trial.status = "TERMINATED"
    callback.on_trial_complete(0, [trial], trial)
    callback.on_experiment_end([trial])
    assert callback.wait_idle(60)
    pid = callback._channel.process.pid
    assert _niceness(pid) == min(19, _niceness(os.getpid()) + NICENESS)
    assert tracker.finish("FINISHED") is None

    run = trial_runs(store_uri, tracker.parent_run_id)["trial-0000"]
    assert (run.info.status, run.data.params, run.data.metrics[METRIC]) == ("FINISHED", {"x": "1"}, 0.75)
    with sqlite3.connect(store_uri[len("sqlite:///"):]) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
