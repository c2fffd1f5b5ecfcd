"""The schedulers and searchers raysweep offers, by name, and the pairings it refuses.

Like Ray Tune's own registries, each name maps to a record whose builder is imported only when
a sweep uses it: checking a recipe imports no Ray. Adding a strategy is one module in this
package and one entry here.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

from raysweep.errors import UserError
from raysweep.strategies._base import Strategy

_HERE = "raysweep.strategies"
#: how a searcher takes earlier trials (:attr:`Strategy.warm_start`): all of them as evaluated points
OBSERVATIONS = "observations"
#: ... or the best few as extra points to try first
STARTING_POINTS = "starting_points"
#: how many of the best earlier trials a searcher that takes starting points tries again
WARM_STARTING_POINTS = 3

#: when to stop a trial
SCHEDULERS: dict[str, Strategy] = {
    "fifo": Strategy("fifo", f"{_HERE}._fifo:build"),
    "asha": Strategy("asha", f"{_HERE}._asha:build"),
    "hyperband": Strategy("hyperband", f"{_HERE}._hyperband:build", pauses=f"{_HERE}._hyperband:band_trials"),
    "pbt": Strategy("pbt", f"{_HERE}._pbt:build", population=True),
}
#: what to try next
SEARCHERS: dict[str, Strategy] = {
    "random": Strategy("random", f"{_HERE}._random:build", conditional=True),
    "grid": Strategy("grid", f"{_HERE}._grid:build", exhaustive=True),
    "hyperopt": Strategy("hyperopt", f"{_HERE}._hyperopt:build", learns=True, refuses_grid_type=True, warm_start=STARTING_POINTS,
                         conditional=True, imports=("ray.tune.search.hyperopt",)),
    "gp": Strategy("gp", f"{_HERE}._gp:build", learns=True, refuses_grid_type=True, warm_start=OBSERVATIONS,
                   imports=(f"{_HERE}._gp", "sklearn.gaussian_process", "scipy.stats")),
    "optuna": Strategy("optuna", f"{_HERE}._optuna:build", learns=True, refuses_grid_type=True, warm_start=OBSERVATIONS,
                       conditional=True, imports=(f"{_HERE}._optuna", "optuna.samplers")),
    "anneal": Strategy("anneal", f"{_HERE}._anneal:build", learns=True, refuses_grid_type=True, warm_start=STARTING_POINTS,
                       conditional=True, imports=("ray.tune.search.hyperopt",)),
}


#: what other tools call a strategy raysweep has under its own name
_KNOWN_AS = {
    "searcher": {"bayesopt": "gp", "bayesian": "gp", "bayes": "gp", "bo": "gp", "skopt": "gp", "tpe": "optuna or hyperopt",
                 "simulated_annealing": "anneal", "annealing": "anneal", "sobol": "random", "quasirandom": "random"},
    "scheduler": {"sha": "asha", "successive_halving": "asha", "none": "fifo"},
}  # fmt: skip


def known_as(kind: str, name: str) -> str:
    """`` (for bayesopt use gp)``: the hint for a name other tools give a strategy raysweep has, else ''."""
    ours = _KNOWN_AS[kind].get(str(name).lower().replace("-", "_"))
    return f" (for {name} use {ours})" if ours else ""


def get_scheduler(name: str) -> Strategy:
    """The scheduler registered as ``name``; an unknown name lists the valid ones."""
    try:
        return SCHEDULERS[name]
    except KeyError:
        raise UserError(f"--scheduler {name}: unknown scheduler{known_as('scheduler', name)}; use one of {', '.join(SCHEDULERS)}") from None


def get_searcher(name: str) -> Strategy:
    """The searcher registered as ``name``; an unknown name lists the valid ones."""
    try:
        return SEARCHERS[name]
    except KeyError:
        raise UserError(f"--searcher {name}: unknown searcher{known_as('searcher', name)}; use one of {', '.join(SEARCHERS)}") from None


def check(recipe: Any, scheduler: str | None, searcher: str | None, supports_pbt: bool) -> None:
    """Refuse a scheduler/searcher/recipe combination that cannot work, saying why.

    ``scheduler`` and ``searcher`` are the flags; None (or empty) means the recipe's own, and an
    error then names the recipe key, or the ``--set`` that gave it.
    """
    if scheduler:
        get_scheduler(scheduler)
    if searcher:
        get_searcher(searcher)
    scheduler_named = _chosen(recipe, "scheduler", scheduler)
    searcher_named = _chosen(recipe, "searcher", searcher)
    chosen_scheduler = get_scheduler(scheduler or recipe.scheduler)
    chosen_searcher = get_searcher(searcher or recipe.searcher)
    if chosen_scheduler.population:
        if not supports_pbt:
            raise UserError(
                f"{scheduler_named}: the {recipe.family} family carries no training state from one "
                "step to the next, so PBT has nothing to exploit; use --scheduler asha or hyperband"
            )
        if chosen_searcher.learns:
            raise UserError(
                f"{scheduler_named} with {searcher_named}: PBT explores by mutating its own population and Ray Tune "
                "refuses a search algorithm beside it; use --searcher random (or grid)"
            )
        if not recipe.mutations:
            raise UserError(
                f"{recipe.where('pbt.mutations')} is empty, so {scheduler_named} has nothing to mutate; add "
                "pbt.mutations (e.g. learning_rate: {type: loguniform, low: 0.01, high: 0.3})"
            )
    if chosen_searcher.exhaustive:
        for name, spec in recipe.space.items():
            points = spec.get("grid", [])
            # Ray's randint and lograndint (and qrandint by 1) leave out high: a point there is one the range never draws.
            exclusive = spec["type"] in ("randint", "lograndint") or (spec["type"] == "qrandint" and spec.get("q") == 1)
            top = spec["high"] - 1 if exclusive else spec.get("high")
            outside = [p for p in points if not spec["low"] <= p <= top]
            if outside:
                bounds = f"[low={spec['low']}, high={spec['high']}" + (f") ({spec['type']} leaves out high)" if exclusive else "]")
                raise UserError(
                    f"{recipe.where(f'space.{name}')}: grid points {outside} lie outside {bounds}; "
                    f"move them inside the range (--set space.{name}.grid=[...])"
                )
            q = spec.get("q")
            off = [p for p in points if q and not math.isclose(p / q, round(p / q), abs_tol=1e-9)]
            if off:
                raise UserError(
                    f"{recipe.where(f'space.{name}')}: grid points {off} are not multiples of q={q}, the only values "
                    f"{spec['type']} draws; use multiples of it (--set space.{name}.grid=[...])"
                )
    if chosen_searcher.refuses_grid_type:
        for name, spec in recipe.space.items():
            if spec["type"] == "grid":
                raise UserError(
                    f"{recipe.where(f'space.{name}.type')}: grid cannot be searched by {chosen_searcher.name}; "
                    "use type: choice, or --searcher grid/random"
                )


def _chosen(recipe: Any, key: str, flag: str | None) -> str:
    """The scheduler or searcher with where it came from: ``--scheduler pbt`` (the flag),
    ``--set scheduler=pbt`` (an override of the recipe key), or ``searcher hyperopt (from xgboost.yaml)``."""
    if flag:
        return f"--{key} {flag}"
    if key in recipe.overridden:
        return f"--set {recipe.overridden[key]}"
    return f"{key} {getattr(recipe, key)} (from {Path(recipe.source).name})"


def build_scheduler(name: str, recipe: Any, metric: str, mode: str, max_steps: int, seed: int, exploits: list | None = None,
                    stops: dict[str, str] | None = None) -> Any:
    """Ray Tune's scheduler ``name``, set up for the recipe's resource (its steps).

    A scheduler that stops trials early notes in ``stops`` (trial id -> text) which rule stopped
    each, where, and the cutoff it missed (see :class:`raysweep.strategies.stops.StopNotes`).
    """
    return get_scheduler(name).builder()(recipe, metric, mode, max_steps, seed, exploits if exploits is not None else [], stops)


def searcher_concurrency(scheduler: str, max_concurrent: int, max_steps: int, reduction_factor: float, groups: int = 1) -> int:
    """How many trials the searcher may have live at once under ``scheduler``: ``max_concurrent``,
    plus, under a scheduler that pauses trials (HyperBand), one band of its trials per group.

    Ray Tune's searchers count a paused trial as live (``BasicVariantGenerator``'s and
    ``ConcurrencyLimiter``'s ``max_concurrent``). HyperBand fills a bracket only with trials live at
    once, and its first bracket runs its trials to the end without halving: capped at the trials
    that run at once (the CPUs), a sweep puts every trial in that first bracket and HyperBand stops
    none. The trials that run at once stay bounded by the CPUs Ray gives them. ``groups``: an auto
    sweep's families, each with a HyperBand of its own.
    """
    strategy = get_scheduler(scheduler)
    if not strategy.pauses:
        return max_concurrent
    module_name, _, attribute = strategy.pauses.partition(":")
    band = getattr(importlib.import_module(module_name), attribute)(max_steps, reduction_factor)
    return max_concurrent + max(1, groups) * band


def check_warm_start(searcher: str, scheduler: str | None = None) -> None:
    """Refuse ``--warm-start`` with a searcher that cannot learn from earlier trials, or under PBT."""
    if scheduler is not None and get_scheduler(scheduler).population:
        raise UserError(
            f"--warm-start: {scheduler} changes its members' hyperparameters as they train, so no searcher "
            "learns from earlier trials; use --scheduler asha with --searcher optuna or gp, or leave out --warm-start"
        )
    if not get_searcher(searcher).warm_start:
        takers = [name for name, strategy in SEARCHERS.items() if strategy.warm_start]
        raise UserError(
            f"--warm-start: the {searcher} searcher does not learn from earlier trials; "
            f"use --searcher {', '.join(takers[:-1])} or {takers[-1]}, or leave out --warm-start"
        )


def warm_start_points(name: str, evaluated: list[tuple[dict[str, Any], float]]) -> list[tuple[dict[str, Any], float]]:
    """The earlier trials (best first) searcher ``name`` takes: all as observations, or the best few."""
    how = get_searcher(name).warm_start
    if how == OBSERVATIONS:
        return list(evaluated)
    if how == STARTING_POINTS:
        # Ray's HyperOptSearch matches a starting point's choice to its categories by value and
        # refuses a list (an MLP's hidden_layer_sizes), as the recipe's own points are refused.
        flat = [(config, score) for config, score in evaluated if not any(isinstance(v, (list, dict)) for v in config.values())]
        distinct: list[tuple[dict[str, Any], float]] = []
        for config, score in flat:  # the best few configs: one a seeded sweep ran again counts once
            if all(config != kept for kept, _ in distinct):
                distinct.append((config, score))
        return distinct[:WARM_STARTING_POINTS]
    return []


def build_searcher(name: str, metric: str, mode: str, seed: int, max_concurrent: int,
                   points_to_evaluate: list[dict[str, Any]] | None = None,
                   evaluated: list[tuple[dict[str, Any], float]] | None = None) -> Any:
    """Ray Tune's search algorithm ``name``, trying ``points_to_evaluate`` first where it takes them.

    ``evaluated`` are earlier trials, ``(config, score)`` from :func:`warm_start_points`: a
    searcher that takes observations learns them before its first suggestion; one that takes
    starting points tries their configs after the recipe's own points.
    """
    strategy = get_searcher(name)
    points = None if strategy.exhaustive else [dict(p) for p in points_to_evaluate or []] or None
    if not evaluated:
        return strategy.builder()(metric, mode, seed, max_concurrent, points)
    if strategy.warm_start == OBSERVATIONS:
        return strategy.builder()(metric, mode, seed, max_concurrent, points, evaluated=list(evaluated))
    if strategy.warm_start == STARTING_POINTS:
        points = list(points or [])
        points += [dict(config) for config, _ in evaluated if config not in points]
        return strategy.builder()(metric, mode, seed, max_concurrent, points)
    raise ValueError(f"the {name} searcher takes no earlier trials")  # check_warm_start refused it already
