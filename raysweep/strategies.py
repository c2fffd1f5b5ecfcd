"""What to try (searchers) and when to stop (schedulers): Ray Tune's own, chosen by name.

:func:`check` refuses a pairing that makes no sense before anything starts; it imports
nothing heavy. The builders import Ray Tune only when called.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any

from raysweep.errors import UserError
from raysweep.recipes import SCHEDULERS, SEARCHERS, Recipe, highest


def check(recipe: Recipe, scheduler: str | None, searcher: str | None, supports_pbt: bool) -> None:
    """Refuse a scheduler/searcher/recipe combination that cannot work, saying why.

    ``scheduler`` and ``searcher`` are the flags; None (or empty) means the recipe's own, and an
    error then names the recipe key, or the ``--set`` that gave it.
    """
    if scheduler and scheduler not in SCHEDULERS:
        raise UserError(f"--scheduler {scheduler}: unknown scheduler; use one of {', '.join(SCHEDULERS)}")
    if searcher and searcher not in SEARCHERS:
        raise UserError(f"--searcher {searcher}: unknown searcher; use one of {', '.join(SEARCHERS)}")
    scheduler_named = _chosen(recipe, "scheduler", scheduler)
    searcher_named = _chosen(recipe, "searcher", searcher)
    scheduler = scheduler or recipe.scheduler
    searcher = searcher or recipe.searcher
    if scheduler == "pbt":
        if not supports_pbt:
            raise UserError(
                f"{scheduler_named}: the {recipe.family} family carries no training state from one "
                "step to the next, so PBT has nothing to exploit; use --scheduler asha or hyperband"
            )
        if searcher == "hyperopt":
            raise UserError(
                f"{scheduler_named} with {searcher_named}: PBT explores by mutating its own population and Ray Tune "
                "refuses a search algorithm beside it; use --searcher random (or grid)"
            )
        if not recipe.mutations:
            raise UserError(
                f"{recipe.where('pbt.mutations')} is empty, so {scheduler_named} has nothing to mutate; add "
                "pbt.mutations (e.g. learning_rate: {type: loguniform, low: 0.01, high: 0.3})"
            )
    if searcher == "grid":
        for name, spec in recipe.space.items():
            points = spec.get("grid", [])
            outside = [p for p in points if not spec["low"] <= p <= spec["high"]]
            if outside:
                raise UserError(
                    f"{recipe.where(f'space.{name}')}: grid points {outside} lie outside "
                    f"[low={spec['low']}, high={spec['high']}]; move them inside the range (--set space.{name}.grid=[...])"
                )
    if searcher == "hyperopt":
        for name, spec in recipe.space.items():
            if spec["type"] == "grid":
                raise UserError(
                    f"{recipe.where(f'space.{name}.type')}: grid cannot be searched by hyperopt; "
                    "use type: choice, or --searcher grid/random"
                )


def _chosen(recipe: Recipe, key: str, flag: str | None) -> str:
    """Who chose the scheduler or searcher: its flag, a ``--set`` of the recipe key, or the recipe file."""
    if flag:
        return f"--{key} {flag}"
    if key in recipe.overridden:
        return recipe.where(key)
    return f"{recipe.where(key)}: {getattr(recipe, key)}"


def build_scheduler(
    name: str, recipe: Recipe, metric: str, mode: str, max_steps: int, seed: int, exploits: list | None = None
) -> Any:
    """Ray Tune's scheduler for ``name``, set up for the recipe's resource.

    The metric and mode reach it through ``TuneConfig``, as Tune requires.
    """
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler

    if name == "fifo":
        return FIFOScheduler()
    if name == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=max_steps,
            grace_period=min(recipe.grace_period, max_steps),
            reduction_factor=recipe.reduction_factor,
        )
    if name == "hyperband":
        return HyperBandScheduler(
            time_attr="training_iteration",
            max_t=max_steps,
            reduction_factor=recipe.reduction_factor,
        )
    from raysweep import space

    scheduler_class = _recording_pbt()
    return scheduler_class(
        exploits=exploits if exploits is not None else [],
        time_attr="training_iteration",
        perturbation_interval=recipe.perturbation_interval,
        hyperparam_mutations=space.mutations(recipe.mutations),
        quantile_fraction=0.25,
        resample_probability=0.25,
        synch=False,
        # Ray perturbs a range by x0.8 / x1.2 without looking at its bounds (subsample 1.04,
        # min_samples_leaf 0): keep every explored value inside the recipe's range.
        custom_explore_fn=functools.partial(clip_to_bounds, mutation_bounds(recipe.mutations)),
    )


def mutation_bounds(mutations: dict[str, dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """The inclusive (low, high) of every numeric PBT mutation."""
    bounds = {}
    for name, spec in mutations.items():
        if "low" in spec:
            bounds[name] = (spec["low"], highest(spec))
    return bounds


def clip_to_bounds(bounds: dict[str, tuple[float, float]], config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with each bounded value moved into its range, keeping int values int."""
    for name, (low, high) in bounds.items():
        value = config.get(name)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            clipped = min(max(value, low), high)
            config[name] = int(round(clipped)) if isinstance(value, numbers.Integral) else float(clipped)
    return config


def _recording_pbt() -> type:
    """Ray's PBT, also noting each exploit (who cloned whom, when, into what) for MLflow."""
    from ray.tune.schedulers import PopulationBasedTraining

    class RecordingPBT(PopulationBasedTraining):
        def __init__(self, exploits: list, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.exploits = exploits

        def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
            super()._exploit(tune_controller, trial, trial_to_clone)
            step = int((self._trial_state[trial_to_clone].last_result or {}).get("training_iteration", 0))
            self.exploits.append((trial.trial_id, trial_to_clone.trial_id, step, dict(trial.config)))

    return RecordingPBT


def build_searcher(name: str, metric: str, mode: str, seed: int, max_concurrent: int,
                   points_to_evaluate: list[dict[str, Any]] | None = None) -> Any:
    """Ray Tune's search algorithm for ``name``, trying ``points_to_evaluate`` first.

    Grid search tries its grid and nothing else, so it takes no starting points.
    """
    points = None if name == "grid" else [dict(p) for p in points_to_evaluate or []] or None
    if name == "hyperopt":
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.hyperopt import HyperOptSearch

        return ConcurrencyLimiter(
            HyperOptSearch(random_state_seed=seed, points_to_evaluate=points), max_concurrent=max_concurrent
        )
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent, points_to_evaluate=points)
