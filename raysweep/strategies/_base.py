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
    max_steps, seed, exploits, stops)``; a searcher's ``(metric, mode, seed, max_concurrent, points)``.
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
    #: how a searcher takes the trials of earlier sweeps (``--warm-start``): ``"observations"``
    #: (its builder's ``evaluated``: every trial, as if it had run here), ``"starting_points"``
    #: (the best few as extra points to try first), or ``""``: it refuses a warm start
    warm_start: str = ""
    #: a scheduler that evolves a population: it mutates live hyperparameters, needs a family that
    #: carries its state from step to step, and takes no search algorithm beside it
    population: bool = False
    #: a searcher that can search a choice whose values are sub-spaces (``raysweep run auto``)
    conditional: bool = False
    #: the libraries its builder imports, loaded while Ray starts (:mod:`raysweep.sweep.early`)
    imports: tuple[str, ...] = ()
    #: a scheduler that pauses trials until the rest of their group catches up (HyperBand's
    #: brackets): ``"module:function"``, ``(max_steps, reduction_factor) -> int``, the trials it
    #: needs live at once beside the running ones (see :func:`raysweep.strategies.registry.searcher_concurrency`)
    pauses: str = ""

    def builder(self) -> Callable[..., Any]:
        module_name, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)


def stop_detail(rule: str, where: str, metric: str, value: float, cutoff: float, mode: str) -> str:
    """Why a scheduler stopped a trial: ``asha: rung 2 (100 boosting_rounds): val_accuracy 0.91
    below the rung's cutoff 0.94`` (``above`` for a metric to minimise)."""
    if value == cutoff:  # HyperBand keeps a fixed number: of tied trials, those it ranked first
        return f"{rule}: {where}: {metric} {value:.4g} equal to the cutoff, and the trials kept were ranked before it"
    side = "below" if mode == "max" else "above"
    digits = 4
    while f"{value:.{digits}g}" == f"{cutoff:.{digits}g}" and digits < 17:  # 0.96491 below 0.96493, not 0.9649 below 0.9649
        digits += 1
    return f"{rule}: {where}: {metric} {value:.{digits}g} {side} the cutoff {cutoff:.{digits}g}"


def resource_text(recipe: Any, result: dict[str, Any]) -> str:
    """The resource a trial had spent at ``result``: ``100 boosting_rounds``."""
    steps = int(result.get("training_iteration", 0) or 0)
    amount = result.get("resource", recipe.resource.at(steps))
    return f"{amount:g} {recipe.resource.name}" if isinstance(amount, (int, float)) else f"step {steps}"
