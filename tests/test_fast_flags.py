"""Flags and environment variables a sweep is pointed with, refused in one line before anything
starts: a Ray address Ray could not parse, a tracking URI MLflow has no store for, and the
tracking URI of ``MLFLOW_TRACKING_URI`` named as such (not as a ``--tracking-uri`` never given)."""

from __future__ import annotations

import socket

import pytest

from conftest import invoke_cli
from raysweep.errors import UserError
from raysweep.sweep.connect import resolve_target

ADDRESS_FIX = (
    "not a Ray address; give the head node's HOST:PORT (e.g. 127.0.0.1:6379, as `raysweep cluster up --local` "
    "and `ray start --head` print it) or auto"
)


@pytest.mark.parametrize("address", ["bogus", "127.0.0.1:abc", "127.0.0.1:0", "127.0.0.1:70000", ":6379", "a" * 64 + ":6379"])
def test_an_address_ray_could_not_parse_is_one_line_naming_the_flag(address: str) -> None:
    # Ray's own parse of these is a traceback ("Invalid address format", "Unable to parse port number").
    with pytest.raises(UserError) as raised:
        resolve_target(address)
    assert str(raised.value) == f"--address {address}: {ADDRESS_FIX}"


def test_a_ray_client_address_is_refused_for_tune_would_run_the_sweep_away_from_its_logging() -> None:
    with pytest.raises(UserError) as raised:
        resolve_target("ray://127.0.0.1:10001")
    assert str(raised.value) == (
        "--address ray://127.0.0.1:10001: Ray Client (ray://) addresses are not supported: Ray Tune would run the "
        "sweep on the cluster, away from its MLflow logging; give the head node's HOST:6379 from a machine that "
        "reaches it, or submit the sweep to the cluster with `ray job submit -- raysweep run ...`"
    )


@pytest.mark.parametrize("address", ["http://127.0.0.1:8265", "https://head.example:8265"])
def test_the_dashboard_address_is_refused_for_the_clusters(address: str) -> None:
    # Ray's own refusal of it was a traceback ("Invalid Ray address ... It looks like you set RAY_ADDRESS to an HTTP address").
    with pytest.raises(UserError) as raised:
        resolve_target(address)
    assert str(raised.value) == (
        f"--address {address}: that is the address of Ray's dashboard and job server (the one `ray job submit` takes), "
        "not of the cluster; give the head node's HOST:PORT (e.g. 127.0.0.1:6379, as `raysweep cluster up --local` "
        "and `ray start --head` print it)"
    )


def test_an_address_from_ray_address_is_named_as_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "head-node")
    with pytest.raises(UserError) as raised:
        resolve_target(None)
    assert str(raised.value) == f"RAY_ADDRESS=head-node: {ADDRESS_FIX}"


@pytest.mark.parametrize("address", ["auto", "local", "127.0.0.1:6379", "localhost:6379", "[::1]:6379"])
def test_the_addresses_ray_takes_pass(address: str) -> None:
    assert resolve_target(address).address == address


def test_a_tracking_uri_mlflow_has_no_store_for_is_one_line(tmp_path) -> None:
    shown = invoke_cli("report", "--tracking-uri", "ftp://example/mlflow", cwd=tmp_path)
    assert shown.returncode == 2
    assert shown.stderr.strip() == (
        "error: --tracking-uri ftp://example/mlflow: MLflow cannot track to a ftp:// URI; give sqlite:///FILE.db, the "
        "http://HOST:PORT of an MLflow server or a database URI (postgresql://, mysql://, mssql://), or leave "
        "--tracking-uri out to log to sqlite:///mlflow.db"
    )


def test_a_tracking_server_from_mlflow_tracking_uri_that_does_not_answer_names_the_variable(tmp_path, monkeypatch) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    shown = invoke_cli("report", cwd=tmp_path)
    assert shown.returncode == 2
    line = shown.stderr.strip()
    assert line.startswith(f"error: MLFLOW_TRACKING_URI={uri}: the MLflow tracking server does not answer ("), line
    assert line.endswith("; start it, fix the URI, or unset MLFLOW_TRACKING_URI to log to sqlite:///mlflow.db"), line


def test_a_name_whose_folder_holds_a_sweep_is_refused_and_the_old_sweep_is_left_as_it_is(tmp_path) -> None:
    from conftest import run_cli

    folder = tmp_path / "raysweep_results" / "same"
    folder.mkdir(parents=True)
    record = folder / "raysweep_sweep.json"
    record.write_text('{"name": "same"}')
    (folder / "tuner.pkl").write_bytes(b"ray tune's state")
    done = run_cli("run", "random_forest", "--dataset", "iris", "--num-samples", "2", "--name", "same", cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: --name same: {folder} holds a sweep of that name already; pass another --name (or --storage), "
        f"or continue that one with: raysweep resume same --storage {tmp_path / 'raysweep_results'}"
    )
    assert "Traceback" not in done.stderr
    assert record.read_text() == '{"name": "same"}' and sorted(p.name for p in folder.iterdir()) == ["raysweep_sweep.json", "tuner.pkl"]


def test_a_name_whose_sweep_never_got_its_state_saved_is_free_again(tmp_path) -> None:
    """Ctrl-C while Ray started leaves the sweep's record but no Tune state: nothing to resume,
    and the same --name runs again (a nested job's record is refused still)."""
    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.record import refuse_a_name_in_use

    plan = plan_sweep("random_forest", "iris", name="same", storage=tmp_path, num_samples=2)
    (tmp_path / "same").mkdir()
    (tmp_path / "same" / "raysweep_sweep.json").write_text('{"name": "same"}')
    refuse_a_name_in_use(plan)
    (tmp_path / "same" / "raysweep_sweep.json").write_text('{"name": "same", "nested_cv": 3}')
    with pytest.raises(UserError, match="holds a sweep of that name already"):
        refuse_a_name_in_use(plan)


def test_run_sweep_refuses_a_name_in_use_too(tmp_path) -> None:
    """The Python API refuses what the command line does (before Ray starts: nothing is written)."""
    from raysweep import UserError, run_sweep

    folder = tmp_path / "same"
    folder.mkdir()
    (folder / "raysweep_sweep.json").write_text('{"name": "same"}')
    (folder / "tuner.pkl").write_bytes(b"ray tune's state")
    with pytest.raises(UserError, match=r"^--name same: .* holds a sweep of that name already; pass another --name"):
        run_sweep("random_forest", "iris", name="same", storage=str(tmp_path), num_samples=2, tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert [p.name for p in tmp_path.iterdir()] == ["same"]


@pytest.mark.parametrize("top", ["0", "-3"])
def test_report_refuses_a_top_below_one(tmp_path, top: str) -> None:
    shown = invoke_cli("report", "--top", top, cwd=tmp_path)
    assert shown.returncode == 2
    assert f"Invalid value for '--top': {top} is not in the range x>=1." in shown.stderr


def test_a_sweep_stopped_before_tune_saved_anything_is_one_line_on_resume(tmp_path) -> None:
    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.record import save_plan
    from raysweep.sweep.run import find_resumable

    storage = tmp_path / "results"
    save_plan(plan_sweep("random_forest", "wine", name="early", storage=storage, num_samples=2), None)
    with pytest.raises(UserError) as raised:
        find_resumable("early", str(storage))
    folder = storage / "early"
    # It was Ray Tune's FileNotFoundError for tuner.pkl, with a traceback, once Ray was up.
    assert str(raised.value) == (
        f"sweep early stopped before Ray Tune saved its state ({folder} has no tuner.pkl): nothing to continue; "
        f"remove {folder} and run the sweep again"
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--name", " ", "--name ' ': a sweep's name may not be blank; pass one, or leave --name out for RECIPE-DATASET-TIMESTAMP"),
        ("--register-model", "bad/name:x%", "--register-model 'bad/name:x%': the MLflow Model Registry takes no blank name and none with '/' or ':'; pass a name such as breast-cancer-xgboost"),
        ("--register-model", "", "--register-model '': the MLflow Model Registry takes no blank name and none with '/' or ':'; pass a name such as breast-cancer-xgboost"),
    ],
    ids=["blank name", "model name with / and :", "blank model name"],
)
def test_names_a_sweep_could_not_use_are_refused_before_anything_starts(tmp_path, flag: str, value: str, message: str) -> None:
    # The model's name was refused by MLflow only after the whole sweep, which still exited 0.
    from conftest import run_cli

    done = run_cli("run", "random_forest", "--dataset", "iris", "--num-samples", "2", flag, value, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {message}"]
    assert not (tmp_path / "raysweep_results").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("saved", [False, True], ids=["before tune saved anything", "tune's state saved"])
def test_ctrl_c_before_the_trials_is_exit_130_and_says_whether_there_is_anything_to_resume(tmp_path, saved: bool) -> None:
    """A KeyboardInterrupt that reaches the command line (Ctrl-C while Ray starts) was click's
    "Aborted!", exit 1: it says what is left instead, exit 130."""
    from raysweep.cli.run import _report_when_done
    from raysweep.errors import SweepInterrupted

    if saved:
        (tmp_path / "same").mkdir()
        (tmp_path / "same" / "tuner.pkl").write_bytes(b"ray tune's state")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SweepInterrupted) as raised:
        _report_when_done(interrupted, False, ("same", str(tmp_path)))
    assert raised.value.exit_code == 130
    assert str(raised.value) == (
        f"sweep same interrupted; continue it with: raysweep resume same --storage {tmp_path}" if saved
        else "sweep same interrupted before its trials started: nothing to resume; run it again"
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):  # a nested job's own handling stands
        _report_when_done(interrupted, False, None)


@pytest.mark.parametrize("tracked", [True, False], ids=["tracked", "not tracked"])
def test_ctrl_c_as_a_sweep_ends_complete_says_it_is_complete(tmp_path, tracked: bool) -> None:
    """A Ctrl-C after the sweep's outcome was logged (as Ray shut down) said "interrupted; continue
    it with: raysweep resume", which then said there was nothing to resume."""
    from raysweep.cli.run import _report_when_done
    from raysweep.errors import SweepInterrupted
    from raysweep.sweep import record as sweep_record

    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "tuner.pkl").write_bytes(b"ray tune's state")
    uri = f"sqlite:///{tmp_path}/other.db" if tracked else None
    sweep_record.save(str(tmp_path / "done"), {"name": "done", "storage": str(tmp_path), "options": {"tracking_uri": uri}, "outcome_done": True})

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SweepInterrupted) as raised:
        _report_when_done(interrupted, False, ("done", str(tmp_path)))
    assert raised.value.exit_code == 130
    assert str(raised.value) == "sweep done interrupted as it ended: it is complete, its outcome logged, nothing to resume" + (
        f"; see it with: raysweep report done --tracking-uri {uri}" if tracked else ""
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["run", "random_forest", "--dataset", "iris"], "raysweep: interrupted before the sweep started: nothing was written, nothing to resume"),
        (["resume", "same"], "raysweep: interrupted before the resume started: sweep same is as it was; resume it again"),
    ],
    ids=["run", "resume"],
)
def test_ctrl_c_while_the_input_is_read_is_exit_130_and_one_line(tmp_path, monkeypatch, args: list[str], line: str) -> None:
    """Ctrl-C in a command's first seconds (the data loaded and checked) was click's "Aborted!", exit 1."""
    from click.testing import CliRunner

    from raysweep.cli import main
    from raysweep.sweep import options, run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(options, "plan_sweep", interrupted)
    monkeypatch.setattr(run, "find_resumable", interrupted)
    monkeypatch.chdir(tmp_path)
    outcome = CliRunner().invoke(main, args, prog_name="raysweep")
    assert (outcome.exit_code, outcome.stderr.strip()) == (130, line)


@pytest.mark.parametrize("seed", [-1, 2**32, 99999999999])
def test_a_seed_numpy_cannot_take_is_one_line_before_anything_starts(seed: int) -> None:
    """It failed after Ray started (NumPy's "Seed must be between 0 and 2**32 - 1"), and for a
    regression the split then read the missing class labels: a traceback."""
    from raysweep.sweep.options import plan_sweep

    with pytest.raises(UserError) as raised:
        plan_sweep("random_forest", "diabetes", seed=seed)
    assert str(raised.value) == f"--seed {seed}: a seed is a whole number from 0 to 4294967295"
    assert plan_sweep("random_forest", "diabetes", seed=2**32 - 1).seed == 2**32 - 1


def test_a_grace_period_at_or_past_the_last_step_is_a_note_that_asha_stops_nothing() -> None:
    from raysweep.sweep.options import plan_sweep

    plan = plan_sweep("random_forest", "iris", overrides=["early_stopping.grace_period=20"], scheduler="asha")
    assert plan.notes == [
        "early_stopping.grace_period 20 is not below the 10 steps a trial has, so asha stops no trial early; lower it "
        "(or raise resource.max)"
    ]
    assert plan_sweep("random_forest", "iris", scheduler="asha").notes == []
    assert plan_sweep("random_forest", "iris", overrides=["early_stopping.grace_period=20"], scheduler="fifo").notes == []


def test_with_json_what_the_sweep_prints_on_stdout_goes_to_stderr(monkeypatch, capsys) -> None:
    """--json --verbose: Ray Tune's tables came before the JSON on stdout, and json.load failed."""
    import json

    from raysweep.cli import run as cli_run

    monkeypatch.setattr(cli_run, "report", lambda result, as_json: print(json.dumps(result)))

    def sweep() -> dict:
        print("== Status ==\nTrial status: 2 TERMINATED")  # as Ray Tune's verbose output does
        return {"name": "s"}

    cli_run._report_when_done(sweep, as_json=True)
    out, err = capsys.readouterr()
    assert json.loads(out) == {"name": "s"} and "Trial status" in err


def test_auto_is_resolved_as_ray_resolves_it_and_checked_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """--address auto went straight to ray.init: against a token cluster it took 21 s of Ray's
    retries (and 20 log lines) to fail, and it never got the recorded token of `cluster up --local`."""
    import time

    from raysweep.sweep.connect import prepare_connection

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    began = time.monotonic()
    with pytest.raises(UserError) as raised:
        prepare_connection("auto")
    assert time.monotonic() - began < 10
    # Nothing listens there: the token is not the matter, so no word of it.
    assert str(raised.value) == (
        f"--address auto (127.0.0.1:{port}): cannot connect to a Ray cluster there (Connection refused); check the address "
        "(or leave --address out for a local Ray)"
    )


def test_auto_that_resolves_to_an_address_raysweep_refuses_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from raysweep.sweep.connect import prepare_connection

    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    with pytest.raises(UserError) as raised:
        prepare_connection("auto")
    assert str(raised.value).startswith("--address auto (http://127.0.0.1:8265): that is the address of Ray's dashboard and job server")


def test_json_output_has_no_nan(capsys) -> None:
    """A NaN score (a test roc_auc undefined) was printed as a bare NaN, which strict JSON parsers refuse."""
    import json
    from types import SimpleNamespace

    from raysweep.cli.summary import report

    result = SimpleNamespace(to_dict=lambda: {"test_score": float("nan"), "best_validation_score": 0.9,
                                              "importance": {"a": float("inf")}, "leaderboard": [[1.0, float("-inf")]]})
    report(result, as_json=True)
    printed = capsys.readouterr().out
    assert json.loads(printed, parse_constant=lambda name: pytest.fail(f"{name} in {printed}")) == {
        "test_score": None, "best_validation_score": 0.9, "importance": {"a": None}, "leaderboard": [[1.0, None]],
    }


def test_a_name_whose_sweep_failed_is_not_sent_to_resume(tmp_path) -> None:
    """run --name X said "continue that one with: raysweep resume X", which says a failed sweep has nothing to resume."""
    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.record import refuse_a_name_in_use

    plan = plan_sweep("random_forest", "iris", name="same", storage=tmp_path, num_samples=2)
    (tmp_path / "same").mkdir()
    (tmp_path / "same" / "tuner.pkl").write_bytes(b"ray tune's state")
    (tmp_path / "same" / "raysweep_sweep.json").write_text('{"name": "same", "failed": "every trial failed (2 of 2)"}')
    with pytest.raises(UserError) as raised:
        refuse_a_name_in_use(plan)
    assert str(raised.value) == (
        f"--name same: {tmp_path / 'same'} holds a sweep of that name that failed (every trial failed (2 of 2)); "
        f"pass another --name (or --storage), or remove {tmp_path / 'same'} to use the name again"
    )


def test_a_sweep_given_data_in_memory_is_continued_from_python() -> None:
    from types import SimpleNamespace

    from raysweep.sweep.record import continue_command, sync_command

    assert continue_command(SimpleNamespace(name="my sweep", storage="/r", dataset_spec="iris")) == "raysweep resume 'my sweep' --storage /r"
    assert continue_command(SimpleNamespace(name="a", storage="/r", dataset_spec=None)) == (
        "raysweep.resume_sweep('a', storage='/r', dataset=<the same data>)"
    )
    assert sync_command("my sweep", "/my results") == "raysweep sync 'my sweep' --storage '/my results'"


def test_a_warning_with_brackets_is_printed_as_it_is(capsys) -> None:
    """An MLflow error's text in a warning ([/artifacts]) raised Rich's MarkupError after a finished sweep."""
    import pandas as pd

    from raysweep.cli.summary import report
    from raysweep.sweep.result import SweepResult

    result = SweepResult(
        name="a", recipe="random_forest", dataset="iris", task="classification", metric="accuracy", mode="max",
        best_config={"max_depth": 5}, best_resource=60, best_validation_score=0.9, test_score=0.9, num_trials=1, num_errors=0,
        num_stopped_early=0, leaderboard=pd.DataFrame({"trial": ["trial-0000"], "val_accuracy": [0.9]}), model=object(),
        classes=None, storage_path="/x", warnings=["could not log the refit model in MLflow: no such path [/artifacts] [model]"],
    )  # fmt: skip
    report(result, as_json=False)
    assert "warning: could not log the refit model in MLflow: no such path [/artifacts] [model]" in capsys.readouterr().out


def test_reports_best_config_cut_by_mlflow_is_its_text() -> None:
    from raysweep.cli.review import _best_config
    from raysweep.tracking import schema

    assert _best_config({schema.BEST_CONFIG: '{"a": 1}'}) == {"a": 1}
    assert _best_config({schema.BEST_CONFIG: '{"a": "xxxx'}) == '{"a": "xxxx'  # MLflow keeps 5000 characters of a tag
    assert _best_config({}) is None


def test_a_time_budget_that_ran_out_first_is_said_with_the_trials_it_left(tmp_path, capsys, monkeypatch) -> None:
    """`--num-samples 500 --time-budget 8` printed `trials: 158 (...)`, with no word that the
    budget had ended the sweep or of the trials it never ran."""
    from types import SimpleNamespace

    from raysweep.cli.summary import report
    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.result import _budget_ran_out

    def plan(**options):
        return plan_sweep("random_forest", "iris", storage=str(tmp_path), **options)

    assert _budget_ran_out(plan(num_samples=500, time_budget=8), 158) == "the time budget of 8 s ran out first: 158 of 500 trials ran"
    assert _budget_ran_out(plan(num_samples=500, time_budget=8), 500) is None  # the count came first
    assert _budget_ran_out(plan(time_budget=8), 158) is None  # trials fill the budget: nothing left unrun
    assert _budget_ran_out(plan(num_samples=500), 158) is None
    grid = plan(searcher="grid", num_samples=1, time_budget=8)
    assert _budget_ran_out(grid, 5) == "the time budget of 8 s ran out first: 5 of 27 trials ran"  # the header's 27 trials (1 pass)
    result = SimpleNamespace(
        leaderboard=[], best_config={}, best_validation_score=0.9, best_resource=20, metric="accuracy", test_score=0.9, num_trials=158,
        num_stopped_early=43, num_errors=0, elapsed_s=8.4, warm_start_trials=None, warnings=[], stopped_by=None, tracking_uri=None,
        budget_ran_out="the time budget of 8 s ran out first: 158 of 500 trials ran",
    )  # fmt: skip
    import raysweep.cli.summary as summary

    monkeypatch.setattr(summary, "print_leaderboard", lambda *args, **kwargs: None)
    report(result, False)
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("trials: 158 (43 stopped early, 0 failed) in 8.4s")
    assert lines[at + 1] == "the time budget of 8 s ran out first: 158 of 500 trials ran"
