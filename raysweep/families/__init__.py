"""Model families. Each is one module exposing the :class:`~raysweep.families._base.Family` protocol.

Adding a family is one module here, one line in ``_REGISTRY`` and one recipe YAML.
"""

from __future__ import annotations

import importlib

from raysweep.errors import UserError
from raysweep.families._base import Family

__all__ = ["Family", "family_names", "get_family", "register_family"]

#: family name -> "module:attribute", imported only when the family is used
_REGISTRY: dict[str, str] = {
    "random_forest": "raysweep.families._random_forest:RandomForestFamily",
    "svm": "raysweep.families._svm:SVMFamily",
    "xgboost": "raysweep.families._xgboost:XGBoostFamily",
    "mlp": "raysweep.families._mlp:MLPFamily",
}


def family_names() -> list[str]:
    return list(_REGISTRY)


def register_family(name: str, target: str | type[Family]) -> None:
    """Make a family usable from recipes as ``family: name``.

    ``target`` is a Family subclass or ``"module:Class"``, imported when first used.
    """
    if isinstance(target, str):
        _REGISTRY[name] = target
    else:
        _CLASSES[name] = target
        _REGISTRY[name] = f"{target.__module__}:{target.__qualname__}"


#: families registered as classes (e.g. defined in a script), used as they are
_CLASSES: dict[str, type[Family]] = {}


def get_family(name: str) -> Family:
    """The family registered as ``name``; an unknown name lists the valid ones."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown model family {name!r}; use one of {', '.join(_REGISTRY)}") from None
    if name in _CLASSES:
        return _CLASSES[name]()
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)()
