"""Hyperopt's simulated annealing: Ray Tune's ``HyperOptSearch`` with ``anneal.suggest`` for TPE.

The Hyperopt space is the one Ray builds for TPE, and the starting points are tried first, as
with ``--searcher hyperopt``.
"""

from __future__ import annotations

from typing import Any


def build(metric: str, mode: str, seed: int, max_concurrent: int, points: list[dict[str, Any]] | None) -> Any:
    from ray.tune.search import ConcurrencyLimiter

    return ConcurrencyLimiter(annealing_search()(random_state_seed=seed, points_to_evaluate=points or None), max_concurrent=max_concurrent)


def annealing_search(base: type | None = None) -> type:
    """``HyperOptSearch`` (or its subclass ``base``) proposing by annealing.

    Private detail of Ray Tune: ``HyperOptSearch.__init__`` hard-codes ``self.algo =
    partial(tpe.suggest, n_startup_jobs=..., gamma=...)``, which ``suggest`` calls as
    ``self.algo(new_ids, domain, trials, seed)``; ``anneal.suggest`` takes the same arguments
    but neither TPE option. Checked on Ray 2.60 with hyperopt 0.3.0.
    """
    import hyperopt
    from ray.tune.search.hyperopt import HyperOptSearch

    class AnnealSearch(base or HyperOptSearch):  # type: ignore[misc,valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(n_initial_points=None, gamma=None, **kwargs)
            self.algo = hyperopt.anneal.suggest

    return AnnealSearch
