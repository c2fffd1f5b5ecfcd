"""HyperBand stops trials: its brackets fill, halve, say why, and their best trials run to the end.

Ray's HyperBand fills a bracket only with trials live at once and pauses a trial at its bracket's
milestone until the rest of the bracket gets there; its first bracket runs its trials to the end
without halving. Capped at the trials that run at once (the CPUs), a sweep put every trial in that
first bracket and HyperBand stopped none.

Fast: Ray's own scheduler as the registry builds it, driven with results as Tune hands them (no
Ray started), and the notes of a trial stopped while paused. End to end (real Ray, a sqlite MLflow
store, digits): a sweep whose weak trials HyperBand stops, in the result and in MLflow.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ray.tune.schedulers import TrialScheduler

from raysweep.recipes import load_recipe
from raysweep.strategies import registry as strategies
from raysweep.strategies.stops import StopNotes
from raysweep.sweep.ledger import TrialLedger, trial_done
from raysweep.tracking import schema

KEY = "val_accuracy"
#: 4 steps of 5 epochs; with reduction factor 3 Ray's band is a bracket of 2 trials run to the end
#: and one of 3 halved at step 1
SHORT = ["resource.max=20"]
CONTINUE, PAUSE, STOP = TrialScheduler.CONTINUE, TrialScheduler.PAUSE, TrialScheduler.STOP


class Trial:
    """What Ray's HyperBand reads of a trial (hashable, as Ray keys its brackets by trial)."""

    def __init__(self, index: int) -> None:
        self.trial_id = f"hb_{index:05d}"
        self.status = "RUNNING"
        self.is_saving = False


class Controller:
    """What Ray's HyperBand calls on Tune's controller: stopping a paused trial, which Tune does
    once the scheduler's decision is made, telling the scheduler the trial is gone."""

    def __init__(self) -> None:
        self.stopped: list[str] = []
        self._queue: list[Trial] = []

    def stop_trial(self, trial: Trial) -> None:
        self.stopped.append(trial.trial_id)
        self._queue.append(trial)

    def result(self, scheduler: Any, trial: Trial, step: int, value: float) -> str:
        """Tune hands ``scheduler`` a result of ``trial``, then acts on the decision and the stops."""
        action = scheduler.on_trial_result(self, trial, {"training_iteration": step, KEY: value})
        if action == STOP:
            scheduler.on_trial_complete(self, trial, {"training_iteration": step, KEY: value})
        trial.status = {STOP: "TERMINATED", PAUSE: "PAUSED"}.get(action, "RUNNING")
        while self._queue:
            stopped = self._queue.pop(0)
            scheduler.on_trial_remove(self, stopped)
            stopped.status = "TERMINATED"
        return action


def hyperband(max_steps: int, notes: dict[str, str] | None = None, overrides: list[str] | None = None):
    recipe = load_recipe("mlp", overrides if overrides is not None else SHORT)
    scheduler = strategies.build_scheduler("hyperband", recipe, KEY, "max", max_steps, 0, [], notes)
    scheduler.set_search_properties(KEY, "max")  # as Tune passes TuneConfig's metric and mode
    return scheduler


# -- how many trials the searcher may have live ---------------------------------------------------------
@pytest.mark.parametrize("max_steps", [3, 4, 6, 12])
@pytest.mark.parametrize("running", [1, 2, 8])
def test_the_searcher_lets_hyperband_fill_a_whole_band_beside_the_running_trials(max_steps, running):
    live = strategies.searcher_concurrency("hyperband", running, max_steps, 3.0)
    scheduler = hyperband(max_steps)
    # The trials the searcher hands out before any ends (a paused one is live as much as a running one).
    trials = [Trial(i) for i in range(live)]
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    first_band = [bracket for bracket in scheduler._hyperbands[0] if bracket is not None]
    assert len(first_band) >= 2 and all(bracket.filled() for bracket in first_band)
    assert any(scheduler._trial_info[trial][0]._halves > 0 for trial in trials), "some trial is in a bracket that halves"


def test_the_trials_that_run_at_once_alone_leave_every_trial_in_the_bracket_that_never_halves():
    """The cause, on Ray's own scheduler: 2 trials live at once (2 CPUs), each ending before the next starts."""
    scheduler = hyperband(4)
    live: list[Trial] = []
    for index in range(9):
        if len(live) == 2:
            ended = live.pop(0)
            scheduler.on_trial_complete(None, ended, {"training_iteration": 4, KEY: 0.9})
        trial = Trial(index)
        scheduler.on_trial_add(None, trial)
        live.append(trial)
        assert scheduler._trial_info[trial][0]._halves == 0
    assert strategies.searcher_concurrency("hyperband", 2, 4, 3.0) == 2 + 5  # 2 running, a band of 2 + 3 beside them


def test_other_schedulers_keep_the_trials_that_run_at_once():
    for name in ("fifo", "asha", "pbt"):
        assert strategies.searcher_concurrency(name, 3, 12, 3.0) == 3
    # An auto sweep: a HyperBand per family, a band of each.
    assert strategies.searcher_concurrency("hyperband", 2, 12, 3.0, groups=3) == 2 + 3 * 17


def test_an_auto_sweep_passes_a_band_per_family_to_its_searcher():
    from raysweep.families import get_family
    from raysweep.sweep.auto import auto_recipe
    from raysweep.sweep.run import _live_trials

    recipes = [load_recipe(name) for name in ("random_forest", "svm")]
    auto = auto_recipe(recipes, "classification", [get_family(r.family) for r in recipes])
    plan = SimpleNamespace(auto=auto, scheduler="hyperband", recipe=auto.recipe)
    band = strategies.searcher_concurrency("hyperband", 0, auto.steps, auto.recipe.reduction_factor)
    assert _live_trials(plan, 2, auto.steps) == 2 + 2 * band
    plain = SimpleNamespace(auto=None, scheduler="asha", recipe=recipes[0])
    assert _live_trials(plain, 2, 10) == 2


# -- a bracket's halving ---------------------------------------------------------------------------------
def test_a_halving_stops_the_weak_trials_with_a_note_and_the_kept_one_runs_to_the_last_step():
    notes: dict[str, str] = {}
    scheduler, controller = hyperband(4, notes), Controller()
    trials = [Trial(i) for i in range(5)]
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    full, halved = trials[:2], trials[2:]  # Ray's band: 2 trials to the end, then 3 halved at step 1
    assert controller.result(scheduler, full[0], 1, 0.5) == CONTINUE
    best, paused, reporting = halved
    assert controller.result(scheduler, best, 1, 0.95) == PAUSE
    assert controller.result(scheduler, paused, 1, 0.60) == PAUSE
    # The last of the bracket reaches its milestone: the bracket keeps 1 of 3.
    assert controller.result(scheduler, reporting, 1, 0.80) == STOP
    assert controller.stopped == [paused.trial_id] and paused.status == "TERMINATED"
    assert set(notes) == {paused.trial_id, reporting.trial_id}
    assert notes[paused.trial_id] == "hyperband: bracket 2, halving at 5 epochs (kept 1 of 3): val_accuracy 0.6 below the cutoff 0.95"
    assert notes[reporting.trial_id].startswith("hyperband: bracket 2, halving at 5 epochs (kept 1 of 3): val_accuracy 0.8 ")
    # The kept trial goes on to the recipe's last step (Ray's bracket would end it at step 3 of 4);
    # the sweep's step limit ends it there.
    best.status = "RUNNING"  # Tune unpauses it
    assert [controller.result(scheduler, best, step, 0.96) for step in (2, 3)] == [CONTINUE] * 2


def test_a_trial_stopped_while_paused_ends_as_stopped_by_the_scheduler_not_interrupted():
    """Ray stops a paused trial with no new result: its last one gets the note and Tune's `done`."""
    detail = "hyperband: bracket 2, halving at 5 epochs (kept 1 of 3): val_accuracy 0.6 below the cutoff 0.95"
    last = {KEY: 0.6, "training_iteration": 1}
    paused = SimpleNamespace(trial_id="x_00001", status="PAUSED", path="/r/x_00001", run_metadata=SimpleNamespace(last_result=last))
    notes, ledger = StopNotes({"x_00001": detail}), TrialLedger()
    ledger.on_trial_start(0, [], paused)
    notes.on_trial_complete(0, [], paused)
    paused.status = "TERMINATED"
    ledger.on_experiment_end([paused])
    assert last[schema.STOP_DETAIL_RESULT] == detail and trial_done(paused)
    assert ledger.trials == [("TERMINATED", True)]
    outcome = schema.outcome_of(last, max_steps=4, errored=False)
    assert outcome == schema.Outcome("FINISHED", schema.OUTCOME_STOPPED, schema.REASON_SCHEDULER)
    assert schema.stop_detail(outcome, last) == detail
    # A trial ended with no note of the scheduler's is left as it was.
    other = SimpleNamespace(trial_id="x_00002", status="RUNNING", run_metadata=SimpleNamespace(last_result={"training_iteration": 4}))
    notes.on_trial_complete(0, [], other)
    assert other.run_metadata.last_result == {"training_iteration": 4}


class RestoringController(Controller):
    """Tune's controller as a resume sees it: the trials it restored, ended or not, as live as they are."""

    def __init__(self, trials: list[Trial]) -> None:
        super().__init__()
        self.trials = trials

    def get_live_trials(self) -> list[Trial]:
        return [t for t in self.trials if t.status != "TERMINATED"]


def test_a_resumed_sweeps_ended_trials_take_no_place_in_a_bracket():
    """Tune hands the scheduler every restored trial, ended ones too: in a bracket such a trial
    waited for a result that never came, the bracket never halved, and the resume hung with its
    other trials paused and none running."""
    scheduler = hyperband(4)
    ended = [Trial(i) for i in range(3)]
    for trial in ended:
        trial.status = "TERMINATED"
    resumed = [Trial(i) for i in range(3, 6)]
    for trial in resumed:
        trial.status = "PENDING"
    controller = RestoringController(ended + resumed)
    for trial in ended + resumed:
        scheduler.on_trial_add(controller, trial)
    for trial in ended:
        scheduler.on_trial_complete(controller, trial, {})  # told again of an ended trial: nothing to clean up
    assert set(scheduler._trial_info) == set(resumed)
    # The resumed trials fill the band's first bracket (2, run to the end) and the next: each runs on.
    for trial in resumed:
        trial.status = "RUNNING"
    outcomes = [controller.result(scheduler, trial, 1, 0.9) for trial in resumed]
    assert outcomes[:2] == [CONTINUE, CONTINUE], outcomes


def test_trials_restored_ahead_of_their_brackets_milestones_are_run_on_not_left_paused():
    """A paused trial comes back at its step in a new bracket: once every trial there is paused with
    no result left to come, the scheduler runs the least trained one on."""
    scheduler = hyperband(12, overrides=["resource.max=60"])
    trials = [Trial(i) for i in range(8)]
    controller = RestoringController(trials)
    for trial in trials:
        trial.status = "PENDING"
        scheduler.on_trial_add(controller, trial)
    for trial in trials:
        trial.status = "PAUSED"
        trial.last_result = {"training_iteration": 7 + trial.trial_id.endswith("3")}
    chosen = scheduler.choose_trial_to_run(controller)
    assert chosen is not None and chosen.status == "PAUSED" and chosen.last_result["training_iteration"] == 7
    chosen.status = "RUNNING"
    assert scheduler.choose_trial_to_run(controller) is None  # one is running: its result moves the bracket


# -- end to end ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("searcher", ["random", "hyperopt"])
def test_hyperband_stops_weak_trials_of_a_real_sweep_and_says_so(ray_local, tmp_path, searcher):
    from mlflow import MlflowClient

    from raysweep import run_sweep

    # The tester's sweep: 9 trials of 4 steps on the session's 2 CPUs; before, all 9 ran every step.
    result = run_sweep("mlp", "digits", scheduler="hyperband", searcher=searcher, num_samples=9, seed=0, overrides=SHORT,
                       tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", storage=str(tmp_path / "results"))  # fmt: skip
    board = result.leaderboard
    assert (result.num_trials, result.num_errors, result.stopped_by) == (9, 0, None)
    assert set(board["outcome"]) == {"completed", "stopped_early"}
    stopped = board[board["outcome"] == "stopped_early"]
    # Ray's first band: 2 trials to the end, 3 halved at step 1 keeping 1 (more in the band after it).
    assert len(stopped) >= 2, board[["trial", "steps", "outcome", KEY]]
    assert result.num_stopped_early == len(stopped)
    assert (stopped["steps"] == 1).all()
    assert stopped["stop_detail"].str.startswith("hyperband: bracket ").all(), stopped["stop_detail"].tolist()
    assert stopped["stop_detail"].str.contains("halving at 5 epochs").all()
    assert (board.loc[board["outcome"] == "completed", "steps"] == 4).all(), "a bracket's kept trials run to the last step"

    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id], filter_string=f"tags.`{schema.SWEEP}` = '{result.name}'")
    trials = [r for r in runs if r.info.run_id != result.parent_run_id]
    assert len(trials) == 9 and all(r.info.status == "FINISHED" for r in trials)
    stopped_runs = [r for r in trials if r.data.tags.get(schema.OUTCOME) == schema.OUTCOME_STOPPED]
    assert len(stopped_runs) == len(stopped)
    assert {r.data.tags.get(schema.STOP_REASON) for r in stopped_runs} == {schema.REASON_SCHEDULER}
    assert all(r.data.tags[schema.STOP_DETAIL].startswith("hyperband: ") for r in stopped_runs)


def test_a_resumes_trial_that_ended_before_it_or_unstarted_is_done_and_one_ctrl_c_ended_is_not():
    """HyperBand stops a paused trial with no new result, so without `done`: every resume of such a
    sweep saw that trial TERMINATED and not done and took the sweep for interrupted again (exit 130
    with all 12 trials done). Ctrl-C marks TERMINATED every trial Tune asked an actor for, started or
    not: one restored and still waiting for its actor is not done."""
    from raysweep.progress import LiveProgress

    def trial(trial_id: str, status: str, last: dict) -> SimpleNamespace:
        return SimpleNamespace(trial_id=trial_id, status=status, path=f"/r/{trial_id}", run_metadata=SimpleNamespace(last_result=last))

    ended = trial("x_00001", "TERMINATED", {KEY: 0.6, "training_iteration": 3})  # ended in an earlier session
    cut = trial("x_00002", "RUNNING", {KEY: 0.8, "training_iteration": 2})  # running at this session's Ctrl-C
    waiting = trial("x_00003", "PENDING", {KEY: 0.7, "training_iteration": 1})  # restored, its actor not started yet
    halved = trial("x_00004", "PAUSED", {KEY: 0.5, "training_iteration": 1})  # HyperBand stops it while paused
    ledger, view = TrialLedger(), LiveProgress(KEY, "max", total=4, live=False)
    for callback in (ledger, view):
        callback.on_step_begin(0, [ended, cut, waiting, halved])
        callback.on_trial_start(0, [], cut)
        callback.on_trial_complete(0, [], halved)
    for each in (cut, waiting, halved):
        each.status = "TERMINATED"  # Ctrl-C, and Tune's stop of the paused trial
    ledger.on_experiment_end([ended, cut, waiting, halved])
    assert ledger.trials == [("TERMINATED", True), ("TERMINATED", False), ("TERMINATED", False), ("TERMINATED", True)]
    assert [view._state(t) for t in (ended, cut, waiting, halved)] == ["TERMINATED", "STOPPED", "STOPPED", "TERMINATED"]
    # A session that ended before its first step (every trial had ended): all of them ended before.
    again = TrialLedger()
    again.on_experiment_end([ended])
    assert again.trials == [("TERMINATED", True)]


def test_a_scheduler_restored_from_tuner_pkl_notes_its_stops_for_the_resumed_session():
    """Tune pickles the scheduler into tuner.pkl and a resume unpickles it: it wrote its notes into a
    copy of the first session's dict, so the trials HyperBand halved after a resume had no note and
    no `done`, and every resume ended exit 130 with all its trials done. A resume now gives the
    restored Tuner a scheduler built for its session, as it gives it its callbacks."""
    import cloudpickle
    from ray import tune

    from raysweep.sweep.run import _use_callbacks

    first_session: dict[str, str] = {}
    tuner = tune.Tuner(lambda config: None, tune_config=tune.TuneConfig(scheduler=hyperband(4, first_session)))
    tuner = cloudpickle.loads(cloudpickle.dumps(tuner))  # as Tuner.restore gets it from tuner.pkl
    notes: dict[str, str] = {}
    built = hyperband(4, notes)
    _use_callbacks(tuner, [], scheduler=built)
    restored = tuner._local_tuner._tune_config.scheduler
    assert restored is built
    controller = Controller()
    trials = [Trial(i) for i in range(5)]
    for trial in trials:
        restored.on_trial_add(controller, trial)
    best, paused, reporting = trials[2:]
    for trial, value in ((best, 0.95), (paused, 0.60), (reporting, 0.80)):
        controller.result(restored, trial, 1, value)
    assert controller.stopped == [paused.trial_id]
    assert set(notes) == {paused.trial_id, reporting.trial_id} and first_session == {}
