"""``raysweep ui`` and ``raysweep report``: a sweep reviewed in the MLflow UI, or in the terminal.

``raysweep ui`` serves the MLflow UI on 127.0.0.1 for the sweep's store and prints the links
of the newest sweep: its trials, its trials compared, its parent run; ``raysweep report SWEEP``
prints a sweep's leaderboard, best config, scores and where its plots are. Ray and MLflow are
imported inside the commands, so ``raysweep --help`` stays fast.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from raysweep.cli.summary import json_ready, print_families, print_leaderboard, print_nested
from raysweep.errors import UserError
from raysweep.tracking import importance, schema
from raysweep.tracking.queries import (
    artifact_location, experiments_with_sweep, find_sweep, first_failed_trial, leaderboard, metric_and_mode, newest_sweep,
    open_store, target_sweep, unknown_sweep,
)  # fmt: skip
from raysweep.tracking.store import sqlite_path
from raysweep.tracking.views import ML_WORKFLOW_QUERY, experiment_runs_url, sweep_links

DEFAULT_UI_PORT = 5000
LOOPBACK = "127.0.0.1"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _wait_until_up(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
            last = lines[-1] if lines else f"exit code {process.returncode}"
            raise UserError(f"the MLflow UI server stopped while starting ({last}); its log: {log_path}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    stop_server(process)
    raise UserError(f"the MLflow UI server did not answer at {url} within {timeout:.0f}s; its log: {log_path}")


def server_environment() -> dict[str, str]:
    """The environment of the ``mlflow server`` the UI runs: MLflow's job runner off unless the user
    set ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``. The runner serves MLflow's GenAI jobs, which a sweep
    never uses; it starts eight more Python processes, which here took 21-24 s of CPU in the
    server's first 20 s and 1.5-3 s more until the UI answered."""
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")}


def stop_server(process: subprocess.Popen) -> None:
    """Stop an ``mlflow server`` started in a session of its own and the processes it started (its
    process group: a SIGTERM to the server alone leaves uvicorn, and the job runner, running)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(5)


@click.command("ui", short_help="Open a sweep's trials in the MLflow UI, served on 127.0.0.1.")
@click.option("--tracking-uri", help="The sweep's MLflow store (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here).")
@click.option("--port", type=int, default=DEFAULT_UI_PORT, show_default=True, help="Port of the UI on 127.0.0.1.")
@click.option("--experiment", help="Open this experiment (default: the one of the newest sweep).")
@click.option("--sweep", help="Open this sweep's trials (default: the newest sweep).")
@click.option("--no-browser", is_flag=True, help="Only print the links; do not open a browser.")
def ui_command(tracking_uri: str | None, port: int, experiment: str | None, sweep: str | None, no_browser: bool) -> None:
    """Serve the MLflow UI for the sweep's store on 127.0.0.1 and print the sweep's links.

    trials: (opened in the browser) the sweep's trial runs sorted by the validation metric, with
    the metric and the searched parameters as columns; charts: the same trials as MLflow's charts;
    compare: the best trials side by side with plots; sweep: the sweep's own run; sweeps: the
    experiment's sweeps, one row each. Of a nested validation (--nested-cv): the final
    sweep's trials, and folds: its sweeps as rows. With an http(s) tracking URI the server is already
    running: the links are printed and nothing is started (--port is not used). Otherwise the UI serves until Ctrl-C.
    """
    from raysweep.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    remote = uri.startswith(("http://", "https://"))
    if not remote and not 1 <= port <= 65535:
        raise UserError(f"--port {port}: must be between 1 and 65535")
    client = open_store(uri)
    experiment_id, sweep_run = target_sweep(client, uri, experiment, sweep)
    database = sqlite_path(uri)
    backend = f"sqlite:///{database}" if database is not None else uri

    if remote:
        if click.get_current_context().get_parameter_source("port") is not click.core.ParameterSource.DEFAULT:
            click.echo(f"raysweep: --port {port} is left unused: {uri} serves the UI already (nothing is started)", err=True)
        _announce(_links(client, uri.rstrip("/"), experiment_id, sweep_run), experiment_id, sweep_run, no_browser)
        return

    if not _port_free(port):
        raise UserError(f"--port {port}: {LOOPBACK}:{port} is already in use; pass another --port")
    log_path = Path(tempfile.gettempdir()) / f"raysweep-ui-{port}.log"
    base_url = f"http://{LOOPBACK}:{port}"
    links = _links(client, base_url, experiment_id, sweep_run)  # publishes the view before the server reads the store
    # Relative artifact locations in the store are relative to where the sweep ran: the folder
    # of the database for the default store.
    workdir = database.parent if database is not None else Path.cwd()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", LOOPBACK, "--port", str(port),
             "--backend-store-uri", backend, "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True, env=server_environment(),
        )
    # `kill` (SIGTERM) must stop the server too, not only Ctrl-C.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        click.echo(f"raysweep: starting the MLflow UI for {backend} (log: {log_path}) ...", err=True)
        _wait_until_up(base_url, process, log_path, timeout=120)
        _announce(links, experiment_id, sweep_run, no_browser)
        click.echo("raysweep: serving until Ctrl-C", err=True)
        code = process.wait()
        if code:
            raise UserError(f"the MLflow UI server stopped (exit code {code}); its log: {log_path}")
    except KeyboardInterrupt:
        click.echo("raysweep: stopping the MLflow UI", err=True)
    finally:
        stop_server(process)
        signal.signal(signal.SIGTERM, previous)


def _links(client: Any, base_url: str, experiment_id: str | None, sweep_run: Any) -> list[tuple[str, str]]:
    if experiment_id is None:
        return [("experiments", f"{base_url}/#/experiments?{ML_WORKFLOW_QUERY}")]
    if sweep_run is None:
        return [("runs", experiment_runs_url(base_url, experiment_id))]
    return sweep_links(client, base_url, sweep_run)


def _announce(links: list[tuple[str, str]], experiment_id: str | None, sweep_run: Any, no_browser: bool) -> None:
    """Print the links (``label: URL`` on stdout) and open the first one in a browser."""
    if experiment_id is None:
        click.echo("raysweep: no sweep in this store yet; opening the experiments list", err=True)
    elif sweep_run is not None:
        metric_key, mode = metric_and_mode(sweep_run)
        click.echo(f"raysweep: sweep {sweep_run.data.tags.get(schema.SWEEP, sweep_run.info.run_name)} "
                   f"(experiment {experiment_id}): its trials, {'lowest' if mode == 'min' else 'highest'} {metric_key} first", err=True)
    width = max(len(label) for label, _ in links) + 1
    for label, url in links:
        click.echo(f"{label + ':':<{width}} {url}")
    if not no_browser:
        import webbrowser

        webbrowser.open(links[0][1])


@click.command("report", short_help="Print a sweep's leaderboard, best config, scores and plots.")
@click.argument("sweep", required=False)
@click.option("--latest", is_flag=True, help="Report the newest sweep in the store (also what no SWEEP means).")
@click.option("--tracking-uri", help="The sweep's MLflow store (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here).")
@click.option("--experiment", help="The experiment to look in (default: every one; a name two experiments share is the newest sweep's).")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="How many trials of the leaderboard to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout: the keys of run --json that MLflow holds, the status, the leaderboard's top rows.")
def report_command(sweep: str | None, latest: bool, tracking_uri: str | None, experiment: str | None, top: int, as_json: bool) -> None:
    """Print SWEEP's leaderboard, best config, scores and where its plots are (default: the newest sweep).

    SWEEP is a sweep's name or its MLflow run id (the id picks one of two sweeps of one name)."""
    from rich.console import Console

    from raysweep.tracking.store import resolve_tracking_uri

    if sweep and latest:
        raise UserError(f"--latest with sweep {sweep}: pass a sweep's name or --latest, not both")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = resolve_tracking_uri(tracking_uri)
    client = open_store(uri)
    if experiment:
        run = target_sweep(client, uri, experiment, sweep, named_by="sweep")[1]
        if run is None:
            raise UserError(f"--experiment {experiment}: it holds no raysweep sweep yet")
    else:
        run = find_sweep(client, sweep) if sweep else newest_sweep(client, uri)
        if run is None:
            raise unknown_sweep(client, sweep, uri)
        shared = experiments_with_sweep(client, sweep) if sweep else []
        if len(shared) > 1:
            click.echo(
                f"note: experiments {', '.join(shared)} each hold a sweep named {sweep}; this is the newest, in {shared[0]} "
                f"(another: --experiment {shared[1]})",
                err=True,
            )
    if sweep and sweep != run.info.run_id:
        _note_same_named(client, run)
    sweep = run.data.tags.get(schema.SWEEP, run.info.run_name)
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    metric = tags.get(schema.METRIC) or params.get("metric", "")
    metric_key = schema.validation_metric(metric)
    # Sweep names and configs hold brackets: print them as they are, not as rich markup.
    console = Console(highlight=False, markup=False)
    if not console.is_terminal:
        console = Console(highlight=False, markup=False, width=160)

    experiment = client.get_experiment(run.info.experiment_id)
    if as_json:
        click.echo(json.dumps(json_ready(_report_object(client, run, uri, experiment.name, top)), default=str, allow_nan=False))
        return
    console.print(f"sweep {sweep} ({run.info.status}), experiment {experiment.name} (id {run.info.experiment_id}), run {run.info.run_id}")
    console.print(
        f"{tags.get(schema.RECIPE, '?')} on {tags.get(schema.DATASET, '?')} ({tags.get(schema.TASK, '?')}), "
        f"{tags.get(schema.SCHEDULER, '?')} + {tags.get(schema.SEARCHER, '?')}, metric {metric} ({params.get('mode', '?')})"
    )
    try:
        plots = [item.path for item in client.list_artifacts(run.info.run_id, schema.PLOTS_DIR)]
        logged = {item.path for item in client.list_artifacts(run.info.run_id)}
    except Exception:
        plots, logged = [], {schema.LEADERBOARD_FILE}
    board = leaderboard(client, run)
    if len(board) or schema.NESTED_CV not in tags:  # an unfinished nested validation has none yet: its sweeps are listed below
        print_leaderboard(console, board, metric_key, top=top)

    best_key, test_key = schema.best_metric(metric), schema.test_metric(metric)
    if schema.BEST_CONFIG in tags:
        console.print(f"best config: {tags[schema.BEST_CONFIG]}", soft_wrap=True)
    if best_key in metrics:
        console.print(f"best validation {metric}: {metrics[best_key]:.5g} (at resource {params.get(schema.best_param('resource'), '?')})")
    if test_key in metrics and schema.NESTED_FOLD in tags:  # an outer fold's sweep is scored on that fold's held-out rows
        console.print(f"{metric} of the refit model on outer fold {tags[schema.NESTED_FOLD]}'s held-out rows: {metrics[test_key]:.5g}")
    elif test_key in metrics:
        console.print(f"test {metric} of the refit model: {metrics[test_key]:.5g}")
    if schema.NESTED_CV in tags:
        _print_nested_job(client, run, logged, metric, params.get("mode", "max"), metrics.get(test_key), console)
    if schema.NUM_TRIALS in metrics:
        console.print(
            f"trials: {int(metrics[schema.NUM_TRIALS])} ({int(metrics.get(schema.NUM_STOPPED_EARLY, 0))} stopped early, "
            f"{int(metrics.get(schema.NUM_ERRORS, 0))} failed)"
        )
    elif run.info.status != "FINISHED" and "outcome" in board.columns:
        outcomes = board["outcome"].value_counts()
        console.print(
            f"trials: {len(board)} ({int(outcomes.get(schema.OUTCOME_STOPPED, 0))} stopped early, "
            f"{int(outcomes.get(schema.OUTCOME_FAILED, 0))} failed), from the trial runs"
        )
    if "family" in board.columns and board["family"].notna().any():  # an auto sweep: its families, as its summary said
        from raysweep.best import family_bests

        names = list(dict.fromkeys(board["family"].dropna().astype(str)))
        print_families(console, family_bests(board, metric_key, params.get("mode", "max"), names), metric)
    if run.info.status == "FAILED":
        console.print(f"the sweep failed: {tags.get(schema.ERROR, 'no reason recorded')}", soft_wrap=True)
    elif run.info.status != "FINISHED" and schema.NESTED_CV in tags:
        console.print(f"the nested validation did not finish ({run.info.status}): raysweep resume {shlex.quote(sweep)} goes on with it", soft_wrap=True)
    elif run.info.status != "FINISHED":
        console.print(f"the sweep did not finish ({run.info.status}): the leaderboard is rebuilt from its trial runs", soft_wrap=True)
        if run.info.status == "RUNNING":  # or its command was killed (SIGKILL, a lost machine) and left it so
            console.print(
                f"if its command is no longer running, continue it with: raysweep resume {shlex.quote(sweep)} "
                "(--storage where it ran, if not ./raysweep_results)",
                soft_wrap=True,
            )
    if "outcome" in board.columns and (board["outcome"] == schema.OUTCOME_FAILED).any():
        first = first_failed_trial(client, run)
        if first is not None:
            error = schema.error_headline(first.data.tags.get(schema.ERROR, "")) or "?"
            console.print(f"first failed trial: {first.info.run_name}: {error}", soft_wrap=True)
    if tags.get(schema.STOPPED_BY):  # as the sweep's own summary said it
        console.print(f"sweep stopped early: {tags[schema.STOPPED_BY]}", soft_wrap=True)
    ranked = schema.importances(metrics)
    if ranked:
        console.print(
            f"parameter importance ({importance.METHOD} over {tags.get(schema.IMPORTANCE_TRIALS, '?')} trials, each at its last score): "
            + ", ".join(f"{name} {share:.2f}" for name, share in ranked.items()),
            soft_wrap=True,
        )
    elif schema.IMPORTANCE_SKIPPED in tags:
        console.print(f"parameter importance: none ({tags[schema.IMPORTANCE_SKIPPED]})", soft_wrap=True)
    if schema.MODEL_URI in tags:
        registered = tags.get(schema.REGISTERED_MODEL)
        console.print(
            f"model: {tags[schema.MODEL_URI]} ({tags.get(schema.MODEL_FLAVOR, '?')} flavor)"
            + (f", registered as {registered}" if registered else "")
        )

    if plots:
        console.print("plots:")
        for path in plots:
            console.print(f"  {artifact_location(run, path, uri)}", soft_wrap=True)
    else:
        console.print("plots: none recorded")
    if schema.LEADERBOARD_FILE in logged:
        console.print(f"leaderboard CSV: {artifact_location(run, schema.LEADERBOARD_FILE, uri)}", soft_wrap=True)
    else:  # a sweep that failed, or stopped before its end: the leaderboard above is rebuilt from its trial runs
        console.print("leaderboard CSV: none recorded", soft_wrap=True)
    console.print(f"artifacts: {run.info.artifact_uri}", soft_wrap=True)
    if uri.startswith(("http://", "https://")):
        for label, url in sweep_links(client, uri, run):
            console.print(f"in the MLflow UI ({label}): {url}", soft_wrap=True)
    else:
        console.print(f"in the MLflow UI: raysweep ui --tracking-uri {shlex.quote(uri)} --sweep {shlex.quote(sweep)}", soft_wrap=True)


def _note_same_named(client: Any, run: Any) -> None:
    """Say so when the experiment holds other sweeps of this name: the newest is reported, and
    the others are reached by their run id."""
    from raysweep.tracking.queries import same_named_sweeps

    others = same_named_sweeps(client, run)
    if not others:
        return
    name = run.data.tags.get(schema.SWEEP, run.info.run_name)
    started = datetime.datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d %H:%M")
    click.echo(
        f"note: {len(others) + 1} sweeps are named {name} in this experiment; this is the newest (started {started}); "
        f"an older one: {shlex.join(['raysweep', 'report', others[0].info.run_id])}",
        err=True,
    )


def _report_object(client: Any, run: Any, uri: str, experiment_name: str, top: int) -> dict[str, Any]:
    """What ``report --json`` prints: the keys of ``run --json`` (:meth:`raysweep.sweep.result.SweepResult.to_dict`)
    that the sweep's MLflow run holds (None where it holds none: a sweep that failed or did not finish),
    its status and error, and the leaderboard's ``top`` rows, each with its config."""
    import math

    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    metric = tags.get(schema.METRIC) or params.get("metric", "")
    metric_key = schema.validation_metric(metric)
    board = leaderboard(client, run)

    def plain(value: Any) -> Any:
        value = value.item() if hasattr(value, "item") else value
        return None if isinstance(value, float) and math.isnan(value) else value

    def counted(key: str) -> int | None:
        return int(metrics[key]) if key in metrics else None

    name_column = "trial" if "trial" in board.columns else "trial_id"
    rows = []
    for row in board.head(top).to_dict("records"):
        entry = {key: plain(row.get(column)) for key, column in
                 (("trial", name_column), ("family", "family"), ("score", metric_key), ("resource", "resource"),
                  ("outcome", "outcome"), ("stop_detail", schema.STOP_DETAIL_RESULT)) if column in board.columns}
        entry["config"] = {column.removeprefix("config/"): plain(value) for column, value in row.items()
                           if column.startswith("config/") and plain(value) is not None}
        rows.append(entry)
    best_resource = params.get(schema.best_param("resource"))
    return {
        "name": tags.get(schema.SWEEP, run.info.run_name),
        "status": run.info.status,
        "error": tags.get(schema.ERROR),
        "recipe": tags.get(schema.RECIPE),
        "dataset": tags.get(schema.DATASET),
        "task": tags.get(schema.TASK),
        "scheduler": tags.get(schema.SCHEDULER),
        "searcher": tags.get(schema.SEARCHER),
        "metric": metric,
        "mode": params.get("mode"),
        "best_config": _best_config(tags),
        "best_resource": _number(best_resource),
        "best_validation_score": metrics.get(schema.best_metric(metric)),
        "test_score": metrics.get(schema.test_metric(metric)),
        "num_trials": counted(schema.NUM_TRIALS),
        "num_errors": counted(schema.NUM_ERRORS),
        "num_stopped_early": counted(schema.NUM_STOPPED_EARLY),
        "tracking_uri": uri,
        "experiment": experiment_name,
        "experiment_id": run.info.experiment_id,
        "parent_run_id": run.info.run_id,
        "model_uri": tags.get(schema.MODEL_URI),
        "registered_model": tags.get(schema.REGISTERED_MODEL),
        "importance": schema.importances(metrics),
        "stopped_by": tags.get(schema.STOPPED_BY) or None,
        "leaderboard": rows,
        "families": _families(board, metric_key, params.get("mode", "max")),
    } | _nested(client, run, metric, params.get("mode", "max"))


def _families(board: Any, metric_key: str, mode: str) -> dict[str, Any]:
    """An auto sweep's families, each with its best (as its summary and ``run --json`` have them); {} otherwise."""
    if "family" not in board.columns or not board["family"].notna().any():
        return {}
    from raysweep.best import family_bests

    return family_bests(board, metric_key, mode, list(dict.fromkeys(board["family"].dropna().astype(str))))


def _nested(client: Any, run: Any, metric: str, mode: str) -> dict[str, Any]:
    """``{"nested": ...}`` of a finished nested validation, as ``run --json`` has it; {} otherwise."""
    if schema.NESTED_CV not in run.data.tags:
        return {}
    try:
        logged = {item.path for item in client.list_artifacts(run.info.run_id)}
        estimate = _nested_estimate(client, run, logged, metric, mode)
    except Exception:  # its table could not be read: the text report says so
        estimate = None
    return {"nested": estimate.to_dict() if estimate is not None else None}


def _best_config(tags: dict[str, str]) -> Any:
    """The best config from its tag: a mapping, or the tag's text when it is not whole JSON (MLflow
    keeps 5000 characters of a tag, and a longer config is cut)."""
    text = tags.get(schema.BEST_CONFIG)
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return text


def _number(text: str | None) -> int | float | None:
    """A number MLflow keeps as a param's text (``"20"``, ``"0.5"``) as the number; None for none."""
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _nested_estimate(client: Any, run: Any, logged: set[str], metric: str, mode: str) -> Any:
    """A finished nested validation's estimate (:class:`raysweep.sweep.nested.NestedEstimate`), from
    the job's ``nested_folds.json`` (``logged``: the run's artifacts); None before it finished."""
    from raysweep.sweep.nested import FoldScore, NestedEstimate

    if schema.NESTED_FOLDS_FILE not in logged:
        return None
    with tempfile.TemporaryDirectory() as folder:
        table = json.loads(Path(client.download_artifacts(run.info.run_id, schema.NESTED_FOLDS_FILE, folder)).read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    folds = [FoldScore(int(row["fold"]), float(row["score"]), float(row["inner_best"]), json.loads(row["config"])) for row in rows]
    return NestedEstimate(metric, mode, sorted(folds, key=lambda fold: fold.fold))


def _print_nested_job(client: Any, run: Any, logged: set[str], metric: str, mode: str, test_score: float | None, console: Any) -> None:
    """A nested validation's own part of its report: the folds' table and the nested estimate (as the
    run's summary prints them), from the job's ``nested_folds.json`` (``logged``: the run's artifacts);
    of a job not finished, its sweeps."""
    from raysweep.tracking.queries import child_runs

    try:
        estimate = _nested_estimate(client, run, logged, metric, mode)
        if estimate is not None:
            print_nested(estimate, test_score, console)
            return
    except Exception as error:  # the estimate is one part of the report: say why it is missing
        console.print(f"nested validation: its folds' table could not be read ({error})", soft_wrap=True)
        return
    parts = sorted(child_runs(client, run), key=lambda part: part.data.tags.get(schema.SWEEP, part.info.run_name))
    listed = ", ".join(f"{part.data.tags.get(schema.SWEEP, part.info.run_name)} ({part.info.status})" for part in parts)
    console.print(
        f"nested validation ({run.data.tags[schema.NESTED_CV]} outer folds): no estimate yet, the job did not finish"
        + (f"; its sweeps: {listed}" if listed else ""),
        soft_wrap=True,
    )
