"""raysweep's own rmse, mae, r2 and accuracy give scikit-learn's numbers (synthetic inputs)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from raysweep.metrics import score


class _Fixed:
    """A fitted model that predicts the given values, whatever the rows."""

    def __init__(self, predictions) -> None:
        self.predictions = np.asarray(predictions)

    def predict(self, X):
        return self.predictions


def _sklearn(metric: str, y, pred) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # r2 of one row: UndefinedMetricWarning, and nan
        if metric == "rmse":
            return float(np.sqrt(skm.mean_squared_error(y, pred)))
        if metric == "mae":
            return float(skm.mean_absolute_error(y, pred))
        if metric == "r2":
            return float(skm.r2_score(y, pred))
        return float(skm.accuracy_score(y, pred))


rng = np.random.default_rng(0)
TARGET = rng.normal(50.0, 20.0, 500)
REGRESSION = {
    "noisy": (TARGET, TARGET + rng.normal(0, 5, 500)),
    "perfect": (TARGET, TARGET.copy()),
    "constant target, imperfect": (np.full(40, 3.0), np.linspace(2.0, 4.0, 40)),
    "constant target, perfect": (np.full(40, 3.0), np.full(40, 3.0)),
    "one row": (np.array([1.5]), np.array([2.0])),
    "a column of predictions": (TARGET, (TARGET + 1.0).reshape(-1, 1)),
    "integer target": (np.arange(30), np.arange(30) * 1.1),
}


@pytest.mark.parametrize("case", sorted(REGRESSION))
@pytest.mark.parametrize("metric", ["rmse", "mae", "r2"])
def test_regression_metrics_are_scikit_learns(metric, case):
    y, pred = REGRESSION[case]
    expected = _sklearn(metric, y, pred)
    got = score(metric, _Fixed(pred), np.zeros((len(y), 1)), y)
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_errors_are_reported_in_the_targets_units():
    y, pred = REGRESSION["noisy"]
    assert score("rmse", _Fixed(pred / 4), None, y / 4, y_scale=4.0) == pytest.approx(_sklearn("rmse", y, pred), rel=1e-12)
    assert score("mae", _Fixed(pred / 4), None, y / 4, y_scale=4.0) == pytest.approx(_sklearn("mae", y, pred), rel=1e-12)


def test_a_prediction_that_is_not_finite_scores_nan():
    assert np.isnan(score("rmse", _Fixed([1.0, np.inf]), None, np.array([1.0, 2.0])))


@pytest.mark.parametrize("labels, pred", [
    (rng.integers(0, 5, 300), rng.integers(0, 5, 300)),
    (rng.integers(0, 2, 300), rng.integers(0, 2, 300).astype(float)),  # a model's float labels
    (np.array([0, 1, 1]), np.array([0, 1, 1])),
])  # fmt: skip
def test_accuracy_is_scikit_learns(labels, pred):
    assert score("accuracy", _Fixed(pred), None, labels, n_classes=5) == pytest.approx(_sklearn("accuracy", labels, pred), abs=1e-15)


def test_scoring_these_metrics_does_not_import_sklearn_metrics():
    """A trial process of an XGBoost or a no-op recipe does not pay for ``sklearn.metrics``."""
    probe = (
        "import sys, numpy as np; from raysweep.metrics import score\n"
        "class M:\n    def predict(self, X): return np.arange(4.0)\n"
        "[score(m, M(), None, np.arange(4.0) + 0.5) for m in ('rmse', 'mae', 'r2', 'accuracy')]\n"
        "print('sklearn.metrics' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_roc_auc_is_refused_when_a_class_has_no_row_to_be_scored_on() -> None:
    # A class of 3 rows in 300: the stratified validation split can hold none of them, and then every
    # trial's roc_auc was NaN and failed as "the model diverged".
    from raysweep.errors import UserError
    from raysweep.metrics import check_every_class_scored

    classes = np.array(["no", "rare", "yes"], dtype=object)
    with pytest.raises(UserError) as raised:
        check_every_class_scored("roc_auc", [np.array([0, 2, 2, 0])], classes)
    assert str(raised.value) == (
        "--metric roc_auc: the validation split has no row of class 'rare' (too few rows of it), and roc_auc is "
        "undefined without one; use --cv 3 (each row is scored in one fold), another --metric (log_loss, accuracy, "
        "f1_macro), or more rows of that class"
    )
    with pytest.raises(UserError, match=r"one of the 5 cross-validation folds has no row of class 'rare' .* use fewer --cv folds"):
        check_every_class_scored("roc_auc", [np.array([0, 1, 2]), np.array([0, 2])], classes, cv=5)
    # With the rows tuned on: as many folds as the class has rows; none when it has one.
    with pytest.raises(UserError, match=r"use --cv 2 \(each row is scored in one fold\)"):
        check_every_class_scored("roc_auc", [np.array([0, 2, 2, 0])], classes, pool=np.array([0, 1, 1, 2, 0, 2]))
    with pytest.raises(UserError) as raised:
        check_every_class_scored("roc_auc", [np.array([0, 2])], classes, cv=2, pool=np.array([0, 1, 2, 0, 2]))
    assert str(raised.value) == (
        "--metric roc_auc: class 'rare' has 1 row among the rows tuned on, too few to score it in every split, and "
        "roc_auc is undefined without one; use another --metric (log_loss, accuracy, f1_macro), drop or merge that "
        "class, or add rows of it"
    )
    # Every class scored, another metric, or regression: nothing to refuse.
    check_every_class_scored("roc_auc", [np.array([0, 1, 2])], classes)
    check_every_class_scored("log_loss", [np.array([0, 2])], classes)
    check_every_class_scored("roc_auc", [np.array([0.5, 1.5])], None)


def test_plan_sweep_refuses_roc_auc_on_a_class_no_split_can_score_before_ray_starts() -> None:
    """It was refused after Ray started (the data is encoded once Ray is up), and its advice went
    round in circles: --cv 3, then fewer folds, for a class of one row."""
    import pandas as pd

    from raysweep.data import Dataset
    from raysweep.errors import UserError
    from raysweep.sweep.options import plan_sweep

    rng = np.random.default_rng(0)
    labels = np.array(["yes"] * 149 + ["no"] * 148 + ["rare"] * 3)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    dataset = Dataset(name="rare", X=frame, y=pd.Series(labels, name="label"), task="classification")
    with pytest.raises(UserError, match=r"the validation split has no row of class 'rare' .* use --cv 2 \("):
        plan_sweep("random_forest", dataset, metric="roc_auc")
    with pytest.raises(UserError, match=r"one of the 3 cross-validation folds has no row of class 'rare' .* use --cv 2 or fewer"):
        plan_sweep("random_forest", dataset, metric="roc_auc", cv=3)
    assert plan_sweep("random_forest", dataset, metric="roc_auc", cv=2).cv == 2


class _Proba:
    """A fitted classifier whose probabilities are the given rows."""

    def __init__(self, proba) -> None:
        self.proba = np.asarray(proba, dtype=float)

    def predict_proba(self, X):
        return self.proba


def test_log_loss_is_scikit_learns_on_the_models_probabilities_even_at_zero():
    """A row giving its true class probability 0 was clipped at 1e-15, scikit-learn clips at
    machine epsilon: here 9.198 against `sklearn.metrics.log_loss`'s 9.574 on the same
    predict_proba, the sweep's log_loss and the one a user computes from the logged model apart."""
    proba = [[1.0, 0.0, 0.0], [0.2, 0.7, 0.1], [0.0, 0.5, 0.5], [0.3, 0.3, 0.4]]
    y = np.array([1, 1, 2, 0])  # the first row's true class has probability 0
    expected = skm.log_loss(y, proba, labels=[0, 1, 2])
    assert score("log_loss", _Proba(proba), None, y, n_classes=3) == pytest.approx(expected, rel=1e-12)
