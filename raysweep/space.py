"""The search-space DSL, mapped onto Ray Tune domains (a closed set of types, no ``eval``)."""

from __future__ import annotations

import math
from typing import Any

from raysweep.errors import UserError
from raysweep.recipes import highest
from raysweep.strategies.registry import get_searcher

#: how many points a numeric parameter without explicit ``grid`` points gets under grid search
GRID_POINTS = 3


def to_domain(spec: dict[str, Any]) -> Any:
    """One DSL entry as a Ray Tune sampling domain (or ``tune.grid_search`` for ``grid``)."""
    from ray import tune

    kind = spec["type"]
    if kind == "uniform":
        return tune.uniform(spec["low"], spec["high"])
    if kind == "quniform":
        return tune.quniform(spec["low"], spec["high"], spec["q"])
    if kind == "loguniform":
        return tune.loguniform(spec["low"], spec["high"])
    if kind == "qloguniform":
        return tune.qloguniform(spec["low"], spec["high"], spec["q"])
    if kind == "randint":
        return tune.randint(int(spec["low"]), int(spec["high"]))
    if kind == "qrandint":
        return tune.qrandint(int(spec["low"]), int(spec["high"]), int(spec["q"]))
    if kind == "lograndint":
        return tune.lograndint(int(spec["low"]), int(spec["high"]))
    if kind == "choice":
        return tune.choice(list(spec["values"]))
    if kind == "grid":
        return tune.grid_search(list(spec["values"]))
    raise ValueError(f"unknown space type {kind!r}")  # the schema already refused it


def grid_points(spec: dict[str, Any]) -> list[Any]:
    """The points grid search tries for one parameter.

    Explicit ``grid`` points win; a choice is tried in full; a numeric range gets its two ends
    and its middle (geometric middle on log scales, whole numbers for integer types).
    """
    kind = spec["type"]
    if "values" in spec:
        return list(spec["values"])
    if "grid" in spec:
        return list(spec["grid"])
    low, high = spec["low"], highest(spec)
    if kind.startswith("log") or kind.startswith("qlog"):
        points = [low * (high / low) ** (i / (GRID_POINTS - 1)) for i in range(GRID_POINTS)]
    else:
        points = [low + (high - low) * i / (GRID_POINTS - 1) for i in range(GRID_POINTS)]
    if "int" in kind:
        return sorted({int(round(p)) for p in points})
    if "q" in spec:
        return sorted({round(round(p / spec["q"]) * spec["q"], 12) for p in points})
    return [float(f"{p:.6g}") for p in points]


def param_space(space: dict[str, dict[str, Any]], searcher: str, source: str = "recipe") -> dict[str, Any]:
    """The recipe's ``space`` as a Ray Tune ``param_space`` for the given searcher."""
    from ray import tune

    strategy = get_searcher(searcher)
    if strategy.exhaustive:
        return {name: tune.grid_search(grid_points(spec)) for name, spec in space.items()}
    if strategy.refuses_grid_type:
        for name, spec in space.items():
            if spec["type"] == "grid":
                raise UserError(
                    f"{source}: space.{name}.type: grid cannot be searched by {searcher}; use type: choice, or --searcher grid/random"
                )
    return {name: to_domain(spec) for name, spec in space.items()}


def grid_size(space: dict[str, dict[str, Any]]) -> int:
    """How many configurations one pass of grid search runs."""
    return math.prod(len(grid_points(spec)) for spec in space.values())


def mutations(specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """PBT ``hyperparam_mutations``: choices become lists, ranges become Tune domains."""
    return {name: list(spec["values"]) if spec["type"] == "choice" else to_domain(spec) for name, spec in specs.items()}
