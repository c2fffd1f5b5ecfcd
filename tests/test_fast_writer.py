"""Fast tests of the MLflow trial writer and its transport, on synthetic Tune events.

``TrialWriter`` is fed trial events as Tune raises them (through the writer's methods, and
through ``MLflowTrialCallback``'s Tune hooks on the inline and the writer-process path) and
writes to a real MLflow sqlite store; the tests check what a user reads in MLflow. No Ray is
started.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fast_support import (
    EXPERIMENT, METRIC, NODE, OTHER_NODE, SWEEP, client_for, empty_store, fake_trial, history, last_lines,
    raysweep_tags, snapshot, steps, store_uri, trial_runs, tune_result, write_error_file,
)  # fmt: skip
from raysweep.tracking.callback import start_trial_logging
from raysweep.tracking.store import SweepTracker
from raysweep.tracking.writer import TrialView, TrialWriter

__all__ = ["empty_store", "store_uri"]  # fixtures

A, B, C, D, E = (f"e55ae_0000{i}" for i in range(5))
CONFIG = {"max_depth": 32, "min_samples_leaf": 1, "max_features": 0.25}
OTHER_CONFIG = {"max_depth": 8, "min_samples_leaf": 4, "max_features": 0.5}
ACTOR_DIED = "ray.exceptions.ActorDiedError: The actor died unexpectedly"


def make_tracker(uri: str, *, max_steps: int = 3, integer_resource: bool = True, params: dict | None = None) -> SweepTracker:
    tracker = SweepTracker(
        uri, EXPERIMENT, SWEEP, METRIC, max_steps, integer_resource,
        tags={"raysweep.recipe": "random_forest"}, params=params or {"num_samples": 4, "time_budget_s": "none"},
    )  # fmt: skip
    tracker.start()
    return tracker


def make_writer(tracker: SweepTracker, session_started: float | None = None, flush_every: float = 0.0) -> TrialWriter:
    return TrialWriter(tracker, time.time() if session_started is None else session_started, flush_every)


def view(trial_id: str, config: dict, last: dict | None = None, status: str = "RUNNING", **errors: Any) -> TrialView:
    return TrialView(trial_id, dict(config), dict(last or {}), status, seen=time.time(), **errors)


def report(writer: TrialWriter, trial_id: str, config: dict, values: list[float], *, first: int = 1, done_at_end: bool = False,
           node: dict | None = None, max_steps: int = 3) -> dict:
    """Results ``first``, ``first+1``, ... of a trial; returns the last one."""
    result: dict = {}
    for offset, value in enumerate(values):
        iteration = first + offset
        done = iteration >= max_steps or (done_at_end and offset == len(values) - 1)
        result = tune_result(trial_id, iteration, value, config=config, done=done, node=node)
        writer.trial_result(view(trial_id, config, result), result)
    return result


def only_run(uri: str, tracker: SweepTracker, name: str = "trial-0000") -> Any:
    runs = trial_runs(uri, tracker.parent_run_id)
    assert list(runs) == [name]
    return runs[name]


# -- how a trial ended ---------------------------------------------------------------------------
def test_completed_trial_is_finished_with_every_step(store_uri: str) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    last = report(writer, A, CONFIG, [0.9, 0.93, 0.96])
    writer.trial_completed(view(A, CONFIG, last, "TERMINATED"))

    run = only_run(store_uri, tracker)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
    assert raysweep_tags(run) == {
        "raysweep.sweep": SWEEP,
        "raysweep.trial_id": A,
        "raysweep.outcome": "completed",
        "raysweep.final_config": json.dumps(CONFIG),
        **{f"raysweep.{key}": value for key, value in NODE.items()},
    }
    assert run.data.params == {"max_depth": "32", "min_samples_leaf": "1", "max_features": "0.25"}
    # the step is the resource spent: 20, 40, 60 trees
    assert history(store_uri, run.info.run_id) == [(20, 0.9), (40, 0.93), (60, 0.96)]
    assert steps(store_uri, run.info.run_id, "step_time") == [20, 40, 60]


def test_only_measurements_become_metrics(store_uri: str) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    result = {**tune_result(A, 1, 0.9, config=CONFIG), "should_checkpoint": True, "note": "text", "checkpoint_dir_name": None}
    writer.trial_result(view(A, CONFIG, result), result)
    writer.close_open_runs("KILLED", "sweep_interrupted")

    run = only_run(store_uri, tracker)
    # Tune's bookkeeping (time_total_s, pid, ...), booleans, text and an integer resource are not metrics
    assert set(run.data.metrics) == {METRIC, "step_time"}


def test_scheduler_stopped_trial(store_uri: str) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    last = report(writer, A, CONFIG, [0.5], done_at_end=True)  # ASHA stops it after its first rung
    writer.trial_completed(view(A, CONFIG, last, "TERMINATED"))

    run = only_run(store_uri, tracker)
    assert run.info.status == "FINISHED"
    assert run.data.tags["raysweep.outcome"] == "stopped_early"
    assert run.data.tags["raysweep.stop_reason"] == "scheduler"
    assert history(store_uri, run.info.run_id) == [(20, 0.5)]


def test_errored_trial_is_failed_with_the_end_of_its_error_file(store_uri: str, tmp_path: Path) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    last = report(writer, A, CONFIG, [0.9])
    error_file = write_error_file(tmp_path, "FloatingPointError: validation accuracy is nan at trees=40: the model diverged")
    writer.trial_errored(view(A, CONFIG, last, "ERROR", error_file=str(error_file), error_msg="ignored: the file wins"))

    run = only_run(store_uri, tracker)
    assert run.info.status == "FAILED"
    assert run.data.tags["raysweep.outcome"] == "failed"
    assert run.data.tags["raysweep.error"] == last_lines(error_file)
    assert run.data.tags["raysweep.error"].endswith("FloatingPointError: validation accuracy is nan at trees=40: the model diverged")
    assert "raysweep.stop_reason" not in run.data.tags
    assert history(store_uri, run.info.run_id) == [(20, 0.9)]


def test_errored_trial_without_an_error_file_keeps_the_error_message(store_uri: str) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    writer.trial_errored(view(A, CONFIG, {}, "ERROR", error_file="/nonexistent/error.txt", error_msg="ValueError: bad\nsecond line"))

    run = only_run(store_uri, tracker)
    assert run.info.status == "FAILED"
    assert run.data.tags["raysweep.error"] == "ValueError: bad\nsecond line"


@pytest.mark.parametrize(
    ("budget", "status", "reason"),
    [(1.0, "FINISHED", "time_budget"), ("none", "KILLED", "sweep_interrupted")],
    ids=["time-budget-spent", "ctrl-c"],
)
def test_trial_cut_off_at_the_sweep_end(store_uri: str, budget: Any, status: str, reason: str) -> None:
    # Tune marks the trials it stops at a time budget or a Ctrl-C TERMINATED, without "done".
    tracker = make_tracker(store_uri, params={"num_samples": 4, "time_budget_s": budget})
    writer = make_writer(tracker, session_started=time.time() - 10)
    writer.trial_started(view(A, CONFIG))
    last = report(writer, A, CONFIG, [0.9, 0.92])
    writer.experiment_ended([view(A, CONFIG, last, "TERMINATED")])

    run = only_run(store_uri, tracker)
    assert run.info.status == status
    assert run.data.tags["raysweep.outcome"] == "stopped_early"
    assert run.data.tags["raysweep.stop_reason"] == reason
    assert steps(store_uri, run.info.run_id) == [20, 40]


def test_experiment_end_decides_every_open_trial(store_uri: str, tmp_path: Path) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    for trial_id in (A, B, C):
        writer.trial_started(view(trial_id, CONFIG))
    last_a = report(writer, A, CONFIG, [0.9, 0.91, 0.92])
    last_b = report(writer, B, CONFIG, [0.4], done_at_end=True)
    error_file = write_error_file(tmp_path, "RuntimeError: worker crashed")
    # D failed while MLflow was away, before its run existed; E never started
    writer.experiment_ended([
        view(A, CONFIG, last_a, "TERMINATED"),
        view(B, CONFIG, last_b, "TERMINATED"),
        view(C, CONFIG, {}, "TERMINATED"),
        view(D, CONFIG, {}, "ERROR", error_file=str(error_file)),
        view(E, CONFIG, {}, "PENDING"),
    ])  # fmt: skip

    runs = trial_runs(store_uri, tracker.parent_run_id)
    assert sorted(runs) == ["trial-0000", "trial-0001", "trial-0002", "trial-0003"]
    tags = {name: run.data.tags for name, run in runs.items()}
    ended = {name: (runs[name].info.status, tags[name]["raysweep.outcome"], tags[name].get("raysweep.stop_reason")) for name in runs}
    assert ended == {
        "trial-0000": ("FINISHED", "completed", None),
        "trial-0001": ("FINISHED", "stopped_early", "scheduler"),
        "trial-0002": ("KILLED", "stopped_early", "sweep_interrupted"),
        "trial-0003": ("FAILED", "failed", None),
    }
    assert runs["trial-0003"].data.tags["raysweep.error"] == last_lines(error_file)


def test_trial_ended_before_it_started_has_no_run(store_uri: str) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    writer.trial_completed(view(A, CONFIG, {}, "TERMINATED"))
    writer.experiment_ended([view(A, CONFIG, {}, "TERMINATED")])
    assert trial_runs(store_uri, tracker.parent_run_id) == {}


@pytest.mark.parametrize(("status", "reason"), [("KILLED", "sweep_interrupted"), ("KILLED", "sweep_failed")])
def test_close_open_runs_ends_only_the_open_ones(store_uri: str, status: str, reason: str) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    writer.trial_started(view(B, CONFIG))
    last_a = report(writer, A, CONFIG, [0.9, 0.91, 0.92])
    writer.trial_completed(view(A, CONFIG, last_a, "TERMINATED"))
    report(writer, B, CONFIG, [0.8])
    writer.close_open_runs(status, reason)

    runs = trial_runs(store_uri, tracker.parent_run_id)
    assert runs["trial-0000"].info.status == "FINISHED"
    assert runs["trial-0000"].data.tags["raysweep.outcome"] == "completed"
    assert runs["trial-0001"].info.status == status
    assert runs["trial-0001"].data.tags["raysweep.outcome"] == "stopped_early"
    assert runs["trial-0001"].data.tags["raysweep.stop_reason"] == reason
    assert steps(store_uri, runs["trial-0001"].info.run_id) == [20]


# -- steps and resources -------------------------------------------------------------------------
def test_fractional_resource_steps_by_iteration_and_logs_the_resource(store_uri: str) -> None:
    # the SVM grows along a share of the rows: 0.1, 0.2, ... cannot be a step
    tracker = make_tracker(store_uri, max_steps=10, integer_resource=False)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    for iteration, value in ((1, 0.81), (2, 0.82)):
        result = tune_result(A, iteration, value, config=CONFIG, resource=round(0.1 * iteration, 6))
        writer.trial_result(view(A, CONFIG, result), result)
    writer.close_open_runs("KILLED", "sweep_interrupted")

    run = only_run(store_uri, tracker)
    assert history(store_uri, run.info.run_id) == [(1, 0.81), (2, 0.82)]
    assert history(store_uri, run.info.run_id, "resource") == [(1, 0.1), (2, 0.2)]


def test_results_wait_for_the_flush_interval(store_uri: str) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker, flush_every=3600)
    writer.trial_started(view(A, CONFIG))
    last = report(writer, A, CONFIG, [0.9, 0.91])
    run = only_run(store_uri, tracker)
    assert history(store_uri, run.info.run_id) == []  # batched, not one MLflow call per result
    writer.trial_completed(view(A, CONFIG, last, "TERMINATED"))
    assert history(store_uri, run.info.run_id) == [(20, 0.9), (40, 0.91)]


def test_many_metrics_are_split_into_batches_mlflow_takes(store_uri: str) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    result = {**tune_result(A, 1, 0.9, config=CONFIG), **{f"class_{i}_recall": i / 2000 for i in range(1500)}}
    writer.trial_result(view(A, CONFIG, result), result)
    writer.close_open_runs("KILLED", "sweep_interrupted")

    run = only_run(store_uri, tracker)
    assert len(run.data.metrics) == 1502
    assert run.data.metrics["class_1499_recall"] == pytest.approx(1499 / 2000)


def test_params_come_from_the_trial_config(store_uri: str) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    config = {"hidden_layer_sizes": [64, 32], "activation": "relu", "alpha": 1e-4, "early_stopping": False}
    writer.trial_started(view(A, config))
    writer.close_open_runs("KILLED", "sweep_interrupted")

    run = only_run(store_uri, tracker)
    assert run.data.params == {"hidden_layer_sizes": "[64, 32]", "activation": "relu", "alpha": "0.0001", "early_stopping": "false"}


def test_node_is_tagged_once_from_the_first_result(store_uri: str) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    report(writer, A, CONFIG, [0.9], node=NODE)
    report(writer, A, CONFIG, [0.91], first=2, node=OTHER_NODE)
    writer.close_open_runs("KILLED", "sweep_interrupted")

    tags = only_run(store_uri, tracker).data.tags
    assert {key: tags[f"raysweep.{key}"] for key in NODE} == NODE


# -- retries and resumes ---------------------------------------------------------------------------
def test_retried_trial_skips_the_steps_it_repeats(store_uri: str, tmp_path: Path) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    last = report(writer, A, CONFIG, [0.9, 0.91])
    error_file = write_error_file(tmp_path, "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.")
    writer.trial_recovered(view(A, CONFIG, last, "PENDING", error_file=str(error_file)))
    # the retry starts from scratch on another node and reports steps 1 and 2 again
    last = report(writer, A, CONFIG, [0.5, 0.6, 0.95], node=OTHER_NODE)
    writer.trial_completed(view(A, CONFIG, last, "TERMINATED"))

    run = only_run(store_uri, tracker)
    assert run.info.status == "FINISHED"
    assert run.data.tags["raysweep.outcome"] == "completed"
    assert history(store_uri, run.info.run_id) == [(20, 0.9), (40, 0.91), (60, 0.95)]
    assert run.data.tags["raysweep.retries"] == "1"
    assert run.data.tags["raysweep.retry.1.error"] == last_lines(error_file)
    assert run.data.tags["raysweep.node_id"] == OTHER_NODE["node_id"]  # tagged afresh for the retry


def test_a_retry_after_a_worker_died_keeps_rays_headline_above_the_actors_fields(store_uri: str, tmp_path: Path) -> None:
    # Ray's ActorDiedError lists the actor's fields (tab-indented) under its headline, then the
    # worker's exit detail, which can run over three lines: the last six lines alone would begin
    # inside the list and drop the line that says what happened.
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    last = report(writer, A, CONFIG, [0.9])
    message = "\n".join([
        "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.",
        "\tclass_name: with_resources.<locals>.ResourceTrainable",
        "\tactor_id: 8f6e8ac54abf916a995da60805000000",
        "\tpid: 421",
        "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error code 2. End of file.",
        "the system processes may be occupying more memory than what's reserved for them.",
        "consider enabling resource isolation via --enable-resource-isolation to prevent node deaths.",
    ])  # fmt: skip
    error_file = write_error_file(tmp_path, message)
    writer.trial_recovered(view(A, CONFIG, last, "PENDING", error_file=str(error_file)))
    writer.trial_errored(view(A, CONFIG, last, "ERROR", error_file=str(error_file)))

    tags = only_run(store_uri, tracker).data.tags
    assert tags["raysweep.retry.1.error"] == message
    assert tags["raysweep.error"] == message


XGBOOST_ERROR = [
    "Traceback (most recent call last):",
    '  File "raysweep/families/_xgboost.py", line 120, in train',
    "xgboost.core.XGBoostError: [00:35:01] /workspace/src/data/data.cc:500: Check failed: valid: "
    "Input data contains `inf` or a value too large, while `missing` is not set to `inf`",
    "Stack trace:",
    *[f"  [bt] ({i}) /usr/lib/python3/site-packages/xgboost/lib/libxgboost.so(+0x{i}2a) [0x7f78{i}]" for i in range(8)],
    "  [bt] (8) /lib/x86_64-linux-gnu/libffi.so.8(ffi_call+0xcd) [0x7f7811]",
]


def test_a_native_stack_trace_does_not_push_the_error_out_of_the_tag_or_the_summary(store_uri: str, tmp_path: Path) -> None:
    """XGBoost's errors end in ten lines of C++ frames: the tag kept only frames, and a sweep whose
    every trial failed said "first error: [bt] (8) .../libffi.so.8(ffi_call+0xcd)"."""
    from raysweep.tracking.schema import error_headline

    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    last = report(writer, A, CONFIG, [0.9])
    error_file = write_error_file(tmp_path, "\n".join(XGBOOST_ERROR))
    writer.trial_errored(view(A, CONFIG, last, "ERROR", error_file=str(error_file)))
    tag = only_run(store_uri, tracker).data.tags["raysweep.error"]
    assert tag.endswith("\n".join(XGBOOST_ERROR[:3])) and "[bt]" not in tag, tag
    assert error_headline("\n".join(XGBOOST_ERROR)) == XGBOOST_ERROR[2]
    assert error_headline("ValueError: bad\n") == "ValueError: bad"


def test_second_retry_is_counted_and_keeps_both_errors(store_uri: str) -> None:
    tracker = make_tracker(store_uri, max_steps=4)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    last = report(writer, A, CONFIG, [0.9], max_steps=4)
    writer.trial_recovered(view(A, CONFIG, last, "PENDING", error_msg="first failure"))
    last = report(writer, A, CONFIG, [0.1, 0.91], max_steps=4)
    writer.trial_recovered(view(A, CONFIG, last, "PENDING", error_msg="second failure"))
    # restored from a checkpoint at step 1: repeats step 2
    last = report(writer, A, CONFIG, [0.2, 0.92, 0.93], first=2, max_steps=4)
    writer.trial_completed(view(A, CONFIG, last, "TERMINATED"))

    run = only_run(store_uri, tracker)
    assert history(store_uri, run.info.run_id) == [(20, 0.9), (40, 0.91), (60, 0.92), (80, 0.93)]
    tags = run.data.tags
    assert [tags[f"raysweep.{key}"] for key in ("retries", "retry.1.error", "retry.2.error")] == ["2", "first failure", "second failure"]


def test_a_resume_deletes_the_runs_of_trials_rays_saved_state_lacks_and_a_new_trial_of_the_same_id_gets_its_own(store_uri: str) -> None:
    first = make_tracker(store_uri)
    writer = make_writer(first)
    writer.trial_started(view(A, CONFIG))
    writer.trial_started(view(B, OTHER_CONFIG))
    writer.trial_started(view(C, CONFIG))
    last_a = report(writer, A, CONFIG, [0.9, 0.91])
    last_b = report(writer, B, OTHER_CONFIG, [0.7, 0.71, 0.72])
    writer.trial_completed(view(B, OTHER_CONFIG, last_b, "TERMINATED"))
    report(writer, C, CONFIG, [0.5])
    writer.flush_all()  # the driver killed here: A, C still RUNNING; Ray had saved A only
    before = trial_runs(store_uri, first.parent_run_id)

    resumed = SweepTracker(store_uri, EXPERIMENT, SWEEP, METRIC, 3, True, params={"time_budget_s": "none"})
    resumed.reopen(first.experiment_id, first.parent_run_id, saved_trials={A})
    assert sorted(resumed.lost_runs) == sorted([before["trial-0001"].info.run_id, before["trial-0002"].info.run_id])
    assert resumed.existing_trial_runs == {A: before["trial-0000"].info.run_id} and set(resumed.resumed_history) == {A}
    client = client_for(store_uri)
    for name, status in (("trial-0001", "FINISHED"), ("trial-0002", "KILLED")):
        lost = client.get_run(before[name].info.run_id)
        assert (lost.info.lifecycle_stage, lost.info.status) == ("deleted", status), name
        assert (lost.data.tags["raysweep.outcome"], lost.data.tags["raysweep.stop_reason"]) == ("lost", "not_in_rays_saved_state")

    # Tune numbers its new trials on from its saved count: the next is B again, a new trial.
    writer = make_writer(resumed)
    writer.trial_started(view(B, CONFIG))
    last_b = report(writer, B, CONFIG, [0.6, 0.8, 0.85])
    writer.trial_completed(view(B, CONFIG, last_b, "TERMINATED"))
    writer.experiment_ended([view(A, CONFIG, last_a, "TERMINATED"), view(B, CONFIG, last_b, "TERMINATED")])
    after = trial_runs(store_uri, first.parent_run_id)
    assert sorted(after) == ["trial-0000", "trial-0001"]
    assert after["trial-0001"].info.run_id != before["trial-0001"].info.run_id
    assert history(store_uri, after["trial-0001"].info.run_id) == [(20, 0.6), (40, 0.8), (60, 0.85)]


def test_a_resumed_trial_whose_run_has_no_params_gets_its_config(store_uri: str) -> None:
    """A run made for a trial that had reported nothing (by `raysweep sync` from a folder without
    the trial's config) is given the config when the resumed sweep runs the trial."""
    from raysweep.tracking import schema

    first = make_tracker(store_uri)
    bare = first.client.create_run(first.experiment_id, run_name="trial-0000",
                                   tags=schema.new_trial_run_tags(first.parent_run_id, SWEEP, A, None))  # fmt: skip
    first.client.set_terminated(bare.info.run_id, status="KILLED")
    resumed = SweepTracker(store_uri, EXPERIMENT, SWEEP, METRIC, 3, True, params={"time_budget_s": "none"})
    resumed.reopen(first.experiment_id, first.parent_run_id)
    assert resumed.existing_trial_runs == {A: bare.info.run_id}
    writer = make_writer(resumed)
    writer.trial_started(view(A, CONFIG))
    last_a = report(writer, A, CONFIG, [0.9])
    writer.trial_completed(view(A, CONFIG, last_a, "TERMINATED"))
    writer.experiment_ended([view(A, CONFIG, last_a, "TERMINATED")])
    run = client_for(store_uri).get_run(bare.info.run_id)
    assert run.data.params == {k: str(v) for k, v in CONFIG.items()}
    assert run.info.status == "FINISHED"


def test_a_resume_without_rays_saved_state_deletes_nothing(store_uri: str) -> None:
    first = make_tracker(store_uri)
    writer = make_writer(first)
    writer.trial_started(view(A, CONFIG))
    report(writer, A, CONFIG, [0.9])
    writer.flush_all()
    resumed = SweepTracker(store_uri, EXPERIMENT, SWEEP, METRIC, 3, True, params={"time_budget_s": "none"})
    resumed.reopen(first.experiment_id, first.parent_run_id)  # saved state unreadable: nothing is taken for lost
    assert resumed.lost_runs == [] and set(resumed.existing_trial_runs) == {A}


def test_resumed_sweep_continues_the_same_runs_without_repeating_steps(store_uri: str) -> None:
    first = make_tracker(store_uri)
    writer = make_writer(first)
    writer.trial_started(view(A, CONFIG))
    writer.trial_started(view(B, OTHER_CONFIG))
    last_a = report(writer, A, CONFIG, [0.9, 0.91])
    last_b = report(writer, B, OTHER_CONFIG, [0.7, 0.71, 0.72])
    writer.trial_completed(view(B, OTHER_CONFIG, last_b, "TERMINATED"))
    writer.experiment_ended([view(A, CONFIG, last_a, "TERMINATED"), view(B, OTHER_CONFIG, last_b, "TERMINATED")])  # Ctrl-C
    first.client.set_terminated(first.parent_run_id, status="KILLED")
    before = trial_runs(store_uri, first.parent_run_id)
    assert before["trial-0000"].info.status == "KILLED"

    resumed = SweepTracker(store_uri, EXPERIMENT, SWEEP, METRIC, 3, True, params={"time_budget_s": "none"})
    resumed.reopen(first.experiment_id, first.parent_run_id)
    assert client_for(store_uri).get_run(first.parent_run_id).info.status == "RUNNING"
    assert resumed.existing_trial_runs == {A: before["trial-0000"].info.run_id, B: before["trial-0001"].info.run_id}
    assert resumed.logged_through == {A: 40, B: 60}
    assert {trial: [point[:2] for point in points] for trial, points in resumed.resumed_history.items()} == {
        A: [(20.0, 0.9), (40.0, 0.91)], B: [(20.0, 0.7), (40.0, 0.71), (60.0, 0.72)],
    }  # fmt: skip

    writer = make_writer(resumed)
    writer.trial_started(view(A, CONFIG))
    assert client_for(store_uri).get_run(before["trial-0000"].info.run_id).data.tags["raysweep.outcome"] == "running"
    # Tune restores A from its checkpoint at step 1: step 2 comes again, then 3
    last_a = report(writer, A, CONFIG, [0.5, 0.95], first=2)
    writer.trial_completed(view(A, CONFIG, last_a, "TERMINATED"))
    writer.experiment_ended([view(A, CONFIG, last_a, "TERMINATED"), view(B, OTHER_CONFIG, last_b, "TERMINATED")])

    after = trial_runs(store_uri, first.parent_run_id)
    assert sorted(after) == ["trial-0000", "trial-0001"]
    run_a = after["trial-0000"]
    assert run_a.info.run_id == before["trial-0000"].info.run_id
    assert run_a.info.status == "FINISHED"
    assert run_a.data.tags["raysweep.outcome"] == "completed"
    assert "raysweep.stop_reason" not in run_a.data.tags
    assert history(store_uri, run_a.info.run_id) == [(20, 0.9), (40, 0.91), (60, 0.95)]
    assert after["trial-0001"].info.status == "FINISHED"
    assert history(store_uri, after["trial-0001"].info.run_id) == [(20, 0.7), (40, 0.71), (60, 0.72)]


# -- PBT -----------------------------------------------------------------------------------------------
def test_pbt_exploits_are_tagged_on_the_exploiting_trial(store_uri: str) -> None:
    tracker = make_tracker(store_uri, max_steps=4)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    writer.trial_started(view(B, OTHER_CONFIG))
    report(writer, A, CONFIG, [0.5], max_steps=4)
    report(writer, B, OTHER_CONFIG, [0.8, 0.85], max_steps=4)
    new_config = {**OTHER_CONFIG, "max_features": 0.6}
    # A continues from B's checkpoint at B's iteration 2 (40 trees), with a perturbed config
    writer.add_exploit((A, B, 2, new_config))
    last = report(writer, A, new_config, [0.86, 0.87], first=3, max_steps=4)
    writer.trial_completed(view(A, new_config, last, "TERMINATED"))

    run = trial_runs(store_uri, tracker.parent_run_id)["trial-0000"]
    donor = trial_runs(store_uri, tracker.parent_run_id)["trial-0001"]
    tags = run.data.tags
    assert tags["raysweep.pbt.exploits"] == "1"
    assert tags["raysweep.pbt.last_donor"] == B
    assert tags["raysweep.pbt.last_donor_run_id"] == donor.info.run_id
    assert json.loads(tags["raysweep.pbt.exploit.1"]) == {"step": 40, "donor": B, "donor_iteration": 2, "config": new_config}
    assert json.loads(tags["raysweep.final_config"]) == new_config
    assert history(store_uri, run.info.run_id, "pbt/exploited_trial") == [(40, 1.0)]
    assert run.data.params == {"max_depth": "32", "min_samples_leaf": "1", "max_features": "0.25"}  # the starting config
    assert "raysweep.pbt.exploits" not in donor.data.tags


def test_second_pbt_exploit_is_numbered(store_uri: str) -> None:
    tracker = make_tracker(store_uri, max_steps=6)
    writer = make_writer(tracker)
    report(writer, A, CONFIG, [0.5], max_steps=6)
    report(writer, B, OTHER_CONFIG, [0.8, 0.85], max_steps=6)
    writer.add_exploit((A, B, 2, OTHER_CONFIG))
    report(writer, A, OTHER_CONFIG, [0.86], first=3, max_steps=6)
    report(writer, B, OTHER_CONFIG, [0.88, 0.89], first=3, max_steps=6)
    writer.add_exploit((A, B, 4, CONFIG))
    report(writer, A, CONFIG, [0.9], first=5, max_steps=6)
    writer.close_open_runs("KILLED", "sweep_interrupted")

    tags = trial_runs(store_uri, tracker.parent_run_id)["trial-0000"].data.tags
    assert tags["raysweep.pbt.exploits"] == "2"
    assert json.loads(tags["raysweep.pbt.exploit.2"])["step"] == 80
    assert json.loads(tags["raysweep.pbt.exploit.1"])["step"] == 40


# -- MLflow away for a while -----------------------------------------------------------------------
class Flaky:
    """A client method that fails its first ``failures`` calls, as a store that is locked or away."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real, self.failures, self.calls = real, failures, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise MlflowException("(sqlite3.OperationalError) database is locked")
        return self.real(*args, **kwargs)


def _spy_batches(tracker: SweepTracker, monkeypatch: pytest.MonkeyPatch, failures: int = 0) -> list[tuple[str, list[int]]]:
    """Record the metric steps of every log_batch MLflow took, in order."""
    written: list[tuple[str, list[int]]] = []
    flaky = Flaky(tracker.client.log_batch, failures)

    def log_batch(run_id: str, metrics: Any = (), params: Any = (), tags: Any = (), **kwargs: Any) -> Any:
        answer = flaky(run_id, metrics=metrics, params=params, tags=tags, **kwargs)
        written.append((run_id, [m.step for m in metrics if m.key == METRIC]))
        return answer

    monkeypatch.setattr(tracker.client, "log_batch", log_batch)
    return written


def test_results_kept_while_mlflow_refuses_batches_are_written_once_in_order(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = make_tracker(store_uri)
    written = _spy_batches(tracker, monkeypatch, failures=3)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    last = report(writer, A, CONFIG, [0.9, 0.91, 0.92])  # every flush fails
    writer.trial_completed(view(A, CONFIG, last, "TERMINATED"))

    run = only_run(store_uri, tracker)
    assert [step for _, batch in written for step in batch] == [20, 40, 60]
    assert history(store_uri, run.info.run_id) == [(20, 0.9), (40, 0.91), (60, 0.92)]
    assert run.info.status == "FINISHED"
    assert run.data.params == {"max_depth": "32", "min_samples_leaf": "1", "max_features": "0.25"}


def test_results_kept_while_runs_cannot_be_created_are_written_once_in_order(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = make_tracker(store_uri)
    monkeypatch.setattr(tracker.client, "create_run", Flaky(tracker.client.create_run, 3))
    written = _spy_batches(tracker, monkeypatch)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))  # fails: a warning, the sweep goes on
    report(writer, A, CONFIG, [0.9])  # kept
    assert trial_runs(store_uri, tracker.parent_run_id) == {}
    last = report(writer, A, CONFIG, [0.91, 0.92], first=2)  # the third attempt fails, the fourth opens the run
    writer.trial_completed(view(A, CONFIG, last, "TERMINATED"))

    run = only_run(store_uri, tracker)
    assert [step for _, batch in written for step in batch] == [20, 40, 60]
    assert history(store_uri, run.info.run_id) == [(20, 0.9), (40, 0.91), (60, 0.92)]
    assert run.data.tags["raysweep.outcome"] == "completed"


def test_trial_ends_missed_while_mlflow_was_away_are_written_when_it_answers(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = make_tracker(store_uri)
    writer = make_writer(tracker)
    writer.trial_started(view(A, CONFIG))
    writer.trial_started(view(B, CONFIG))
    report(writer, A, CONFIG, [0.9])
    monkeypatch.setattr(tracker.client, "log_batch", Flaky(tracker.client.log_batch, 1000))
    last_a = report(writer, A, CONFIG, [0.91, 0.92], first=2)
    last_b = report(writer, B, CONFIG, [0.3], done_at_end=True)
    writer.trial_completed(view(A, CONFIG, last_a, "TERMINATED"))
    writer.trial_completed(view(B, CONFIG, last_b, "TERMINATED"))
    writer.experiment_ended([view(A, CONFIG, last_a, "TERMINATED"), view(B, CONFIG, last_b, "TERMINATED")])
    assert {run.info.status for run in trial_runs(store_uri, tracker.parent_run_id).values()} == {"RUNNING"}

    monkeypatch.undo()  # it answers again when the sweep's parent run is closed
    writer.close_open_runs("FINISHED", "sweep_failed")

    runs = trial_runs(store_uri, tracker.parent_run_id)
    assert runs["trial-0000"].info.status == "FINISHED"
    assert runs["trial-0000"].data.tags["raysweep.outcome"] == "completed"
    assert history(store_uri, runs["trial-0000"].info.run_id) == [(20, 0.9), (40, 0.91), (60, 0.92)]
    assert runs["trial-0001"].data.tags["raysweep.outcome"] == "stopped_early"
    assert runs["trial-0001"].data.tags["raysweep.stop_reason"] == "scheduler"
    assert history(store_uri, runs["trial-0001"].info.run_id) == [(20, 0.3)]


# -- the Tune callback: inline and writer-process transport -----------------------------------------
def _play_sweep(tracker: SweepTracker, callback: Any, error_file: Path) -> list[Any]:
    """A five-trial sweep through Tune's callback hooks; the driver is stopped by Ctrl-C at the end.

    A completes, B is stopped by the scheduler, C raises, D is retried once and completes, E is
    cut off by the Ctrl-C.
    """
    trials = {tid: fake_trial(tid, CONFIG if tid in (A, C, E) else OTHER_CONFIG) for tid in (A, B, C, D, E)}

    def results(trial: Any, values: list[float], first: int = 1, done_at_end: bool = False, node: dict | None = None) -> None:
        for offset, value in enumerate(values):
            iteration = first + offset
            done = iteration >= 3 or (done_at_end and offset == len(values) - 1)
            trial.last_result = tune_result(trial.trial_id, iteration, value, config=trial.config, done=done, node=node)
            callback.on_trial_result(0, list(trials.values()), trial, dict(trial.last_result))

    everyone = list(trials.values())
    for trial in everyone:
        callback.on_trial_start(0, everyone, trial)
    results(trials[A], [0.9, 0.91, 0.92])
    trials[A].status = "TERMINATED"
    callback.on_trial_complete(0, everyone, trials[A])
    results(trials[B], [0.4], done_at_end=True)
    trials[B].status = "TERMINATED"
    callback.on_trial_complete(0, everyone, trials[B])
    results(trials[C], [0.6])
    trials[C].status, trials[C].error_file = "ERROR", str(error_file)
    callback.on_trial_error(0, everyone, trials[C])
    results(trials[D], [0.7, 0.71])
    trials[D].error_msg = ACTOR_DIED
    callback.on_trial_recover(0, everyone, trials[D])
    trials[D].error_msg = None
    results(trials[D], [0.1, 0.2, 0.75], node=OTHER_NODE)
    trials[D].status = "TERMINATED"
    callback.on_trial_complete(0, everyone, trials[D])
    results(trials[E], [0.8])
    trials[E].status = "TERMINATED"
    callback.on_experiment_end(everyone)
    tracker.finish("KILLED")
    return everyone


EXPECTED_ENDS = {
    "trial-0000": ("FINISHED", "completed", None, [(20, 0.9), (40, 0.91), (60, 0.92)]),
    "trial-0001": ("FINISHED", "stopped_early", "scheduler", [(20, 0.4)]),
    "trial-0002": ("FAILED", "failed", None, [(20, 0.6)]),
    "trial-0003": ("FINISHED", "completed", None, [(20, 0.7), (40, 0.71), (60, 0.75)]),
    "trial-0004": ("KILLED", "stopped_early", "sweep_interrupted", [(20, 0.8)]),
}


def _reference_snapshot(uri: str, error_file: Path) -> dict[str, Any]:
    """The same sweep written by TrialWriter's methods directly, in Tune's order of events."""
    tracker = make_tracker(uri)
    writer = make_writer(tracker)
    for tid in (A, B, C, D, E):
        writer.trial_started(view(tid, CONFIG if tid in (A, C, E) else OTHER_CONFIG))
    last = {A: report(writer, A, CONFIG, [0.9, 0.91, 0.92])}
    writer.trial_completed(view(A, CONFIG, last[A], "TERMINATED"))
    last[B] = report(writer, B, OTHER_CONFIG, [0.4], done_at_end=True)
    writer.trial_completed(view(B, OTHER_CONFIG, last[B], "TERMINATED"))
    last[C] = report(writer, C, CONFIG, [0.6])
    writer.trial_errored(view(C, CONFIG, last[C], "ERROR", error_file=str(error_file)))
    last[D] = report(writer, D, OTHER_CONFIG, [0.7, 0.71])
    writer.trial_recovered(view(D, OTHER_CONFIG, last[D], "RUNNING", error_msg=ACTOR_DIED))
    last[D] = report(writer, D, OTHER_CONFIG, [0.1, 0.2, 0.75], node=OTHER_NODE)
    writer.trial_completed(view(D, OTHER_CONFIG, last[D], "TERMINATED"))
    last[E] = report(writer, E, CONFIG, [0.8])
    writer.experiment_ended([
        view(tid, CONFIG if tid in (A, C, E) else OTHER_CONFIG, last[tid], "ERROR" if tid == C else "TERMINATED") for tid in (A, B, C, D, E)
    ])  # fmt: skip
    writer.close_open_runs("KILLED", "sweep_interrupted")
    return snapshot(uri, tracker.parent_run_id)


@pytest.mark.parametrize("transport", ["inline", "process", "early"])
def test_callback_writes_the_same_runs_inline_and_in_the_writer_process(
    transport: str, tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same runs from the writer on Tune's loop, in its process, and in a process started early."""
    import shutil

    from raysweep.sweep import early
    from raysweep.tracking.callback import WRITER_ENV, _InlineChannel, _ProcessChannel

    if transport == "inline":
        monkeypatch.setenv(WRITER_ENV, "inline")
    else:
        monkeypatch.delenv(WRITER_ENV, raising=False)
    uris = {}
    for name in ("callback", "reference"):
        (tmp_path / name).mkdir()
        shutil.copyfile(empty_store, tmp_path / name / "mlflow.db")
        uris[name] = f"sqlite:///{tmp_path / name / 'mlflow.db'}"
    error_file = write_error_file(tmp_path, "ValueError: Input contains NaN.")

    tracker = make_tracker(uris["callback"])
    if transport == "early":
        early.start_writer(uris["callback"])
        started = early._early_writers[threading.get_ident()]
        time.sleep(0.5)  # a moment of the sweep's own start
        callback = start_trial_logging(tracker, early.take_writer())
        assert callback._channel.process is started and early.take_writer() is None
    else:
        callback = start_trial_logging(tracker)
    assert isinstance(callback._channel, _InlineChannel if transport == "inline" else _ProcessChannel)
    _play_sweep(tracker, callback, error_file)

    assert client_for(uris["callback"]).get_run(tracker.parent_run_id).info.status == "KILLED"
    written = snapshot(uris["callback"], tracker.parent_run_id)
    ends = {
        name: (run["status"], run["tags"]["raysweep.outcome"], run["tags"].get("raysweep.stop_reason"), run["metrics"][METRIC])
        for name, run in written.items()
    }
    assert ends == EXPECTED_ENDS
    assert written["trial-0002"]["tags"]["raysweep.error"] == last_lines(error_file)
    assert written["trial-0003"]["tags"]["raysweep.retries"] == "1"
    assert written["trial-0003"]["tags"]["raysweep.retry.1.error"] == ACTOR_DIED
    assert written == _reference_snapshot(uris["reference"], error_file)
    # the driver's own history (for the sweep's plots) skips the retry's repeated steps too
    assert {trial_id: len(points) for trial_id, points in callback.history.items()} == {A: 3, B: 1, C: 1, D: 3, E: 1}
    if transport != "inline":
        assert callback._channel.process.wait(30) == 0


def test_a_writer_started_early_and_not_taken_is_ended(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from raysweep.sweep import early
    from raysweep.tracking.callback import WRITER_ENV

    early.start_writer(store_uri)
    first = early._early_writers[threading.get_ident()]
    # The command line starts one before it reads its input; the sweep's own start keeps it (a
    # writer that was never taken has not been told any sweep), and starts no second one.
    early.start_writer(store_uri)
    assert early._early_writers[threading.get_ident()] is first and first.poll() is None
    # A sweep that writes to another kind of store ends the one the last left behind.
    early.start_writer("http://127.0.0.1:5999")
    second = early._early_writers[threading.get_ident()]
    assert first.wait(10) != 0 and second is not first and second.poll() is None
    # So does the next start on a thread whose writer has died.
    second.kill()
    second.wait(10)
    early.start_writer("http://127.0.0.1:5999")
    third_http = early._early_writers[threading.get_ident()]
    assert third_http is not second and third_http.poll() is None
    early.drop_writer()  # the sweep's end ends one it never took
    assert third_http.wait(10) != 0 and early.take_writer() is None
    # A sweep whose writer runs on Tune's loop ends the process started for it.
    monkeypatch.setenv(WRITER_ENV, "inline")
    early.start_writer(store_uri)
    third = early.take_writer()
    start_trial_logging(make_tracker(store_uri), third)
    assert third.wait(10) != 0


def test_the_writer_sets_its_own_mlflow_settings() -> None:
    # The command line starts the writer before the sweep sets MLflow's settings in its own
    # process: the writer must not depend on inheriting them.
    names = ["MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"]
    script = (
        "import json, os\n"
        "from raysweep.tracking._writer_process import prepare_environment\n"
        "prepare_environment()\n"
        f"print(json.dumps({{name: os.environ.get(name) for name in {names!r}}}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in names}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
                                       "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}  # fmt: skip


def test_sweeps_started_at_once_on_their_threads_each_take_their_own_early_writer(store_uri: str) -> None:
    # The K+1 sweeps of a nested job start at once, each on a thread of its own: no sweep's start
    # may end or take another's writer, and none may be left running untaken.
    from raysweep.sweep import early

    started: dict[str, Any] = {}
    taken: dict[str, Any] = {}
    a_started, b_started = threading.Event(), threading.Event()

    def sweep(name: str, mine: threading.Event, other: threading.Event) -> None:
        early.start_writer(store_uri)
        started[name] = early._early_writers[threading.get_ident()]
        mine.set()
        other.wait(30)  # both have started before either takes
        taken[name] = early.take_writer()

    threads = [threading.Thread(target=sweep, args=("a", a_started, b_started)),
               threading.Thread(target=sweep, args=("b", b_started, a_started))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert taken["a"] is started["a"] and taken["b"] is started["b"] and taken["a"] is not taken["b"]
        assert taken["a"].poll() is None and taken["b"].poll() is None, "a sweep's start ended the other's writer"
        assert early.take_writer() is None and not early._early_writers
    finally:
        for process in taken.values():
            if process is not None:
                process.kill()
                process.wait()


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_writer_process_runs_below_the_sweep_in_wal_mode_and_records_pbt_exploits(
    store_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps the writer process cheap for the sweep, and a PBT exploit reaching it.

    The writer process runs below the sweep's CPU priority and commits in sqlite's write-ahead-log
    mode; the sweep's end (not Tune's experiment end) waits for it. An exploit the driver's PBT
    scheduler records is tagged on the exploiting trial's run by the writer process.
    """
    import os
    import sqlite3

    from raysweep.tracking.side_process import NICENESS
    from raysweep.tracking.callback import WRITER_ENV

    monkeypatch.delenv(WRITER_ENV, raising=False)
    tracker = make_tracker(store_uri, max_steps=4)
    callback = start_trial_logging(tracker)
    a, b, c = fake_trial(A, CONFIG), fake_trial(B, OTHER_CONFIG), fake_trial(C, {"x": 1})
    trials = [a, b, c]
    for trial in trials:
        callback.on_trial_start(0, trials, trial)
    for trial, iteration, value in ((a, 1, 0.5), (b, 1, 0.8), (b, 2, 0.85)):
        trial.last_result = tune_result(trial.trial_id, iteration, value, config=trial.config)
        callback.on_trial_result(0, trials, trial, dict(trial.last_result))
    tracker.exploits.append((A, B, 2, OTHER_CONFIG))  # as raysweep's PBT scheduler records one
    a.config = dict(OTHER_CONFIG)
    a.last_result = tune_result(A, 3, 0.86, config=a.config)
    callback.on_trial_result(0, trials, a, dict(a.last_result))
    c.last_result = tune_result(C, 1, 0.75, config=c.config, done=True)
    callback.on_trial_result(0, trials, c, dict(c.last_result))
    c.status = "TERMINATED"
    callback.on_trial_complete(0, trials, c)
    callback.on_experiment_end(trials)
    assert callback.wait_idle(60)
    pid = callback._channel.process.pid
    assert _niceness(pid) == min(19, _niceness(os.getpid()) + NICENESS)
    assert tracker.finish("FINISHED") is None

    runs = trial_runs(store_uri, tracker.parent_run_id)
    tags = runs["trial-0000"].data.tags
    assert tags["raysweep.pbt.exploits"] == "1"
    assert tags["raysweep.pbt.last_donor_run_id"] == runs["trial-0001"].info.run_id
    assert json.loads(tags["raysweep.pbt.exploit.1"]) == {"step": 40, "donor": B, "donor_iteration": 2, "config": OTHER_CONFIG}
    assert history(store_uri, runs["trial-0000"].info.run_id, "pbt/exploited_trial") == [(40, 1.0)]
    run = runs["trial-0002"]
    assert (run.info.status, run.data.params, run.data.metrics[METRIC]) == ("FINISHED", {"x": "1"}, 0.75)
    with sqlite3.connect(store_uri[len("sqlite:///"):]) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


class _BoundedExploits(list):
    """The PBT scheduler's list of exploits; refuses to grow past a handful (instead of hanging)."""

    def append(self, item: Any) -> None:
        if len(self) >= 5:
            raise RuntimeError("the same exploit was recorded over and over")
        super().append(item)


def test_inline_writer_records_a_pbt_exploit_once(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from raysweep.tracking.callback import WRITER_ENV

    monkeypatch.setenv(WRITER_ENV, "inline")
    tracker = make_tracker(store_uri, max_steps=4)
    tracker.exploits = _BoundedExploits()
    callback = start_trial_logging(tracker)
    a, b = fake_trial(A, CONFIG), fake_trial(B, OTHER_CONFIG)
    b.last_result = tune_result(B, 2, 0.85, config=b.config)
    callback.on_trial_result(0, [a, b], b, dict(b.last_result))
    tracker.exploits.append((A, B, 2, OTHER_CONFIG))
    a.last_result = tune_result(A, 3, 0.86, config=OTHER_CONFIG)
    callback.on_trial_result(0, [a, b], a, dict(a.last_result))
    tracker.finish("KILLED")

    assert len(tracker.exploits) == 1
    tags = trial_runs(store_uri, tracker.parent_run_id)["trial-0000"].data.tags
    assert tags["raysweep.pbt.exploits"] == "1"


class _TrialAfterRay:
    """A Tune trial once Ray has shut down: Tune can no longer say where its folder is."""

    def __init__(self, trial_id: str, folder: str | None) -> None:
        self.trial_id, self._folder = trial_id, folder

    @property
    def local_path(self) -> str:
        if self._folder is None:
            raise AssertionError("Ray must be initialized to get the session dir.")
        return self._folder


def test_a_writer_replaced_after_ray_shut_down_replays_the_folders_seen_at_the_experiment_end() -> None:
    from raysweep.tracking.callback import trial_folders

    seen = trial_folders([_TrialAfterRay(A, "/r/a"), _TrialAfterRay(B, "/r/b")], {})
    assert seen == {A: "/r/a", B: "/r/b"}
    # After Ray's shutdown: the folders seen earlier; one Tune can still name is taken as it is now
    assert trial_folders([_TrialAfterRay(A, None), _TrialAfterRay(B, "/r/b2")], seen) == {A: "/r/a", B: "/r/b2"}
    assert trial_folders([_TrialAfterRay(C, None)], {}) == {}


def test_the_writer_process_reads_trial_events_without_importing_ray(tmp_path):
    """What the callback sends the writer process unpickles there without Ray Tune: importing it
    (and pandas with it) cost the writer about 3 s of CPU beside a sweep's first trials."""
    result = tune_result(A, 1, 0.5, config=CONFIG)
    messages = [
        ("trial_started", TrialView.of(fake_trial(A, CONFIG))),
        ("trial_result", TrialView.of(fake_trial(A, CONFIG, result)), dict(result)),
        ("trial_completed", TrialView.of(fake_trial(A, CONFIG, result, status="TERMINATED"))),
    ]
    probe = (
        "import pickle, sys; from raysweep.tracking.writer import TrialWriter; "
        "messages = pickle.load(sys.stdin.buffer); "
        "print([kind for kind, *_ in messages], sorted(m for m in ('ray', 'ray.tune', 'pandas') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], input=pickle.dumps(messages), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().strip() == "['trial_started', 'trial_result', 'trial_completed'] []"


@pytest.mark.parametrize(
    ("trial_id", "name", "number"),
    [("e55ae_00007", "trial-0007", 7), ("3a2f1c9e", "trial-3a2f1c9e", None), ("02885254", "trial-02885254", None)],
)
def test_a_searchers_trial_id_of_digits_only_keeps_its_leading_zero(trial_id: str, name: str, number: int | None) -> None:
    """HyperOpt's trial 02885254 (about 2% of eight-hex-digit ids are digits only) became the run
    trial-2885254, in MLflow, the progress line, the leaderboard and the plots."""
    from raysweep.tracking.schema import trial_name, trial_number

    assert (trial_name(trial_id), trial_number(trial_id)) == (name, number)
