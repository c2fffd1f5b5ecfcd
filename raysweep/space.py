"""The search-space DSL, mapped onto Ray Tune domains (a closed set of types, no ``eval``)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from raysweep.errors import UserError
from raysweep.recipes import highest, quantized_bounds
from raysweep.strategies.registry import get_searcher

#: how many points a numeric parameter without explicit ``grid`` points gets under grid search
GRID_POINTS = 3


def to_domain(spec: dict[str, Any]) -> Any:
    """One DSL entry as a Ray Tune sampling domain (or ``tune.grid_search`` for ``grid``)."""
    from ray import tune

    kind = spec["type"]
    if kind == "uniform":
        return tune.uniform(spec["low"], spec["high"])
    if kind in ("quniform", "qloguniform"):
        # Ray refuses bounds that are not multiples of q (0.25 by 0.1): its draws are the multiples within them.
        low, high = quantized_bounds(spec)
        return (tune.quniform if kind == "quniform" else tune.qloguniform)(low, high, spec["q"])
    if kind == "loguniform":
        return tune.loguniform(spec["low"], spec["high"])
    if kind == "randint":
        return tune.randint(int(spec["low"]), int(spec["high"]))
    if kind == "qrandint":
        # Bounds on the grid of q: Optuna's and HyperOpt's integer steps count from the lower bound
        # (1..9 by 2 drew 5, 7, 9 with Optuna), Ray's own sampler rounds to multiples of q.
        low, high = quantized_bounds(spec)
        return tune.qrandint(int(low), int(high), int(spec["q"]))
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
    if "q" in spec:
        # Multiples of q within the bounds, as Ray Tune draws them (qrandint's q included).
        low, high = quantized_bounds(spec)
        high = max(high, low)  # no multiple at all: the schema refuses such an entry
    if kind.startswith("log") or kind.startswith("qlog"):
        points = [low * (high / low) ** (i / (GRID_POINTS - 1)) for i in range(GRID_POINTS)]
    else:
        points = [low + (high - low) * i / (GRID_POINTS - 1) for i in range(GRID_POINTS)]
    if "q" in spec and "int" in kind:
        return sorted({int(round(p / spec["q"]) * spec["q"]) for p in points})
    if "int" in kind:
        return sorted({int(round(p)) for p in points})
    if "q" in spec:
        return sorted({round(round(p / spec["q"]) * spec["q"], 12) for p in points})
    return [float(f"{p:.6g}") for p in points]


def drawn_range(spec: dict[str, Any]) -> tuple[Any, Any]:
    """The lowest and the highest value Ray Tune draws for a numeric space entry (whole numbers for the integer
    types, multiples of ``q`` for the quantized ones; ``high`` itself for a continuous range, which comes as close)."""
    kind = spec["type"]
    if "q" in spec:
        low, high = quantized_bounds(spec)
        if kind == "qrandint" and spec["q"] == 1:
            high = int(spec["high"]) - 1  # Ray Tune's qrandint excludes high when q is 1
        return low, high
    if kind in ("randint", "lograndint"):
        return int(spec["low"]), int(highest(spec))
    return spec["low"], spec["high"]


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


def grid_entries_size(space: dict[str, dict[str, Any]]) -> int:
    """The configs of the space's ``type: grid`` entries alone: Tune grid searches them under any
    searcher, so each sample runs them all."""
    return math.prod(len(spec["values"]) for spec in space.values() if spec["type"] == "grid")


def mutations(specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """PBT ``hyperparam_mutations``: choices become lists, ranges become Tune domains."""
    return {name: list(spec["values"]) if spec["type"] == "choice" else to_domain(spec) for name, spec in specs.items()}


def space_hash(space: dict[str, dict[str, Any]]) -> str:
    """A short hash of a resolved ``space``, stable across key order: equal for equal spaces."""
    text = json.dumps(space, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def contains(space: dict[str, dict[str, Any]], config: dict[str, Any]) -> bool:
    """Whether ``config`` gives every parameter of ``space`` a value the space can take.

    A choice holds its values (of the same type: ``True`` is not ``1``); a range holds values
    within its bounds, whole numbers for the integer types and multiples of ``q`` where it has one.
    """
    for name, spec in space.items():
        if name not in config:
            return False
        value = config[name]
        if "values" in spec:
            if not any(value == v and type(value) is type(v) for v in spec["values"]):
                return False
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if "int" in spec["type"] and not float(value).is_integer():
            return False
        if not spec["low"] <= value <= highest(spec):
            return False
        if "q" in spec and not math.isclose(value / spec["q"], round(value / spec["q"]), abs_tol=1e-9):
            return False
    return True
