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
