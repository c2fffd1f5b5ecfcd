"""What a user meets when reviewing sweeps with input that cannot work: one line naming the flag
(or the environment variable) and the fix, exit code 2, nothing started or written.

- A file store (``./mlruns``, ``file://``), which MLflow 3 refuses, in every command that opens a
  store: report, compare, ui, sync and run (before its header and before Ray).
- ``ui --experiment E --sweep S`` with S in another experiment names that experiment.
- No command's ``--help`` shows reStructuredText markup from its docstring.

A sqlite store in tmp_path; no Ray, no MLflow server.
"""

from __future__ import annotations

import re

import pytest

from conftest import invoke_cli, run_cli
from fast_support import empty_store, store_uri
from raysweep.errors import UserError
from raysweep.sweep import record as sweep_record
from raysweep.tracking import schema
from raysweep.tracking.store import check_reachable

__all__ = ["empty_store", "store_uri"]  # fixtures


def _refused(given: str, fix: str = "leave --tracking-uri out to log to sqlite:///mlflow.db") -> str:
    return (
        f"error: {given}: MLflow 3 refuses a folder (its file store) as the tracking store; give sqlite:///FILE.db "
        "(sqlite:///mlflow.db: one file here; `mlflow migrate-filestore` moves a folder's runs into one), "
        f"the http://HOST:PORT of an MLflow server, or {fix}\n"
    )


@pytest.fixture
def no_tracking_env(monkeypatch):
    """No store from the environment, and a sweep that got as far as starting Ray fails at once."""
    import raysweep.sweep.run

    def refuse(*_args, **_kwargs):
        raise AssertionError("Ray would start: the bad input was not refused before it")

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setattr(raysweep.sweep.run, "connect_ray", refuse)


def _saved_sweep(tmp_path, tracking_uri: str = "sqlite:///mlflow.db") -> str:
    """A tracked sweep's record under tmp_path/rs, as ``raysweep sync`` finds it."""
    storage = tmp_path / "rs"
    sweep_record.save(str(storage / "s1"), {
        "name": "s1", "storage": str(storage), "parent_run_id": "0123", "experiment_id": "1",
        "options": {"metric": "accuracy", "tracking_uri": tracking_uri},
    })  # fmt: skip
    return str(storage)


#: every command that opens an MLflow store, with what it needs besides --tracking-uri
COMMANDS = {
    "report": ["report"],
    "compare": ["compare"],
    "ui": ["ui", "--no-browser"],
    "sync": ["sync", "s1", "--storage", "{storage}"],
    "run": ["run", "random_forest", "--dataset", "iris", "--num-samples", "2", "--storage", "{storage}", "--name", "new"],
}


@pytest.mark.parametrize("uri", ["./mlruns", "mlruns", "file:///{tmp}/mlruns"], ids=["relative", "bare", "file-uri"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_file_store_is_one_line_naming_the_flag(tmp_path, no_tracking_env, command, uri):
    storage = _saved_sweep(tmp_path)
    uri = uri.format(tmp=tmp_path)
    args = [arg.format(storage=storage) for arg in COMMANDS[command]]
    shown = invoke_cli(*args, "--tracking-uri", uri, cwd=tmp_path)
    assert (shown.returncode, shown.stderr, shown.stdout) == (2, _refused(f"--tracking-uri {uri}"), "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rs"]  # no mlruns folder, no mlflow.db
    assert sorted(p.name for p in (tmp_path / "rs").iterdir()) == ["s1"]  # run started nothing


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_file_store_from_mlflow_tracking_uri_names_the_variable(tmp_path, no_tracking_env, monkeypatch, command):
    storage = _saved_sweep(tmp_path, tracking_uri=None)  # sync then takes the store from the environment too
    uri = f"file://{tmp_path}/mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    shown = invoke_cli(*[arg.format(storage=storage) for arg in COMMANDS[command]], cwd=tmp_path)
    expected = _refused(f"MLFLOW_TRACKING_URI={uri}", "unset MLFLOW_TRACKING_URI to log to sqlite:///mlflow.db")
    assert (shown.returncode, shown.stderr, shown.stdout) == (2, expected, "")
    assert not (tmp_path / "mlruns").exists()


def test_run_with_a_file_store_says_so_before_its_header(tmp_path, no_tracking_env):
    """As a user runs it: the one line is all of stderr (no header, no traceback), and Ray never starts."""
    done = run_cli("run", "random_forest", "--dataset", "iris", "--num-samples", "2", "--tracking-uri", "./mlruns",
                   cwd=tmp_path, env={"MLFLOW_TRACKING_URI": "", "RAY_ADDRESS": ""}, timeout=120)  # fmt: skip
    assert (done.returncode, done.stderr, done.stdout) == (2, _refused("--tracking-uri ./mlruns"), "")
    assert list(tmp_path.iterdir()) == []


def test_mlflows_own_opt_out_lets_a_file_store_through(no_tracking_env, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    check_reachable("./mlruns")
    check_reachable("file:///tmp/mlruns")


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "postgresql+psycopg2://u@h/db", "databricks"])
def test_other_stores_pass(no_tracking_env, uri):
    check_reachable(uri)


# -- ui --experiment E --sweep S, S in another experiment ----------------------------------------
def _two_experiments(store_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri)
    iris = client.create_experiment("raysweep-iris")
    client.create_experiment("raysweep-wine")
    client.create_run(iris, run_name="rf-iris-1", tags={schema.SWEEP: "rf-iris-1", schema.RECIPE: "random_forest", schema.METRIC: "accuracy"})


def test_ui_names_the_experiment_a_sweep_is_in(tmp_path, store_uri, no_tracking_env):
    _two_experiments(store_uri)
    shown = invoke_cli("ui", "--no-browser", "--tracking-uri", store_uri, "--experiment", "raysweep-wine", "--sweep", "rf-iris-1", cwd=tmp_path)
    assert (shown.returncode, shown.stdout) == (2, "")
    assert shown.stderr == (
        "error: --sweep rf-iris-1: that sweep is in experiment raysweep-iris, not raysweep-wine; "
        "pass --experiment raysweep-iris, or leave --experiment out\n"
    )


def test_ui_still_says_when_a_sweep_is_nowhere(tmp_path, store_uri, no_tracking_env):
    _two_experiments(store_uri)
    shown = invoke_cli("ui", "--no-browser", "--tracking-uri", store_uri, "--experiment", "raysweep-wine", "--sweep", "rf-iris-9", cwd=tmp_path)
    assert (shown.returncode, shown.stderr) == (2, f"error: no sweep named 'rf-iris-9' in {store_uri}; recent sweeps: rf-iris-1\n")


def test_the_sweep_in_its_own_experiment_is_found(store_uri):
    from mlflow.tracking import MlflowClient

    from raysweep.tracking.queries import target_sweep

    _two_experiments(store_uri)
    client = MlflowClient(store_uri)
    experiment_id, run = target_sweep(client, store_uri, "raysweep-iris", "rf-iris-1")
    assert (client.get_experiment(experiment_id).name, run.info.run_name) == ("raysweep-iris", "rf-iris-1")
    with pytest.raises(UserError):
        target_sweep(client, store_uri, "raysweep-wine", "rf-iris-1")


def test_report_says_when_a_sweeps_name_is_in_two_experiments_and_takes_experiment(tmp_path, store_uri, no_tracking_env):
    """Two sweeps named alike (another --storage lets a name be used again): report showed the
    newest without a word, and had no --experiment to pick the other."""
    import time

    from mlflow.tracking import MlflowClient

    _two_experiments(store_uri)
    client = MlflowClient(store_uri)
    time.sleep(0.01)
    wine = client.get_experiment_by_name("raysweep-wine").experiment_id
    client.create_run(wine, run_name="rf-iris-1", tags={schema.SWEEP: "rf-iris-1", schema.RECIPE: "random_forest", schema.METRIC: "accuracy"})
    shown = invoke_cli("report", "rf-iris-1", "--tracking-uri", store_uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.splitlines()[0] == (
        "note: experiments raysweep-wine, raysweep-iris each hold a sweep named rf-iris-1; this is the newest, in raysweep-wine "
        "(another: --experiment raysweep-iris)"
    )
    assert ", experiment raysweep-wine (id " in shown.stdout.splitlines()[0]
    shown = invoke_cli("report", "rf-iris-1", "--experiment", "raysweep-iris", "--tracking-uri", store_uri, cwd=tmp_path)
    assert shown.returncode == 0 and "note:" not in shown.stderr, shown.stderr
    assert ", experiment raysweep-iris (id " in shown.stdout.splitlines()[0]
    shown = invoke_cli("report", "--experiment", "raysweep-iris", "--tracking-uri", store_uri, cwd=tmp_path)  # its newest sweep
    assert shown.returncode == 0 and ", experiment raysweep-iris (id " in shown.stdout.splitlines()[0]
    client.create_run(wine, run_name="rf-wine", tags={schema.SWEEP: "rf-wine", schema.RECIPE: "random_forest", schema.METRIC: "accuracy"})
    shown = invoke_cli("report", "rf-wine", "--experiment", "raysweep-iris", "--tracking-uri", store_uri, cwd=tmp_path)
    assert (shown.returncode, shown.stderr) == (2, "error: sweep rf-wine: that sweep is in experiment raysweep-wine, not raysweep-iris; "
                                                   "pass --experiment raysweep-wine, or leave --experiment out\n")


def test_report_names_an_older_sweep_of_the_name_in_one_experiment_and_takes_its_run_id(tmp_path, store_uri, no_tracking_env):
    """The same --name given again with another --storage: two sweeps of one name in one
    experiment. report showed the newer without a word, and nothing could reach the older."""
    import time

    from mlflow.tracking import MlflowClient

    _two_experiments(store_uri)
    client = MlflowClient(store_uri)
    iris = client.get_experiment_by_name("raysweep-iris").experiment_id
    older = client.search_runs([iris])[0]
    client.log_param(older.info.run_id, "num_samples", "4")
    time.sleep(0.01)
    newer = client.create_run(iris, run_name="rf-iris-1", tags={schema.SWEEP: "rf-iris-1", schema.RECIPE: "random_forest", schema.METRIC: "accuracy"})
    client.log_param(newer.info.run_id, "num_samples", "8")
    shown = invoke_cli("report", "rf-iris-1", "--tracking-uri", store_uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.fullmatch(
        r"note: 2 sweeps are named rf-iris-1 in this experiment; this is the newest \(started \d{4}-\d\d-\d\d \d\d:\d\d\); "
        rf"an older one: raysweep report {older.info.run_id}",
        shown.stderr.strip(),
    ), shown.stderr
    assert f"run {newer.info.run_id}" in shown.stdout.splitlines()[0]
    shown = invoke_cli("report", older.info.run_id, "--json", "--tracking-uri", store_uri, cwd=tmp_path)
    assert (shown.returncode, shown.stderr) == (0, "")
    import json

    assert json.loads(shown.stdout)["parent_run_id"] == older.info.run_id
    # a trial's run id is not a sweep's
    trial = client.create_run(iris, run_name="trial", tags={schema.PARENT_RUN_ID: newer.info.run_id, schema.RECIPE: "random_forest"})
    shown = invoke_cli("report", trial.info.run_id, "--tracking-uri", store_uri, cwd=tmp_path)
    assert (shown.returncode, shown.stderr.startswith(f"error: no sweep named '{trial.info.run_id}'")) == (2, True), shown.stderr


# -- --help ------------------------------------------------------------------------------------
def _commands() -> list[tuple[str, ...]]:
    import click

    from raysweep.cli import main

    found = []
    for name, command in main.commands.items():
        found.append((name,))
        if isinstance(command, click.Group):
            found += [(name, sub) for sub in command.commands]
    return found


#: reStructuredText a docstring may hold that --help would print as it is
RST = re.compile(r"``|:(func|class|mod|meth|attr|data|exc|ref):`")
@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_help_shows_no_rst_markup(tmp_path, command):
    shown = invoke_cli(*command, "--help", cwd=tmp_path)
    assert shown.returncode == 0
    assert not RST.search(shown.stdout), shown.stdout


@pytest.mark.parametrize("given", ["flag", "environment", "default"])
def test_a_missing_store_names_where_its_uri_came_from(given, tmp_path, no_tracking_env, monkeypatch):
    """With MLFLOW_TRACKING_URI set, or neither it nor the flag, the error blamed --tracking-uri, which was not given."""
    uri = "sqlite:///mlflow.db" if given == "default" else f"sqlite:///{tmp_path}/missing.db"
    if given == "environment":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    shown = invoke_cli("report", *(["--tracking-uri", uri] if given == "flag" else []), cwd=tmp_path)
    label = {"flag": f"--tracking-uri {uri}", "environment": f"MLFLOW_TRACKING_URI={uri}", "default": f"the default store {uri}"}[given]
    assert (shown.returncode, shown.stdout) == (2, "")
    assert shown.stderr.startswith(f"error: {label}: no MLflow store at "), shown.stderr


def test_a_database_file_given_as_a_path_gets_its_sqlite_uri(tmp_path, store_uri, no_tracking_env):
    """A path to an sqlite file was refused as "a folder (its file store)"."""
    database = store_uri.removeprefix("sqlite:///")
    shown = invoke_cli("report", "--tracking-uri", database, cwd=tmp_path)
    assert (shown.returncode, shown.stderr) == (
        2, f"error: --tracking-uri {database}: a path is MLflow's folder store; for the database file {database} give sqlite:///{database}\n"
    )
