"""Validation metrics: one function scores a fitted model on held-out rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from raysweep.errors import UserError, plain

#: metric name -> (task, direction). The direction follows the metric.
METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("classification", "max"),
    "roc_auc": ("classification", "max"),
    "log_loss": ("classification", "min"),
    "f1_macro": ("classification", "max"),
    "rmse": ("regression", "min"),
    "mae": ("regression", "min"),
    "r2": ("regression", "max"),
}
_NEEDS_PROBA = {"roc_auc", "log_loss"}
#: metric name -> (lowest, highest) value it can take; None: unbounded on that side
RANGES: dict[str, tuple[float | None, float | None]] = {
    "accuracy": (0.0, 1.0),
    "roc_auc": (0.0, 1.0),
    "f1_macro": (0.0, 1.0),
    "log_loss": (0.0, None),
    "rmse": (0.0, None),
    "mae": (0.0, None),
    "r2": (None, 1.0),
}


def direction(metric: str) -> str:
    """``"max"`` or ``"min"``: which way is better for ``metric``."""
    return METRICS[metric][1]


def needs_proba(metric: str) -> bool:
    return metric in _NEEDS_PROBA


def _class_scores(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class scores (probabilities where the model has them) with one column per class."""
    if hasattr(model, "predict_proba") and getattr(model, "probability", True):
        proba = np.asarray(model.predict_proba(X), dtype=float)
        seen = np.asarray(getattr(model, "classes_", np.arange(proba.shape[1])))
        if proba.shape[1] != n_classes:
            # A model that saw only some classes (a small row fraction) scores the rest as zero.
            full = np.zeros((proba.shape[0], n_classes))
            full[:, seen.astype(int)] = proba
            proba = full
        return proba
    decision = np.asarray(model.decision_function(X), dtype=float)
    if decision.ndim == 1:
        return np.column_stack([-decision, decision])
    return decision


def score(metric: str, model: Any, X: np.ndarray, y: np.ndarray, n_classes: int = 0, y_scale: float = 1.0) -> float:
    """``metric`` of ``model`` on ``(X, y)``.

    Classification labels are encoded 0..n_classes-1. A regression target standardised by
    ``y_scale`` has its errors (rmse, mae) reported back in the target's own units.

    rmse, mae, r2 and accuracy are computed here, as scikit-learn computes them for one
    unweighted output; the other metrics by scikit-learn. ``sklearn.metrics`` is imported only for
    those: it costs a trial process about a second of CPU on its first step (1.0-1.1 s measured),
    beside the sweep's first trials. The bundled families' libraries (scikit-learn's estimators,
    XGBoost) import it anyway; a family of another library, registered with
    :func:`raysweep.families.register_family`, no longer pays for it.
    """
    if metric in ("rmse", "mae", "r2"):
        pred = np.asarray(model.predict(X), dtype=float).ravel()
        if not np.all(np.isfinite(pred)):
            return float("nan")
        truth = np.asarray(y, dtype=float).ravel()
        if metric == "rmse":
            return float(np.sqrt(np.mean((truth - pred) ** 2))) * y_scale
        if metric == "mae":
            return float(np.mean(np.abs(truth - pred))) * y_scale
        return _r2(truth, pred)
    if metric == "accuracy":
        return float(np.mean(np.asarray(y).ravel() == np.asarray(model.predict(X)).ravel()))
    from sklearn import metrics as skm

    if metric == "f1_macro":
        pred = model.predict(X)
        return float(skm.f1_score(y, pred, average="macro", labels=np.arange(n_classes), zero_division=0))
    scores = _class_scores(model, X, n_classes)
    if not np.all(np.isfinite(scores)):
        return float("nan")
    labels = np.arange(n_classes)
    if metric == "log_loss":
        # scikit-learn's own clipping (machine epsilon), as `sklearn.metrics.log_loss` on the model's
        # predict_proba gives it; rows are only brought to sum to one (float32 models' do not quite).
        proba = np.clip(scores.astype(np.float64), 0.0, 1.0)
        sums = proba.sum(axis=1, keepdims=True)
        proba = np.divide(proba, sums, out=np.full_like(proba, 1.0 / n_classes), where=sums > 0)
        return float(skm.log_loss(y, proba, labels=labels))
    if metric == "roc_auc":
        if len(np.unique(y)) < 2:
            return float("nan")
        if n_classes == 2:
            return float(skm.roc_auc_score(y, scores[:, 1]))
        proba = scores / scores.sum(axis=1, keepdims=True) if np.all(scores >= 0) else _softmax(scores)
        return float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels))
    raise ValueError(f"unknown metric {metric!r}")


def check_every_class_scored(
    metric: str, score_splits: list[np.ndarray], classes: Any, *, cv: int | None = None, pool: np.ndarray | None = None,
) -> None:
    """Refuse ``roc_auc`` when a class has no row in a split the trials are scored on: its one-vs-rest
    AUC is undefined there, so every trial's score was NaN and failed as "the model diverged".
    ``score_splits``: the encoded targets of the validation split, or of each cross-validation fold;
    ``pool``: those of the rows tuned on, whose count of the class says which ``--cv`` would do."""
    if metric != "roc_auc" or classes is None:
        return
    for y in score_splits:
        present = set(np.unique(y).tolist())
        missing = [i for i in range(len(classes)) if i not in present]
        if missing:
            where = f"one of the {cv} cross-validation folds" if cv else "the validation split"
            shown = ", ".join(repr(plain(classes[i])) for i in missing[:3])
            rows = min(int(np.sum(pool == i)) for i in missing) if pool is not None else None
            others = "another --metric (log_loss, accuracy, f1_macro)"
            if rows is not None and rows < 2:
                # No split can give each fold one: --cv needs 2 folds at least.
                raise UserError(
                    f"--metric roc_auc: class {shown} has {rows} row{'' if rows == 1 else 's'} among the rows tuned on, too few "
                    f"to score it in every split, and roc_auc is undefined without one; use {others}, drop or merge that "
                    "class, or add rows of it"
                )
            folds = min(rows, 3) if rows is not None else 3
            fix = (f"--cv {rows} or fewer" if rows is not None else "fewer --cv folds") if cv else f"--cv {folds} (each row is scored in one fold)"
            raise UserError(
                f"--metric roc_auc: {where} has no row of class {shown} (too few rows of it), and roc_auc is undefined "
                f"without one; use {fix}, {others}, or more rows of that class"
            )


def _r2(truth: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn's ``r2_score``: nan below two rows; 1 for a perfect fit, 0 for an imperfect
    one of a constant target (its ``force_finite``)."""
    if len(truth) < 2:
        return float("nan")
    residual = float(np.sum((truth - pred) ** 2))
    total = float(np.sum((truth - np.mean(truth)) ** 2))
    if residual == 0:
        return 1.0
    if total == 0:
        return 0.0
    return 1.0 - residual / total


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def check_stop_at(value: float, metric: str) -> None:
    """A target the metric can reach: accuracy between 0 and 1, an error (rmse, log loss) not below 0."""
    low, high = RANGES[metric]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise UserError(f"--stop-at {value!r}: must be a number, the {metric} at which the sweep ends")
    if not math.isfinite(value):
        raise UserError(f"--stop-at {value}: must be a finite number, the {metric} at which the sweep ends")
    if (low is None or value >= low) and (high is None or value <= high):
        return
    if low is not None and high is not None:
        rule, fix = f"{metric} lies between {low:g} and {high:g}", f"give a value from {low:g} to {high:g}"
    elif low is not None:
        rule, fix = f"{metric} is never below {low:g}", f"give a value >= {low:g}"
    else:
        rule, fix = f"{metric} is never above {high:g}", f"give a value <= {high:g}"
    reached = "at or above" if direction(metric) == "max" else "at or below"
    raise UserError(f"--stop-at {value:g}: {rule}; {fix} (the sweep ends once a trial's validation {metric} is {reached} it)")
