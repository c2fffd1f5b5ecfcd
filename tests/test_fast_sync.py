"""Fast tests of ``raysweep sync`` on a synthetic Ray result folder and a real MLflow sqlite store.

The sweep folder is laid out the way Ray Tune 2.60 and raysweep write it: raysweep's sweep
record (written by ``raysweep.sweep.record.save_plan``), one folder per trial with ``result.json``
(one JSON object per result), ``params.json`` and, for a failed trial, ``error.txt``, and Tune's
``experiment_state-*.json``. No Ray is started.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fast_support import (
    EXPERIMENT, METRIC, NODE, SWEEP, client_for, empty_store, history, last_lines, raysweep_tags, snapshot, steps,
    store_uri, trial_runs, tune_result, write_error_file,
)  # fmt: skip
from raysweep.errors import UserError
from raysweep.tracking.sync import sync_sweep
from raysweep.tracking.store import SweepTracker
from raysweep.tracking.writer import TrialView
from raysweep.tracking.writer import TrialWriter

__all__ = ["empty_store", "store_uri"]  # fixtures

STAMP = "2026-11-30_15-12-32"


@dataclass
class RayTrial:
    """One trial as Ray recorded it: its reported values, how it ended, and what Tune saved."""

    index: int
    values: list[float]
    status: str = "TERMINATED"  # in Tune's saved experiment state
    done: bool = True  # the last result's "done": completed, or stopped by the scheduler
    error: str | None = None  # the last line of its error.txt
    config: dict[str, Any] = field(default_factory=lambda: {"max_depth": 16, "min_samples_leaf": 4, "max_features": 0.5})
    trial_id: str | None = None  # Tune's id; random and grid search: "e55ae_<index>"
    truncated: bool = False  # the driver was killed while Tune wrote its last line
    repeats: list[float] = field(default_factory=list)  # a restored trial reports again from step 2
    fraction: bool = False  # an SVM-like resource: a share of the rows

    @property
    def tid(self) -> str:
        return self.trial_id or f"e55ae_{self.index:05d}"

    def results(self) -> list[dict[str, Any]]:
        rows = []
        for iteration, value in enumerate(self.values, start=1):
            resource = round(0.1 * iteration, 6) if self.fraction else None
            last = iteration == len(self.values)
            rows.append(tune_result(self.tid, iteration, value, config=self.config, done=self.done and last, resource=resource))
        for iteration, value in enumerate(self.repeats, start=2):
            rows.append(tune_result(self.tid, iteration, value, config=self.config, timestamp=1796052000 + iteration))
        return rows


def folder_name(trial: RayTrial) -> str:
    """Tune's folder name: ``SweepTrainable_e55ae_00000_0_max_depth=16,max_features=0.5000,..._<time>``."""
    values = ",".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(trial.config.items()))
    return f"SweepTrainable_{trial.tid}_{trial.index}_{values}_{STAMP}"


def write_trial(sweep: Path, trial: RayTrial) -> Path:
    folder = sweep / folder_name(trial)
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(trial.config, indent=2))
    lines = [json.dumps(row) for row in trial.results()]
    if trial.truncated:
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    if lines:
        (folder / "result.json").write_text("\n".join(lines) + ("" if trial.truncated else "\n"))
    if trial.error:
        write_error_file(folder, trial.error)
    return folder


def write_experiment_state(sweep: Path, trials: list[RayTrial]) -> None:
    """Tune's experiment state: one [trial state, run metadata] pair of JSON texts per trial."""
    entries = []
    for trial in trials:
        results = trial.results()
        state = {"stub": False, "trainable_name": "SweepTrainable", "trial_id": trial.tid, "status": trial.status,
                 "config": trial.config, "relative_logdir": folder_name(trial), "experiment_tag": str(trial.index)}  # fmt: skip
        metadata = {"start_time": 1796051567.5, "num_failures": int(trial.status == "ERROR"),
                    "error_filename": "error.txt" if trial.error else None, "last_result": results[-1] if results else {}}  # fmt: skip
        entries.append([json.dumps(state), json.dumps(metadata)])
    (sweep / f"experiment_state-{STAMP}.json").write_text(
        json.dumps({"trial_data": entries, "runner_data": {"_metric": METRIC}, "stats": {"start_time": 1796051552.4}})
    )


def make_sweep(
    tmp_path: Path,
    uri: str,
    trials: list[RayTrial],
    *,
    recipe: str = "random_forest",
    overrides: tuple[str, ...] = ("resource.max=60",),
    searcher: str = "random",
    num_samples: int | None = None,
    state: bool = True,
) -> tuple[Path, SweepTracker]:
    """A sweep folder as ``raysweep run`` leaves it, with its parent run opened in MLflow."""
    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.record import save_plan

    plan = plan_sweep(
        recipe, "iris", overrides=list(overrides), name=SWEEP, storage=tmp_path / "raysweep_results",
        tracking_uri=uri, experiment=EXPERIMENT, searcher=searcher, num_samples=num_samples or len(trials),
    )  # fmt: skip
    tracker = SweepTracker(uri, plan.experiment, plan.name, plan.metric_key, plan.recipe.resource.max_steps,
                           plan.family.integer_resource, params=plan.settings())  # fmt: skip
    tracker.start()
    save_plan(plan, tracker)
    sweep = Path(plan.storage) / plan.name
    for trial in trials:
        write_trial(sweep, trial)
    if state:
        write_experiment_state(sweep, trials)
    (sweep / ".validate_storage_marker").touch()
    (sweep / "tuner.pkl").write_bytes(b"\x80\x05N.")
    return sweep, tracker


def ends(uri: str, tracker: SweepTracker) -> dict[str, tuple[str, str, str | None]]:
    return {
        name: (run.info.status, run.data.tags.get("raysweep.outcome"), run.data.tags.get("raysweep.stop_reason"))
        for name, run in trial_runs(uri, tracker.parent_run_id).items()
    }


def parent_status(uri: str, tracker: SweepTracker) -> str:
    return client_for(uri).get_run(tracker.parent_run_id).info.status


FOUR = [
    RayTrial(0, [0.9, 0.93, 0.96]),  # completed
    RayTrial(1, [0.5]),  # stopped by ASHA at its first rung
    RayTrial(2, [0.6], status="ERROR", done=False, error="ValueError: Input contains NaN."),
    RayTrial(3, [0.7, 0.72], status="RUNNING", done=False),  # cut off by a killed driver
]


# -- an empty MLflow ---------------------------------------------------------------------------------
def test_sync_into_empty_mlflow_writes_every_run_and_step(tmp_path: Path, store_uri: str) -> None:
    sweep, tracker = make_sweep(tmp_path, store_uri, FOUR)
    report = sync_sweep(str(sweep))

    assert (report.sweep, report.trials, report.runs_created) == (SWEEP, 4, 4)
    assert report.metrics_written == 2 * (3 + 1 + 1 + 2)  # val_accuracy and step_time at every step
    assert report.runs_ended == {"trial-0000": "FINISHED", "trial-0001": "FINISHED", "trial-0002": "FAILED", "trial-0003": "KILLED"}
    assert report.parent_status == "KILLED"  # a trial was cut off: `raysweep resume` continues the sweep
    assert parent_status(store_uri, tracker) == "KILLED"
    assert ends(store_uri, tracker) == {
        "trial-0000": ("FINISHED", "completed", None),
        "trial-0001": ("FINISHED", "stopped_early", "scheduler"),
        "trial-0002": ("FAILED", "failed", None),
        "trial-0003": ("KILLED", "stopped_early", "sweep_interrupted"),
    }
    runs = trial_runs(store_uri, tracker.parent_run_id)
    assert history(store_uri, runs["trial-0000"].info.run_id) == [(20, 0.9), (40, 0.93), (60, 0.96)]
    assert steps(store_uri, runs["trial-0000"].info.run_id, "step_time") == [20, 40, 60]
    assert history(store_uri, runs["trial-0003"].info.run_id) == [(20, 0.7), (40, 0.72)]
    assert set(runs["trial-0000"].data.metrics) == {METRIC, "step_time"}
    error_file = next(sweep.glob("*_e55ae_00002_*")) / "error.txt"
    assert runs["trial-0002"].data.tags["raysweep.error"] == last_lines(error_file)
    assert runs["trial-0002"].data.tags["raysweep.error"].endswith("ValueError: Input contains NaN.")
    tags = raysweep_tags(runs["trial-0000"])
    assert tags == {
        "raysweep.sweep": SWEEP, "raysweep.trial_id": "e55ae_00000", "raysweep.outcome": "completed",
        "raysweep.final_config": json.dumps(FOUR[0].config), **{f"raysweep.{k}": v for k, v in NODE.items()},
    }  # fmt: skip
    assert runs["trial-0000"].data.params == {"max_depth": "16", "min_samples_leaf": "4", "max_features": "0.5"}
    assert runs["trial-0000"].data.tags["mlflow.parentRunId"] == tracker.parent_run_id


@pytest.mark.parametrize(
    ("searcher", "num_samples", "outcome_done", "parent"),
    [("random", 2, True, "FINISHED"), ("random", 5, True, "KILLED"), ("grid", 1, True, "FINISHED"),
     ("random", 2, False, "KILLED"), ("random", 2, None, "FINISHED")],
    ids=["all-trials-ended", "trials-missing", "grid-covers-its-grid", "outcome-not-made", "record-before-outcome-done"],
)  # fmt: skip
def test_parent_run_ends_finished_only_when_the_sweep_ran_to_its_end(
    tmp_path: Path, store_uri: str, searcher: str, num_samples: int, outcome_done: bool | None, parent: str
) -> None:
    from raysweep.sweep import record as sweep_record

    sweep, tracker = make_sweep(tmp_path, store_uri, [RayTrial(0, [0.9, 0.93, 0.96]), RayTrial(1, [0.5])],
                                searcher=searcher, num_samples=num_samples)  # fmt: skip
    # The driver died after the outcome was made (the summary not recorded: the server away), or
    # before (during the refit: resume makes it), or the record is older than `outcome_done`.
    folder, saved = sweep_record.find(SWEEP, str(tmp_path / "raysweep_results"))
    saved = {key: value for key, value in saved.items() if key != "outcome_done"}
    sweep_record.save(folder, {**saved, **({} if outcome_done is None else {"outcome_done": outcome_done})})
    report = sync_sweep(SWEEP, storage=str(tmp_path / "raysweep_results"))
    assert report.parent_status == parent
    assert parent_status(store_uri, tracker) == parent


def test_parent_already_ended_is_left_alone(tmp_path: Path, store_uri: str) -> None:
    sweep, tracker = make_sweep(tmp_path, store_uri, FOUR)
    client_for(store_uri).set_terminated(tracker.parent_run_id, status="FAILED")
    report = sync_sweep(str(sweep))
    assert report.parent_status is None
    assert parent_status(store_uri, tracker) == "FAILED"


def test_fractional_resource_steps_by_iteration(tmp_path: Path, store_uri: str) -> None:
    trial = RayTrial(0, [0.8, 0.85], status="RUNNING", done=False, fraction=True, config={"C": 1.0, "gamma": 0.1})
    sweep, tracker = make_sweep(tmp_path, store_uri, [trial], recipe="svm", overrides=())
    sync_sweep(str(sweep))
    run = trial_runs(store_uri, tracker.parent_run_id)["trial-0000"]
    assert history(store_uri, run.info.run_id) == [(1, 0.8), (2, 0.85)]
    assert history(store_uri, run.info.run_id, "resource") == [(1, 0.1), (2, 0.2)]


# -- MLflow written in part ------------------------------------------------------------------------
def _write_first_steps(uri: str, tracker: SweepTracker, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What the sweep's writer got into MLflow before its driver was killed."""
    writer = TrialWriter(tracker, time.time(), 0.0)

    def send(trial: RayTrial, count: int) -> dict[str, Any]:
        results = trial.results()[:count]
        for result in results:
            writer.trial_result(TrialView(trial.tid, trial.config, result, "RUNNING"), result)
        return results[-1]

    send(FOUR[0], 1)  # open, first step only
    last = send(FOUR[1], 1)
    writer.trial_completed(TrialView(FOUR[1].tid, FOUR[1].config, last, "TERMINATED"))  # ended in MLflow
    # trial 3's run was opened just before the tracking server went away: no params, no metrics
    monkeypatch.setattr(tracker.client, "log_batch", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("connection refused")))
    writer.trial_started(TrialView(FOUR[3].tid, FOUR[3].config, {}, "RUNNING"))
    send(FOUR[3], 1)
    monkeypatch.undo()
    return {name: run.info.run_id for name, run in trial_runs(uri, tracker.parent_run_id).items()}


def test_sync_writes_only_what_mlflow_lacks(tmp_path: Path, store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep, tracker = make_sweep(tmp_path, store_uri, FOUR)
    before = _write_first_steps(store_uri, tracker, monkeypatch)
    assert sorted(before) == ["trial-0000", "trial-0001", "trial-0003"]
    assert steps(store_uri, before["trial-0003"]) == []

    report = sync_sweep(str(sweep))
    assert report.runs_created == 1  # trial 2 only
    # trial 0: steps 2 and 3; trial 2: step 1; trial 3: steps 1 and 2 (two metrics a step)
    assert report.metrics_written == 2 * (2 + 1 + 2)
    assert report.runs_ended == {"trial-0000": "FINISHED", "trial-0002": "FAILED", "trial-0003": "KILLED"}  # trial 1 had ended
    runs = trial_runs(store_uri, tracker.parent_run_id)
    assert {name: runs[name].info.run_id for name in before} == before  # the same runs, continued
    assert history(store_uri, before["trial-0000"]) == [(20, 0.9), (40, 0.93), (60, 0.96)]
    assert history(store_uri, before["trial-0001"]) == [(20, 0.5)]
    assert history(store_uri, before["trial-0003"]) == [(20, 0.7), (40, 0.72)]
    assert runs["trial-0003"].data.params == {"max_depth": "16", "min_samples_leaf": "4", "max_features": "0.5"}
    assert runs["trial-0003"].data.tags["raysweep.node_id"] == NODE["node_id"]
    assert ends(store_uri, tracker)["trial-0000"] == ("FINISHED", "completed", None)


def test_second_sync_writes_nothing(tmp_path: Path, store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep, tracker = make_sweep(tmp_path, store_uri, FOUR)
    _write_first_steps(store_uri, tracker, monkeypatch)
    sync_sweep(str(sweep))
    written = snapshot(store_uri, tracker.parent_run_id)

    again = sync_sweep(str(sweep))
    assert (again.trials, again.runs_created, again.metrics_written, again.runs_ended, again.parent_status) == (4, 0, 0, {}, None)
    assert snapshot(store_uri, tracker.parent_run_id) == written


def test_runs_ended_in_mlflow_keep_their_status(tmp_path: Path, store_uri: str) -> None:
    sweep, tracker = make_sweep(tmp_path, store_uri, [RayTrial(0, [0.9, 0.93, 0.96])])
    client = client_for(store_uri)
    run = client.create_run(tracker.experiment_id, run_name="trial-0000", tags={
        "mlflow.parentRunId": tracker.parent_run_id, "raysweep.trial_id": "e55ae_00000", "raysweep.outcome": "failed"})  # fmt: skip
    client.set_terminated(run.info.run_id, status="FAILED")

    report = sync_sweep(str(sweep))
    assert (report.runs_created, report.runs_ended) == (0, {})
    assert ends(store_uri, tracker) == {"trial-0000": ("FAILED", "failed", None)}
    assert steps(store_uri, run.info.run_id) == [20, 40, 60]  # its missing steps still go in


def test_open_run_of_a_trial_missing_from_rays_record_is_killed(tmp_path: Path, store_uri: str) -> None:
    sweep, tracker = make_sweep(tmp_path, store_uri, [RayTrial(0, [0.9, 0.93, 0.96])], num_samples=2)
    client_for(store_uri).create_run(tracker.experiment_id, run_name="trial-0001", tags={
        "mlflow.parentRunId": tracker.parent_run_id, "raysweep.trial_id": "e55ae_00001", "raysweep.outcome": "running"})  # fmt: skip

    report = sync_sweep(str(sweep))
    assert report.runs_ended == {"trial-0000": "FINISHED", "trial-0001": "KILLED"}
    assert ends(store_uri, tracker)["trial-0001"] == ("KILLED", "stopped_early", "sweep_interrupted")
    assert report.parent_status == "KILLED"


# -- what Ray's files hold -------------------------------------------------------------------------
def test_truncated_last_line_is_skipped(tmp_path: Path, store_uri: str) -> None:
    sweep, tracker = make_sweep(tmp_path, store_uri, [RayTrial(0, [0.9, 0.93, 0.96], status="RUNNING", done=False, truncated=True)])
    report = sync_sweep(str(sweep))
    run = trial_runs(store_uri, tracker.parent_run_id)["trial-0000"]
    assert history(store_uri, run.info.run_id) == [(20, 0.9), (40, 0.93)]
    assert report.runs_ended == {"trial-0000": "KILLED"}


def test_steps_a_restored_trial_reported_again_count_once(tmp_path: Path, store_uri: str) -> None:
    # Restored from its checkpoint at step 1, the trial appended steps 2 and 3 to result.json again.
    sweep, tracker = make_sweep(tmp_path, store_uri, [RayTrial(0, [0.9, 0.93, 0.96], repeats=[0.1, 0.2])])
    sync_sweep(str(sweep))
    run = trial_runs(store_uri, tracker.parent_run_id)["trial-0000"]
    assert history(store_uri, run.info.run_id) == [(20, 0.9), (40, 0.93), (60, 0.96)]


@pytest.mark.parametrize("params_file", [True, False], ids=["params.json", "only tune's state"])
def test_trial_that_never_reported_gets_a_run_with_its_params(tmp_path: Path, store_uri: str, params_file: bool) -> None:
    """Ray writes a trial's params.json first where the driver runs and copies it to the storage
    later: a sweep stopped before that (Ctrl-C, SIGKILL before the trial's first result) leaves the
    trial's folder without it, and its config is then read from Tune's experiment state."""
    sweep, tracker = make_sweep(tmp_path, store_uri, [RayTrial(0, [], status="RUNNING", done=False)])
    if not params_file:
        for found in sweep.glob("*/params.json"):
            found.unlink()
    report = sync_sweep(str(sweep))
    run = trial_runs(store_uri, tracker.parent_run_id)["trial-0000"]
    assert run.data.params == {"max_depth": "16", "min_samples_leaf": "4", "max_features": "0.5"}
    assert run.data.metrics == {}
    assert report.runs_ended == {"trial-0000": "KILLED"}


def test_searcher_trial_ids_without_an_index(tmp_path: Path, store_uri: str) -> None:
    # HyperOpt's trials are named by Tune as SweepTrainable_9781995e_1_...: the id comes from result.json
    sweep, tracker = make_sweep(tmp_path, store_uri, [RayTrial(1, [0.9, 0.93, 0.96], trial_id="9781995e")], searcher="hyperopt")
    report = sync_sweep(str(sweep))
    assert report.runs_ended == {"trial-9781995e": "FINISHED"}
    assert trial_runs(store_uri, tracker.parent_run_id)["trial-9781995e"].data.tags["raysweep.trial_id"] == "9781995e"


def test_without_tunes_saved_state_the_results_decide(tmp_path: Path, store_uri: str) -> None:
    trials = [RayTrial(0, [0.9, 0.93, 0.96]), RayTrial(1, [0.5]), RayTrial(2, [0.7], status="RUNNING", done=False)]
    sweep, tracker = make_sweep(tmp_path, store_uri, trials, state=False)
    sync_sweep(str(sweep))
    assert ends(store_uri, tracker) == {
        "trial-0000": ("FINISHED", "completed", None),
        "trial-0001": ("FINISHED", "stopped_early", "scheduler"),
        "trial-0002": ("KILLED", "stopped_early", "sweep_interrupted"),
    }


# -- what sync refuses -------------------------------------------------------------------------------
def test_unknown_sweep_names_the_folder_searched(tmp_path: Path) -> None:
    base = tmp_path / "raysweep_results"
    with pytest.raises(UserError) as caught:
        sync_sweep("no-such-sweep", storage=str(base))
    assert str(caught.value) == (
        f"no sweep 'no-such-sweep' under {base.resolve()}; pass the sweep's name with --storage where it ran, or its folder"
    )


def test_missing_store_names_the_uri(tmp_path: Path, store_uri: str) -> None:
    sweep, _ = make_sweep(tmp_path, store_uri, [RayTrial(0, [0.9])])
    missing = tmp_path / "elsewhere.db"
    with pytest.raises(UserError) as caught:
        sync_sweep(str(sweep), tracking_uri=f"sqlite:///{missing}")
    assert str(caught.value) == (
        f"--tracking-uri sqlite:///{missing}: no MLflow store at {missing}; pass the --tracking-uri sweep {SWEEP} logged to"
    )


def test_sweep_run_without_tracking_has_nothing_to_sync(tmp_path: Path, store_uri: str) -> None:
    sweep, _ = make_sweep(tmp_path, store_uri, [RayTrial(0, [0.9])])
    record_file = sweep / "raysweep_sweep.json"
    record = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({**record, "experiment_id": None, "parent_run_id": None}))
    with pytest.raises(UserError, match=f"^sweep {SWEEP} ran without MLflow tracking: there is no parent run to sync to$"):
        sync_sweep(str(sweep))


def test_the_trials_a_resume_keeps_come_from_the_state_tune_restores_not_the_newest_file(tmp_path: Path) -> None:
    """Tune copies every session's experiment state again as a sweep ends, a fraction of a
    millisecond apart in any order: the newest file was once an earlier session's, and a second
    resume deleted the runs of 50 trials Ray had saved, as lost."""
    import os

    from raysweep.tracking.sync import saved_trial_ids

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    write_experiment_state(sweep, [RayTrial(0, [0.9]), RayTrial(1, [0.8]), RayTrial(2, [0.7])])  # the later session, all three
    later = sweep / f"experiment_state-{STAMP}.json"
    earlier = sweep / "experiment_state-2026-11-30_15-02-11.json"
    state = json.loads(later.read_text())
    state["trial_data"] = state["trial_data"][:1]  # the first session had made one trial
    earlier.write_text(json.dumps(state))
    os.utime(later, ns=(1796052000_000_000_000, 1796052000_000_000_000))
    os.utime(earlier, ns=(1796052000_000_500_000, 1796052000_000_500_000))  # copied half a millisecond later
    assert saved_trial_ids(sweep) == {"e55ae_00000", "e55ae_00001", "e55ae_00002"}
