"""Fast tests of the live view and the progress lines, fed synthetic trial events (no Ray is started).

Trials are stand-ins with Tune's ``trial_id`` and ``status``; the clock is the test's, so the
elapsed time and the estimate are exact.
"""

from __future__ import annotations

import io
import pickle
from types import SimpleNamespace

import pytest
from rich.console import Console

from raysweep.families._resource import Resource
from raysweep.progress import LiveProgress, duration

BOOSTING = Resource("boosting_rounds", 50, 300)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def trial(index: int, status: str = "PENDING", done: bool = True) -> SimpleNamespace:
    """A trial as Tune hands it to callbacks: one that ended (``TERMINATED``) carries ``done`` in its
    last result unless Ctrl-C ended it (``done=False``: it had reported, without ``done``)."""
    last = ({"done": True} if done else {"training_iteration": 1}) if status == "TERMINATED" else {}
    return SimpleNamespace(trial_id=f"a1b2c3d4_{index:05d}", status=status, run_metadata=SimpleNamespace(last_result=last))


def finish(each: SimpleNamespace) -> None:
    """The trial ran to its end: Tune marks it TERMINATED, its last result ``done``."""
    each.status = "TERMINATED"
    each.run_metadata.last_result = {"done": True}


def view(live: bool, clock: Clock, **options) -> tuple[LiveProgress, Console]:
    console = Console(file=io.StringIO(), width=120, record=True, force_terminal=live)
    defaults = dict(total=6, resource=BOOSTING, concurrency=2, started=0.0)
    progress = LiveProgress("val_accuracy", "max", live=live, console=console, clock=clock, **{**defaults, **options})
    progress.setup()
    return progress, console


def screen(progress: LiveProgress) -> list[str]:
    """The live view's frame as plain text lines, as a terminal of 120 columns shows it."""
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    console.print(progress.render())
    return [line.rstrip() for line in console.export_text().splitlines()]


def play_a_sweep_start(progress: LiveProgress, clock: Clock) -> list[SimpleNamespace]:
    """trial-0000 runs all 6 steps in 10 s; trial-0001 is at step 2, trial-0002 at step 1; three not created yet."""
    first, second, third = trial(0, "RUNNING"), trial(1, "RUNNING"), trial(2)
    progress.on_trial_start(0, [], first)
    progress.on_trial_start(0, [], second)
    progress.on_step_end(0, [first, second, third])
    clock.now = 10.0
    for step in range(1, 7):
        progress.on_trial_result(0, [], first, {"training_iteration": step, "val_accuracy": 0.90 + step / 100})
    progress.on_trial_result(0, [], second, {"training_iteration": 2, "val_accuracy": 0.91})
    finish(first)
    progress.on_trial_complete(0, [], first)
    third.status = "RUNNING"
    progress.on_trial_start(0, [], third)
    clock.now = 14.0
    progress.on_trial_result(0, [], third, {"training_iteration": 1, "val_accuracy": 0.5})
    progress.on_step_end(0, [first, second, third])
    return [first, second, third]


def play_to_the_end(progress: LiveProgress, clock: Clock, others: list[SimpleNamespace] = ()) -> list[SimpleNamespace]:
    """:func:`play_a_sweep_start`, then its three trials run to their end and Tune ends the experiment (``others`` beside them)."""
    trials = play_a_sweep_start(progress, clock)
    for each in trials:
        finish(each)
    progress.on_experiment_end(trials + list(others))
    return trials


def test_the_live_view_shows_the_total_each_running_trials_step_the_best_and_the_time_left():
    clock = Clock()
    progress, _ = view(True, clock)
    play_a_sweep_start(progress, clock)
    # Left: 5 trials not finished × the 10 s mean, 2 at once.
    assert screen(progress) == [
        "trials  1 of 6 done · 2 running · 3 waiting · 0 failed",
        "best    val_accuracy 0.96 by trial-0000 at 300 boosting_rounds",
        "time    14s elapsed · about 25s left (finished trials' mean 10s × 5 to go ÷ 2 at once)",
        # A bar of 20 for 6 steps (its unfilled part is a colour, so blank here).
        "  trial-0001  " + "━" * 6 + "╸" + " " * 13 + "  100/300 boosting_rounds (step 2/6)",
        "  trial-0002  " + "━" * 3 + " " * 17 + "  50/300 boosting_rounds (step 1/6)",
    ]
    progress.close()


def test_after_the_trials_the_live_view_shows_the_phase_and_no_estimate():
    clock = Clock()
    progress, _ = view(True, clock)
    play_to_the_end(progress, clock, [trial(i, "TERMINATED") for i in (3, 4, 5)])
    clock.now = 40.0
    progress.phase("refitting the best config (trial-0000) on 142 rows for 6 steps (300 boosting_rounds)")
    assert screen(progress) == [
        "trials  6 of 6 done · 0 running · 0 waiting · 0 failed",
        "best    val_accuracy 0.96 by trial-0000 at 300 boosting_rounds",
        "time    40s elapsed",
        "→ refitting the best config (trial-0000) on 142 rows for 6 steps (300 boosting_rounds)",
    ]
    progress.close()
    assert "→" not in "\n".join(screen(progress)), "the last frame left on screen has no phase"


def test_a_time_budget_gives_the_estimate_until_a_trial_finishes_and_when_it_is_sooner():
    clock = Clock()
    progress, _ = view(False, clock, time_budget=60.0, total=None)
    progress.on_step_end(0, [trial(0, "RUNNING")])
    clock.now = 15.0
    assert progress.estimate() == (45.0, "time budget 60s, counted from the trials' start")
    assert progress.line() == "trials: 0 done, 1 running, 0 waiting, 0 failed | best val_accuracy - | 15s, about 45s left"
    # Trials to go by the mean would take longer than the budget has left: the budget wins.
    clock = Clock()
    progress, _ = view(False, clock, time_budget=20.0)
    play_a_sweep_start(progress, clock)  # 25 s left by the mean (as in the live view's test)
    assert progress.estimate() == (6.0, "time budget 20s, counted from the trials' start")


def test_without_a_total_or_a_budget_no_estimate_is_made():
    clock = Clock()
    progress, _ = view(False, clock, total=None)
    play_a_sweep_start(progress, clock)
    assert progress.estimate() is None
    assert progress.line().endswith("| 14s")


def test_in_a_pipe_each_change_is_one_line_and_each_phase_one_line():
    clock = Clock()
    progress, console = view(False, clock)
    trials = play_a_sweep_start(progress, clock)
    clock.now = 20.0
    progress.on_step_end(0, trials)  # nothing changed: no line
    for each in trials:
        finish(each)
    clock.now = 30.0
    progress.on_experiment_end(trials)
    progress.phase("refitting the best config (trial-0000) on 142 rows for 6 steps (300 boosting_rounds)")
    progress.phase("drawing the plots")
    progress.close()
    assert console.export_text().splitlines() == [
        "trials: 0 of 6 done, 2 running, 4 waiting, 0 failed | best val_accuracy - | <1s",
        "trials: 1 of 6 done, 2 running, 3 waiting, 0 failed | best val_accuracy 0.96 | by trial-0000 at 300 boosting_rounds"
        " | 14s, about 25s left",
        "trials: 3 of 6 done, 0 running, 3 waiting, 0 failed | best val_accuracy 0.96 | by trial-0000 at 300 boosting_rounds"
        " | 30s",  # the trials are over: no time left is estimated
        "refitting the best config (trial-0000) on 142 rows for 6 steps (300 boosting_rounds)",
        "drawing the plots",
    ]


def test_in_a_pipe_a_long_quiet_stretch_repeats_the_line():
    clock = Clock()
    progress, console = view(False, clock, log_every=60.0)
    running = [trial(0, "RUNNING")]
    progress.on_step_end(0, running)
    clock.now = 59.0
    progress.on_step_end(0, running)
    clock.now = 61.0
    progress.on_step_end(0, running)
    assert [line.rsplit("| ", 1)[1] for line in console.export_text().splitlines()] == ["<1s", "61s"]


def test_a_minimised_metric_keeps_its_lowest_and_ignores_nan():
    clock = Clock()
    console = Console(file=io.StringIO(), width=120, record=True)
    progress = LiveProgress("val_rmse", "min", total=2, resource=Resource("epochs", 5, 60), live=False, console=console, clock=clock)
    first, second = trial(0, "RUNNING"), trial(1, "RUNNING")
    progress.on_trial_result(0, [], first, {"training_iteration": 1, "val_rmse": 3.0})
    progress.on_trial_result(0, [], second, {"training_iteration": 4, "val_rmse": 2.5})
    progress.on_trial_result(0, [], first, {"training_iteration": 2, "val_rmse": float("nan")})
    assert progress.line().split(" | ")[1:3] == ["best val_rmse 2.5", "by trial-0001 at 20 epochs"]


def test_of_equal_scores_the_line_names_the_trial_made_first_as_the_summary_does():
    """Tune reports trials in the order they run, the summary ranks them in the order they were made
    (raysweep.best): on a tie both name the trial made first, at its first step with that score."""
    from raysweep.best import made_order, sweep_best, trial_best

    clock = Clock()
    console = Console(file=io.StringIO(), width=120, record=True)
    progress = LiveProgress("val_accuracy", "max", total=3, resource=BOOSTING, live=False, console=console, clock=clock)
    made = [trial(i, "RUNNING") for i in range(3)]
    for i, each in enumerate(made):
        each.trial_id, each.experiment_tag = f"f00d{9 - i:04d}", f"{i + 1}_max_depth={i + 3}"  # ids against the made order
    reported = [(made[1], 1, 0.9), (made[0], 2, 0.8), (made[0], 3, 0.9), (made[0], 4, 0.9), (made[2], 1, 0.9)]
    for each, step, value in reported:
        progress.on_trial_result(0, [], each, {"training_iteration": step, "val_accuracy": value})
    assert progress.line().split(" | ")[1:3] == ["best val_accuracy 0.9", f"by trial-{made[0].trial_id} at 150 boosting_rounds"]

    by_made_order = sorted(made, key=lambda each: made_order(each.experiment_tag, each.trial_id))
    bests = [
        trial_best([{"val_accuracy": v, "training_iteration": s} for t, s, v in reported if t is each], "val_accuracy", "max", {})
        for each in by_made_order
    ]  # fmt: skip
    chosen = sweep_best(bests, "max")
    assert (by_made_order[chosen], bests[chosen].steps) == (made[0], 3)


def test_the_view_survives_tunes_pickling():
    clock = Clock()
    progress, _ = view(True, clock)
    play_a_sweep_start(progress, clock)
    copy = pickle.loads(pickle.dumps(progress))
    assert copy.best == pytest.approx(0.96) and copy.best_trial == "trial-0000"
    progress.close()


@pytest.mark.parametrize("seconds, text", [(0.2, "<1s"), (45, "45s"), (89.4, "89s"), (90, "1m30s"), (185, "3m05s"), (3725, "1h02m")])
def test_durations_read_as_a_person_reads_them(seconds, text):
    assert duration(seconds) == text


def test_the_total_of_a_grid_search_is_its_passes_times_its_configs():
    from raysweep import space
    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.run import _total_trials

    grid = plan_sweep("xgboost", "iris", searcher="grid", scheduler="fifo", num_samples=2, tracking_uri="sqlite:///unused.db")
    assert _total_trials(grid) == 2 * space.grid_size(grid.recipe.space) > 2
    random = plan_sweep("xgboost", "iris", searcher="random", scheduler="fifo", num_samples=5, tracking_uri="sqlite:///unused.db")
    assert _total_trials(random) == 5


def test_trials_that_ctrl_c_ended_before_they_were_done_are_waiting_not_done():
    clock = Clock()
    progress, console = view(False, clock)
    clock.now = 20.0
    for index in range(4):
        progress.on_trial_start(0, [], trial(index, "RUNNING"))
    progress.on_trial_complete(0, [], trial(0, "TERMINATED", done=False))  # Tune reported it complete
    # Ctrl-C: Tune marks the two running trials TERMINATED, their last results not done
    progress.on_step_end(0, [trial(0, "TERMINATED", done=False), trial(1, "TERMINATED"), trial(2, "TERMINATED", done=False),
                             trial(3, "TERMINATED", done=False)])  # fmt: skip
    assert progress.line().startswith("trials: 2 of 6 done, 0 running, 4 waiting, 0 failed | ")


def test_trials_running_when_the_time_budget_ran_out_are_done():
    clock = Clock()
    progress, console = view(False, clock, total=None, time_budget=30.0)
    for index in range(2):
        progress.on_trial_start(0, [], trial(index, "RUNNING"))
    clock.now = 29.0
    progress.on_step_end(0, [trial(0, "TERMINATED"), trial(1, "TERMINATED", done=False)])
    assert progress.line().startswith("trials: 2 done, 0 running, 0 waiting, 0 failed | ")
    clock.now = 10.0  # long before the budget: the same trial was cut off by Ctrl-C
    progress.on_step_end(0, [trial(0, "TERMINATED"), trial(1, "TERMINATED", done=False)])
    assert progress.line().startswith("trials: 1 done, 0 running, 1 waiting, 0 failed | ")


def test_trials_a_spent_budget_ended_before_they_started_are_not_counted():
    """Tune marks TERMINATED the trials the searcher had made when the budget ran out: the last line
    said 38 done where the sweep had 30 trials (its summary and MLflow)."""
    clock = Clock()
    progress, console = view(False, clock, total=50, time_budget=30.0)
    progress.on_trial_start(0, [], trial(0, "RUNNING"))
    clock.now = 29.0
    unstarted = SimpleNamespace(trial_id="a1b2c3d4_00003", status="TERMINATED", run_metadata=SimpleNamespace(last_result={}))
    progress.on_step_end(0, [trial(0, "TERMINATED"), unstarted])
    assert progress.line().startswith("trials: 1 of 50 done, 0 running, 0 waiting, 0 failed | ")


def test_a_resumed_sweep_starts_from_the_best_score_before_the_resume():
    clock = Clock()
    progress, console = view(False, clock)
    progress.resumed({"a1b2c3d4_00000": [(50.0, 0.90, 1.0), (100.0, 0.95, 2.0)], "a1b2c3d4_00001": [(50.0, 0.93, 1.5), (100.0, float("nan"), 3.0)]})
    progress.on_step_end(0, [trial(0, "TERMINATED"), trial(1, "TERMINATED"), trial(2, "PENDING")])
    assert "| best val_accuracy 0.95 | by trial-0000 at 100 boosting_rounds | " in progress.line()
    progress.on_trial_result(0, [], trial(2, "RUNNING"), {"training_iteration": 3, "val_accuracy": 0.97})
    assert "| best val_accuracy 0.97 | by trial-0002 at 150 boosting_rounds | " in progress.line()


def test_after_a_resume_a_tie_before_it_names_the_trial_made_first_as_the_summary_does():
    """MLflow gives the trials before a resume in no set order: of two with the best score, the
    view named the one MLflow listed first while the summary named the one Tune made first."""
    clock = Clock()
    progress, console = view(False, clock)
    first, second = trial(0, "TERMINATED"), trial(1, "TERMINATED")
    first.trial_id, second.trial_id = "f00d0009", "f00d0001"  # ids against the made order
    first.experiment_tag, second.experiment_tag = "1_max_depth=3", "2_max_depth=4"
    progress.resumed({second.trial_id: [(50.0, 0.97, 1.0)], first.trial_id: [(50.0, 0.96, 1.0), (100.0, 0.97, 2.0)]})
    progress.on_step_begin(0, [first, second, trial(2)])
    progress.on_step_end(0, [first, second, trial(2)])
    assert "| best val_accuracy 0.97 | by trial-f00d0009 at 100 boosting_rounds | " in progress.line()
    # A trial of this session with the same score made later does not take it either.
    later = trial(2, "RUNNING")
    later.trial_id, later.experiment_tag = "f00d0000", "3_max_depth=5"
    progress.on_trial_result(0, [], later, {"training_iteration": 1, "val_accuracy": 0.97})
    assert "| by trial-f00d0009 at 100 boosting_rounds | " in progress.line()


def test_a_sweep_its_own_rule_ended_shows_no_trial_waiting_and_no_time_left():
    """--stop-at ended a 6-trial sweep after 3: its last frame said 3 waiting and a time left."""
    clock = Clock()
    progress, _ = view(True, clock)
    play_to_the_end(progress, clock)
    progress.ended_early()
    clock.now = 30.0
    frame = screen(progress)
    assert frame[0] == "trials  3 of 6 done · 0 running · 0 waiting · 0 failed"
    assert frame[2] == "time    30s elapsed"
    progress.close()


def test_after_ctrl_c_the_trials_not_made_yet_are_still_waiting_but_no_time_is_estimated():
    clock = Clock()
    progress, _ = view(True, clock)
    trials = play_a_sweep_start(progress, clock)
    progress.on_step_begin(0, trials)
    trials[1].status = trials[2].status = "TERMINATED"  # Ctrl-C: their last results are not done
    progress.on_experiment_end(trials)
    frame = screen(progress)
    assert frame[0] == "trials  1 of 6 done · 0 running · 5 waiting · 0 failed"
    assert frame[2] == "time    14s elapsed"
    progress.close()


def test_a_dumb_terminal_gets_a_line_per_change_as_a_pipe_does():
    """Rich never redraws a live view on TERM=dumb: nothing showed until the sweep's end."""
    console = Console(file=io.StringIO(), width=80, force_terminal=True, _environ={"TERM": "dumb"})
    assert console.is_dumb_terminal
    clock = Clock()
    progress = LiveProgress("val_accuracy", "max", total=6, resource=BOOSTING, console=console, clock=clock)
    assert not progress.drawing_live
    progress.on_step_end(0, [trial(0, "RUNNING")])
    progress.phase("refitting the best config")
    assert console.file.getvalue().splitlines()[-2:] == [
        "trials: 0 of 6 done, 1 running, 5 waiting, 0 failed | best val_accuracy - | <1s", "refitting the best config",
    ]  # fmt: skip


def test_a_terminal_that_cannot_write_unicode_gets_plain_characters():
    """A C locale's terminal (stderr ascii, backslashreplace): '·' came out as '\\xb7', longer than
    Rich measured, and the live view left stale lines."""
    clock = Clock()
    progress, _ = view(True, clock)
    progress.console = Console(file=io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="backslashreplace"), width=120, force_terminal=True)
    play_a_sweep_start(progress, clock)
    frame = "\n".join(screen(progress))
    assert "trials  1 of 6 done - 2 running - 3 waiting - 0 failed" in frame
    assert "(finished trials' mean 10s x 5 to go / 2 at once)" in frame
    progress.phase("refitting")
    assert "-> refitting" in "\n".join(screen(progress))
    assert all(ord(char) < 128 or char in "━╸╺" for char in frame)  # the bar is Rich's, which falls back itself


@pytest.mark.parametrize("width", [40, 60, 80])
def test_a_narrow_terminal_keeps_each_running_trials_name_and_step_on_one_line(width: int):
    clock = Clock()
    progress, _ = view(True, clock)
    progress.console = Console(file=io.StringIO(), width=width, force_terminal=True)
    play_a_sweep_start(progress, clock)
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(progress.render())
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    running = [line for line in lines if line.startswith("  trial-")]
    assert [line.split()[0] for line in running] == ["trial-0001", "trial-0002"], lines
    assert running[0].split()[-2:] == ["100/300", "boosting_rounds"] or running[0].endswith("(step 2/6)"), lines
    time_line = next(line for line in lines if line.startswith("time"))
    assert time_line.startswith("time    14s elapsed · about 25s left") and len(time_line) <= width, lines
    assert all(len(line) <= width for line in lines) and len(running) == 2 and lines[-1] == running[-1], lines  # no trial's line wrapped
    progress.close()
