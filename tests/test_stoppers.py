"""Sweeps that end when there is nothing left to gain: ``--stop-at`` and ``--patience``.

Fast: the stoppers fed synthetic results, the notes and the ledger fed synthetic trials, the
bad flags through the CLI, resume of a sweep that ended this way. End to end (real Ray, a sqlite
MLflow store, breast_cancer): a sweep ended by each rule.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from fast_support import empty_store, store_uri
from raysweep.cli import main
from raysweep.errors import NothingToResume, UserError
from raysweep.strategies.stoppers import PatienceStopper, SweepStopper, TargetStopper, build_stopper
from raysweep.strategies.stops import StopNotes
from raysweep.sweep import record as sweep_record
from raysweep.sweep.ledger import TrialLedger
from raysweep.sweep.options import plan_sweep
from raysweep.tracking import schema

__all__ = ["empty_store", "store_uri"]  # fixtures

KEY = "val_accuracy"


def finish(stopper: PatienceStopper, trial_id: str, *scores: float) -> None:
    """A trial that reports ``scores`` step by step and then finishes."""
    for step, score in enumerate(scores, 1):
        assert stopper(trial_id, {KEY: score, "training_iteration": step}) is False, "patience never stops one trial"
    stopper.trial_finished(trial_id)


# -- the patience rule ---------------------------------------------------------------------------------
def test_patience_ends_after_n_finished_trials_without_a_better_score():
    stopper = PatienceStopper(KEY, "max", 3)
    finish(stopper, "x_00000", 0.90, 0.93)
    finish(stopper, "x_00001", 0.95)  # better: the count starts again
    assert (stopper.best, stopper.since_best, stopper.stop_all()) == (0.95, 0, False)
    finish(stopper, "x_00002", 0.94)
    finish(stopper, "x_00003", 0.95)  # a tie is no improvement
    assert (stopper.since_best, stopper.stop_all()) == (2, False)
    finish(stopper, "x_00004", 0.80, 0.92)
    assert stopper.stop_all()
    assert stopper.reason == "--patience 3: no better val_accuracy in the last 3 finished trials (the finished trials' best 0.95 by trial-0001)"


def test_patience_counts_each_trial_at_its_best_step_in_the_metrics_direction():
    stopper = PatienceStopper("val_rmse", "min", 2)
    for trial_id, scores in [("x_00000", [50.0, 40.0]), ("x_00001", [45.0, 39.0, 41.0]), ("x_00002", [60.0])]:
        for step, score in enumerate(scores, 1):
            stopper(trial_id, {"val_rmse": score, "training_iteration": step})
        stopper.trial_finished(trial_id)
    # x_00001's best step (39, not its last, 41) beat 40; x_00002 did not beat 39.
    assert (stopper.best, stopper.best_trial, stopper.since_best, stopper.stop_all()) == (39.0, "x_00001", 1, False)


def test_patience_results_of_running_trials_do_not_count_until_they_finish():
    stopper = PatienceStopper(KEY, "max", 1)
    finish(stopper, "x_00000", 0.9)
    stopper("x_00001", {KEY: 0.5, "training_iteration": 1})  # still running: no verdict yet
    assert not stopper.stop_all()
    stopper("x_00001", {KEY: float("nan"), "training_iteration": 2})  # not a score
    stopper.trial_finished("x_00001")
    assert stopper.stop_all() and "best 0.9 by trial-0000" in stopper.reason


# -- the target rule and the two together --------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "mode", "target", "scores", "reached_at"),
    [
        (KEY, "max", 0.95, [0.90, 0.949, 0.95, 0.97], 2),
        ("val_log_loss", "min", 0.2, [0.5, 0.21, 0.19], 2),
        ("val_log_loss", "min", 0.2, [0.5, float("nan"), 0.3], None),
    ],
)
def test_target_ends_the_sweep_at_the_first_result_that_reaches_it(key, mode, target, scores, reached_at):
    stopper = TargetStopper(key, mode, target)
    said = [stopper("x_00004", {key: score, "training_iteration": i + 1}) for i, score in enumerate(scores)]
    first = said.index(True) if True in said else None
    assert first == reached_at
    assert stopper.stop_all() == (reached_at is not None)
    if reached_at is not None:
        assert stopper.reason == f"--stop-at {target:g}: trial-0004 reached {key} {scores[reached_at]:.5g}"
        assert stopper.trial_id == "x_00004"


def test_every_rule_sees_every_result_and_each_trial_stops_at_its_last_step():
    stopper = build_stopper(KEY, "max", 3, stop_at=0.95, patience=2)
    assert isinstance(stopper, SweepStopper)
    assert build_stopper(KEY, "max", 3) is None, "no rule: the plain step limit"
    assert stopper("x_00000", {KEY: 0.5, "training_iteration": 3}) is True, "the recipe's last step"
    assert stopper("x_00001", {KEY: 0.96, "training_iteration": 1}) is True
    patience = stopper.rules[1]
    assert patience.trial_bests["x_00001"] == 0.96, "patience saw the result the target stopped on"
    assert stopper.stop_all() and stopper.trial_id == "x_00001"
    assert stopper.reason.startswith("--stop-at 0.95: trial-0001")


def test_a_second_trial_reaching_the_target_in_the_same_round_ends_for_the_sweep_too():
    stopper = build_stopper(KEY, "max", 5, stop_at=0.9)
    notes = StopNotes({}, stopper)
    first, second = trial("x_00000", "RUNNING", {}), trial("x_00001", "RUNNING", {})
    results = {first.trial_id: {KEY: 0.91, "training_iteration": 2}, second.trial_id: {KEY: 0.95, "training_iteration": 2}}
    for t in (first, second):
        assert stopper(t.trial_id, results[t.trial_id])
        notes.on_trial_result(0, [], t, results[t.trial_id])
    assert stopper.trial_id == "x_00000" and stopper.reason.startswith("--stop-at 0.9: trial-0000")
    # Both ended because their own result reached the target, not because a scheduler cut them.
    assert [results[t.trial_id].get(schema.SWEEP_STOP_RESULT) for t in (first, second)] == [stopper.reason] * 2
    assert not stopper.reached("x_00002")


def test_the_patience_count_goes_on_after_a_resume(tmp_path):
    from ray.tune.callback import CallbackList

    first = build_stopper(KEY, "max", 5, patience=3)
    for trial_id, score in (("x_00000", 0.9), ("x_00001", 0.8), ("x_00002", 0.85), ("x_00003", 0.7)):
        first(trial_id, {KEY: score, "training_iteration": 5})
    for trial_id in ("x_00000", "x_00001", "x_00002"):
        first.trial_finished(trial_id)  # x_00003 was still running when the driver stopped
    # Tune saves its callbacks' state with the experiment and restores it into the resumed run's
    CallbackList([StopNotes({}, first)]).save_to_dir(str(tmp_path), session_str="s1")
    resumed = build_stopper(KEY, "max", 5, patience=3)
    restored = CallbackList([StopNotes({}, resumed)])
    assert restored.can_restore(str(tmp_path))
    restored.restore_from_dir(str(tmp_path))
    patience = resumed.rules[0]
    assert (patience.best, patience.best_trial, patience.since_best) == (0.9, "x_00000", 2)
    resumed.trial_finished("x_00003")  # its score from before the stop still counts
    assert resumed.stop_all()
    assert resumed.reason == "--patience 3: no better val_accuracy in the last 3 finished trials (the finished trials' best 0.9 by trial-0000)"


def test_the_stopper_tune_unpickles_in_a_resumed_run_is_the_sweeps_own():
    """Ray Tune saves its stopper with the experiment's state and, resuming, uses the copy it
    unpickles (TuneController.__setstate__): that copy heard every result while the sweep's
    callbacks told the sweep's own stopper of each finished trial, so --patience never ended a
    resumed sweep (all 12 trials ran) and named a stale best. Unpickled where the sweep runs, it is
    the sweep's own; elsewhere, a copy."""
    import pickle

    saved = pickle.dumps(build_stopper(KEY, "max", 5, patience=3, sweep="rf-gone"))  # another sweep's
    live = build_stopper(KEY, "max", 5, patience=3, sweep="rf-patient")
    # Tune's runner state (its "runner_data", the stopper in it) as the resumed run unpickles it
    runner_data = pickle.loads(pickle.dumps({"_stopper": live, "_iteration": 7}))
    tunes = runner_data["_stopper"]
    assert tunes is live
    copy = pickle.loads(saved)  # no sweep of that name runs here
    assert copy is not live and copy.sweep == "rf-gone" and copy.rules[0].patience == 3 and copy.max_steps == 5
    for trial_id, score in (("x_00000", 0.9), ("x_00001", 0.8), ("x_00002", 0.85), ("x_00003", 0.7)):
        tunes(trial_id, {KEY: score, "training_iteration": 5})  # Tune hears the results
        live.trial_finished(trial_id)  # the sweep's callbacks tell it of each finished trial
    assert tunes.stop_all() and live.reason == (
        "--patience 3: no better val_accuracy in the last 3 finished trials (the finished trials' best 0.9 by trial-0000)"
    )


# -- how Tune's trials are noted when the rule ends the sweep -------------------------------------------
def trial(trial_id: str, status: str, last: dict | None) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status=status, path=f"/r/{trial_id}", run_metadata=SimpleNamespace(last_result=last))


def test_trials_cut_short_by_the_rule_end_as_stopped_and_the_sweep_is_not_interrupted():
    stopper = build_stopper(KEY, "max", 5, stop_at=0.9)
    notes, ledger = StopNotes({}, stopper), TrialLedger()
    running, target, waiting = trial("x_00000", "RUNNING", {}), trial("x_00001", "RUNNING", {}), trial("x_00002", "PENDING", {})
    silent = trial("x_00003", "RUNNING", {})  # started, no result yet
    ledger.on_step_begin(0, [running, target, waiting, silent])  # Tune's loop, before the trials' events
    for t in (running, target, silent):
        ledger.on_trial_start(0, [], t)
        notes.on_trial_start(0, [], t)
    result = {KEY: 0.93, "training_iteration": 2}
    assert stopper(target.trial_id, result)  # Tune asks the stopper, then tells the callbacks
    notes.on_trial_result(0, [], target, result)
    assert result[schema.SWEEP_STOP_RESULT] == stopper.reason
    # stop_all: Tune sets every trial TERMINATED, without an event; the target's result is done.
    target.status, target.run_metadata.last_result = "TERMINATED", {**result, "done": True}
    running.status, running.run_metadata.last_result = "TERMINATED", {KEY: 0.7, "training_iteration": 1}
    waiting.status = silent.status = "TERMINATED"
    trials = [running, target, waiting, silent]
    notes.on_experiment_end(trials)
    ledger.on_experiment_end(trials)
    assert running.run_metadata.last_result[schema.SWEEP_STOP_RESULT] == stopper.reason
    assert silent.run_metadata.last_result == {schema.SWEEP_STOP_RESULT: stopper.reason}, "its run ends as stopped, not interrupted"
    assert waiting.run_metadata.last_result == {}, "never started: nothing to record"
    assert ledger.never_started == {"/r/x_00002"}
    assert [ended for _, ended in ledger.trials] == [True, True, False, True]
    outcome = schema.outcome_of(running.run_metadata.last_result, max_steps=5, errored=False)
    assert outcome == schema.Outcome("FINISHED", schema.OUTCOME_STOPPED, schema.REASON_SWEEP_STOPPED)
    assert schema.stop_detail(outcome, running.run_metadata.last_result) == stopper.reason
    # Without the rule having fired, a TERMINATED trial whose result is not done was interrupted.
    assert schema.outcome_of({"training_iteration": 1}, max_steps=5, errored=False).status == "KILLED"


def test_a_trial_whose_actor_a_spent_time_budget_stopped_before_it_started_is_no_trial_of_the_sweep():
    """At a time budget's end Tune stops every trial it has asked an actor for: one whose actor had
    not started yet ends TERMINATED without a start event and has no MLflow run, so the sweep must
    not count it (the count is checked against MLflow's child runs)."""
    ledger = TrialLedger()
    done = trial("x_00000", "TERMINATED", {KEY: 0.9, "training_iteration": 5, "done": True})
    silent = trial("x_00001", "TERMINATED", {})  # started, stopped by the budget before a result
    unstarted = trial("x_00002", "TERMINATED", {})  # its actor was still being placed
    waiting = trial("x_00003", "PENDING", {})
    failed = trial("x_00004", "ERROR", {})  # failed before it started: its error is the sweep's
    # reported in an earlier session (it has a run), restored and waiting when the budget ran out
    restored = trial("x_00005", "PENDING", {KEY: 0.8, "training_iteration": 2})
    for t in (done, silent):
        ledger.on_trial_start(0, [], t)
    ledger.on_experiment_end([done, silent, unstarted, waiting, failed, restored])
    assert ledger.never_started == {"/r/x_00002", "/r/x_00003"}


def test_notes_tell_the_patience_rule_of_finished_trials_but_not_of_failed_ones():
    stopper = build_stopper(KEY, "max", 5, patience=1)
    notes = StopNotes({}, stopper)
    stopper("x_00000", {KEY: 0.9, "training_iteration": 5})
    notes.on_trial_complete(0, [], trial("x_00000", "TERMINATED", {}))
    stopper("x_00001", {KEY: 0.8, "training_iteration": 1})
    notes.on_trial_complete(0, [], trial("x_00001", "ERROR", {}))
    assert not stopper.stop_all()
    notes.on_trial_complete(0, [], trial("x_00002", "TERMINATED", {}))
    assert stopper.stop_all()


# -- options, bad input, resume -------------------------------------------------------------------------
def test_the_options_round_trip_through_the_sweep_record(tmp_path):
    plan = plan_sweep("random_forest", "breast_cancer", stop_at=0.97, patience=5, storage=str(tmp_path), tracking_uri=f"sqlite:///{tmp_path}/m.db")
    options = json.loads(json.dumps(asdict(plan.options)))
    again = plan_sweep(plan.recipe, "breast_cancer", **options)
    assert (again.stop_at, again.patience) == (0.97, 5)
    assert plan.settings()["stop_at"] == 0.97 and plan.settings()["patience"] == 5
    del options["stop_at"], options["patience"]  # a record written before these options
    older = plan_sweep(plan.recipe, "breast_cancer", **options)
    assert (older.stop_at, older.patience) == (None, None)


BAD = [
    (["--stop-at", "1.5"], "error: --stop-at 1.5: accuracy lies between 0 and 1; give a value from 0 to 1 (the sweep ends once a trial's validation accuracy is at or above it)"),
    (["--stop-at", "-0.2"], "error: --stop-at -0.2: accuracy lies between 0 and 1; give a value from 0 to 1 (the sweep ends once a trial's validation accuracy is at or above it)"),
    (["--metric", "log_loss", "--stop-at", "-1"], "error: --stop-at -1: log_loss is never below 0; give a value >= 0 (the sweep ends once a trial's validation log_loss is at or below it)"),
    (["--dataset", "diabetes", "--stop-at", "-3"], "error: --stop-at -3: rmse is never below 0; give a value >= 0 (the sweep ends once a trial's validation rmse is at or below it)"),
    (["--dataset", "diabetes", "--stop-at", "inf"], "error: --stop-at inf: must be a finite number, the rmse at which the sweep ends"),
    (["--stop-at", "nan"], "error: --stop-at nan: must be a finite number, the accuracy at which the sweep ends"),
    (["--patience", "0"], "error: --patience 0: must be a whole number of finished trials >= 1, e.g. --patience 10"),
    (["--patience", "-2"], "error: --patience -2: must be a whole number of finished trials >= 1, e.g. --patience 10"),
]


@pytest.mark.parametrize(("flags", "line"), BAD, ids=[" ".join(flags) for flags, _ in BAD])
def test_bad_flags_are_one_line_and_exit_2_before_anything_starts(flags, line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dataset = [] if "--dataset" in flags else ["--dataset", "breast_cancer"]
    outcome = CliRunner().invoke(main, ["run", "random_forest", *dataset, *flags], prog_name="raysweep")
    assert outcome.exit_code == 2
    assert outcome.stderr == line + "\n" and outcome.stdout == ""
    assert list(tmp_path.iterdir()) == [], "no MLflow store, no Ray results"


def test_the_api_refuses_the_same_way(tmp_path):
    with pytest.raises(UserError, match=r"^--stop-at 2: accuracy lies between 0 and 1"):
        plan_sweep("random_forest", "breast_cancer", stop_at=2, storage=str(tmp_path))
    with pytest.raises(UserError, match=r"^--patience 0: "):
        plan_sweep("random_forest", "breast_cancer", patience=0, storage=str(tmp_path))


def test_resume_of_a_sweep_its_rule_ended_says_so_in_one_line_and_exits_0(tmp_path):
    sweep_record.save(str(tmp_path / "done"), {"name": "done", "options": {}})
    sweep_record.update(str(tmp_path / "done"), stopped_by="--patience 5: no better val_accuracy in the last 5 finished trials (best 0.97 by trial-0003)")
    outcome = CliRunner().invoke(main, ["resume", "done", "--storage", str(tmp_path)], prog_name="raysweep")
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stderr == (
        "raysweep: sweep done ended by its own rule (--patience 5: no better val_accuracy in the last 5 finished trials "
        "(best 0.97 by trial-0003)); nothing to resume. Its result: raysweep report done\n"
    )
    assert outcome.stdout == ""
    from raysweep.sweep.run import resume_sweep

    with pytest.raises(NothingToResume):
        resume_sweep("done", storage=str(tmp_path))


def test_sync_after_a_killed_driver_ends_the_trials_the_rule_cut_short_as_stopped(tmp_path, store_uri):
    from test_fast_sync import SWEEP as NAME, RayTrial, ends, make_sweep, parent_status

    from raysweep.tracking.sync import sync_sweep

    trials = [RayTrial(0, [0.9, 0.93, 0.96]), RayTrial(1, [0.7], status="TERMINATED", done=False)]
    sweep, tracker = make_sweep(tmp_path, store_uri, trials, num_samples=5)
    reason = "--stop-at 0.95: trial-0000 reached val_accuracy 0.96"
    # Killed after its outcome was made (refit, test score), its summary not yet in MLflow: done.
    sweep_record.update(str(sweep), stopped_by=reason, outcome_done=True)
    sync_sweep(NAME, storage=str(tmp_path / "raysweep_results"))
    assert ends(store_uri, tracker) == {
        "trial-0000": ("FINISHED", "completed", None),
        "trial-0001": ("FINISHED", "stopped_early", schema.REASON_SWEEP_STOPPED),
    }
    assert parent_status(store_uri, tracker) == "FINISHED", "2 of 5 trials, but the sweep's rule ended it"


# -- end to end -----------------------------------------------------------------------------------------
def check_no_run_left_running(result) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id], filter_string=f"tags.`{schema.SWEEP}` = '{result.name}'")
    assert [(r.info.run_name, r.info.status, r.data.tags.get(schema.STOP_REASON), r.data.tags.get(schema.STOP_DETAIL)) for r in runs if r.info.status != "FINISHED"] == [], "every run FINISHED, none RUNNING or KILLED"
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags[schema.STOPPED_BY] == result.stopped_by
    trials = [r for r in runs if r.info.run_id != result.parent_run_id]
    assert len(trials) == result.num_trials
    return trials


def test_stop_at_ends_the_sweep_early_as_a_success(ray_local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", "random_forest", "--dataset", "breast_cancer", "--scheduler", "fifo", "--searcher", "random",
            "--num-samples", "10", "--set", "resource.max=60", "--seed", "0", "--stop-at", "0.9", "--name", "target",
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--json"]  # fmt: skip
    outcome = CliRunner().invoke(main, args, prog_name="raysweep")
    assert outcome.exit_code == 0, outcome.output
    summary = json.loads(outcome.stdout)
    # Every random forest scores above 0.9 on breast cancer: the first result ends the sweep.
    assert summary["num_trials"] < 10
    assert summary["stopped_by"].startswith("--stop-at 0.9: trial-")
    assert summary["best_validation_score"] >= 0.9 and 0.85 < summary["test_score"] <= 1
    result = SimpleNamespace(**summary)
    trials = check_no_run_left_running(result)
    reasons = {r.data.tags.get(schema.STOP_REASON) for r in trials}
    assert reasons <= {schema.REASON_SWEEP_STOPPED, None}, "cut short by the sweep's end, not interrupted"
    reached = [r for r in trials if r.data.tags.get(schema.STOP_DETAIL) == summary["stopped_by"]]
    assert reached, "the trial that reached the target says so"
    # Nothing to resume: one line, exit 0.
    again = CliRunner().invoke(main, ["resume", "target"], prog_name="raysweep")
    assert again.exit_code == 0 and again.stderr.count("\n") == 1 and "nothing to resume" in again.stderr


def test_patience_ends_the_sweep_once_the_best_stands_for_n_finished_trials(ray_local, tmp_path, capsys):
    from raysweep import run_sweep
    from raysweep.cli.summary import report

    # One trial at a time: the trials finish in order, so the stop can be worked out from the leaderboard.
    result = run_sweep("random_forest", "breast_cancer", scheduler="asha", searcher="random", num_samples=20, seed=0,
                       max_concurrent=1, patience=2, overrides=["resource.max=60"], metric="accuracy",
                       tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", storage=str(tmp_path / "results"))  # fmt: skip
    board = result.leaderboard.sort_values("trial")
    best, since, expected = None, 0, None
    for i, score in enumerate(board[KEY]):
        if best is None or score > best:
            best, since = score, 0
        else:
            since += 1
        if since == 2:
            expected = i + 1
            break
    assert expected is not None and expected < 20
    assert result.num_trials == expected
    assert result.stopped_by.startswith("--patience 2: no better val_accuracy in the last 2 finished trials (the finished trials' best ")
    check_no_run_left_running(result)
    report(result, as_json=False)
    assert f"sweep stopped early: {result.stopped_by}" in capsys.readouterr().out
