"""raysweep: hyperparameter sweeps on Ray Tune from prebuilt recipes, tracked in MLflow.

Importing :mod:`raysweep` is cheap: Ray, MLflow and scikit-learn are imported only when a
sweep runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raysweep._version import __version__

__all__ = [
    "NothingToResume", "Recipe", "SweepFailed", "SweepInterrupted", "SweepResult", "TrackingIncomplete", "UserError",
    "__version__", "load_recipe", "resume_sweep", "run_sweep",
]  # fmt: skip

from raysweep.errors import NothingToResume, SweepFailed, SweepInterrupted, TrackingIncomplete, UserError
from raysweep.recipes import Recipe, load_recipe

if TYPE_CHECKING:
    from raysweep.sweep.result import SweepResult
    from raysweep.sweep.run import resume_sweep, run_sweep

#: the public names that pull in Ray, imported when first used
_LAZY = {"run_sweep": "raysweep.sweep.run", "resume_sweep": "raysweep.sweep.run", "SweepResult": "raysweep.sweep.result"}


def __dir__() -> list[str]:
    # dir() and help() list the names imported when first used too
    return sorted(set(globals()) | set(_LAZY))


def __getattr__(name: str) -> Any:
    # The runner pulls in ray; keep `import raysweep` (and the CLI's --help) free of it.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'raysweep' has no attribute {name!r}")
