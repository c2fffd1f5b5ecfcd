"""Reviewing sweeps after they ran: the MLflow UI opened on a sweep's trials, and a terminal report.

``raysweep ui`` serves the MLflow UI on 127.0.0.1 for the sweep's store and prints the links
of the newest sweep: its trials, its trials compared, its parent run; ``raysweep report SWEEP``
prints a sweep's leaderboard, best config, scores and where its plots are.

MLflow 3.17's UI opens an experiment in its GenAI views (an overview of traces, no runs) unless
the page says otherwise: it reads the ``workflowType`` query parameter (else the browser's
saved choice, GenAI by default) and ignores the ``mlflow.experimentKind`` experiment tag. The
runs-table URLs printed here carry ``workflowType=machine_learning``.

The runs table picks its columns only from a shared view (the UI's own "share" mechanism: an
experiment tag ``mlflow.sharedViewState.<key>`` holding the view as JSON, opened by
``viewStateShareKey=<key>``) or from the browser's storage. A shared view cannot expand a
parent run (the UI drops ``runsExpanded``) and is ignored when the URL carries search
parameters of its own, so raysweep's view selects the trial runs themselves (by their
``mlflow.parentRunId`` tag), sorts them by the validation metric and picks the metric, the
outcome and the searched parameters as columns. The UI shows its "You're viewing a shared
view" banner above it. The compare-runs page (no banner) puts the trials' parameters and
metrics side by side with parallel-coordinates, scatter and contour plots.

Ray and MLflow are imported inside the commands, so ``raysweep --help`` stays fast.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import click

from raysweep.errors import UserError

__all__ = [
    "compare_runs_url", "experiment_runs_url", "find_sweep", "publish_sweep_view", "recent_sweeps", "report_command",
    "run_url", "sweep_links", "ui_command",
]

#: the query that makes MLflow 3.17's UI show the model-training views of an experiment
ML_WORKFLOW_QUERY = "workflowType=machine_learning"
#: prefix of the experiment tags in which MLflow's UI keeps shared runs-table views
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
#: only parent (sweep) runs carry this tag; trial runs do not
_SWEEP_RUN_FILTER = "tags.`raysweep.recipe` LIKE '%'"
#: the compare-runs link holds at most this many trials (the best ones): its URL lists their ids
COMPARE_MAX_RUNS = 50
DEFAULT_UI_PORT = 5000
LOOPBACK = "127.0.0.1"


# -- finding sweeps ------------------------------------------------------------------------------
def _client(uri: str) -> Any:
    """An MLflow client for an existing store: a missing sqlite file is an error, not a new store."""
    from mlflow.tracking import MlflowClient

    from raysweep.tracking.store import check_reachable

    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        raise UserError(
            f"--tracking-uri {uri}: no MLflow store at {database}; run a sweep here first, "
            "or pass the --tracking-uri the sweep logged to (or set MLFLOW_TRACKING_URI)"
        )
    check_reachable(uri)
    return MlflowClient(uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):]).expanduser().resolve()


def _experiment_ids(client: Any) -> list[str]:
    return [experiment.experiment_id for experiment in client.search_experiments(max_results=50000)]


def recent_sweeps(client: Any, limit: int = 10, experiment_ids: list[str] | None = None) -> list[Any]:
    """The newest sweep (parent) runs in the store, newest first."""
    ids = experiment_ids if experiment_ids is not None else _experiment_ids(client)
    if not ids:
        return []
    return list(
        client.search_runs(ids, filter_string=_SWEEP_RUN_FILTER, order_by=["attributes.start_time DESC"], max_results=limit)
    )


def _quoted(value: str) -> str:
    return f'"{value}"' if "'" in value else f"'{value}'"


def find_sweep(client: Any, name: str, experiment_ids: list[str] | None = None) -> Any | None:
    """The newest sweep run named ``name`` (tag ``raysweep.sweep``), or None."""
    ids = experiment_ids if experiment_ids is not None else _experiment_ids(client)
    if not ids:
        return None
    runs = client.search_runs(
        ids,
        filter_string=f"tags.`raysweep.sweep` = {_quoted(name)} AND {_SWEEP_RUN_FILTER}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _unknown_sweep(client: Any, name: str, uri: str) -> UserError:
    names = [run.data.tags.get("raysweep.sweep", run.info.run_name) for run in recent_sweeps(client)]
    if not names:
        return UserError(f"no sweep named {name!r} in {uri}: it holds no raysweep sweeps yet; run one with `raysweep run`")
    return UserError(f"no sweep named {name!r} in {uri}; recent sweeps: {', '.join(names)}")


def _trials_filter(sweep_run: Any) -> str:
    """The search filter that selects a sweep's trial runs (and not the sweep's own run)."""
    return f"tags.`mlflow.parentRunId` = '{sweep_run.info.run_id}'"


def _child_runs(client: Any, sweep_run: Any, order_by: list[str] | None = None, max_results: int = 50000) -> list[Any]:
    return list(
        client.search_runs(
            [sweep_run.info.experiment_id], filter_string=_trials_filter(sweep_run), order_by=order_by, max_results=max_results
        )
    )


def _metric_and_mode(sweep_run: Any) -> tuple[str, str]:
    """The sweep's validation metric key (``val_<metric>``) and its mode (``max`` or ``min``)."""
    tags, params = sweep_run.data.tags, sweep_run.data.params
    return f"val_{tags.get('raysweep.metric') or params.get('metric', '')}", params.get("mode", "max")


# -- the UI --------------------------------------------------------------------------------------
def experiment_runs_url(base_url: str, experiment_id: str, share_key: str | None = None) -> str:
    """The MLflow 3.17 UI URL of an experiment's model-training runs table (optionally a shared view)."""
    url = f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{ML_WORKFLOW_QUERY}"
    if share_key:
        url += "&viewStateShareKey=" + urllib.parse.quote(share_key, safe="")
    return url


def compare_runs_url(base_url: str, experiment_id: str, run_ids: list[str]) -> str:
    """The MLflow UI URL of the compare-runs page of ``run_ids`` (parameters, metrics and plots)."""
    runs = urllib.parse.quote(json.dumps(run_ids, separators=(",", ":")), safe="")
    experiments = urllib.parse.quote(json.dumps([experiment_id]), safe="")
    return f"{base_url.rstrip('/')}/#/compare-runs?runs={runs}&experiments={experiments}&{ML_WORKFLOW_QUERY}"


def run_url(base_url: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI URL of one run's page (its parameters, metrics, artifacts and logged models)."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{ML_WORKFLOW_QUERY}"


def _share_key(sweep_name: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]", "-", sweep_name)[:200]
    if readable != sweep_name:
        import hashlib

        readable += "-" + hashlib.sha1(sweep_name.encode()).hexdigest()[:8]
    return f"raysweep-{readable}"


def _column(kind: str, key: str) -> str:
    """A runs-table column id, also the form of an ``orderByKey``: ``metrics.`val_accuracy```."""
    return f"{kind}.`{key}`"


def publish_sweep_view(client: Any, sweep_run: Any) -> str:
    """Store a shared runs-table view of the sweep's trials on its experiment; returns its share key.

    The view lists the sweep's trial runs as rows, best validation score first, with the
    validation metric, each trial's outcome and duration and the searched parameters as columns.
    """
    params = sweep_run.data.params
    metric_key, mode = _metric_and_mode(sweep_run)
    searched = sorted(k.removeprefix("best.") for k in params if k.startswith("best.") and k != "best.resource")
    if not searched:  # a sweep that ended before its summary: take a trial's params
        children = _child_runs(client, sweep_run, max_results=1)
        searched = sorted(children[0].data.params) if children else []
    columns = [_column("metrics", metric_key), _column("tags", "raysweep.outcome")]
    columns += [_column("params", name) for name in searched]
    columns += [_column("attributes", "Duration")]
    # Keys the UI reads from a shared view (MLflow 3.17): the search facets searchFilter,
    # orderByKey, orderByAsc, startTime, lifecycleFilter, datasetsFilter, modelVersionFilter, and
    # the table state selectedColumns, runsHiddenMode, ... (runsExpanded, runsPinned and
    # runsHidden are dropped). Sorting by a metric also stops the table nesting runs.
    view = {
        "searchFilter": _trials_filter(sweep_run),
        "orderByKey": _column("metrics", metric_key),
        "orderByAsc": mode == "min",
        "selectedColumns": columns,
        "runsHiddenMode": "SHOW_ALL",
    }
    key = _share_key(sweep_run.data.tags.get("raysweep.sweep", sweep_run.info.run_name))
    client.set_experiment_tag(sweep_run.info.experiment_id, SHARED_VIEW_TAG_PREFIX + key, json.dumps(view))
    return key


def sweep_links(client: Any, base_url: str, sweep_run: Any) -> list[tuple[str, str]]:
    """The UI links of a sweep, most useful first, as (label, URL); publishes its shared view.

    ``trials``: the trial runs as rows sorted by the validation metric, with the metric and the
    searched parameters as columns; ``compare``: the best trials' parameters and metrics side by
    side with plots; ``sweep``: the sweep's own run (best config, test score, model, plots).
    """
    experiment_id, run_id = sweep_run.info.experiment_id, sweep_run.info.run_id
    links = [("trials", experiment_runs_url(base_url, experiment_id, publish_sweep_view(client, sweep_run)))]
    metric_key, mode = _metric_and_mode(sweep_run)
    order = f"metrics.`{metric_key}` {'ASC' if mode == 'min' else 'DESC'}"
    best = [run.info.run_id for run in _child_runs(client, sweep_run, order_by=[order], max_results=COMPARE_MAX_RUNS)]
    if best:
        links.append(("compare", compare_runs_url(base_url, experiment_id, best)))
    links.append(("sweep", run_url(base_url, experiment_id, run_id)))
    return links


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
    _stop(process)
    raise UserError(f"the MLflow UI server did not answer at {url} within {timeout:.0f}s; its log: {log_path}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and the workers it started (its own process group)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def _target_sweep(client: Any, uri: str, experiment: str | None, sweep: str | None) -> tuple[str | None, Any | None]:
    """The experiment id and sweep run the UI should open (None, None for an empty store)."""
    ids = None
    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            names = [e.name for e in client.search_experiments(max_results=20, order_by=["last_update_time DESC"])]
            raise UserError(f"--experiment {experiment}: no such experiment in {uri}; experiments there: {', '.join(names) or '(none)'}")
        ids = [found.experiment_id]
    if sweep:
        run = find_sweep(client, sweep, ids)
        if run is None:
            raise _unknown_sweep(client, sweep, uri)
        return run.info.experiment_id, run
    newest = recent_sweeps(client, 1, ids)
    if newest:
        return newest[0].info.experiment_id, newest[0]
    return (ids[0] if ids else None), None


@click.command("ui", short_help="Open a sweep's trials in the MLflow UI, served on 127.0.0.1.")
@click.option("--tracking-uri", help="The sweep's MLflow store (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here).")
@click.option("--port", type=int, default=DEFAULT_UI_PORT, show_default=True, help="Port of the UI on 127.0.0.1.")
@click.option("--experiment", help="Open this experiment (default: the one of the newest sweep).")
@click.option("--sweep", help="Open this sweep's trials (default: the newest sweep).")
@click.option("--no-browser", is_flag=True, help="Only print the links; do not open a browser.")
def ui_command(tracking_uri: str | None, port: int, experiment: str | None, sweep: str | None, no_browser: bool) -> None:
    """Serve the MLflow UI for the sweep's store on 127.0.0.1 and print the sweep's links.

    trials: (opened in the browser) the sweep's trial runs sorted by the validation metric, with
    the metric and the searched parameters as columns; compare: the best trials side by side
    with plots; sweep: the sweep's own run. With an http(s) tracking URI the server is already
    running: the links are printed and nothing is started. Otherwise the UI serves until Ctrl-C.
    """
    from raysweep.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    remote = uri.startswith(("http://", "https://"))
    if not remote and not 1 <= port <= 65535:
        raise UserError(f"--port {port}: must be between 1 and 65535")
    client = _client(uri)
    experiment_id, sweep_run = _target_sweep(client, uri, experiment, sweep)
    database = sqlite_path(uri)
    backend = f"sqlite:///{database}" if database is not None else uri

    if remote:
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
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
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
        _stop(process)
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
        metric_key, mode = _metric_and_mode(sweep_run)
        click.echo(f"raysweep: sweep {sweep_run.data.tags.get('raysweep.sweep', sweep_run.info.run_name)} "
                   f"(experiment {experiment_id}): its trials, {'lowest' if mode == 'min' else 'highest'} {metric_key} first", err=True)
    width = max(len(label) for label, _ in links) + 1
    for label, url in links:
        click.echo(f"{label + ':':<{width}} {url}")
    if not no_browser:
        import webbrowser

        webbrowser.open(links[0][1])


# -- the terminal report ------------------------------------------------------------------------
def _leaderboard(client: Any, sweep_run: Any) -> Any:
    """The sweep's leaderboard: its leaderboard.csv artifact, else rebuilt from the trial runs.

    Either way a trial's score is its best step's (:mod:`raysweep.best`), with the resource at it.
    """
    import pandas as pd

    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(sweep_run.info.run_id, "leaderboard.csv", folder)
            return pd.read_csv(path)
        except Exception:
            pass  # an interrupted or failed sweep has none: rebuild it from the trials
    return leaderboard_from_trials(client, sweep_run)


def leaderboard_from_trials(client: Any, sweep_run: Any) -> Any:
    """The leaderboard rebuilt from the sweep's trial runs: each trial at its best step, best first."""
    import pandas as pd

    from raysweep.best import better

    params = sweep_run.data.params
    metric_key = f"val_{sweep_run.data.tags.get('raysweep.metric') or params.get('metric', '')}"
    mode = params.get("mode", "max")
    rows = []
    for child in _child_runs(client, sweep_run):
        history = client.get_metric_history(child.info.run_id, metric_key) if metric_key in child.data.metrics else []
        best = None
        for point in sorted(history, key=lambda m: (m.step, m.timestamp)):
            if math.isfinite(point.value) and better(point.value, best.value if best else None, mode):
                best = point
        # The step is the resource for whole-unit resources, else Tune's step: the resource metric says.
        resources = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "resource")} if best else {}
        row = {
            "trial": child.info.run_name,
            "trial_id": child.data.tags.get("raysweep.trial_id", ""),
            metric_key: best.value if best else float("nan"),
            "resource": resources.get(best.step, best.step) if best else 0,
            "outcome": child.data.tags.get("raysweep.outcome", child.info.status.lower()),
        }
        row.update({f"config/{k}": v for k, v in child.data.params.items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.sort_values(metric_key, ascending=params.get("mode") == "min", na_position="last").reset_index(drop=True)
    return frame


def _artifact_location(run: Any, path: str, uri: str) -> str:
    """Where a user finds an artifact: a local path, a download URL on a server, else its URI."""
    base = run.info.artifact_uri.rstrip("/")
    if base.startswith("file://"):
        base = urllib.parse.urlparse(base).path
    if base.startswith("/"):
        return str(Path(base) / path)
    if uri.startswith(("http://", "https://")):
        query = urllib.parse.urlencode({"path": path, "run_uuid": run.info.run_id}, safe="/")
        return f"{uri.rstrip('/')}/get-artifact?{query}"
    return f"{base}/{path}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@click.command("report", short_help="Print a sweep's leaderboard, best config, scores and plots.")
@click.argument("sweep")
@click.option("--tracking-uri", help="The sweep's MLflow store (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here).")
@click.option("--top", type=int, default=20, show_default=True, help="How many trials of the leaderboard to show.")
def report_command(sweep: str, tracking_uri: str | None, top: int) -> None:
    """Print SWEEP's leaderboard, best config, scores and where its plots are."""
    from rich.console import Console
    from rich.table import Table

    from raysweep.tracking.store import resolve_tracking_uri

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = resolve_tracking_uri(tracking_uri)
    client = _client(uri)
    run = find_sweep(client, sweep)
    if run is None:
        raise _unknown_sweep(client, sweep, uri)
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    metric = tags.get("raysweep.metric") or params.get("metric", "")
    metric_key = f"val_{metric}"
    # Sweep names and configs hold brackets: print them as they are, not as rich markup.
    console = Console(highlight=False, markup=False)
    if not console.is_terminal:
        console = Console(highlight=False, markup=False, width=160)

    experiment = client.get_experiment(run.info.experiment_id)
    console.print(f"sweep {sweep} ({run.info.status}), experiment {experiment.name} (id {run.info.experiment_id}), run {run.info.run_id}")
    console.print(
        f"{tags.get('raysweep.recipe', '?')} on {tags.get('raysweep.dataset', '?')} ({tags.get('raysweep.task', '?')}), "
        f"{tags.get('raysweep.scheduler', '?')} + {tags.get('raysweep.searcher', '?')}, metric {metric} ({params.get('mode', '?')})"
    )
    board = _leaderboard(client, run)
    table = Table(title=f"leaderboard (top {min(top, len(board))} of {len(board)})")
    config_columns = [c for c in board.columns if c.startswith("config/")]
    name_column = "trial" if "trial" in board.columns else "trial_id"  # sweeps before readable names
    columns = [c for c in [name_column, metric_key, "resource", "outcome"] if c in board.columns] + config_columns
    for column in columns:
        table.add_column(column.removeprefix("config/"))
    for _, row in board.head(top).iterrows():
        table.add_row(*[_fmt(row[c]) for c in columns])
    console.print(table)

    if "raysweep.best_config" in tags:
        console.print(f"best config: {tags['raysweep.best_config']}", soft_wrap=True)
    if f"best_{metric_key}" in metrics:
        console.print(f"best validation {metric}: {metrics[f'best_{metric_key}']:.5g} (at resource {params.get('best.resource', '?')})")
    if f"test_{metric}" in metrics:
        console.print(f"test {metric} of the refit model: {metrics[f'test_{metric}']:.5g}")
    if "num_trials" in metrics:
        console.print(
            f"trials: {int(metrics['num_trials'])} ({int(metrics.get('num_stopped_early', 0))} stopped early, "
            f"{int(metrics.get('num_errors', 0))} failed)"
        )
    elif run.info.status != "FINISHED":
        console.print(f"the sweep did not finish ({run.info.status}): the leaderboard is rebuilt from its trial runs")
    if "raysweep.model_uri" in tags:
        registered = tags.get("raysweep.registered_model")
        console.print(
            f"model: {tags['raysweep.model_uri']} ({tags.get('raysweep.model_flavor', '?')} flavor)"
            + (f", registered as {registered}" if registered else "")
        )

    try:
        plots = [item.path for item in client.list_artifacts(run.info.run_id, "plots")]
    except Exception:
        plots = []
    if plots:
        console.print("plots:")
        for path in plots:
            console.print(f"  {_artifact_location(run, path, uri)}", soft_wrap=True)
    else:
        console.print("plots: none recorded")
    console.print(f"leaderboard CSV: {_artifact_location(run, 'leaderboard.csv', uri)}", soft_wrap=True)
    console.print(f"artifacts: {run.info.artifact_uri}", soft_wrap=True)
    if uri.startswith(("http://", "https://")):
        for label, url in sweep_links(client, uri, run):
            console.print(f"in the MLflow UI ({label}): {url}", soft_wrap=True)
    else:
        console.print(f"in the MLflow UI: raysweep ui --tracking-uri {uri} --sweep {sweep}", soft_wrap=True)
