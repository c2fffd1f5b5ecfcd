"""What is recorded: one MLflow parent run per sweep, one nested child run per trial.

All MLflow calls happen on the driver's machine, so workers on a remote cluster never need a
route to the tracking server. The trial runs are written by :class:`TrialWriter` in a process
of its own (see :mod:`raysweep.trial_logging`), which Tune's callback feeds: MLflow's round
trips stay off Tune's event loop. Metrics, params and tags go out together with ``log_batch``.
Tracking never fails the sweep: a failed MLflow call is logged as a warning and the sweep goes on.

This module does not import Ray: the writer process starts quickly.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from raysweep.errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: the experiment tag that marks a model-training experiment. MLflow 3.17's UI decides the view
#: from its ``workflowType`` instead (see :mod:`raysweep.review`); older 3.x UIs read this tag.
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
#: tag on every sweep run (parent and trials): the sweep's name
SWEEP_TAG = "raysweep.sweep"
#: tag on every trial run: Tune's trial id
TRIAL_ID_TAG = "raysweep.trial_id"
#: tag on every trial run: completed, stopped_early or failed
OUTCOME_TAG = "raysweep.outcome"
#: result keys that are bookkeeping, not measurements
_NOT_METRICS = {
    "done", "timestamp", "pid", "hostname", "node_ip", "node_id", "trial_id", "experiment_tag",
    "date", "time_this_iter_s", "time_total_s", "time_since_restore", "iterations_since_restore",
    "timesteps_total", "timesteps_since_restore", "episodes_total", "training_iteration",
    "should_checkpoint", "checkpoint_dir_name", "config", "resource",
}
OUTCOME_RUNNING = "running"
OUTCOME_COMPLETED = "completed"
OUTCOME_STOPPED = "stopped_early"
OUTCOME_FAILED = "failed"
#: MLflow takes at most 1000 metrics, 100 params, 100 tags and 1000 of them in all in one log_batch
_BATCH_LIMIT = 900
_PARAMS_LIMIT = 100
_TAGS_LIMIT = 100
_ENTITIES_LIMIT = 1000
#: a backlog entry that is no result: a retried trial repeats its steps up to this one
_REPEATS_THROUGH = "raysweep/repeats_through"
#: a writer taking over from one that died retries its replay at most this often (seconds)
_REPLAY_RETRY_S = 5.0


def resolve_tracking_uri(uri: str | None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the embedded sqlite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def absolute_tracking_uri(uri: str) -> str:
    """``uri`` with a relative sqlite path made absolute, so it means the same from any folder."""
    if not uri.startswith("sqlite:///"):
        return uri
    return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).expanduser().resolve())


def check_reachable(uri: str) -> None:
    """Fail with one line, before any trial runs, when the tracking server does not answer."""
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
        raise UserError(
            f"--tracking-uri {uri}: the MLflow tracking server does not answer ({reason}); start it, fix the URI, "
            "or leave --tracking-uri out to log to sqlite:///mlflow.db"
        ) from None


def _clean_param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


def trial_name(trial_id: str) -> str:
    """A readable trial name, ``trial-0007``, from Tune's ``<experiment>_00007`` trial id."""
    index = trial_id.rsplit("_", 1)[-1]
    return f"trial-{int(index):04d}" if index.isdigit() else f"trial-{trial_id}"


def trial_number(trial_id: str) -> int | None:
    """The trial's index in the sweep (7 for ``a1b2c_00007``), or None for another id shape."""
    index = trial_id.rsplit("_", 1)[-1]
    return int(index) if index.isdigit() else None


#: results kept while the tracking server is away (beyond this, the oldest go; `raysweep sync` has them)
_BACKLOG_LIMIT = 100_000
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


def _best_effort(hook: Callable) -> Callable:
    """A Tune callback hook whose MLflow failures become warnings: tracking never fails a sweep."""

    @functools.wraps(hook)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return hook(self, *args, **kwargs)
        except Exception as exc:
            logger.warning("raysweep: MLflow logging failed in %s (the sweep goes on): %s", hook.__name__, exc)
            return None

    return guarded


@dataclass
class _TrialRun:
    run_id: str
    #: the step (resource units) of the trial's latest result
    last_step: int = 0
    node_tagged: bool = False
    finished: bool = False
    #: metrics, params and tags not yet in MLflow: they go out together, in one log_batch
    pending: list[Any] = field(default_factory=list)
    pending_params: list[Any] = field(default_factory=list)
    pending_tags: dict[str, str] = field(default_factory=dict)
    #: on a resumed sweep, the last step already in MLflow: results up to it are not logged again
    logged_through: int = -1
    retries: int = 0
    #: PBT exploits of the trial already tagged on the run (by a writer that died since)
    exploits_logged: int = 0


@dataclass
class _TrialView:
    """What the MLflow writer needs of a Tune trial, taken when Tune raised the event."""

    trial_id: str
    config: dict[str, Any]
    last_result: dict[str, Any]
    status: str
    error_file: str | None = None
    error_msg: str | None = None
    #: when Tune raised the event (seconds since the epoch): the run's start or end time
    seen: float = 0.0

    @classmethod
    def of(cls, trial: Any, errors: bool = False) -> "_TrialView":
        # The recorded result, not Trial.last_result: before a trial's first report that one waits
        # on a remote call for Ray's default result.
        metadata = getattr(trial, "run_metadata", None)
        last = metadata.last_result if metadata is not None else trial.last_result
        view = cls(trial.trial_id, dict(trial.config), dict(last or {}), trial.status, seen=time.time())
        if errors or trial.status == "ERROR":
            view.error_file = getattr(trial, "error_file", None)
            view.error_msg = getattr(trial, "error_msg", None)
        return view


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

        # MLflow's client prints "View run ... at" to stdout for every run it ends on a tracking
        # server: dozens of lines per sweep, and they would corrupt `raysweep run --json`.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        quick_failing_client_defaults()
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
        self.logged_through: dict[str, int] = {}
        #: PBT exploits, appended by the scheduler: (trial_id, donor_trial_id, step, new_config)
        self.exploits: list[tuple[str, str, int, dict[str, Any]]] = []

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
                return self.client.create_experiment(self.experiment, tags=dict([EXPERIMENT_KIND_TAG]))
            except MlflowException:
                found = self.client.get_experiment_by_name(self.experiment)  # another sweep created it just now
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise UserError(
                f"--experiment {self.experiment}: that MLflow experiment is deleted; restore it "
                "(mlflow experiments restore) or pick another name"
            )
        if found.tags.get(EXPERIMENT_KIND_TAG[0]) is None:
            self.client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND_TAG)
        return found.experiment_id

    def start(self) -> str:
        """Create (or reuse) the experiment and open the parent run; returns its id."""
        from mlflow.entities import Param

        self.experiment_id = self._experiment()
        run = self.client.create_run(
            self.experiment_id, run_name=self.sweep_name, tags={SWEEP_TAG: self.sweep_name, **self.tags}
        )
        self.parent_run_id = run.info.run_id
        self.client.log_batch(
            self.parent_run_id, params=[Param(k, _clean_param(v)) for k, v in self.params.items()]
        )
        return self.parent_run_id

    def reopen(self, experiment_id: str, parent_run_id: str) -> str:
        """Continue logging into a resumed sweep's parent run; its trial runs are found again by tag."""
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.client.update_run(parent_run_id, status="RUNNING")
        children = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=10000
        )
        self.existing_trial_runs = {
            run.data.tags[TRIAL_ID_TAG]: run.info.run_id for run in children if TRIAL_ID_TAG in run.data.tags
        }
        self.logged_through = {
            run.data.tags[TRIAL_ID_TAG]: max((m.step for m in self.client.get_metric_history(run.info.run_id, self.metric_key)), default=-1)
            for run in children
            if TRIAL_ID_TAG in run.data.tags
        }
        # The plots at the end cover the whole sweep: take the results from before the resume back.
        started = self.client.get_run(parent_run_id).info.start_time / 1000
        self.resumed_history = {}
        for run in children:
            if TRIAL_ID_TAG not in run.data.tags or self.metric_key not in run.data.metrics:
                continue
            resources = {m.step: m.value for m in self.client.get_metric_history(run.info.run_id, "resource")}
            self.resumed_history[run.data.tags[TRIAL_ID_TAG]] = [
                (resources.get(m.step, float(m.step)), m.value, m.timestamp / 1000 - started)
                for m in sorted(self.client.get_metric_history(run.info.run_id, self.metric_key), key=lambda m: m.timestamp)
            ]
        self.started = started
        return parent_run_id

    def callback(self) -> Any:
        """The Tune callback that logs the trials (it starts the writer process)."""
        from raysweep.trial_logging import MLflowTrialCallback

        self.trial_callback = MLflowTrialCallback(self)
        self.trial_callback.start()
        return self.trial_callback

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
            [Param(k, _clean_param(v)) for k, v in params.items()],
            [RunTag(k, str(v)) for k, v in tags.items()],
        )

    def finish(self, status: str = "FINISHED") -> str | None:
        """End the sweep's runs: trials still open (an interrupted or crashed sweep), then the parent.

        Returns what went wrong when MLflow still lacks part of the sweep's trials because the
        writer process died (and the one started in its place could not write them), else None.
        """
        lacking = None
        if self.trial_callback is not None:
            reason = "sweep_interrupted" if status == "KILLED" else "sweep_failed"
            lacking = self.trial_callback.close_open_runs(status="FINISHED" if status == "FINISHED" else "KILLED", reason=reason)
        if self.parent_run_id:
            try:
                self.client.set_terminated(self.parent_run_id, status=status)
            except Exception as exc:
                logger.warning("raysweep: could not end the MLflow parent run %s: %s", self.parent_run_id, exc)
        return lacking


class TrialWriter:
    """Logs every trial as a child run of the sweep's parent run, PBT mutations included.

    A trial run holds the trial's starting config as params, every numeric result as a metric
    whose step is the resource spent so far (trees, rounds, epochs; the step number for a
    fractional resource), the node it ran on, and at the end its outcome and final config.
    It takes Tune's events in the order Tune raised them (see :mod:`raysweep.trial_logging`).
    """

    def __init__(self, tracker: SweepTracker, session_started: float, flush_every: float = 1.0) -> None:
        self.tracker = tracker
        self.runs: dict[str, _TrialRun] = {}
        self.flush_every = flush_every
        self._last_flush = time.monotonic()
        self._exploits_seen = 0
        self._backlog: list[tuple[Any, dict[str, Any]]] = []
        #: when this process started the sweep (or resumed it), seconds since the epoch: where a
        #: time budget counts from
        self._session_started = session_started
        #: the sweep's trials, once it ended
        self._trials: list[Any] = []
        #: a writer that took over from one that died: the trial folders it replays from Ray's
        #: results before anything else, and the events that wait for that replay
        self._replay_folders: list[str] | None = None
        self._replay_error = ""
        self._replay_tried = 0.0
        self._replayer: Callable[..., dict[str, Any]] | None = None
        self._held: list[tuple[str, tuple[Any, ...]]] = []

    @property
    def client(self) -> Any:
        return self.tracker.client

    # -- taking over from a writer that died ----------------------------------------------------
    def take(self, kind: str, *args: Any) -> None:
        """Handle one of Tune's events (the name of one of the methods below), in Tune's order."""
        if kind != "add_exploit" and not self._caught_up(force=kind in ("experiment_ended", "close_open_runs")):
            # Until the replay has found the trial runs again, no run may be opened or written
            # (it would be a second run for a trial). A result is in Ray's results, which the
            # replay reads when it runs; an end waits for it.
            if kind not in ("trial_started", "trial_result"):
                self._held.append((kind, args))
            return
        getattr(self, kind)(*args)

    def replay(self, trial_folders: list[str], replay_trial_folders: Callable[..., dict[str, Any]]) -> None:
        """Take over from a writer that died: write what Ray recorded in these trial folders and
        MLflow lacks (with :func:`raysweep.sync.replay_trial_folders`), then go on with the runs."""
        self._replay_folders = list(trial_folders)
        self._replayer = replay_trial_folders
        self._caught_up(force=True)

    def _caught_up(self, force: bool = False) -> bool:
        """Whether the replay is done (tried again here, at most every few seconds unless forced)."""
        if self._replay_folders is None:
            return True
        if not force and time.monotonic() - self._replay_tried < _REPLAY_RETRY_S:
            return False
        self._replay_tried = time.monotonic()
        try:
            replayed = self._replayer(
                self.client, self._replay_folders, experiment_id=self.tracker.experiment_id,
                parent_run_id=self.tracker.parent_run_id, sweep=self.tracker.sweep_name,
                integer_resource=self.tracker.integer_resource,
            )  # fmt: skip
        except Exception as exc:
            try:
                check_reachable(self.tracker.tracking_uri)
                self._replay_error = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            except UserError:
                self._replay_error = f"the tracking server {self.tracker.tracking_uri} does not answer"
            self._warn_once(f"raysweep: cannot write the trial runs again from Ray's results ({self._replay_error}); will retry")
            return False
        self._replay_folders = None
        for trial_id, found in replayed.items():
            if found.status != "RUNNING" and trial_id in self.tracker.existing_trial_runs:
                continue  # a resumed sweep's run that its trial reopens when it runs again
            self.runs.setdefault(
                trial_id,
                _TrialRun(
                    found.run_id, last_step=max(found.last_step, 0), node_tagged="raysweep.node_id" in found.tags,
                    finished=found.status != "RUNNING", logged_through=found.last_step,
                    exploits_logged=int(found.tags.get("raysweep.pbt.exploits", 0)),
                ),
            )  # fmt: skip
        held, self._held = self._held, []
        for kind, args in held:
            getattr(self, kind)(*args)
        return True

    def unwritten(self) -> str | None:
        """What this writer has not written to MLflow (None when MLflow has it all)."""
        if self._replay_folders is not None:
            return f"the trial results could not be written again from Ray's results ({self._replay_error})"
        if self._backlog:
            return f"{len(self._backlog)} trial results are not written"
        if any(run.pending or run.pending_params or run.pending_tags for run in self.runs.values()):
            return "some trial metrics are not written"
        still_open = sum(not run.finished for run in self.runs.values())
        return f"{still_open} trial runs are still open" if still_open else None

    # -- helpers -----------------------------------------------------------------------------
    def _run_for(self, trial: Any) -> _TrialRun:
        run = self.runs.get(trial.trial_id)
        if run is None:
            run = self._open(trial)
        return run

    def _open(self, trial: Any) -> _TrialRun:
        from mlflow.entities import Param

        existing = self.tracker.existing_trial_runs.get(trial.trial_id)
        if existing:  # a resumed sweep: the trial keeps its run
            self.client.update_run(existing, status="RUNNING")
            # An interrupted trial's run says how it was stopped; it runs again now.
            self.client.set_tag(existing, OUTCOME_TAG, OUTCOME_RUNNING)
            if "raysweep.stop_reason" in self.client.get_run(existing).data.tags:
                self.client.delete_tag(existing, "raysweep.stop_reason")
            run = self.runs[trial.trial_id] = _TrialRun(
                existing, logged_through=self.tracker.logged_through.get(trial.trial_id, -1)
            )
            return run
        created = self.client.create_run(
            self.tracker.experiment_id,
            # The writer may write a little after the trial started: the run keeps the trial's times.
            start_time=_millis(getattr(trial, "seen", None)),
            run_name=trial_name(trial.trial_id),
            tags={
                "mlflow.parentRunId": self.tracker.parent_run_id,
                SWEEP_TAG: self.tracker.sweep_name,
                TRIAL_ID_TAG: trial.trial_id,
                OUTCOME_TAG: OUTCOME_RUNNING,
            },
        )
        run = _TrialRun(created.info.run_id, pending_params=[Param(k, _clean_param(v)) for k, v in trial.config.items()])
        self.runs[trial.trial_id] = run
        return run

    def _step(self, result: dict[str, Any]) -> int:
        return result_step(result, self.tracker.integer_resource)

    def _flush(self, force: bool = False, runs: list[_TrialRun] | None = None) -> bool:
        """Write the runs' pending metrics, params and tags; False if MLflow did not take them."""
        from mlflow.entities import RunTag

        if not force and time.monotonic() - self._last_flush < self.flush_every:
            return True
        if runs is None:
            self._last_flush = time.monotonic()
        for run in list(self.runs.values()) if runs is None else runs:
            while run.pending or run.pending_params or run.pending_tags:
                params = run.pending_params[:_PARAMS_LIMIT]
                tags = [RunTag(k, v) for k, v in list(run.pending_tags.items())[:_TAGS_LIMIT]]
                metrics = run.pending[: min(_BATCH_LIMIT, _ENTITIES_LIMIT - len(params) - len(tags))]
                try:
                    self.client.log_batch(run.run_id, metrics=metrics, params=params, tags=tags)
                except Exception as exc:  # tracking must never fail the sweep
                    # Kept for the next flush: a tracking server that comes back gets them then
                    # (and `raysweep sync` writes whatever is still missing from Ray's results).
                    self._warn_once(f"raysweep: MLflow is not taking metrics right now ({exc}); will retry")
                    return False
                del run.pending[: len(metrics)]
                del run.pending_params[: len(params)]
                for tag in tags:
                    run.pending_tags.pop(tag.key, None)
        self._warned = False
        return True

    def flush_all(self) -> None:
        """Write every pending metric, param and tag now (the sweep's process is gone)."""
        try:
            if not self._caught_up(force=True):
                return
            self._drain_backlog()
            self._flush(force=True)
        except Exception as exc:
            logger.warning("raysweep: could not write the last trial results to MLflow: %s", exc)

    def _warn_once(self, message: str) -> None:
        if not getattr(self, "_warned", False):
            logger.warning(message)
            self._warned = True

    def _finish(self, trial: Any, outcome: str, status: str, error: str | None = None, reason: str | None = None) -> None:
        run = self._run_for(trial)
        if run.finished:
            return  # ended already (by a writer that died since)
        self._record_exploits()
        run.pending_tags.update({OUTCOME_TAG: outcome, "raysweep.final_config": json.dumps(trial.config, default=str)[:5000]})
        if reason:
            run.pending_tags["raysweep.stop_reason"] = reason
        if error:
            run.pending_tags["raysweep.error"] = error[-5000:]
        if not self._flush(force=True, runs=[run]):
            raise RuntimeError("the MLflow tracking server does not answer; the run is ended later")
        self.client.set_terminated(run.run_id, status=status, end_time=_millis(getattr(trial, "seen", None)))
        run.finished = True

    def _reached_end(self, trial: Any) -> bool:
        last = trial.last_result or {}
        return int(last.get("training_iteration", 0) or 0) >= self.tracker.max_steps

    def close_open_runs(self, status: str, reason: str) -> None:
        """End every trial run still open (the sweep stopped around them); never raises."""
        try:
            # A tracking server that came back after the last trial ended (while the best config
            # was refit, say) gets what waited for it: the kept results and the trials' ends.
            self._end_trials()
        except Exception as exc:
            logger.warning("raysweep: could not flush MLflow metrics: %s", exc)
        for run in self.runs.values():
            if run.finished:
                continue
            try:
                run.pending_tags.update({OUTCOME_TAG: OUTCOME_STOPPED, "raysweep.stop_reason": reason})
                if not self._flush(force=True, runs=[run]):
                    raise RuntimeError("the MLflow tracking server does not answer")
                self.client.set_terminated(run.run_id, status=status)
                run.finished = True
            except Exception as exc:
                logger.warning("raysweep: could not end MLflow run %s: %s", run.run_id, exc)

    # -- Tune's events, in order ----------------------------------------------------------------
    @_best_effort
    def trial_started(self, trial: "_TrialView") -> None:
        self._run_for(trial)

    def trial_result(self, trial: "_TrialView", result: dict[str, Any]) -> None:
        # Results that could not be recorded (the tracking server was away) wait here, in order,
        # and are written once it answers again.
        self._backlog.append((trial, result))
        self._drain_backlog()

    @_best_effort
    def trial_completed(self, trial: "_TrialView") -> None:
        if trial.trial_id not in self.runs and not trial.last_result:
            return  # a trial the sweep ended before it started: nothing to record
        if self._reached_end(trial):
            self._finish(trial, OUTCOME_COMPLETED, "FINISHED")
        else:
            self._finish(trial, OUTCOME_STOPPED, "FINISHED", reason="scheduler")

    @_best_effort
    def trial_recovered(self, trial: "_TrialView") -> None:
        """A failed trial (its node died, or it raised) that Tune retries (``--max-failures``)."""
        run = self._run_for(trial)
        run.retries += 1
        if trial.last_result:
            # The retry starts again from the trial's last checkpoint, or from scratch: the steps
            # it repeats are skipped, once the results reported before it (which may still wait
            # for MLflow) are written.
            self._backlog.append((trial, {_REPEATS_THROUGH: self._step(trial.last_result)}))
            self._drain_backlog()
        # The retry may run on another node (the one it ran on may have died): tag it afresh.
        run.node_tagged = False
        run.pending_tags["raysweep.retries"] = str(run.retries)
        run.pending_tags[f"raysweep.retry.{run.retries}.error"] = trial_error_text(trial)[-4000:] or "unknown"
        self._flush(force=True, runs=[run])

    @_best_effort
    def trial_errored(self, trial: "_TrialView") -> None:
        self._finish(trial, OUTCOME_FAILED, "FAILED", error=trial_error_text(trial))

    @_best_effort
    def experiment_ended(self, trials: list["_TrialView"]) -> None:
        self._trials = list(trials)
        self._end_trials()

    def add_exploit(self, exploit: tuple[str, str, int, dict[str, Any]]) -> None:
        """A PBT exploit, as the scheduler recorded it: (trial, donor, donor's step, new config)."""
        self.tracker.exploits.append(exploit)

    def _drain_backlog(self) -> bool:
        """Record the results kept while MLflow was away, in order; False if it still does not answer."""
        while self._backlog:
            waiting_trial, waiting_result = self._backlog[0]
            try:
                self._record_result(waiting_trial, waiting_result)
            except Exception as exc:
                self._warn_once(f"raysweep: MLflow is not answering ({exc}); results are kept and retried")
                del self._backlog[: max(0, len(self._backlog) - _BACKLOG_LIMIT)]
                return False
            self._backlog.pop(0)
        return True

    def _record_result(self, trial: Any, result: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        run = self._run_for(trial)
        if _REPEATS_THROUGH in result:
            run.logged_through = max(run.logged_through, result[_REPEATS_THROUGH])
            return
        step = self._step(result)
        run.last_step = step
        if step <= run.logged_through:
            return  # a resumed trial repeating steps MLflow already has
        timestamp = int(result.get("timestamp", time.time()) * 1000)
        for key, value in result.items():
            if key in _NOT_METRICS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            run.pending.append(Metric(key, float(value), timestamp, step))
        if not self.tracker.integer_resource and isinstance(result.get("resource"), (int, float)):
            # A fractional resource (a share of the rows) cannot be a step: log it beside the step.
            run.pending.append(Metric("resource", float(result["resource"]), timestamp, step))
        if not run.node_tagged and result.get("node_id"):
            run.pending_tags["raysweep.node_id"] = str(result["node_id"])
            for key in ("node_ip", "hostname"):
                if result.get(key):
                    run.pending_tags[f"raysweep.{key}"] = str(result[key])
            run.node_tagged = True
        self._record_exploits()
        self._flush()

    def _record_exploits(self) -> None:
        """Tag each PBT exploit on the exploiting trial's run, and mark it on its metric chart."""
        from mlflow.entities import Metric

        while self._exploits_seen < len(self.tracker.exploits):
            trial_id, donor_id, step, new_config = self.tracker.exploits[self._exploits_seen]
            self._exploits_seen += 1
            run = self.runs.get(trial_id)
            if run is None:
                continue
            donor = self.runs.get(donor_id)
            count = sum(1 for e in self.tracker.exploits[: self._exploits_seen] if e[0] == trial_id)
            if count <= run.exploits_logged:
                continue  # tagged by a writer that died since
            # The trial continues from the donor's checkpoint, at the donor's resource.
            at = donor.last_step if donor is not None else step
            donor_number = trial_number(donor_id)
            if donor_number is not None:
                run.pending.append(Metric("pbt/exploited_trial", float(donor_number), int(time.time() * 1000), at))
            run.pending_tags.update(
                {
                    "raysweep.pbt.last_donor": donor_id,
                    "raysweep.pbt.last_donor_run_id": donor.run_id if donor else "",
                    f"raysweep.pbt.exploit.{count}": json.dumps(
                        {"step": at, "donor": donor_id, "donor_iteration": step, "config": new_config}, default=str
                    )[:5000],
                    "raysweep.pbt.exploits": str(count),
                }
            )

    def _end_trials(self) -> None:
        """Write what waited for MLflow and end the run of every trial of the finished sweep.

        Called when the experiment ends, and again when the sweep's parent run ends: a tracking
        server that was away the first time may answer the second.
        """
        if not self._drain_backlog():
            return
        self._record_exploits()
        self._flush(force=True)
        # A time budget, or Ctrl-C, ends running trials without a completion event: close their
        # runs too. Tune marks such a trial TERMINATED like one that ran to its end, but its last
        # result is not "done" (a completed or scheduler-stopped trial's is). Without a spent time
        # budget that can only be Ctrl-C: the run is KILLED and `raysweep resume` continues it.
        budget = self.tracker.params.get("time_budget_s")
        budget_spent = isinstance(budget, (int, float)) and time.time() - self._session_started >= 0.9 * budget
        for trial in self._trials:
            run = self.runs.get(trial.trial_id)
            if run is None and trial.status == "ERROR":
                run = self._run_for(trial)  # it failed while MLflow was away, before its run existed
            if run is None or run.finished:
                continue
            if trial.status == "ERROR":
                self._finish(trial, OUTCOME_FAILED, "FAILED", error=trial_error_text(trial))
            elif self._reached_end(trial):
                self._finish(trial, OUTCOME_COMPLETED, "FINISHED")
            elif (trial.last_result or {}).get("done"):
                self._finish(trial, OUTCOME_STOPPED, "FINISHED", reason="scheduler")
            elif budget_spent:
                self._finish(trial, OUTCOME_STOPPED, "FINISHED", reason="time_budget")
            else:
                self._finish(trial, OUTCOME_STOPPED, "KILLED", reason="sweep_interrupted")


def _millis(seconds: float | None) -> int | None:
    return int(seconds * 1000) if seconds else None


def result_step(result: dict[str, Any], integer_resource: bool) -> int:
    """The MLflow step of a result: the resource spent (trees, rounds, epochs), else Tune's step."""
    if integer_resource and "resource" in result:
        return int(result["resource"])
    return int(result.get("training_iteration", 0))


def trial_error_text(trial: Any) -> str:
    """The last lines of a failed trial's error, for humans."""
    path = getattr(trial, "error_file", None)
    text = ""
    if path and os.path.exists(path):
        with open(path) as handle:
            text = handle.read()
    if not text:
        text = str(getattr(trial, "error_msg", "") or "")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-6:])
