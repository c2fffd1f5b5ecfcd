"""Asynchronous successive halving (Ray Tune's ``ASHAScheduler``) along the recipe's resource steps."""

from __future__ import annotations

from typing import Any

from raysweep.strategies._base import resource_text, stop_detail


def build(recipe: Any, metric: str, mode: str, max_steps: int, seed: int, exploits: list, stops: dict | None = None) -> Any:
    # The metric and mode reach it through TuneConfig, as Tune requires.
    from ray.tune.schedulers import ASHAScheduler

    class NotingASHA(ASHAScheduler):
        """Ray's ASHA, also noting in ``stops`` (trial id -> text) which rung stopped a trial and its cutoff."""

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            rung = _rung_ahead(self, trial, result)
            action = super().on_trial_result(tune_controller, trial, result)
            if action == self.STOP and rung is not None and stops is not None and result.get(self._time_attr, 0) < self._max_t:
                number, cutoff = rung
                value = result[self._metric]
                where = f"rung {number} ({resource_text(recipe, result)})"
                stops[trial.trial_id] = stop_detail("asha", where, self._metric, value, self._metric_op * cutoff, self._mode)
            return action

    return NotingASHA(
        time_attr="training_iteration",
        max_t=max_steps,
        grace_period=min(recipe.grace_period, max_steps),
        reduction_factor=recipe.reduction_factor,
    )


def _rung_ahead(scheduler: Any, trial: Any, result: dict) -> tuple[int, float] | None:
    """The rung this result reaches (1 = the lowest) and its cutoff before the result counts, if any."""
    if scheduler._metric not in result:
        return None
    reached = rung_reached(scheduler, trial, result)
    if reached is None:
        return None
    number, recorded, bracket = reached
    cutoff = bracket.cutoff(recorded)
    return (number, float(cutoff)) if cutoff is not None else None


def rung_reached(scheduler: Any, trial: Any, result: dict) -> tuple[int, dict, Any] | None:
    """The rung a result reaches (1 = the lowest), the scores recorded there before it, and the
    trial's bracket; None if the result reaches no new rung or the scheduler is not ASHA.

    Private API: Ray's ASHA keeps each trial's bracket in ``_trial_info`` and its rungs in
    ``_Bracket._rungs`` (highest first, as (milestone, recorded scores)), computing a cutoff with
    ``_Bracket.cutoff``; this mirrors ``_Bracket.on_result``. Checked on Ray 2.60.
    """
    info = getattr(scheduler, "_trial_info", None)
    bracket = info.get(trial.trial_id) if isinstance(info, dict) else None
    rungs = getattr(bracket, "_rungs", None)
    if rungs is None or scheduler._time_attr not in result:
        return None
    now = result[scheduler._time_attr]
    for index, (milestone, recorded) in enumerate(rungs):
        if now < milestone or trial.trial_id in recorded:
            continue
        return len(rungs) - index, recorded, bracket
    return None
