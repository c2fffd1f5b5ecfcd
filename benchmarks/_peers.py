"""The optional peers (Optuna, FLAML): found or not, never installed by the harness."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

INSTALL_HINT = 'pip install -e ".[bench]"'

#: peer name -> the modules it needs (all must be importable)
OPTIONAL: dict[str, tuple[str, ...]] = {
    "optuna": ("optuna",),
    "flaml": ("flaml", "flaml.automl"),
    # FLAML with its default estimator_list, whose LightGBM learner is always in it
    "flaml_default": ("flaml", "flaml.automl", "lightgbm"),
}


class PeerMissing(RuntimeError):
    """An optional peer is not installed; the message says how to install it."""


def missing_reason(peer: str) -> str | None:
    """``None`` when ``peer`` can be imported, else a one-line reason with the install hint."""
    for module in OPTIONAL.get(peer, ()):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"{peer} is not installed ({module} not found); install the peers with: {INSTALL_HINT}"
    return None


def require(module: str) -> ModuleType:
    """Import ``module`` of an optional peer, or raise :class:`PeerMissing` with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PeerMissing(f"{module} is not installed ({exc}); install the peers with: {INSTALL_HINT}") from None
