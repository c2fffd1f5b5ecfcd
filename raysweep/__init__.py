"""raysweep: hyperparameter sweeps on Ray Tune from prebuilt recipes, tracked in MLflow.

Importing :mod:`raysweep` is cheap: Ray, MLflow and scikit-learn are imported only when a
sweep runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raysweep._version import __version__

__all__ = ["Recipe", "SweepResult", "UserError", "__version__", "load_recipe", "run_sweep"]

from raysweep.errors import UserError
from raysweep.recipes import Recipe, load_recipe

if TYPE_CHECKING:
    from raysweep.sweep.result import SweepResult
    from raysweep.sweep.run import run_sweep

#: the public names that pull in Ray, imported when first used
_LAZY = {"run_sweep": "raysweep.sweep.run", "SweepResult": "raysweep.sweep.result"}


def __getattr__(name: str) -> Any:
    # The runner pulls in ray; keep `import raysweep` (and the CLI's --help) free of it.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'raysweep' has no attribute {name!r}")
