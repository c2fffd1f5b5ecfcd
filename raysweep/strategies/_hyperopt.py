"""HyperOpt's TPE (Ray Tune's ``HyperOptSearch``), trying the starting points first."""

from __future__ import annotations

from typing import Any

from ray.tune.search.hyperopt import HyperOptSearch


def build(metric: str, mode: str, seed: int, max_concurrent: int, points: list[dict[str, Any]] | None) -> Any:
    from ray.tune.search import ConcurrencyLimiter

    return ConcurrencyLimiter(
        HyperOptSearch(random_state_seed=seed, points_to_evaluate=points or None), max_concurrent=max_concurrent
    )


def build_conditional(seed: int, max_concurrent: int, points: list[dict[str, Any]] | None, anneal: bool = False) -> Any:
    """HyperOpt's TPE (or annealing) trying ``points`` first, given in HyperOpt's own terms (label ->
    value, a choice by its index): ``raysweep run auto``'s family choice, whose values are sub-spaces."""
    from ray.tune.search import ConcurrencyLimiter

    from raysweep.strategies._anneal import annealing_search

    searcher = annealing_search(LabelledPointsSearch) if anneal else LabelledPointsSearch
    return ConcurrencyLimiter(searcher(random_state_seed=seed, points_to_evaluate=points or None), max_concurrent=max_concurrent)


class LabelledPointsSearch(HyperOptSearch):
    """``HyperOptSearch`` whose starting points are already HyperOpt's: label -> value, a choice by its index.

    Ray converts each starting point's choices to indices by matching the value among the choice's
    plain values; a choice of sub-spaces has none, so that step is skipped here (private
    ``_convert_categories_to_indices``, checked on Ray 2.60).
    """

    def _convert_categories_to_indices(self, config: dict[str, Any]) -> None:
        return None

    def _setup_hyperopt(self) -> None:
        super()._setup_hyperopt()
        # A point names the labels of its own branch; HyperOpt's algorithms (annealing) look up
        # every label of the space in each trial, an inactive one holding no value.
        labels = list(self.domain.params)
        for trial in self._hpopt_trials._dynamic_trials:
            misc = trial["misc"]
            for label in labels:
                misc["idxs"].setdefault(label, [])
                misc["vals"].setdefault(label, [])
        self._hpopt_trials.refresh()
