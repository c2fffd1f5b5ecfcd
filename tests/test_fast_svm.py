"""The SVM family on scikit-learn 1.9+, which deprecates ``SVC(probability=...)`` and warns whenever it is given."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from raysweep.families import get_family
from raysweep.families._resource import Resource


@pytest.mark.parametrize("needs_proba", [False, True], ids=["accuracy", "roc_auc"])
def test_an_svm_trains_without_scikit_learns_deprecation_notice(needs_proba):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    family = get_family("svm")
    model = family.build({"C": 1.0}, "classification", 0, needs_proba)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        family.train_step(model, X, y, 2, Resource("rows", 0.5, 1.0), 2, 0)
    assert [str(w.message) for w in caught] == []
    assert model.get_params()["probability"] == (True if needs_proba else "deprecated")  # given only when needed
    if needs_proba:
        assert model.predict_proba(X).shape == (80, 2)
    assert (model.predict(X) == y).mean() > 0.8


@pytest.mark.parametrize(("recipe", "best_steps", "refit"), [("svm", 2, 10), ("svm", 10, 10), ("xgboost", 2, 2), ("random_forest", 3, 3)])
def test_a_row_share_is_refit_whole_and_a_models_size_as_it_was_best(recipe: str, best_steps: int, refit: int) -> None:
    """An auto sweep's winning SVM, best at 0.2 of the rows, was refit on 71 of 353 rows (test r2
    0.24 against 0.51 on validation): a share of the rows is a data budget, not a setting."""
    from raysweep.families import get_family
    from raysweep.families._resource import Resource
    from raysweep.sweep.result import steps_to_refit

    resource = Resource("train_fraction", 0.1, 1.0) if recipe == "svm" else Resource("trees", 10, 100)
    assert steps_to_refit(get_family(recipe), resource, best_steps) == refit
