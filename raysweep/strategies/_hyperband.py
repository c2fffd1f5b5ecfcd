"""HyperBand (Ray Tune's ``HyperBandScheduler``) along the recipe's resource steps."""

from __future__ import annotations

from typing import Any

from raysweep.strategies._base import resource_text, stop_detail


def build(recipe: Any, metric: str, mode: str, max_steps: int, seed: int, exploits: list, stops: dict | None = None) -> Any:
    from ray.tune.schedulers import HyperBandScheduler

    class NotingHyperBand(HyperBandScheduler):
        """Ray's HyperBand, also noting in ``stops`` (trial id -> text) which bracket's halving
        stopped a trial, at which resource, and the worst score it kept."""

        def _process_bracket(self, tune_controller: Any, bracket: Any) -> str:
            if stops is None:
                return super()._process_bracket(tune_controller, bracket)
            _note_halving(self, bracket, recipe, stops)
            try:
                return super()._process_bracket(tune_controller, bracket)
            finally:
                del bracket.successive_halving

    return NotingHyperBand(
        time_attr="training_iteration",
        max_t=max_steps,
        reduction_factor=recipe.reduction_factor,
    )


def _note_halving(scheduler: Any, bracket: Any, recipe: Any, stops: dict) -> None:
    """Wrap this bracket's next halving so that each trial it drops gets its stop detail.

    Private API: Ray's HyperBand halves in ``_Bracket.successive_halving`` (returning the kept and
    the dropped trials) over ``_Bracket._live_trials`` (trial -> latest result), and keeps each
    trial's bracket and band in ``_trial_info``. Checked on Ray 2.60.
    """
    halving = bracket.successive_halving

    def noted(metric: str, metric_op: float) -> tuple[Any, Any]:
        results = dict(bracket._live_trials)
        good, bad = halving(metric, metric_op)
        if bad and good:
            cutoff = min((results[t][metric] for t in good), key=lambda v: metric_op * v)
            first_trial = next(iter(results))
            band = scheduler._trial_info[first_trial][1] if first_trial in scheduler._trial_info else 0
            brackets = scheduler._hyperbands[band] if band < len(scheduler._hyperbands) else [bracket]
            number = next((i + 1 for i, b in enumerate(brackets) if b is bracket), 1)
            for trial in bad:
                result = results[trial]
                where = f"bracket {number}, halving at {resource_text(recipe, result)} (kept {len(good)} of {len(results)})"
                stops[trial.trial_id] = stop_detail("hyperband", where, metric, result[metric], cutoff, scheduler._mode)
        return good, bad

    bracket.successive_halving = noted
