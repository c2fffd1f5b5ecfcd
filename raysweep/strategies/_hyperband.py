"""HyperBand (Ray Tune's ``HyperBandScheduler``) along the recipe's resource steps."""

from __future__ import annotations

from typing import Any


def build(recipe: Any, metric: str, mode: str, max_steps: int, seed: int, exploits: list) -> Any:
    from ray.tune.schedulers import HyperBandScheduler

    return HyperBandScheduler(
        time_attr="training_iteration",
        max_t=max_steps,
        reduction_factor=recipe.reduction_factor,
    )
