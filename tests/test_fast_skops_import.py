"""skops.io imported with raysweep's module lookup gives the same type names as skops' own import.

The refit model is logged in skops' format, whose trusted types are named by the module each
object is found in (raysweep.tracking._skops). These tests compare raysweep's lookup with skops'
own, in fresh interpreters and on synthetic modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

pytest.importorskip("skops")

# A driver's modules (MLflow, scikit-learn, SciPy, pandas); then skops.io, as skops or raysweep imports it.
_PROBE = """
import json, sys
import mlflow, pandas, scipy.stats, sklearn.ensemble, sklearn.linear_model
if sys.argv[1] == "raysweep":
    from raysweep.tracking._skops import import_skops_io
    import_skops_io()
import numpy as np
import skops
import skops.io
from skops.io import _trusted_types, _utils
from sklearn.ensemble import RandomForestRegressor

model = RandomForestRegressor(n_estimators=2, random_state=0).fit(np.arange(20.0).reshape(10, 2), np.arange(10.0))
data = skops.io.dumps(model)
untrusted = skops.io.get_untrusted_types(data=data)
loaded = skops.io.loads(data, trusted=untrusted)
json.dump({
    "scipy_ufuncs": sorted(_trusted_types.SCIPY_UFUNC_TYPE_NAMES),
    "numpy_ufuncs": sorted(_trusted_types.NUMPY_UFUNC_TYPE_NAMES),
    "estimators": sorted(_trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES),
    "untrusted": sorted(untrusted),
    "same_predictions": bool((loaded.predict(np.ones((3, 2))) == model.predict(np.ones((3, 2)))).all()),
    "attribute": skops.io is sys.modules["skops.io"],
    "whichmodule": _utils.whichmodule.__module__,
}, sys.stdout)
"""


def _probe(how: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE, how], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_same_trusted_type_names_as_skops_own_import():
    own, ours = _probe("skops"), _probe("raysweep")
    assert len(own["scipy_ufuncs"]) > 100 and len(own["numpy_ufuncs"]) > 50 and own["estimators"]
    for key in ("scipy_ufuncs", "numpy_ufuncs", "estimators", "untrusted"):
        assert ours[key] == own[key], key
    assert ours["same_predictions"] and ours["attribute"]
    assert ours["whichmodule"] == "skops.io._utils"  # skops' own function is back once imported


@pytest.fixture
def modules(monkeypatch):
    """Adds synthetic modules to ``sys.modules``, in order, for the test's length."""
    from raysweep.tracking._skops import _ModuleIndex

    def add(name: str, module: object) -> None:
        monkeypatch.setitem(sys.modules, name, module)

    yield add
    _ModuleIndex._current = None


class _Ufunc:  # like a SciPy ufunc: no __module__ to say where it lives
    def __getattribute__(self, name):
        if name == "__module__":
            raise AttributeError(name)
        return object.__getattribute__(self, name)


class _LazyModule(types.ModuleType):
    def __getattr__(self, name):
        return self.provides.get(name) if name in self.provides else super().__getattribute__(name)


def _compare(name: str, obj: object) -> tuple[str, str]:
    from skops.io import _utils

    from raysweep.tracking._skops import _indexed_whichmodule

    return _indexed_whichmodule(_utils.whichmodule)(obj, name), _utils.whichmodule(obj, name)


def test_the_lookup_finds_the_first_module_in_import_order_as_skops_does(modules):
    target, other = _Ufunc(), _Ufunc()
    plain_first, plain_second = types.ModuleType("raysweep_probe_a"), types.ModuleType("raysweep_probe_b")
    plain_first.probe_fn, plain_second.probe_fn = other, target  # the same name, another object first
    modules("raysweep_probe_a", plain_first)
    modules("raysweep_probe_b", plain_second)
    assert _compare("probe_fn", target) == ("raysweep_probe_b", "raysweep_probe_b")
    assert _compare("probe_fn", other) == ("raysweep_probe_a", "raysweep_probe_a")
    assert _compare("probe_missing", target) == ("__main__", "__main__")


def test_modules_only_getattr_can_ask_are_asked_in_their_place(modules):
    target = _Ufunc()
    lazy = _LazyModule("raysweep_probe_lazy")
    lazy.provides = {"probe_lazy_fn": target}  # found only through the module's __getattr__
    plain = types.ModuleType("raysweep_probe_plain")
    plain.probe_lazy_fn = target
    hook = types.ModuleType("raysweep_probe_hook")

    def module_getattr(name: str) -> object:  # PEP 562
        if name == "probe_hook_fn":
            return target
        raise AttributeError(name)

    hook.__getattr__ = module_getattr
    modules("raysweep_probe_lazy", lazy)
    modules("raysweep_probe_plain", plain)
    modules("raysweep_probe_hook", hook)
    assert _compare("probe_lazy_fn", target) == ("raysweep_probe_lazy", "raysweep_probe_lazy")
    assert _compare("probe_hook_fn", target) == ("raysweep_probe_hook", "raysweep_probe_hook")


def test_a_module_imported_between_lookups_is_seen(modules):
    from skops.io import _utils

    from raysweep.tracking._skops import _indexed_whichmodule, _ModuleIndex

    lookup, target = _indexed_whichmodule(_utils.whichmodule), _Ufunc()
    assert lookup(target, "probe_late_fn") == "__main__"
    assert _ModuleIndex._current is not None  # the index the next lookup would reuse
    late = types.ModuleType("raysweep_probe_late")
    late.probe_late_fn = target
    modules("raysweep_probe_late", late)
    assert lookup(target, "probe_late_fn") == "raysweep_probe_late"


# -- the end of a sweep imports skops early -------------------------------------------------------
def test_the_end_imports_of_a_tracked_sweep_with_a_scikit_learn_model_include_skops_and_pyfunc():
    from raysweep.families import get_family
    from raysweep.sweep.early import end_modules

    forest = end_modules(get_family("random_forest"), False, tracked=True, importance=True, charts=False)
    assert forest[-1] == "skops.io" and "mlflow.sklearn" in forest and "mlflow.pyfunc" in forest
    # XGBoost on all-numeric data logs its booster in its own flavor: no skops; with categories, a pipeline in skops
    assert "skops.io" not in end_modules(get_family("xgboost"), False, tracked=True, importance=True, charts=False)
    assert "skops.io" in end_modules(get_family("xgboost"), True, tracked=True, importance=True, charts=False)
    assert end_modules(get_family("random_forest"), False, tracked=False, importance=True, charts=False) == ["optuna", "optuna.importance"]


def test_the_background_import_of_skops_goes_through_raysweeps_lookup(monkeypatch):
    from raysweep.sweep import early
    from raysweep.tracking import _skops

    calls = []
    monkeypatch.setattr(_skops, "import_skops_io", lambda: calls.append("raysweep"))
    monkeypatch.setattr(early.importlib, "import_module", lambda name: calls.append(name))
    early.import_modules(["json", "skops.io"]).join(timeout=60)
    assert calls == ["json", "raysweep"]


def test_the_end_imports_load_the_refit_models_class_first_and_go_on_without_one(monkeypatch):
    from raysweep.sweep import early
    from raysweep.sweep.auto import AutoFamily

    calls = []
    monkeypatch.setattr(early.importlib, "import_module", lambda name: calls.append(name))
    early.import_modules(["json"], model=lambda: calls.append("the model's class")).join(timeout=60)
    assert calls == ["the model's class", "json"]
    calls.clear()
    # an auto sweep's stand-in family has no class of its own: the other imports still run
    early.import_modules(["json"], model=lambda: AutoFamily().estimator_class("classification")).join(timeout=60)
    assert calls == ["json"]
