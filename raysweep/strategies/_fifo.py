"""First in, first out: every trial runs to its end (Ray Tune's ``FIFOScheduler``)."""

from __future__ import annotations

from typing import Any


def build(recipe: Any, metric: str, mode: str, max_steps: int, seed: int, exploits: list, stops: dict | None = None) -> Any:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()
