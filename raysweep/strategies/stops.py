"""Why a trial was stopped early: the scheduler's note, carried in the trial's own result.

A scheduler (see :mod:`raysweep.strategies._asha`, ``_hyperband``) notes its stop decision as
text; :class:`StopNotes`, the first of the sweep's Tune callbacks, puts it in the trial's result
under :data:`raysweep.tracking.schema.STOP_DETAIL_RESULT`. From there Ray's result files, the
MLflow writer and the leaderboard all read it.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from raysweep.tracking import schema


class StopNotes(Callback):
    """Moves each stop decision a scheduler noted (trial id -> text) into that trial's result."""

    def __init__(self, stops: dict[str, str]) -> None:
        self.stops = stops

    def __getstate__(self) -> dict[str, Any]:
        return {"stops": {}}  # Tune pickles its callbacks; the notes belong to this session

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        # Tune asks the scheduler about a result just before it tells the callbacks of it.
        detail = self.stops.pop(trial.trial_id, None)
        if detail:
            result[schema.STOP_DETAIL_RESULT] = detail

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # A trial stopped while paused (HyperBand drops the rest of a bracket) reports no new
        # result: its last one gets the note.
        detail = self.stops.pop(trial.trial_id, None)
        metadata = getattr(trial, "run_metadata", None)
        if detail and metadata is not None and metadata.last_result is not None:
            metadata.last_result[schema.STOP_DETAIL_RESULT] = detail
