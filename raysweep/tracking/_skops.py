"""Import ``skops.io`` (MLflow's safe format for scikit-learn models) without its full-process scan.

When ``skops.io`` is first imported it names every public NumPy and SciPy ufunc (about 840). A
SciPy ufunc has no ``__module__``, so skops finds its module the way ``pickle.whichmodule`` does:
``getattr(module, name, None)`` on every module in ``sys.modules``, in import order, until the
object turns up. A sweep's driver has Ray, Ray Tune, MLflow and scikit-learn loaded (about 3,500
modules), which makes that some 660,000 failed attribute lookups, each raising and discarding an
``AttributeError`` inside ``getattr``: 1.2-1.9 s at the end of every tracked sweep here, against
0.24 s with the lookup below.

:func:`import_skops_io` loads ``skops.io._utils`` first and, while ``skops.io``'s ``__init__``
runs, replaces its ``whichmodule`` with one that gives the same answer for the same process. It
asks only the modules that can hold the name: the plain modules whose ``__dict__`` defines it (from
an index of the loaded modules' names, rebuilt when ``sys.modules`` changes) and, in their place in
import order, the modules only ``getattr`` can ask (a module-level ``__getattr__``, a module of
another type). A dotted or dunder name and an object with ``__module__`` go through skops' own
function, which is put back once the import is done. If skops is laid out differently (a future
release), the plain import is used.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import logging
import sys
import threading
import types
import warnings
from typing import Any, Callable

logger = logging.getLogger(__name__)


_IMPORTING = threading.Lock()


def import_skops_io() -> types.ModuleType:
    """``skops.io``, imported once per process with the lookup described above.

    Called before anything else in the process imports ``skops.io``: a sweep's end imports
    (:func:`raysweep.sweep.early.import_modules`, on a thread of their own while the trials run)
    and the model's log, which waits for that thread and asks again before MLflow saves in
    skops' format. Callers on other threads wait for the first.
    """
    with _IMPORTING:
        if "skops.io" in sys.modules:
            return sys.modules["skops.io"]
        return _import()


def _import() -> types.ModuleType:
    try:
        spec = importlib.util.find_spec("skops.io")
        if spec is None or spec.loader is None:
            raise ImportError("no module named skops.io")
        package = importlib.util.module_from_spec(spec)
        sys.modules["skops.io"] = package
        try:
            utils = importlib.import_module("skops.io._utils")
            if not callable(getattr(utils, "whichmodule", None)):
                raise AttributeError("skops.io._utils has no whichmodule")
            original = utils.whichmodule
            utils.whichmodule = _indexed_whichmodule(original)
            try:
                spec.loader.exec_module(package)
            finally:
                utils.whichmodule = original
                _ModuleIndex._current = None
            setattr(sys.modules["skops"], "io", package)  # as the import system does for a submodule
        except BaseException:
            for name in [name for name in sys.modules if name == "skops.io" or name.startswith("skops.io.")]:
                del sys.modules[name]
            raise
    except AttributeError as exc:  # skops changed its layout: its own import still works
        logger.debug("raysweep: importing skops.io as is (%s)", exc)
    return importlib.import_module("skops.io")


def _indexed_whichmodule(whichmodule: Callable[[Any, str], str]) -> Callable[[Any, str], str]:
    """``whichmodule`` answered from :class:`_ModuleIndex`, else by ``whichmodule`` itself."""

    def lookup(obj: Any, name: str) -> str:
        if getattr(obj, "__module__", None) is not None or "." in name or name.startswith("__"):
            return whichmodule(obj, name)
        modules = _ModuleIndex.now()
        with warnings.catch_warnings():  # as skops does: deprecated NumPy modules warn on access
            warnings.simplefilter("ignore", DeprecationWarning)
            for position in modules.candidates(name):
                module_name, module, namespace = modules.entries[position]
                found = namespace.get(name, _MISSING) if namespace is not None else _MISSING
                if found is _MISSING:
                    try:
                        found = getattr(module, name, None)
                    except (AttributeError, ImportError):
                        continue
                if found is obj:
                    return module_name
        return "__main__"

    return lookup


_MISSING = object()


class _ModuleIndex:
    """``sys.modules`` in import order: which plain modules define each name (their values read
    live at each lookup), and the positions of the modules only ``getattr`` can ask (a
    module-level ``__getattr__``, a module of another type). Rebuilt whenever ``sys.modules``
    changes (skops imports modules of its own between lookups, and other threads may import
    while it runs: a sweep's Tune loop does). A module imported meanwhile comes after NumPy's and
    SciPy's in import order, so it cannot change where skops' own lookup would find their ufuncs."""

    _current: "_ModuleIndex | None" = None

    def __init__(self, modules: dict[str, Any]) -> None:
        self.key = (len(modules), next(reversed(modules), None))
        self.entries: list[tuple[str, Any, dict[str, Any] | None]] = []
        self.asked: list[int] = []
        self.defines: dict[str, list[int]] = {}
        for module_name, module in modules.items():
            if module_name in ("__main__", "__mp_main__") or module is None:
                continue
            position = len(self.entries)
            namespace = module.__dict__ if type(module) is types.ModuleType else None
            self.entries.append((module_name, module, namespace))
            if namespace is None or "__getattr__" in namespace:
                self.asked.append(position)
            if namespace is not None:
                for key in list(namespace):
                    self.defines.setdefault(key, []).append(position)

    @classmethod
    def now(cls) -> "_ModuleIndex":
        modules = sys.modules.copy()
        index = cls._current
        if index is None or index.key != (len(modules), next(reversed(modules), None)):
            # Its ~130,000 small lists would otherwise set off the collector's full passes over a
            # driver's whole heap: 0.03 s to build in a sweep's driver, 0.23 s when one ran.
            collecting = gc.isenabled()
            gc.disable()
            try:
                index = cls._current = cls(modules)
            finally:
                if collecting:
                    gc.enable()
        return index

    def candidates(self, name: str) -> list[int]:
        """The positions, in import order, of the modules where ``name`` may be found."""
        defined = self.defines.get(name, [])
        return sorted({*defined, *self.asked}) if self.asked else defined
