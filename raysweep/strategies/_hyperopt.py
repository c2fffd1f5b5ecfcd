"""HyperOpt's TPE (Ray Tune's ``HyperOptSearch``), trying the starting points first."""

from __future__ import annotations

from typing import Any


def build(metric: str, mode: str, seed: int, max_concurrent: int, points: list[dict[str, Any]] | None) -> Any:
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.hyperopt import HyperOptSearch

    return ConcurrencyLimiter(
        HyperOptSearch(random_state_seed=seed, points_to_evaluate=points or None), max_concurrent=max_concurrent
    )
