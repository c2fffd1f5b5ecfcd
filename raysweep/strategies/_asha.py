"""Asynchronous successive halving (Ray Tune's ``ASHAScheduler``) along the recipe's resource steps."""

from __future__ import annotations

from typing import Any


def build(recipe: Any, metric: str, mode: str, max_steps: int, seed: int, exploits: list) -> Any:
    # The metric and mode reach it through TuneConfig, as Tune requires.
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_steps,
        grace_period=min(recipe.grace_period, max_steps),
        reduction_factor=recipe.reduction_factor,
    )
