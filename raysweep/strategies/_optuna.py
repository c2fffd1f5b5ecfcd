"""Optuna's multivariate TPE through Ray Tune's ``OptunaSearch``, trying the starting points first.

``constant_liar`` makes concurrent trials look at each other: a running trial counts as a poor
result, so two trials at once are not sent to the same place. ``OptunaSearch`` refuses a
``seed`` beside a ``sampler``, so the seed goes to the sampler.
"""

from __future__ import annotations

from typing import Any


def build(metric: str, mode: str, seed: int, max_concurrent: int, points: list[dict[str, Any]] | None) -> Any:
    from optuna.samplers import TPESampler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    sampler = TPESampler(seed=seed, multivariate=True, constant_liar=True)
    # Evaluated points from elsewhere go in later through OptunaSearch.add_evaluated_point, not
    # the constructor's evaluated_rewards (which would mark every starting point as evaluated).
    return ConcurrencyLimiter(OptunaSearch(sampler=sampler, points_to_evaluate=points or None), max_concurrent=max_concurrent)
