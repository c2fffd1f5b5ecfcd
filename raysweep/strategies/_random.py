"""Random search (Ray Tune's ``BasicVariantGenerator``), trying the starting points first."""

from __future__ import annotations

from typing import Any


def build(metric: str, mode: str, seed: int, max_concurrent: int, points: list[dict[str, Any]] | None) -> Any:
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent, points_to_evaluate=points or None)
