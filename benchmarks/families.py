"""Benchmark-only model families: a no-op and two analytic functions (Branin, Hartmann-6), and
two many-step ones (``bench_steps``: no work per step; ``bench_sleep``: one second per step).

They let the overhead suite drive raysweep's real trainable, runner and MLflow callback with
(almost) no training work, through the public extension point
:func:`raysweep.families.register_family`. Importing this module registers them.

raysweep scores every step with ``raysweep.metrics.score(metric, model, X_val, y_val)``. An
analytic "model" therefore predicts the function's value at its config for every row, and the
benchmark dataset's target is a constant ``floor`` below the function's minimum: the validation
``rmse`` is then exactly ``f(config) - floor``, and minimising it minimises ``f``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from raysweep.families import Family, register_family
from raysweep.recipes import Recipe, validate_recipe_data

__all__ = ["FUNCTIONS", "AnalyticFunction", "analytic_dataset", "analytic_recipe", "register", "steps_recipe"]


def noop(config: dict[str, float]) -> float:
    """The no-op "function": no work at all, always 0."""
    return 0.0


def branin(config: dict[str, float]) -> float:
    """Branin-Hoo on [-5, 10] x [0, 15]; global minimum 0.397887 (at three points)."""
    x1, x2 = config["x1"], config["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(config: dict[str, float]) -> float:
    """Hartmann-6 on [0, 1]^6; global minimum -3.32237."""
    x = np.array([config[f"x{i}"] for i in range(1, 7)])
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


@dataclass(frozen=True)
class AnalyticFunction:
    """A function to minimise, its box and a constant strictly below its minimum."""

    name: str
    function: Callable[[dict[str, float]], float]
    bounds: dict[str, tuple[float, float]]
    minimum: float
    floor: float


#: the overhead suite's workloads, by name
FUNCTIONS: dict[str, AnalyticFunction] = {
    # The no-op still samples a 2-D config, so every tool's searcher does its usual work.
    "noop": AnalyticFunction("noop", noop, {"x1": (-5.0, 10.0), "x2": (0.0, 15.0)}, 0.0, -1.0),
    "branin": AnalyticFunction("branin", branin, {"x1": (-5.0, 10.0), "x2": (0.0, 15.0)}, 0.397887, 0.0),
    "hartmann6": AnalyticFunction("hartmann6", hartmann6, {f"x{i}": (0.0, 1.0) for i in range(1, 7)}, -3.32237, -4.0),
}


class ConstantModel:
    """A "fitted model" that predicts one number (the function's value) for every row."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.value, dtype=float)


class AnalyticFamily(Family):
    """Evaluates an :class:`AnalyticFunction` at the trial's config; one step, no data used."""

    encoding = "ordinal"
    native_missing = True
    supports_pbt = False
    function_name = "noop"

    @property
    def workload(self) -> AnalyticFunction:
        return FUNCTIONS[self.function_name]

    def estimator_class(self, task: str) -> type:
        return ConstantModel

    def valid_params(self, task: str) -> set[str]:
        return set(self.workload.bounds)

    def build(self, params: dict[str, Any], task: str, seed: int, needs_proba: bool) -> Any:
        model = ConstantModel()
        model.config = {k: float(v) for k, v in params.items()}  # type: ignore[attr-defined]
        return model

    def train_step(self, model: Any, X: np.ndarray, y: np.ndarray, step: int, resource: Any, n_classes: int, seed: int) -> Any:
        model.value = self.workload.function(model.config)
        return model


class NoopFamily(AnalyticFamily):
    name = "bench_noop"
    function_name = "noop"


class BraninFamily(AnalyticFamily):
    name = "bench_branin"
    function_name = "branin"


class Hartmann6Family(AnalyticFamily):
    name = "bench_hartmann6"
    function_name = "hartmann6"


class StepsFamily(NoopFamily):
    """Many steps of no work: a trial reports as fast as raysweep's trainable can (result throughput)."""

    name = "bench_steps"
    #: seconds each step waits (no CPU spent): 0 here
    step_seconds = 0.0

    def train_step(self, model: Any, X: np.ndarray, y: np.ndarray, step: int, resource: Any, n_classes: int, seed: int) -> Any:
        if self.step_seconds:
            time.sleep(self.step_seconds)
        return super().train_step(model, X, y, step, resource, n_classes, seed)


class SleepFamily(StepsFamily):
    """One second of sleep per step: a trial that holds its CPU slot but not a core (scheduling)."""

    name = "bench_sleep"
    step_seconds = 1.0


_FAMILIES: dict[str, type[AnalyticFamily]] = {
    "noop": NoopFamily,
    "branin": BraninFamily,
    "hartmann6": Hartmann6Family,
}
_STEP_FAMILIES: dict[str, type[StepsFamily]] = {"steps": StepsFamily, "sleep": SleepFamily}


def register() -> None:
    """Register the benchmark families with raysweep (idempotent)."""
    for family in (*_FAMILIES.values(), *_STEP_FAMILIES.values()):
        register_family(family.name, family)


def analytic_recipe(function: str, searcher: str = "random") -> Recipe:
    """A recipe that evaluates ``function`` once per trial at a uniformly sampled config."""
    register()
    workload = FUNCTIONS[function]
    data = {
        "name": f"bench_{function}",
        "family": _FAMILIES[function].name,
        "tasks": ["regression"],
        "metric": "rmse",
        "resource": {"name": "evaluations", "per_step": 1, "max": 1},
        "scheduler": "fifo",
        "searcher": searcher,
        "space": {name: {"type": "uniform", "low": low, "high": high} for name, (low, high) in workload.bounds.items()},
    }
    return validate_recipe_data(data, f"<benchmarks:{function}>")


def steps_recipe(kind: str, steps: int) -> Recipe:
    """A recipe whose every trial runs ``steps`` steps of ``bench_steps`` or ``bench_sleep``
    (``kind``: "steps" or "sleep") and reports after each; FIFO, so every trial runs them all."""
    register()
    family = _STEP_FAMILIES[kind]
    data = {
        "name": f"bench_{kind}",
        "family": family.name,
        "tasks": ["regression"],
        "metric": "rmse",
        "resource": {"name": "steps", "per_step": 1, "max": steps},
        "scheduler": "fifo",
        "searcher": "random",
        "space": {name: {"type": "uniform", "low": low, "high": high} for name, (low, high) in FUNCTIONS["noop"].bounds.items()},
    }
    return validate_recipe_data(data, f"<benchmarks:{kind}>")


def analytic_dataset(function: str, rows: int = 20) -> Any:
    """A tiny dataset whose target is the function's floor, so validation rmse = f - floor."""
    import pandas as pd

    from raysweep.data import Dataset

    frame = pd.DataFrame({"row": np.arange(rows, dtype=float)})
    target = pd.Series(np.full(rows, FUNCTIONS[function].floor), name="target")
    return Dataset(name=f"bench_{function}", X=frame, y=target, task="regression")


register()
