"""XGBoost trials keep their training matrix across steps: the same model as one fit of all the rounds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from raysweep.data import TrialData
from raysweep.families import get_family
from raysweep.families._resource import Resource
from raysweep.metrics import score


def _stepped(params: dict, task: str, X: np.ndarray, y: np.ndarray, n_classes: int, steps: int, family=None):
    family = family or get_family("xgboost")
    resource = Resource("n_estimators", 20, 20 * steps)
    model = family.build(params, task, 0, True)
    for step in range(1, steps + 1):
        model = family.train_step(model, X, y, step, resource, n_classes, 0)
    return model


@pytest.mark.parametrize(
    ("loader", "task", "n_classes", "metric"),
    [(load_breast_cancer, "classification", 2, "log_loss"), (load_wine, "classification", 3, "log_loss"), (load_diabetes, "regression", 0, "rmse")],
)
def test_step_by_step_fit_scores_as_one_fit_of_all_rounds(loader, task, n_classes, metric):
    X, y = loader(return_X_y=True)
    X_fit, y_fit, X_val, y_val = X[::2], y[::2], X[1::2], y[1::2]
    params = {"max_depth": 4, "learning_rate": 0.1, "max_bin": 64}
    stepped = _stepped(params, task, X_fit, y_fit, n_classes, steps=6)
    family = get_family("xgboost")
    whole = family.estimator_class(task)(n_estimators=120, random_state=0, n_jobs=1, **params).fit(X_fit, y_fit)
    assert stepped.get_booster().num_boosted_rounds() == 120
    assert score(metric, stepped, X_val, y_val, n_classes) == pytest.approx(score(metric, whole, X_val, y_val, n_classes), rel=1e-6)
    if task == "classification":
        np.testing.assert_allclose(stepped.predict_proba(X_val), whole.predict_proba(X_val), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(stepped.classes_, np.arange(n_classes))


def test_with_row_and_column_sampling_the_steps_score_as_before_and_repeat_exactly():
    """Sampled rounds draw from XGBoost's random stream, which a booster copied at each step (a new
    scikit-learn fit continuing it: raysweep before) restarts and a booster grown in place does not:
    the models differ by sampling noise, and each is the same again on the same seed."""
    X, y = load_wine(return_X_y=True)
    X_fit, y_fit, X_val, y_val = X[::2], y[::2], X[1::2], y[1::2]
    params = {"max_depth": 4, "learning_rate": 0.1, "subsample": 0.7, "colsample_bytree": 0.8}
    family = get_family("xgboost")
    before = family.build(params, "classification", 0, True)
    for step in range(4):
        grown = type(before)(**{**before.get_params(), "n_estimators": 20})
        before = grown.fit(X_fit, y_fit, xgb_model=before.get_booster() if step else None)
    kept = _stepped(params, "classification", X_fit, y_fit, 3, steps=4)
    again = _stepped(params, "classification", X_fit, y_fit, 3, steps=4)
    assert score("log_loss", kept, X_val, y_val, 3) == pytest.approx(score("log_loss", before, X_val, y_val, 3), rel=0.1)
    assert score("accuracy", kept, X_val, y_val, 3) == pytest.approx(score("accuracy", before, X_val, y_val, 3), abs=0.03)
    np.testing.assert_array_equal(kept.predict_proba(X_val), again.predict_proba(X_val))


def test_one_matrix_per_rows_and_max_bin_reused_across_trials():
    X, y = load_breast_cancer(return_X_y=True)
    family = get_family("xgboost")
    _stepped({"max_bin": 64}, "classification", X, y, 2, steps=3, family=family)
    first = dict(family._matrices.entries)
    _stepped({"max_bin": 64, "max_depth": 2}, "classification", X, y, 2, steps=3, family=family)
    assert family._matrices.entries == first  # the next trial on the same rows: no new matrix
    _stepped({"max_bin": 32}, "classification", X, y, 2, steps=2, family=family)
    assert len(family._matrices.entries) == 2  # another max_bin: another sketch


def test_a_class_missing_from_the_rows_still_gives_every_class_column():
    X, y = load_wine(return_X_y=True)
    keep = y != 2
    model = _stepped({}, "classification", X[keep], y[keep], 3, steps=2)
    assert model.predict_proba(X).shape == (len(y), 3)


def test_cross_validation_folds_are_the_same_arrays_at_every_step():
    X, y = load_breast_cancer(return_X_y=True)
    folds = [(np.arange(0, 400), np.arange(400, 569)), (np.arange(169, 569), np.arange(0, 169))]
    data = TrialData(X, y, X[:0], y[:0], "classification", 2, folds=folds)
    assert all(a[0] is b[0] and a[1] is b[1] for a, b in zip(data.splits(), data.splits()))
    import pickle

    assert "_fold_splits" not in pickle.loads(pickle.dumps(data)).__dict__


def test_a_pickled_family_leaves_its_matrices_behind():
    import pickle

    X, y = load_breast_cancer(return_X_y=True)
    family = get_family("xgboost")
    _stepped({}, "classification", X, y, 2, steps=1, family=family)
    assert "_matrices_cache" not in pickle.loads(pickle.dumps(family)).__dict__


def test_parameters_changed_between_steps_apply_to_the_next_rounds():
    import json

    X, y = load_breast_cancer(return_X_y=True)
    family = get_family("xgboost")
    resource = Resource("n_estimators", 10, 30)
    model = family.build({"learning_rate": 0.3}, "classification", 0, True)
    model = family.train_step(model, X, y, 1, resource, 2, 0)
    model = family.apply_params(model, {"learning_rate": 0.05})
    model = family.train_step(model, X, y, 2, resource, 2, 0)
    config = json.loads(model.get_booster().save_config())
    assert float(config["learner"]["gradient_booster"]["tree_train_param"]["eta"]) == pytest.approx(0.05)
    assert model.get_booster().num_boosted_rounds() == 20
