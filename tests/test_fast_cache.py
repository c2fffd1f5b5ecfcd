"""What raysweep's cache remembers across runs: a built-in dataset's table and a recipe check that passed.

The cache folder is a temporary one (``XDG_CACHE_HOME``). The start of a sweep is run in a fresh
Python up to the point where it would start Ray, to see which libraries it imported by then.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from raysweep import _cache
from raysweep.data import BUILTIN_DATASETS, _load_builtin, load_dataset
from raysweep.errors import UserError
from raysweep.families import get_family
from raysweep.recipes import load_recipe
from raysweep.sweep.options import check_recipe


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


@pytest.mark.parametrize("spec", [*[n for n in BUILTIN_DATASETS if not n.startswith("make_")],
                                  "make_classification:n_samples=80,n_classes=3", "make_regression:noise=2.5"])
def test_a_kept_builtin_dataset_is_the_one_scikit_learn_gives(cache: Path, spec: str) -> None:
    first = load_dataset(spec, seed=4)
    kept = list((cache / "raysweep" / "datasets").glob("*.npz"))
    assert len(kept) == 1
    again = load_dataset(spec, seed=4)  # from the cache
    X, y, name, task = _load_builtin(spec, 4)
    for loaded in (first, again):
        pd.testing.assert_frame_equal(loaded.X, X)
        pd.testing.assert_series_equal(loaded.y, y)
        assert (loaded.name, loaded.task) == (name, task)
    assert again.fingerprint == first.fingerprint


def test_a_synthetic_dataset_is_kept_per_seed_and_options(cache: Path) -> None:
    one = load_dataset("make_classification:n_samples=60", seed=1)
    two = load_dataset("make_classification:n_samples=60", seed=2)
    other = load_dataset("make_classification:n_samples=70", seed=1)
    assert one.fingerprint != two.fingerprint and len(other.X) == 70
    assert len(list((cache / "raysweep" / "datasets").glob("*.npz"))) == 3
    assert load_dataset("make_classification:n_samples=60", seed=2).fingerprint == two.fingerprint


def test_a_damaged_kept_dataset_is_loaded_afresh(cache: Path) -> None:
    first = load_dataset("wine")
    [kept] = (cache / "raysweep" / "datasets").glob("*.npz")
    kept.write_bytes(b"not a zip file")
    again = load_dataset("wine")
    pd.testing.assert_frame_equal(again.X, first.X)
    assert kept.stat().st_size > 1000  # written anew


def test_bad_options_are_refused_whatever_is_kept(cache: Path) -> None:
    load_dataset("iris")
    with pytest.raises(UserError, match="options are only for make_classification"):
        load_dataset("iris:n_samples=5")
    with pytest.raises(UserError, match="unknown option 'n_rows'"):
        load_dataset("make_regression:n_rows=5")


def test_an_unwritable_cache_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # the cache folder cannot be made under a file
    assert len(load_dataset("diabetes").X) == 442
    check_recipe(load_recipe("xgboost"))


def _recipe(tmp_path: Path, fixed: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(f"""\
        family: xgboost
        tasks: [classification]
        metric: {{classification: accuracy}}
        resource: {{name: rounds, per_step: 10, max: 30}}
        fixed: {{{fixed}}}
        space:
          max_depth: {{type: randint, low: 2, high: 6}}
    """))
    return path


def test_a_recipe_check_that_passed_is_remembered_and_a_failing_one_is_not(cache: Path, tmp_path: Path) -> None:
    checked = cache / "raysweep" / "checked"
    check_recipe(load_recipe(_recipe(tmp_path, "subsample: 0.9")))
    assert len(list(checked.iterdir())) == 1
    check_recipe(load_recipe(_recipe(tmp_path, "subsample: 0.9")))
    assert len(list(checked.iterdir())) == 1  # the same check: nothing new
    for _ in range(2):  # refused each time, never remembered
        with pytest.raises(UserError, match="not a parameter of XGBClassifier; did you mean 'subsample'"):
            check_recipe(load_recipe(_recipe(tmp_path, "subsampel: 0.9")))
    assert len(list(checked.iterdir())) == 1
    check_recipe(load_recipe(_recipe(tmp_path, "subsample: 0.8")))  # another value: checked, then remembered
    assert len(list(checked.iterdir())) == 2


def test_a_remembered_check_is_keyed_by_what_it_reads(cache: Path) -> None:
    from raysweep.sweep.options import _passed_key

    recipe = load_recipe("random_forest")
    family = get_family("random_forest")
    key = _passed_key(recipe, family, "classification")
    assert key == _passed_key(load_recipe("random_forest"), family, "classification")
    assert key != _passed_key(recipe, family, "regression")
    changed = load_recipe("random_forest")
    changed.fixed = {**changed.fixed, "max_features": 0.5}
    assert key != _passed_key(changed, family, "classification")

    class Outside(type(family)):  # a family from outside raysweep is checked every time
        pass

    Outside.__module__ = "my_families"
    assert _passed_key(recipe, Outside(), "classification") is None


_START = """
import sys
import raysweep.sweep.run as run

def stop(*args, **kwargs):
    print(sorted(name for name in ("sklearn", "xgboost", "ray") if name in sys.modules))
    raise SystemExit(0)

run.connect_ray = stop
sys.argv = ["raysweep", "run", "xgboost", "--dataset", "breast_cancer", "--num-samples", "2"]
from raysweep.cli import main
main()
"""


def test_the_second_start_of_the_demo_imports_neither_scikit_learn_nor_xgboost_before_ray(cache: Path, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}

    def imported_before_ray() -> str:
        done = subprocess.run([sys.executable, "-c", _START], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()[-1]

    assert imported_before_ray() == "['sklearn', 'xgboost']"  # the first time: the checks import them
    assert imported_before_ray() == "[]"


def test_no_home_folder_keeps_nothing_and_still_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "expanduser", lambda self: (_ for _ in ()).throw(RuntimeError("Could not determine home directory")))
    assert len(load_dataset("iris").X) == 150
    check_recipe(load_recipe("svm"))


_PREPARE = """
import sys, importlib
from raysweep.data import PREPARE_MODULES, load_dataset, prepare
from raysweep.families import get_family
cases = [(load_dataset(spec), get_family(family)) for spec, family in
         (("iris", "svm"), ("make_regression", "random_forest"), ("wine", "xgboost"), ("breast_cancer", "mlp"))]
for name in PREPARE_MODULES:
    importlib.import_module(name)
before = set(sys.modules)
for dataset, family in cases:
    for cv in (None, 3):
        prepare(dataset, family, seed=0, test_size=0.2, val_size=0.2, cv=cv)
print(sorted(name for name in set(sys.modules) - before if name.startswith("sklearn")))
"""


def test_the_modules_a_sweep_imports_while_ray_starts_are_all_that_preparing_the_data_needs(tmp_path: Path) -> None:
    # raysweep.sweep.run imports PREPARE_MODULES beside ray.init; prepare() runs right after it.
    done = subprocess.run([sys.executable, "-c", _PREPARE], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
