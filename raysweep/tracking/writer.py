"""The trial writer: every trial of a sweep as a child run of its parent run.

It takes Tune's events in the order Tune raised them (see :mod:`raysweep.tracking.callback`,
which runs it in a process of its own). Metrics, params and tags go out together with
``log_batch``. Tracking never fails the sweep: a failed MLflow call is logged as a warning and
the sweep goes on. This module does not import Ray: the writer process starts quickly.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from raysweep.sweep.auto import split
from raysweep.tracking import schema
from raysweep.tracking.exploits import exploit_record
from raysweep.tracking.store import SweepTracker, clean_param
from raysweep.tracking.takeover import Takeover

logger = logging.getLogger("raysweep.tracking")

#: MLflow takes at most 1000 metrics, 100 params, 100 tags and 1000 of them in all in one log_batch
BATCH_LIMIT = 900
_PARAMS_LIMIT = 100
_TAGS_LIMIT = 100
_ENTITIES_LIMIT = 1000
#: a backlog entry that is no result: a retried trial repeats its steps up to this one
_REPEATS_THROUGH = "raysweep/repeats_through"
#: results kept while the tracking server is away (beyond this, the oldest go; `raysweep sync` has them)
_BACKLOG_LIMIT = 100_000


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
class TrialView:
    """What the MLflow writer needs of a Tune trial, taken when Tune raised the event.

    Defined here, not beside the callback that takes it: the writer process unpickles one with
    every event, and the callback's module imports Ray Tune (and pandas), which the writer would
    then import too (about 3 s of CPU beside a sweep's first trials on 2 cores, measured).
    """

    trial_id: str
    config: dict[str, Any]
    last_result: dict[str, Any]
    status: str
    error_file: str | None = None
    error_msg: str | None = None
    #: when Tune raised the event (seconds since the epoch): the run's start or end time
    seen: float = 0.0

    @classmethod
    def of(cls, trial: Any, errors: bool = False) -> "TrialView":
        # The recorded result, not Trial.last_result: before a trial's first report that one waits
        # on a remote call for Ray's default result.
        metadata = getattr(trial, "run_metadata", None)
        last = metadata.last_result if metadata is not None else trial.last_result
        view = cls(trial.trial_id, dict(trial.config), dict(last or {}), trial.status, seen=time.time())
        if errors or trial.status == "ERROR":
            view.error_file = getattr(trial, "error_file", None)
            view.error_msg = getattr(trial, "error_msg", None)
        return view


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


class TrialWriter:
    """Logs every trial as a child run of the sweep's parent run, PBT mutations included.

    A trial run holds the trial's starting config as params, every numeric result as a metric
    whose step is the resource spent so far (trees, rounds, epochs; the step number for a
    fractional resource), the node it ran on, and at the end its outcome and final config.
    It takes Tune's events in the order Tune raised them (see :mod:`raysweep.tracking.callback`).
    """

    def __init__(self, tracker: SweepTracker, session_started: float, flush_every: float = 1.0) -> None:
        self.tracker = tracker
        self.runs: dict[str, _TrialRun] = {}
        self.flush_every = flush_every
        self._last_flush = time.monotonic()
        self._exploits_seen = 0
        self._backlog: list[tuple[Any, dict[str, Any]]] = []
        #: where the time budget counts from, seconds since the epoch: when this process started the
        #: sweep, or resumed it less what the earlier sessions spent of the budget
        self._session_started = session_started
        #: the sweep's trials, once it ended
        self._trials: list[Any] = []
        #: set when this writer took over from one that died (see :mod:`raysweep.tracking.takeover`)
        self.takeover: Takeover | None = None

    @property
    def client(self) -> Any:
        return self.tracker.client

    # -- taking over from a writer that died ----------------------------------------------------
    def take(self, kind: str, *args: Any) -> None:
        """Handle one of Tune's events (the name of one of the methods below), in Tune's order."""
        if self.takeover is not None and kind != "add_exploit":
            if not self.takeover.ready(self, force=kind in ("experiment_ended", "close_open_runs")):
                # Until the replay has found the trial runs again, no run may be opened or written
                # (it would be a second run for a trial). A result is in Ray's results, which the
                # replay reads when it runs; an end waits for it.
                if kind not in ("trial_started", "trial_result"):
                    self.takeover.held.append((kind, args))
                return
        getattr(self, kind)(*args)

    def replay(self, trial_folders: list[str], replay_trial_folders: Callable[..., dict[str, Any]]) -> None:
        """Take over from a writer that died: write what Ray recorded in these trial folders and
        MLflow lacks (with :func:`raysweep.tracking.sync.replay_trial_folders`), then go on with the runs."""
        self.takeover = Takeover(trial_folders, replay_trial_folders)
        self.takeover.ready(self, force=True)

    def adopt(self, replayed: dict[str, Any]) -> None:
        """Continue the trial runs a replay found (or made) in MLflow, from the steps they have."""
        for trial_id, found in replayed.items():
            if found.status != "RUNNING" and trial_id in self.tracker.existing_trial_runs:
                continue  # a resumed sweep's run that its trial reopens when it runs again
            self.runs.setdefault(
                trial_id,
                _TrialRun(
                    found.run_id, last_step=max(found.last_step, 0), node_tagged=schema.NODE_ID in found.tags,
                    finished=found.status != "RUNNING", logged_through=found.last_step,
                    exploits_logged=int(found.tags.get(schema.PBT_EXPLOITS, 0)),
                ),
            )  # fmt: skip

    def unwritten(self) -> str | None:
        """What this writer has not written to MLflow (None when MLflow has it all)."""
        if self.takeover is not None and not self.takeover.done:
            return f"the trial results could not be written again from Ray's results ({self.takeover.error})"
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
            self.client.set_tag(existing, schema.OUTCOME, schema.OUTCOME_RUNNING)
            logged = self.client.get_run(existing).data
            for stale in (schema.STOP_REASON, schema.STOP_DETAIL):
                if stale in logged.tags:
                    self.client.delete_tag(existing, stale)
            # A run made for a trial that had reported nothing (by `raysweep sync`, or a writer
            # stopped before its first write) may lack the trial's config: it gets it now.
            missing = [Param(k, clean_param(v)) for k, v in split(dict(trial.config))[1].items() if k not in logged.params]
            run = self.runs[trial.trial_id] = _TrialRun(
                existing, logged_through=self.tracker.logged_through.get(trial.trial_id, -1), pending_params=missing
            )
            return run
        family, params = split(dict(trial.config))
        created = self.client.create_run(
            self.tracker.experiment_id,
            # The writer may write a little after the trial started: the run keeps the trial's times.
            start_time=_millis(getattr(trial, "seen", None)),
            run_name=schema.trial_name(trial.trial_id),
            tags=schema.new_trial_run_tags(self.tracker.parent_run_id, self.tracker.sweep_name, trial.trial_id, family),
        )
        run = _TrialRun(created.info.run_id, pending_params=[Param(k, clean_param(v)) for k, v in params.items()])
        self.runs[trial.trial_id] = run
        return run

    def _step(self, result: dict[str, Any]) -> int:
        return schema.result_step(result, self.tracker.integer_resource)

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
                metrics = run.pending[: min(BATCH_LIMIT, _ENTITIES_LIMIT - len(params) - len(tags))]
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
            if self.takeover is not None and not self.takeover.ready(self, force=True):
                return
            self._drain_backlog()
            self._flush(force=True)
        except Exception as exc:
            logger.warning("raysweep: could not write the last trial results to MLflow: %s", exc)

    def _warn_once(self, message: str) -> None:
        if not getattr(self, "_warned", False):
            logger.warning(message)
            self._warned = True

    def _finish(self, trial: Any, ended: schema.Outcome, error: str | None = None) -> None:
        run = self._run_for(trial)
        if run.finished:
            return  # ended already (by a writer that died since)
        self._record_exploits()
        run.pending_tags.update({schema.OUTCOME: ended.outcome, schema.FINAL_CONFIG: json.dumps(trial.config, default=str)[:5000]})
        if ended.reason:
            run.pending_tags[schema.STOP_REASON] = ended.reason
            detail = schema.stop_detail(ended, trial.last_result or {})
            if detail:
                run.pending_tags[schema.STOP_DETAIL] = detail
        if error:
            run.pending_tags[schema.ERROR] = error[-5000:]
        if not self._flush(force=True, runs=[run]):
            raise RuntimeError("the MLflow tracking server does not answer; the run is ended later")
        self.client.set_terminated(run.run_id, status=ended.status, end_time=_millis(getattr(trial, "seen", None)))
        run.finished = True

    def _ended(self, trial: Any, *, done: bool, budget_spent: bool = False) -> schema.Outcome:
        """How ``trial`` ended (see :func:`raysweep.tracking.schema.trial_outcome`)."""
        last = {**(trial.last_result or {}), "done": done}
        return schema.outcome_of(last, max_steps=self.tracker.max_steps, errored=trial.status == "ERROR", budget_spent=budget_spent)

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
                run.pending_tags.update({schema.OUTCOME: schema.OUTCOME_STOPPED, schema.STOP_REASON: reason})
                if not self._flush(force=True, runs=[run]):
                    raise RuntimeError("the MLflow tracking server does not answer")
                self.client.set_terminated(run.run_id, status=status)
                run.finished = True
            except Exception as exc:
                logger.warning("raysweep: could not end MLflow run %s: %s", run.run_id, exc)

    # -- Tune's events, in order ----------------------------------------------------------------
    @_best_effort
    def trial_started(self, trial: Any) -> None:
        self._run_for(trial)

    def trial_result(self, trial: Any, result: dict[str, Any]) -> None:
        # Results that could not be recorded (the tracking server was away) wait here, in order,
        # and are written once it answers again.
        self._backlog.append((trial, result))
        self._drain_backlog()

    @_best_effort
    def trial_completed(self, trial: Any) -> None:
        if trial.trial_id not in self.runs and not trial.last_result:
            return  # a trial the sweep ended before it started: nothing to record
        self._finish(trial, self._ended(trial, done=True))

    @_best_effort
    def trial_recovered(self, trial: Any) -> None:
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
        run.pending_tags[schema.RETRIES] = str(run.retries)
        run.pending_tags[schema.retry_error_tag(run.retries)] = schema.trial_error(trial)[-4000:] or "unknown"
        self._flush(force=True, runs=[run])

    @_best_effort
    def trial_errored(self, trial: Any) -> None:
        self._finish(trial, schema.Outcome("FAILED", schema.OUTCOME_FAILED), error=schema.trial_error(trial))

    @_best_effort
    def experiment_ended(self, trials: list[Any]) -> None:
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
        step, values = schema.result_metrics(result, self.tracker.integer_resource)
        run.last_step = step
        if step <= run.logged_through:
            return  # a resumed trial repeating steps MLflow already has
        timestamp = int(result.get("timestamp", time.time()) * 1000)
        run.pending += [Metric(key, value, timestamp, step) for key, value in values]
        if not run.node_tagged and result.get("node_id"):
            run.pending_tags.update({schema.node_tag(k): str(result[k]) for k in schema.NODE_KEYS if result.get(k)})
            run.node_tagged = True
            for key, tag in ((schema.DEVICE_RESULT, schema.DEVICE), (schema.GPU_IDS_RESULT, schema.GPU_IDS)):
                if result.get(key):
                    run.pending_tags[tag] = str(result[key])
        self._record_exploits()
        self._flush()

    def _record_exploits(self) -> None:
        """Tag each PBT exploit on the exploiting trial's run, and mark it on its metric chart."""
        while self._exploits_seen < len(self.tracker.exploits):
            trial_id, donor_id, step, new_config = self.tracker.exploits[self._exploits_seen]
            self._exploits_seen += 1
            run, donor = self.runs.get(trial_id), self.runs.get(donor_id)
            count = sum(1 for e in self.tracker.exploits[: self._exploits_seen] if e[0] == trial_id)
            if run is None or count <= run.exploits_logged:
                continue  # no run yet, or tagged by a writer that died since
            # The trial continues from the donor's checkpoint, at the donor's resource.
            at = donor.last_step if donor is not None else step
            metrics, tags = exploit_record(count, donor_id, donor.run_id if donor else "", at, step, new_config)
            run.pending += metrics
            run.pending_tags.update(tags)

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
            ended = self._ended(trial, done=bool((trial.last_result or {}).get("done")), budget_spent=budget_spent)
            self._finish(trial, ended, error=schema.trial_error(trial) if ended.outcome == schema.OUTCOME_FAILED else None)


def _millis(seconds: float | None) -> int | None:
    return int(seconds * 1000) if seconds else None
