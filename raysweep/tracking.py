"""What is recorded: one MLflow parent run per sweep, one nested child run per trial.

All MLflow calls happen on the driver, in a Tune callback, so workers on a remote cluster
never need a route to the tracking server. Logging is batched with ``log_batch``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from ray.tune import Callback

from raysweep.errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: the experiment tag that makes MLflow 3's UI open the model-training runs view
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
#: result keys that are bookkeeping, not measurements
_NOT_METRICS = {
    "done", "timestamp", "pid", "hostname", "node_ip", "node_id", "trial_id", "experiment_tag",
    "date", "time_this_iter_s", "time_total_s", "time_since_restore", "iterations_since_restore",
    "timesteps_total", "timesteps_since_restore", "episodes_total", "training_iteration",
    "should_checkpoint", "checkpoint_dir_name", "config", "resource",
}
OUTCOME_COMPLETED = "completed"
OUTCOME_STOPPED = "stopped_early"
OUTCOME_FAILED = "failed"


def resolve_tracking_uri(uri: str | None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the embedded sqlite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


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


@dataclass
class _TrialRun:
    run_id: str
    last_step: int = -1
    node_tagged: bool = False
    last_params: dict[str, Any] = field(default_factory=dict)
    pending: list[Any] = field(default_factory=list)


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
        #: PBT exploits, appended by the scheduler: (trial_id, donor_trial_id, step, new_config)
        self.exploits: list[tuple[str, str, int, dict[str, Any]]] = []

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its callbacks with the experiment state; a client is rebuilt on load.
        state = self.__dict__.copy()
        state.pop("client", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        self.__dict__.update(state)
        self.client = MlflowClient(self.tracking_uri)

    def start(self) -> str:
        """Create (or reuse) the experiment and open the parent run; returns its id."""
        from mlflow.entities import Param

        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            self.experiment_id = self.client.create_experiment(self.experiment, tags=dict([EXPERIMENT_KIND_TAG]))
        else:
            self.experiment_id = found.experiment_id
            if EXPERIMENT_KIND_TAG[0] not in found.tags:
                self.client.set_experiment_tag(self.experiment_id, *EXPERIMENT_KIND_TAG)
        run = self.client.create_run(
            self.experiment_id, run_name=self.sweep_name, tags={"raysweep.sweep": self.sweep_name, **self.tags}
        )
        self.parent_run_id = run.info.run_id
        self.client.log_batch(
            self.parent_run_id, params=[Param(k, _clean_param(v)) for k, v in self.params.items()]
        )
        return self.parent_run_id

    def callback(self) -> "MLflowTrialCallback":
        self.trial_callback = MLflowTrialCallback(self)
        return self.trial_callback

    def log_dict(self, data: Any, path: str) -> None:
        self.client.log_dict(self.parent_run_id, data, path)

    def log_text(self, text: str, path: str) -> None:
        self.client.log_text(self.parent_run_id, text, path)

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.parent_run_id, local_path, artifact_path)

    def log_summary(self, metrics: dict[str, float], params: dict[str, Any], tags: dict[str, str]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        self.client.log_batch(
            self.parent_run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None],
            params=[Param(k, _clean_param(v)) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )

    def finish(self, status: str = "FINISHED") -> None:
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status=status)


class MLflowTrialCallback(Callback):
    """Logs every trial as a child run of the sweep's parent run, PBT mutations included."""

    def __init__(self, tracker: SweepTracker, flush_every: float = 1.0) -> None:
        self.tracker = tracker
        self.client = tracker.client
        self.runs: dict[str, _TrialRun] = {}
        self.flush_every = flush_every
        self._last_flush = time.monotonic()
        self._exploits_seen = 0
        #: trial id -> [(resource, validation metric, seconds since the sweep started)]
        self.history: dict[str, list[tuple[float, float, float]]] = {}
        self._started = time.time()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("client", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.client = self.tracker.client

    # -- helpers -----------------------------------------------------------------------------
    def _run_for(self, trial: Any) -> _TrialRun:
        run = self.runs.get(trial.trial_id)
        if run is None:
            run = self._open(trial)
        return run

    def _open(self, trial: Any) -> _TrialRun:
        from mlflow.entities import Param

        from raysweep.runner import trial_name

        name = trial_name(trial.trial_id)
        created = self.client.create_run(
            self.tracker.experiment_id,
            run_name=name,
            tags={
                "mlflow.parentRunId": self.tracker.parent_run_id,
                "raysweep.sweep": self.tracker.sweep_name,
                "raysweep.trial_id": trial.trial_id,
                "raysweep.outcome": "running",
            },
        )
        run = _TrialRun(created.info.run_id, last_params=dict(trial.config))
        self.client.log_batch(run.run_id, params=[Param(k, _clean_param(v)) for k, v in trial.config.items()])
        self.runs[trial.trial_id] = run
        return run

    def _step(self, result: dict[str, Any]) -> int:
        if self.tracker.integer_resource and "resource" in result:
            return int(result["resource"])
        return int(result.get("training_iteration", 0))

    def _flush(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_flush < self.flush_every:
            return
        self._last_flush = time.monotonic()
        for run in self.runs.values():
            if run.pending:
                batch, run.pending = run.pending, []
                for start in range(0, len(batch), 900):  # MLflow takes at most 1000 per batch
                    try:
                        self.client.log_batch(run.run_id, metrics=batch[start : start + 900])
                    except Exception as exc:  # tracking must never fail the sweep
                        logger.warning("MLflow: could not log metrics for run %s: %s", run.run_id, exc)

    def _finish(self, trial: Any, outcome: str, status: str, error: str | None = None) -> None:
        run = self._run_for(trial)
        self._flush(force=True)
        tags = {"raysweep.outcome": outcome, "raysweep.final_config": json.dumps(trial.config, default=str)[:5000]}
        if error:
            tags["raysweep.error"] = error[-5000:]
        from mlflow.entities import RunTag

        self.client.log_batch(run.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(run.run_id, status=status)

    # -- Tune callback hooks -------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run_for(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        from mlflow.entities import Metric, RunTag

        run = self._run_for(trial)
        step = self._step(result)
        value = result.get(self.tracker.metric_key)
        if isinstance(value, (int, float)):
            self.history.setdefault(trial.trial_id, []).append(
                (float(result.get("resource", step)), float(value), time.time() - self._started)
            )
        timestamp = int(result.get("timestamp", time.time()) * 1000)
        for key, value in result.items():
            if key in _NOT_METRICS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            run.pending.append(Metric(key, float(value), timestamp, step))
        if not run.node_tagged and result.get("node_id"):
            tags = [RunTag("raysweep.node_id", str(result["node_id"]))]
            if result.get("node_ip"):
                tags.append(RunTag("raysweep.node_ip", str(result["node_ip"])))
            self.client.log_batch(run.run_id, tags=tags)
            run.node_tagged = True
        self._record_exploits()
        self._flush()

    def _record_exploits(self) -> None:
        from mlflow.entities import RunTag

        while self._exploits_seen < len(self.tracker.exploits):
            trial_id, donor_id, step, new_config = self.tracker.exploits[self._exploits_seen]
            self._exploits_seen += 1
            run = self.runs.get(trial_id)
            if run is None:
                continue
            donor = self.runs.get(donor_id)
            count = sum(1 for e in self.tracker.exploits[: self._exploits_seen] if e[0] == trial_id)
            self.client.log_batch(
                run.run_id,
                tags=[
                    RunTag("raysweep.pbt.last_donor", donor_id),
                    RunTag("raysweep.pbt.last_donor_run_id", donor.run_id if donor else ""),
                    RunTag(f"raysweep.pbt.exploit.{count}", json.dumps({"step": step, "donor": donor_id, "config": new_config}, default=str)[:5000]),
                    RunTag("raysweep.pbt.exploits", str(count)),
                ],
            )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        reached = int(last.get("training_iteration", 0)) >= self.tracker.max_steps
        self._finish(trial, OUTCOME_COMPLETED if reached else OUTCOME_STOPPED, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, OUTCOME_FAILED, "FAILED", error=trial_error_text(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._record_exploits()
        self._flush(force=True)
        # A time budget ends running trials without a completion event: close their runs too.
        for trial in trials:
            run = self.runs.get(trial.trial_id)
            if run is None:
                continue
            current = self.client.get_run(run.run_id)
            if current.info.status == "RUNNING":
                self._finish(trial, OUTCOME_STOPPED, "KILLED" if trial.status not in ("TERMINATED",) else "FINISHED")


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
