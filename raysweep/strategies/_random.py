"""Random search (Ray Tune's ``BasicVariantGenerator``), trying the starting points first."""

from __future__ import annotations

import pickle
from typing import Any

from ray.tune.search import Searcher


def build(metric: str, mode: str, seed: int, max_concurrent: int, points: list[dict[str, Any]] | None) -> Any:
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent, points_to_evaluate=points or None)


def build_conditional(seed: int, max_concurrent: int, points: list[dict[str, Any]] | None) -> Any:
    """Random search over a space with a choice of sub-spaces (``raysweep run auto``), trying ``points`` first.

    ``BasicVariantGenerator`` cannot take a starting point there: it looks each of the point's values
    up along its path in the space, and a choice of sub-spaces has no path into it.
    """
    from ray.tune.search import ConcurrencyLimiter

    return ConcurrencyLimiter(PointsThenRandom(seed, points), max_concurrent=max_concurrent)


class PointsThenRandom(Searcher):
    """The starting points in order, then configs drawn at random from the space (Ray's own sampling)."""

    def __init__(self, seed: int, points: list[dict[str, Any]] | None = None) -> None:
        import numpy as np

        super().__init__()
        self.points = [dict(point) for point in points or []]
        self.random_state = np.random.RandomState(seed)
        self.space: dict[str, Any] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        self.space = config
        return True

    def suggest(self, trial_id: str) -> dict | None:
        from ray.tune.search.variant_generator import generate_variants

        if self.points:
            return self.points.pop(0)
        return next(generate_variants(self.space, random_state=self.random_state))[1]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        return None

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump({"points": self.points, "random_state": self.random_state, "space": self.space}, handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            state = pickle.load(handle)
        self.points, self.random_state, self.space = state["points"], state["random_state"], state["space"]
