"""The MLflow store: its URI, whether it answers, and the sweep's experiment and parent run.

All MLflow calls happen on the driver's machine, so workers on a remote cluster never need a
route to the tracking server. This module does not import Ray.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from raysweep.errors import SweepFailed, UserError
from raysweep.tracking import schema

logger = logging.getLogger("raysweep.tracking")

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(uri: str | None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the embedded sqlite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def absolute_tracking_uri(uri: str) -> str:
    """``uri`` with a relative sqlite path made absolute, so it means the same from any folder."""
    if not uri.startswith("sqlite:///"):
        return uri
    return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).expanduser().resolve())


#: the URI schemes MLflow tracks to (its tracking store registry: ``file`` and a bare path are
#: MLflow's file store, which MLflow 3 refuses unless ``MLFLOW_ALLOW_FILE_STORE`` is true; a
#: database scheme may name its driver, ``postgresql+psycopg2://``)
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks", "databricks-uc", "uc")


def _file_store(uri: str) -> bool:
    """``uri`` is MLflow's file store (``file://`` or a bare path) and MLflow will refuse it: it
    does unless the user set ``MLFLOW_ALLOW_FILE_STORE`` true (MLflow's own opt-out)."""
    import urllib.parse

    if uri in ("databricks", "databricks-uc", "uc") or urllib.parse.urlparse(uri).scheme not in ("", "file"):
        return False  # MLflow reads those three bare words as schemes
    return os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() not in ("true", "1")


def uri_label(uri: str) -> tuple[str, str]:
    """How the user gave ``uri``, for messages: the flag, the environment variable it came from, or
    neither (the default store); and how to go back to the default."""
    if os.environ.get("MLFLOW_TRACKING_URI") == uri:
        return f"MLFLOW_TRACKING_URI={uri}", f"unset MLFLOW_TRACKING_URI to log to {DEFAULT_TRACKING_URI}"
    if uri == DEFAULT_TRACKING_URI and not os.environ.get("MLFLOW_TRACKING_URI"):
        return f"the default store {uri}", "pass --tracking-uri"
    return f"--tracking-uri {uri}", f"leave --tracking-uri out to log to {DEFAULT_TRACKING_URI}"


def check_reachable(uri: str) -> None:
    """Fail with one line, before any trial runs, when MLflow cannot track to ``uri`` (a scheme it
    has no store for, a folder) or its tracking server does not answer."""
    label, default = uri_label(uri)
    if _file_store(uri):
        given = Path(uri.removeprefix("file://")).expanduser()
        if given.is_file():  # a database file given as a plain path
            raise UserError(f"{label}: a path is MLflow's folder store; for the database file {given} give sqlite:///{given.resolve()}")
        raise UserError(
            f"{label}: MLflow 3 refuses a folder (its file store) as the tracking store; give sqlite:///FILE.db "
            f"(sqlite:///mlflow.db: one file here; `mlflow migrate-filestore` moves a folder's runs into one), "
            f"the http://HOST:PORT of an MLflow server, or {default}"
        )
    scheme = uri.split("://", 1)[0] if "://" in uri else None
    if scheme is not None and scheme.split("+", 1)[0].lower() not in TRACKING_SCHEMES:
        raise UserError(
            f"{label}: MLflow cannot track to a {scheme}:// URI; give sqlite:///FILE.db, the http://HOST:PORT "
            f"of an MLflow server or a database URI (postgresql://, mysql://, mssql://), or {default}"
        )
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as response:
            response.read()
    except urllib.error.HTTPError:
        return  # it answered: a server behind a proxy may not expose /health
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"{label}: the MLflow tracking server does not answer ({reason}); start it, fix the URI, or {default}") from None


def report_command(name: str, tracking_uri: str | None) -> str:
    """The ``raysweep report`` command of sweep ``name`` logged to ``tracking_uri``, as a user types
    it here: with ``--tracking-uri`` unless that store is the one report reads without it (the
    default store of this folder, or ``MLFLOW_TRACKING_URI``)."""
    import shlex

    command = f"raysweep report {shlex.quote(name)}"
    if tracking_uri and absolute_tracking_uri(tracking_uri) != absolute_tracking_uri(resolve_tracking_uri(None)):
        command += f" --tracking-uri {shlex.quote(tracking_uri)}"
    return command


def clean_param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


#: MLflow's own HTTP client retries a failed call 7 times with exponential backoff (about four
#: minutes) and waits 120 s for an answer. Every MLflow call here runs on Tune's driver loop, so
#: a tracking server that went away would freeze every trial that long. raysweep keeps what it
#: could not log and retries it itself, so its client gives up quickly instead; a value the user
#: set in the environment wins.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


def quick_failing_client_defaults() -> None:
    """Make MLflow HTTP calls fail within seconds when the server is away (unless the user chose otherwise)."""
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def sweep_client_defaults() -> None:
    """MLflow's client settings for the processes that write a sweep (the driver and its writer):
    HTTP calls that fail within seconds, and no "View run ... at" line on stdout for every run
    ended on a tracking server (dozens per sweep, which would corrupt `raysweep run --json`)."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    quick_failing_client_defaults()


def write_sqlite_lightly() -> None:
    """Make this process's sqlite MLflow stores commit without waiting for the disk each time.

    Each MLflow call is a few transactions, and by default sqlite waits for the disk at every
    commit: most of a trial run's writing time. In write-ahead-log mode with ``synchronous=NORMAL``
    a commit waits for nothing and a crash of the process (or the machine) cannot corrupt the
    store; a power cut may lose the last commits, which `raysweep sync` writes again from Ray's
    results. The log mode stays with the database file (readers such as `mlflow ui` handle it).
    """
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _commit_lightly(connection: Any, _record: Any) -> None:
        if isinstance(connection, sqlite3.Connection):
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working folder), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):]).expanduser().resolve()


class SweepTracker:
    """Owns the sweep's parent run and hands out the Tune callback that logs the trials."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        sweep_name: str,
        metric_key: str,
        max_steps: int,
        integer_resource: bool,
        tags: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        from mlflow.tracking import MlflowClient

        from raysweep.tracking.new_store import seed_sqlite_store

        sweep_client_defaults()
        seed_sqlite_store(sqlite_path(tracking_uri))  # done already when the store opened while Ray started
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.experiment = experiment
        self.sweep_name = sweep_name
        self.metric_key = metric_key
        self.max_steps = max_steps
        self.integer_resource = integer_resource
        self.tags = tags or {}
        self.params = params or {}
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        #: when the sweep started (seconds since the epoch); a resumed sweep keeps its first start
        self.started = time.time()
        #: a resumed sweep's results from before the resume, as the trial callback's history
        self.resumed_history: dict[str, list[tuple[float, float, float]]] = {}
        self.trial_callback: Any = None
        #: trial runs already in MLflow when a sweep is resumed: trial id -> run id
        self.existing_trial_runs: dict[str, str] = {}
        #: on resume, the deleted runs of trials Ray had not saved (see :meth:`reopen`)
        self.lost_runs: list[str] = []
        self.logged_through: dict[str, int] = {}
        #: PBT exploits, appended by the scheduler: (trial_id, donor_trial_id, step, new_config)
        self.exploits: list[tuple[str, str, int, dict[str, Any]]] = []
        #: on resume, the seconds of the time budget the sweep's earlier sessions spent (Tune's saved clock)
        self.budget_used = 0.0

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its callbacks with the experiment state; a client is rebuilt on load.
        state = self.__dict__.copy()
        state.pop("client", None)
        state.pop("trial_callback", None)  # a restored sweep makes a new one
        state.pop("resumed_history", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        self.__dict__.update(state)
        self.client = MlflowClient(self.tracking_uri)

    def _experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            try:
                return self.client.create_experiment(self.experiment, tags=dict([schema.EXPERIMENT_KIND]))
            except MlflowException:
                found = self.client.get_experiment_by_name(self.experiment)  # another sweep created it just now
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise UserError(
                f"--experiment {self.experiment}: that MLflow experiment is deleted; restore it "
                "(mlflow experiments restore) or pick another name"
            )
        if found.tags.get(schema.EXPERIMENT_KIND[0]) is None:
            self.client.set_experiment_tag(found.experiment_id, *schema.EXPERIMENT_KIND)
        return found.experiment_id

    def start(self, parent_run_id: str | None = None, started: float | None = None) -> str:
        """Create (or reuse) the experiment and open the sweep's run (nested under ``parent_run_id``
        when given: one sweep of a nested validation); returns its id.

        ``started`` (seconds since the epoch) is when the sweep began, before Ray started: the run
        starts then, so that its duration in MLflow (and in ``raysweep compare``) is the sweep's,
        as its summary gives it, not the part after Ray was up."""
        from mlflow.entities import Param

        self.experiment_id = self._experiment()
        above = {schema.PARENT_RUN_ID: parent_run_id} if parent_run_id else {}
        run = self.client.create_run(
            self.experiment_id, run_name=self.sweep_name, tags={schema.SWEEP: self.sweep_name, **self.tags, **above},
            start_time=int(started * 1000) if started is not None else None,
        )
        self.parent_run_id = run.info.run_id
        self.client.log_batch(
            self.parent_run_id, params=[Param(k, clean_param(v)) for k, v in self.params.items()]
        )
        return self.parent_run_id

    def reopen(self, experiment_id: str, parent_run_id: str, saved_trials: set[str] | None = None) -> str:
        """Continue logging into a resumed sweep's parent run; its trial runs are found again by tag.

        ``saved_trials`` are the trials in Ray's saved state, which the resumed sweep goes on with.
        Ray Tune saves that state every 10 s or more, so a driver killed at once (SIGKILL, a lost
        machine) leaves MLflow runs of trials that started after the last save: Tune knows nothing of
        them and runs new trials in their place. Those runs are tagged ``raysweep.outcome`` ``lost``
        and deleted (MLflow's delete: ``mlflow runs restore --run-id ID`` brings one back), so that
        the parent's trial runs are the sweep's trials, each once; :attr:`lost_runs` lists them.
        """
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.client.update_run(parent_run_id, status="RUNNING")
        children = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=10000
        )
        if saved_trials is not None:
            from mlflow.entities import RunTag

            lost = [run for run in children if schema.TRIAL_ID in run.data.tags and run.data.tags[schema.TRIAL_ID] not in saved_trials]
            for run in lost:
                self.client.log_batch(run.info.run_id, tags=[
                    RunTag(schema.OUTCOME, schema.OUTCOME_LOST), RunTag(schema.STOP_REASON, schema.REASON_NOT_SAVED),
                ])  # fmt: skip
                if run.info.status == "RUNNING":
                    self.client.set_terminated(run.info.run_id, status="KILLED")
                self.client.delete_run(run.info.run_id)
            self.lost_runs = [run.info.run_id for run in lost]
            children = [run for run in children if run not in lost]
        self.existing_trial_runs = {
            run.data.tags[schema.TRIAL_ID]: run.info.run_id for run in children if schema.TRIAL_ID in run.data.tags
        }
        self.logged_through = {
            run.data.tags[schema.TRIAL_ID]: max((m.step for m in self.client.get_metric_history(run.info.run_id, self.metric_key)), default=-1)
            for run in children
            if schema.TRIAL_ID in run.data.tags
        }
        # The plots at the end cover the whole sweep: take the results from before the resume back.
        started = self.client.get_run(parent_run_id).info.start_time / 1000
        self.resumed_history = {}
        for run in children:
            if schema.TRIAL_ID not in run.data.tags or self.metric_key not in run.data.metrics:
                continue
            resources = {m.step: m.value for m in self.client.get_metric_history(run.info.run_id, schema.RESOURCE)}
            self.resumed_history[run.data.tags[schema.TRIAL_ID]] = [
                (resources.get(m.step, float(m.step)), m.value, m.timestamp / 1000 - started)
                for m in sorted(self.client.get_metric_history(run.info.run_id, self.metric_key), key=lambda m: m.timestamp)
            ]
        self.started = started
        return parent_run_id

    def _to_parent(self, what: str, call: Callable, *args: Any) -> None:
        """Log to the parent run; a tracking server that stopped answering is a warning, not an error.

        The sweep's own record (summary, leaderboard, plots) goes out when its trials are done. A
        server away just then must not fail a sweep whose trials all ran: the outcome is printed,
        and `raysweep sync` brings the trial runs up to date later. An error the server answered
        with (a param MLflow will not change, say) still reaches the caller.
        """
        try:
            call(*args)
        except Exception as exc:
            try:
                check_reachable(self.tracking_uri)
            except UserError:
                logger.warning("raysweep: the MLflow tracking server does not answer; the sweep's %s is not recorded: %s", what, exc)
                return
            raise

    def log_dict(self, data: Any, path: str) -> None:
        self._to_parent(path, self.client.log_dict, self.parent_run_id, data, path)

    def log_text(self, text: str, path: str) -> None:
        self._to_parent(path, self.client.log_text, self.parent_run_id, text, path)

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        self._to_parent(os.path.basename(local_path), self.client.log_artifact, self.parent_run_id, local_path, artifact_path)

    def log_summary(self, metrics: dict[str, float], params: dict[str, Any], tags: dict[str, str]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        self._to_parent(
            "summary",
            self.client.log_batch,
            self.parent_run_id,
            [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None],
            [Param(k, clean_param(v)) for k, v in params.items()],
            [RunTag(k, str(v)) for k, v in tags.items()],
        )

    def finish(self, status: str = "FINISHED") -> str | None:
        """End the sweep's runs: trials still open (an interrupted or crashed sweep), then the parent.

        Returns what went wrong when MLflow still lacks part of the sweep's trials because the
        writer process died (and the one started in its place could not write them), else None.
        """
        lacking = None
        if self.trial_callback is not None:
            reason = schema.REASON_INTERRUPTED if status == "KILLED" else schema.REASON_FAILED
            lacking = self.trial_callback.close_open_runs(status="FINISHED" if status == "FINISHED" else "KILLED", reason=reason)
        self.end_parent(status)
        return lacking

    def note_failure(self, error: BaseException) -> None:
        """Tag the parent run with why the sweep failed (``raysweep report`` says it); never raises."""
        text = str(error) if isinstance(error, SweepFailed) else f"{type(error).__name__}: {error}"
        if self.parent_run_id:
            try:
                self._to_parent("error", self.client.set_tag, self.parent_run_id, schema.ERROR, text.strip()[:5000])
            except Exception as exc:
                logger.warning("raysweep: could not note on the MLflow parent run why the sweep failed: %s", exc)

    def discard(self) -> None:
        """Delete the sweep's parent run (MLflow's soft delete: ``mlflow runs restore`` brings it back),
        for a sweep stopped before its trials: nothing of it was run, nothing is left to resume."""
        if self.parent_run_id:
            try:
                self.client.delete_run(self.parent_run_id)
            except Exception as exc:
                logger.warning("raysweep: could not delete the MLflow parent run %s: %s", self.parent_run_id, exc)

    def end_parent(self, status: str) -> None:
        """End the sweep's parent run (its trials' runs are the writer's: :meth:`finish`)."""
        if self.parent_run_id:
            try:
                self.client.set_terminated(self.parent_run_id, status=status)
            except Exception as exc:
                logger.warning("raysweep: could not end the MLflow parent run %s: %s", self.parent_run_id, exc)
