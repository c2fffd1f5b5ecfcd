"""HyperBand (Ray Tune's ``HyperBandScheduler``) along the recipe's resource steps.

Ray's HyperBand is synchronous: it puts each new trial in a bracket, pauses a trial that reaches
its bracket's milestone until every trial of the bracket has, then halves the bracket. A bracket is
filled only while its trials are live at once, and a trial that ran to its end leaves its bracket:
with no more trials live than the first bracket holds (it runs its trials to the end, never
halving), every trial lands in that bracket and none is ever stopped. A paused trial is live for
the searcher's concurrency limit as much as a running one, so the searcher must let a band's
trials be live beside the running ones: :func:`band_trials` says how many, and
:func:`raysweep.strategies.registry.searcher_concurrency` adds them. The trials a bracket keeps
after its last halving run to the recipe's last step (the sweep's step limit ends them).
"""

from __future__ import annotations

from typing import Any

from raysweep.strategies._base import resource_text, stop_detail


def build(recipe: Any, metric: str, mode: str, max_steps: int, seed: int, exploits: list, stops: dict | None = None) -> Any:
    from ray.tune.schedulers import HyperBandScheduler

    class NotingHyperBand(HyperBandScheduler):
        """Ray's HyperBand, also noting in ``stops`` (trial id -> text) which bracket's halving
        stopped a trial, at which resource, and the worst score it kept."""

        def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
            # A resumed sweep's trials come back through on_trial_add, those that had ended too: in a
            # bracket such a trial counts as live with no result, and the bracket never halves (its
            # other trials paused for good, the resume hung with none running).
            if str(trial.status) in ("TERMINATED", "ERROR"):
                return
            super().on_trial_add(tune_controller, trial)

        def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
            if trial in self._trial_info:
                super().on_trial_remove(tune_controller, trial)

        def choose_trial_to_run(self, tune_controller: Any) -> Any:
            chosen = super().choose_trial_to_run(tune_controller)
            if chosen is not None:
                return chosen
            # Nothing running, nothing to start, trials paused: no result will ever halve their
            # brackets. A resumed sweep's trials can come back ahead of their new brackets'
            # milestones so; run the least trained paused trial on, whose next result moves it.
            if any(str(t.status) in ("RUNNING", "PENDING") for t in tune_controller.get_live_trials()):
                return None
            paused = [t for t in self._trial_info if str(t.status) == "PAUSED"]
            return min(paused, key=lambda t: (t.last_result or {}).get("training_iteration", 0)) if paused else None

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
        # Ray's brackets end at their last milestone, below max_t unless max_t is a power of the
        # reduction factor (4 steps, factor 3: at step 3); stopped there, a bracket's best trials
        # would never reach the recipe's full resource. Without it they run on to the sweep's step limit.
        stop_last_trials=False,
    )


def band_trials(max_steps: int, reduction_factor: float) -> int:
    """How many trials one HyperBand band puts in its brackets (those that run), by Ray's own sizes.

    Private API: Ray's ``HyperBandScheduler`` sizes bracket ``s`` of a band with ``_get_n0(s)``
    trials starting at ``_get_r0(s)`` steps, for ``s`` below ``_s_max_1``, and skips a bracket
    whose start rounds to 0 steps. Checked on Ray 2.60.
    """
    from ray.tune.schedulers import HyperBandScheduler

    scheduler = HyperBandScheduler(time_attr="training_iteration", max_t=max_steps, reduction_factor=reduction_factor)
    return sum(scheduler._get_n0(s) for s in range(scheduler._s_max_1) if scheduler._get_r0(s) > 0)


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
