"""Tune's experiment state cut by a killed driver: the complete copy raysweep keeps, and the mend before a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysweep.errors import UserError
from raysweep.sweep import saved_state
from raysweep.sweep.saved_state import COPY_FOLDER, StateCopy, mend

STATE = {"trial_data": [], "runner_data": {}, "stats": {"start_time": 1.0}}


def write_state(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_the_copy_is_taken_from_the_staging_folder_when_tune_has_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    staging = tmp_path / "session" / "artifacts" / "2026-11-30_18-00-00" / "rf" / "driver_artifacts"
    write_state(staging, "experiment_state-2026-11-30_18-00-01.json", json.dumps(STATE))
    monkeypatch.setattr(saved_state, "_find_staging", lambda name: staging if name == "rf" else None)
    sweep_folder = tmp_path / "results" / "rf"

    assert StateCopy(sweep_folder).get_state() is None  # nothing for Tune to pickle
    copy = sweep_folder / COPY_FOLDER / "experiment_state-2026-11-30_18-00-01.json"
    assert json.loads(copy.read_text()) == STATE

    # A staging file cut mid-write is not copied: the last complete copy stays.
    write_state(staging, "experiment_state-2026-11-30_18-00-01.json", '{"trial_data": [')
    StateCopy(sweep_folder).get_state()
    assert json.loads(copy.read_text()) == STATE
    assert [path.name for path in copy.parent.iterdir()] == [copy.name]  # no partial file left


def test_mend_puts_the_complete_copy_back_over_a_cut_state(tmp_path: Path) -> None:
    folder = tmp_path / "rf"
    write_state(folder, "experiment_state-2026-11-30_17-00-00.json", json.dumps(STATE))  # an older session's
    cut = write_state(folder, "experiment_state-2026-11-30_18-00-01.json", "")
    write_state(folder / COPY_FOLDER, cut.name, json.dumps({**STATE, "stats": {"start_time": 2.0}}))

    assert mend(folder, "rf") is True
    assert json.loads(cut.read_text())["stats"] == {"start_time": 2.0}
    assert mend(folder, "rf") is False  # whole now: left as it is


def test_mend_leaves_a_whole_state_alone(tmp_path: Path) -> None:
    folder = tmp_path / "rf"
    whole = write_state(folder, "experiment_state-2026-11-30_18-00-01.json", json.dumps(STATE))
    write_state(folder / COPY_FOLDER, whole.name, json.dumps({**STATE, "stats": {}}))
    assert mend(folder, "rf") is False
    assert json.loads(whole.read_text()) == STATE
    assert mend(tmp_path / "absent", "rf") is False


def test_a_cut_state_without_a_copy_is_one_line_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "rf"
    cut = write_state(folder, "experiment_state-2026-11-30_18-00-01.json", '{"trial_data": [')
    with pytest.raises(UserError) as raised:
        mend(folder, "rf")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"sweep rf: Ray's saved state {cut} was cut off")
    assert message.endswith("start the sweep again with raysweep run")


def saved_at(iteration: int) -> str:
    return json.dumps({**STATE, "runner_data": {"_iteration": iteration}})


def test_mend_takes_the_copy_when_tunes_own_state_is_a_save_behind(tmp_path: Path) -> None:
    folder = tmp_path / "rf"
    behind = write_state(folder, "experiment_state-2026-11-30_18-00-01.json", saved_at(100))
    write_state(folder / COPY_FOLDER, behind.name, saved_at(250))  # copied; the sync to the folder never came
    assert mend(folder, "rf") is True
    assert json.loads(behind.read_text())["runner_data"] == {"_iteration": 250}
    assert mend(folder, "rf") is False
    # The copy one save behind Tune's own file (the next copy not taken yet): Tune's stays.
    ahead = write_state(folder, behind.name, saved_at(300))
    assert mend(folder, "rf") is False
    assert json.loads(ahead.read_text())["runner_data"] == {"_iteration": 300}


class _Trial:
    def __init__(self, path: Path) -> None:
        self.path = str(path)


def test_a_completed_trials_checkpoints_go_once_tune_has_saved_a_state_that_says_so(tmp_path: Path) -> None:
    trial = tmp_path / "rf" / "SweepTrainable_00000"
    for step in (3, 4):
        (trial / f"checkpoint_00000{step}").mkdir(parents=True)
        (trial / f"checkpoint_00000{step}" / "state.pkl").write_bytes(b"x")
    (trial / "result.json").write_text("{}\n")
    drop = saved_state.DropFinishedCheckpoints()
    drop.on_trial_complete(5, [], _Trial(trial))
    # Tune's saved state still names the trial running, from its last checkpoint: kept until the next save.
    assert sorted(path.name for path in trial.iterdir()) == ["checkpoint_000003", "checkpoint_000004", "result.json"]
    assert drop.get_state() is None  # Tune saves its state: nothing for it to pickle, the checkpoints go
    assert [path.name for path in trial.iterdir()] == ["result.json"]
    drop.on_trial_complete(6, [], _Trial(tmp_path / "a-uri-or-gone"))  # not a local folder: nothing to delete
    assert drop.get_state() is None


def _state_with_budget(folder: Path, budget: float, left: float, session: str = "2026-12-05_02-34-49") -> None:
    """An experiment state as Tune saves it: its stoppers pickled in ``runner_data`` (a time budget
    beside the sweep's own stopper), the budget's clock at ``left`` seconds to go."""
    from ray.tune.stopper import CombinedStopper, MaximumIterationStopper, TimeoutStopper
    from ray.tune.utils.serialization import TuneFunctionEncoder

    timeout = TimeoutStopper(budget)
    timeout._budget = left
    runner_data = {"_iteration": 5, "_stopper": CombinedStopper(MaximumIterationStopper(10), timeout)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"experiment_state-{session}.json").write_text(json.dumps({"runner_data": runner_data, "trial_data": []}, cls=TuneFunctionEncoder))


def test_the_budget_tune_spent_is_read_from_its_saved_state(tmp_path):
    _state_with_budget(tmp_path / "a", 60, 12.5)
    assert saved_state.budget_used(tmp_path / "a") == 47.5
    _state_with_budget(tmp_path / "b", 30, -0.2)  # Tune's last check found the budget gone
    assert saved_state.budget_used(tmp_path / "b") == 30.2
    assert saved_state.budget_used(tmp_path / "none") is None  # nothing saved
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "experiment_state-2026-12-05_02-34-49.json").write_text('{"runner_data": {')
    assert saved_state.budget_used(tmp_path / "cut") is None


def test_ctrl_c_with_part_of_the_budget_left_is_an_interruption_by_tunes_clock(tmp_path):
    """By the clock from the command's start (Ray's start included) a Ctrl-C with 15 s of a 30 s
    budget left counted as its end: the sweep refit and exited 0, with nothing to resume."""
    import time

    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.run import _time_budget_spent

    plan = plan_sweep("random_forest", "iris", time_budget=30, name="cut", storage=str(tmp_path))
    long_ago = time.monotonic() - 29  # the command started 29 s ago
    _state_with_budget(tmp_path / "cut", 30, 15.0)
    assert not _time_budget_spent(plan, long_ago)
    _state_with_budget(tmp_path / "cut", 30, -0.1)
    assert _time_budget_spent(plan, time.monotonic())
