"""Why a trial was stopped early: the scheduler's note, carried in the trial's own result.

A scheduler (see :mod:`raysweep.strategies._asha`, ``_hyperband``) notes its stop decision as
text; :class:`StopNotes`, the first of the sweep's Tune callbacks, puts it in the trial's result
under :data:`raysweep.tracking.schema.STOP_DETAIL_RESULT`. From there Ray's result files, the
MLflow writer and the leaderboard all read it.

When the sweep's own rule ends it (``--stop-at``, ``--patience``: a
:class:`raysweep.strategies.stoppers.SweepStopper`), Tune sets every trial still running or
waiting to TERMINATED with no event of its own; :class:`StopNotes` then marks the last result of
each trial cut short with why the sweep ended (:data:`raysweep.tracking.schema.SWEEP_STOP_RESULT`),
so that the MLflow writer, the leaderboard and the runner tell it from an interrupted sweep. It
also tells the patience rule of each trial that finished.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from raysweep.tracking import schema


class StopNotes(Callback):
    """Moves each stop decision a scheduler noted (trial id -> text) into that trial's result."""

    def __init__(self, stops: dict[str, str], sweep_stopper: Any = None) -> None:
        self.stops = stops
        self.sweep_stopper = sweep_stopper
        #: the trials started in this session (each has a run in MLflow, results or not)
        self.started: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks; the notes belong to this session
        return {"stops": {}, "sweep_stopper": None, "started": set()}

    def get_state(self) -> dict[str, Any] | None:
        # Tune saves its callbacks' state with the experiment and gives it back on resume: the
        # --patience count goes on from where the stopped sweep left it.
        rules = self.sweep_stopper.state() if self.sweep_stopper is not None else None
        return {"sweep_stopper": rules} if rules else None

    def set_state(self, state: dict[str, Any]) -> None:
        if self.sweep_stopper is not None and state.get("sweep_stopper"):
            self.sweep_stopper.restore(state["sweep_stopper"])

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.started.add(trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        # Tune asks the scheduler about a result just before it tells the callbacks of it.
        detail = self.stops.pop(trial.trial_id, None)
        if detail:
            result[schema.STOP_DETAIL_RESULT] = detail
        # Tune asks the stopper too: the trial whose result reached --stop-at ends with the sweep.
        sweep = self.sweep_stopper
        if sweep is not None and sweep.reason and sweep.reached(trial.trial_id):
            result[schema.SWEEP_STOP_RESULT] = sweep.reason

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # A trial stopped while paused (HyperBand drops the rest of a bracket) reports no new
        # result: its last one gets the note, and the `done` Tune puts in the result of a trial
        # its scheduler stops as it reports (without it the trial reads as cut off by Ctrl-C).
        detail = self.stops.pop(trial.trial_id, None)
        metadata = getattr(trial, "run_metadata", None)
        if detail and metadata is not None and metadata.last_result is not None:
            metadata.last_result[schema.STOP_DETAIL_RESULT] = detail
            metadata.last_result["done"] = True
        if self.sweep_stopper is not None and trial.status != "ERROR":
            self.sweep_stopper.trial_finished(trial.trial_id)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # The first callback to hear of the end: the writer and the ledger, after it, see the marks.
        reason = self.sweep_stopper.reason if self.sweep_stopper is not None else None
        if not reason:
            return
        for trial in trials:
            metadata = getattr(trial, "run_metadata", None)
            last = metadata.last_result if metadata is not None else None
            # A trial that started but had not reported yet is cut short too; one that never
            # started (still waiting) is no trial of the sweep and stays as it is.
            started = bool(last) or trial.trial_id in self.started
            if trial.status == "TERMINATED" and started and last is not None and not last.get("done"):
                last[schema.SWEEP_STOP_RESULT] = reason
