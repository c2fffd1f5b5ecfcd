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
