"""The record every scheduler and searcher has in the registry."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Strategy:
    """One scheduler or searcher: its name, where its builder lives, and what it needs or refuses.

    ``target`` is ``"module:function"``, imported only when a sweep uses the strategy, so that
    checking a recipe imports no Ray. A scheduler's builder takes ``(recipe, metric, mode,
    max_steps, seed, exploits)``; a searcher's ``(metric, mode, seed, max_concurrent, points)``.
    """

    name: str
    target: str
    #: a searcher that tries a fixed set of configs: ``num_samples`` counts passes over it, it takes
    #: no starting points, and the sweep is complete when the set is
    exhaustive: bool = False
    #: a searcher that learns from results (a model): Ray Tune refuses one beside PBT
    learns: bool = False
    #: a searcher that cannot search the space type ``grid``
    refuses_grid_type: bool = False
    #: a scheduler that evolves a population: it mutates live hyperparameters, needs a family that
    #: carries its state from step to step, and takes no search algorithm beside it
    population: bool = False

    def builder(self) -> Callable[..., Any]:
        module_name, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)
