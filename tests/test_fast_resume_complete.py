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


# -- the report command the hint gives works from where the user is ---------------------------
ELSEWHERE = "sqlite:////srv/sweeps/mlflow.db"


@pytest.fixture
def here(tmp_path, monkeypatch):
    """The user's folder, with no MLFLOW_TRACKING_URI: report reads ./mlflow.db unless told otherwise."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def _resume_says(storage: str) -> str:
    outcome = CliRunner().invoke(main, ["resume", "sweep", "--storage", storage], prog_name="raysweep")
    assert (outcome.exit_code, outcome.stdout) == (0, ""), outcome.output
    return outcome.stderr


def test_report_command_names_a_store_that_is_not_the_default_here(here, monkeypatch):
    from raysweep.tracking.store import report_command

    assert report_command("s", ELSEWHERE) == f"raysweep report s --tracking-uri {ELSEWHERE}"
    assert report_command("s", f"sqlite:///{here}/mlflow.db") == "raysweep report s"  # the default store, here
    assert report_command("s", "sqlite:///mlflow.db") == "raysweep report s"
    assert report_command("s", None) == "raysweep report s"  # an older record: nothing to name
    monkeypatch.setenv("MLFLOW_TRACKING_URI", ELSEWHERE)
    assert report_command("s", ELSEWHERE) == "raysweep report s"  # report finds it from the environment
    assert report_command("s", f"sqlite:///{here}/mlflow.db") == f"raysweep report s --tracking-uri sqlite:///{here}/mlflow.db"


def test_resume_of_a_complete_nested_validation_names_its_store(tmp_path, here):
    storage = _record(tmp_path, nested_cv=3, recipe={"family": "random_forest"}, done=True, options={"tracking_uri": ELSEWHERE})
    assert _resume_says(storage) == (
        f"raysweep: nested validation sweep is complete; nothing to resume. Its result: raysweep report sweep --tracking-uri {ELSEWHERE}\n"
    )


def test_resume_of_a_complete_nested_validation_in_the_default_store_here(tmp_path, here):
    storage = _record(tmp_path, nested_cv=3, recipe={"family": "random_forest"}, done=True, options={"tracking_uri": f"sqlite:///{here}/mlflow.db"})
    assert _resume_says(storage) == "raysweep: nested validation sweep is complete; nothing to resume. Its result: raysweep report sweep\n"


def test_resume_of_a_complete_sweep_names_its_store(tmp_path, here):
    storage = _record(tmp_path, outcome_done=True, parent_run_id="0123", options={"metric": "accuracy", "tracking_uri": ELSEWHERE})
    assert _resume_says(storage) == (
        f"raysweep: sweep sweep is complete; nothing to resume. Its result: raysweep report sweep --tracking-uri {ELSEWHERE}\n"
    )


def test_resume_of_a_complete_sweep_in_the_default_store_here(tmp_path, here):
    storage = _record(tmp_path, outcome_done=True, parent_run_id="0123", options={"metric": "accuracy", "tracking_uri": f"sqlite:///{here}/mlflow.db"})
    assert _resume_says(storage) == "raysweep: sweep sweep is complete; nothing to resume. Its result: raysweep report sweep\n"


def test_resume_json_of_a_complete_sweep_prints_an_object_a_program_can_read(tmp_path, here):
    """With --json stdout stayed empty on exit 0: a program parsing it had nothing."""
    import json

    storage = _record(tmp_path, outcome_done=True, parent_run_id="0123", options={"metric": "accuracy", "tracking_uri": ELSEWHERE})
    outcome = CliRunner().invoke(main, ["resume", "sweep", "--storage", storage, "--json"], prog_name="raysweep")
    assert outcome.exit_code == 0, outcome.output
    said = json.loads(outcome.stdout)
    assert said == {
        "name": "sweep", "nothing_to_resume": True,
        "message": f"raysweep: sweep sweep is complete; nothing to resume. Its result: raysweep report sweep --tracking-uri {ELSEWHERE}",
    }  # fmt: skip
