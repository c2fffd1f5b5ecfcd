"""What is recorded: one MLflow parent run per sweep, one nested child run per trial.

All MLflow calls happen on the driver, in a Tune callback, so workers on a remote cluster
never need a route to the tracking server. Metrics are batched with ``log_batch``. Tracking
never fails the sweep: a failed MLflow call is logged as a warning and the sweep goes on.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ray.tune import Callback

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
#: how long Tune's loop waits, at a checkpoint, for the trial's steps to be in MLflow
_CHECKPOINT_WAIT_S = 60.0
#: how long the end of a sweep waits for the MLflow writer to catch up
_DRAIN_WAIT_S = 600.0


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


@dataclass
class _TrialView:
    """What the MLflow writer needs of a Tune trial, taken when Tune raised the event."""

    trial_id: str
    config: dict[str, Any]
    last_result: dict[str, Any]
    status: str
    error_file: str | None = None
    error_msg: str | None = None

    @classmethod
    def of(cls, trial: Any) -> "_TrialView":
        return cls(
            trial_id=trial.trial_id,
            config=dict(trial.config),
            last_result=dict(trial.last_result or {}),
            status=trial.status,
            error_file=getattr(trial, "error_file", None),
            error_msg=getattr(trial, "error_msg", None),
        )


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
        #: a resumed sweep's results from before the resume, as MLflowTrialCallback.history
        self.resumed_history: dict[str, list[tuple[float, float, float]]] = {}
        self.trial_callback: MLflowTrialCallback | None = None
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

    def callback(self) -> "MLflowTrialCallback":
        self.trial_callback = MLflowTrialCallback(self)
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

    def finish(self, status: str = "FINISHED") -> None:
        """End the sweep's runs: trials still open (an interrupted or crashed sweep), then the parent."""
        if self.trial_callback is not None:
            reason = "sweep_interrupted" if status == "KILLED" else "sweep_failed"
            self.trial_callback.close_open_runs(status="FINISHED" if status == "FINISHED" else "KILLED", reason=reason)
        if self.parent_run_id:
            try:
                self.client.set_terminated(self.parent_run_id, status=status)
            except Exception as exc:
                logger.warning("raysweep: could not end the MLflow parent run %s: %s", self.parent_run_id, exc)


class MLflowTrialCallback(Callback):
    """Logs every trial as a child run of the sweep's parent run, PBT mutations included.

    A trial run holds the trial's starting config as params, every numeric result as a metric
    whose step is the resource spent so far (trees, rounds, epochs; the step number for a
    fractional resource), the node it ran on, and at the end its outcome and final config.
    """

    def __init__(self, tracker: SweepTracker, flush_every: float = 1.0) -> None:
        self.tracker = tracker
        self.runs: dict[str, _TrialRun] = {}
        self.flush_every = flush_every
        self._last_flush = time.monotonic()
        self._exploits_seen = 0
        self._backlog: list[tuple[Any, dict[str, Any], float]] = []
        #: trial id -> [(resource, validation metric, seconds since the sweep started)]
        self.history: dict[str, list[tuple[float, float, float]]] = {
            k: list(v) for k, v in getattr(tracker, "resumed_history", {}).items()
        }
        self._started = getattr(tracker, "started", time.time())
        #: when this process started the sweep (or resumed it): where a time budget counts from
        self._session_started = time.monotonic()
        #: the sweep's trials, once it ended
        self._trials: list[Any] = []
        #: Tune's events, in order, for the writer thread (started with the first event)
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queued = 0
        self._writer: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state while the writer works; what a
        # restored sweep needs is rebuilt from MLflow (see SweepTracker.reopen).
        return {"tracker": self.tracker, "flush_every": self.flush_every}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["tracker"], state["flush_every"])

    @property
    def client(self) -> Any:
        return self.tracker.client

    # -- helpers -----------------------------------------------------------------------------
    def _run_for(self, trial: Any) -> _TrialRun:
        run = self.runs.get(trial.trial_id)
        if run is None:
            run = self._open(trial)
        return run

    def _open(self, trial: Any) -> _TrialRun:
        from mlflow.entities import Param

        from raysweep.runner import trial_name

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
        if self.tracker.integer_resource and "resource" in result:
            return int(result["resource"])
        return int(result.get("training_iteration", 0))

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

    def _warn_once(self, message: str) -> None:
        if not getattr(self, "_warned", False):
            logger.warning(message)
            self._warned = True

    def _finish(self, trial: Any, outcome: str, status: str, error: str | None = None, reason: str | None = None) -> None:
        run = self._run_for(trial)
        self._record_exploits()
        run.pending_tags.update({OUTCOME_TAG: outcome, "raysweep.final_config": json.dumps(trial.config, default=str)[:5000]})
        if reason:
            run.pending_tags["raysweep.stop_reason"] = reason
        if error:
            run.pending_tags["raysweep.error"] = error[-5000:]
        if not self._flush(force=True, runs=[run]):
            raise RuntimeError("the MLflow tracking server does not answer; the run is ended later")
        self.client.set_terminated(run.run_id, status=status)
        run.finished = True

    def _reached_end(self, trial: Any) -> bool:
        last = trial.last_result or {}
        return int(last.get("training_iteration", 0) or 0) >= self.tracker.max_steps

    def close_open_runs(self, status: str, reason: str) -> None:
        """End every trial run still open (the sweep stopped around them); never raises."""
        if not self.wait_idle(_DRAIN_WAIT_S):
            logger.warning("raysweep: MLflow is still behind the sweep after %.0f s; `raysweep sync` writes the rest", _DRAIN_WAIT_S)
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

    # -- Tune callback hooks -------------------------------------------------------------------
    # Each hook hands a snapshot of the trial to the writer thread and returns at once: MLflow's
    # round trips (a database write, or an HTTP call) stay off Tune's event loop. The writer
    # handles the events one at a time, in the order Tune raised them.
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._submit(self._trial_started, _TrialView.of(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        self._submit(self._trial_result, _TrialView.of(trial), dict(result), time.time())

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        # Tune is about to list this checkpoint in the experiment state that `raysweep resume`
        # restarts from. A driver killed after that but before the steps up to the checkpoint
        # reach MLflow would leave a gap in the resumed trial's history (it continues after the
        # checkpoint), so this one waits until the writer has written them.
        self._submit(self._checkpointed, _TrialView.of(trial), wait=_CHECKPOINT_WAIT_S)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._submit(self._trial_completed, _TrialView.of(trial))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._submit(self._trial_recovered, _TrialView.of(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._submit(self._trial_errored, _TrialView.of(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._submit(self._experiment_ended, [_TrialView.of(trial) for trial in trials])
        self.wait_idle()

    # -- the writer thread ---------------------------------------------------------------------
    def _submit(self, handler: Callable, *args: Any, wait: float | None = None) -> None:
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_events, name="raysweep-mlflow", daemon=True)
                self._writer.start()
            done = threading.Event() if wait is not None else None
            self._queued += 1
            self._events.put((handler, args, done))
        if done is not None:
            done.wait(wait)

    def _write_events(self) -> None:
        while True:
            handler, args, done = self._events.get()
            try:
                handler(*args)
            except Exception as exc:  # the handlers are best effort; this is the last guard
                logger.warning("raysweep: MLflow logging failed (the sweep goes on): %s", exc)
            finally:
                with self._lock:
                    self._queued -= 1
                    if self._queued == 0:
                        self._idle.notify_all()
                if done is not None:
                    done.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the writer has handled every event so far; False if ``timeout`` came first."""
        with self._lock:
            return self._idle.wait_for(lambda: self._queued == 0, timeout)

    # -- what the writer does for each event ---------------------------------------------------
    @_best_effort
    def _trial_started(self, trial: "_TrialView") -> None:
        self._run_for(trial)

    def _trial_result(self, trial: "_TrialView", result: dict[str, Any], seen: float) -> None:
        # Results that could not be recorded (the tracking server was away) wait here, in order,
        # and are written once it answers again.
        self._backlog.append((trial, result, seen))
        self._drain_backlog()

    @_best_effort
    def _checkpointed(self, trial: "_TrialView") -> None:
        run = self.runs.get(trial.trial_id)
        if run is not None:
            self._flush(force=True, runs=[run])

    @_best_effort
    def _trial_completed(self, trial: "_TrialView") -> None:
        if trial.trial_id not in self.runs and not trial.last_result:
            return  # a trial the sweep ended before it started: nothing to record
        if self._reached_end(trial):
            self._finish(trial, OUTCOME_COMPLETED, "FINISHED")
        else:
            self._finish(trial, OUTCOME_STOPPED, "FINISHED", reason="scheduler")

    @_best_effort
    def _trial_recovered(self, trial: "_TrialView") -> None:
        """A failed trial (its node died, or it raised) that Tune retries (``--max-failures``)."""
        run = self._run_for(trial)
        run.retries += 1
        # The retry may run on another node (the one it ran on may have died): tag it afresh.
        run.node_tagged = False
        run.pending_tags["raysweep.retries"] = str(run.retries)
        run.pending_tags[f"raysweep.retry.{run.retries}.error"] = trial_error_text(trial)[-4000:] or "unknown"
        self._flush(force=True, runs=[run])

    @_best_effort
    def _trial_errored(self, trial: "_TrialView") -> None:
        self._finish(trial, OUTCOME_FAILED, "FAILED", error=trial_error_text(trial))

    @_best_effort
    def _experiment_ended(self, trials: list["_TrialView"]) -> None:
        self._trials = list(trials)
        self._end_trials()

    def _drain_backlog(self) -> bool:
        """Record the results kept while MLflow was away, in order; False if it still does not answer."""
        while self._backlog:
            waiting_trial, waiting_result, seen = self._backlog[0]
            try:
                self._record_result(waiting_trial, waiting_result, seen)
            except Exception as exc:
                self._warn_once(f"raysweep: MLflow is not answering ({exc}); results are kept and retried")
                del self._backlog[: max(0, len(self._backlog) - _BACKLOG_LIMIT)]
                return False
            self._backlog.pop(0)
        return True

    def _record_result(self, trial: Any, result: dict[str, Any], seen: float) -> None:
        """Queue one result's metrics on its trial's run; ``seen``: when Tune handed it over."""
        from mlflow.entities import Metric

        run = self._run_for(trial)
        step = self._step(result)
        run.last_step = step
        if step <= run.logged_through:
            return  # a resumed trial repeating steps MLflow already has
        value = result.get(self.tracker.metric_key)
        if isinstance(value, (int, float)):
            self.history.setdefault(trial.trial_id, []).append(
                (float(result.get("resource", step)), float(value), seen - self._started)
            )
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
        budget_spent = isinstance(budget, (int, float)) and time.monotonic() - self._session_started >= 0.9 * budget
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
