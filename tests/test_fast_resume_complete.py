"""``raysweep resume`` of a complete sweep (its outcome logged) says so in one line and exits 0;
a sweep whose outcome is missing is resumed. Sweep records written here, a real sqlite MLflow store
for records from before ``outcome_done`` was kept for every sweep."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fast_support import empty_store, store_uri
from raysweep.cli import main
from raysweep.errors import NothingToResume
from raysweep.sweep import record as sweep_record
from raysweep.sweep.run import find_resumable

__all__ = ["empty_store", "store_uri"]  # fixtures


def _record(tmp_path, **fields) -> str:
    sweep_record.save(str(tmp_path / "sweep"), {"name": "sweep", "options": {"metric": "accuracy"}, **fields})
    (tmp_path / "sweep" / "tuner.pkl").write_bytes(b"")  # as Ray Tune leaves it once the trials start
    return str(tmp_path)


def test_resume_of_a_complete_sweep_is_one_line_and_exit_0(tmp_path):
    storage = _record(tmp_path, outcome_done=True, parent_run_id="0123")
    outcome = CliRunner().invoke(main, ["resume", "sweep", "--storage", storage], prog_name="raysweep")
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stderr == "raysweep: sweep sweep is complete; nothing to resume. Its result: raysweep report sweep\n"
    assert outcome.stdout == ""


def test_a_sweep_whose_outcome_is_not_logged_is_resumed(tmp_path):
    storage = _record(tmp_path, outcome_done=False, parent_run_id="0123")
    assert find_resumable("sweep", storage)[1]["outcome_done"] is False


def test_an_untracked_sweep_from_an_older_record_is_resumed(tmp_path):
    storage = _record(tmp_path, parent_run_id=None)  # no outcome_done, no MLflow run to ask
    assert find_resumable("sweep", storage)[1]["name"] == "sweep"


@pytest.mark.parametrize("scored", [True, False], ids=["test score logged", "no test score"])
def test_an_older_record_asks_mlflow_for_the_test_score(tmp_path, store_uri, scored):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri)
    parent = client.create_run(client.create_experiment("sweeps")).info.run_id
    if scored:
        client.log_metric(parent, "test_accuracy", 0.95)
    storage = _record(tmp_path, parent_run_id=parent, options={"metric": "accuracy", "tracking_uri": store_uri})
    if scored:
        with pytest.raises(NothingToResume, match=r"^raysweep: sweep sweep is complete; nothing to resume"):
            find_resumable("sweep", storage)
    else:
        assert find_resumable("sweep", storage)[1]["parent_run_id"] == parent
