"""The sweep's output: the best config refit on train+validation, as one scikit-learn estimator."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator


class RefitModel(BaseEstimator):
    """Preprocessing plus the refit model, answering in the dataset's own labels and units.

    ``predict`` takes the raw feature columns (a DataFrame like the training data, or an array of
    its columns in their order) and returns class labels as they appeared in the target column, or
    regression values in the target's units. ``predict_proba`` columns follow ``classes_``.
    ``score`` is scikit-learn's: accuracy for a classifier, R² for a regressor.
    """

    def __init__(self, preprocessor: Any, model: Any, classes: np.ndarray | None = None,
                 y_center: float = 0.0, y_scale: float = 1.0) -> None:
        self.preprocessor = preprocessor
        self.model = model
        self.classes = classes
        self.y_center = y_center
        self.y_scale = y_scale

    @property
    def classes_(self) -> np.ndarray | None:
        return self.classes

    def _features(self, X: Any) -> np.ndarray:
        names = getattr(self.preprocessor, "feature_names_in_", None)
        if names is not None and not hasattr(X, "columns"):
            # An array of the training columns in their order (the preprocessor selects columns by name).
            import pandas as pd

            rows = np.asarray(X, dtype=object)
            if rows.ndim != 2 or rows.shape[1] != len(names):
                raise ValueError(f"X has shape {rows.shape}; the model takes {len(names)} columns: {', '.join(map(str, names))}")
            X = pd.DataFrame(rows, columns=list(names)).infer_objects()
        return np.ascontiguousarray(self.preprocessor.transform(X), dtype=np.float64)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of the predicted labels (a classifier) or R² (a regressor), as scikit-learn's ``score``."""
        from sklearn.metrics import accuracy_score, r2_score

        predicted = self.predict(X)
        return float(accuracy_score(np.asarray(y), predicted) if self.classes is not None else r2_score(np.asarray(y, dtype=float), predicted))

    def predict(self, X: Any) -> np.ndarray:
        raw = self.model.predict(self._features(X))
        if self.classes is not None:
            return self.classes[np.asarray(raw, dtype=int)]
        return np.asarray(raw, dtype=float) * self.y_scale + self.y_center

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model.predict_proba(self._features(X))

    def encoded(self) -> "EncodedView":
        """A view predicting encoded labels / scaled targets, as the trials were scored."""
        return EncodedView(self)


class EncodedView:
    """Scores a :class:`RefitModel` the way trials were scored (encoded labels, scaled targets)."""

    def __init__(self, refit: RefitModel) -> None:
        self.refit = refit
        self.probability = getattr(refit.model, "probability", True)

    def predict(self, X: Any) -> np.ndarray:
        return self.refit.model.predict(self.refit._features(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.refit.model.predict_proba(self.refit._features(X))

    def decision_function(self, X: Any) -> np.ndarray:
        return self.refit.model.decision_function(self.refit._features(X))

    @property
    def classes_(self) -> Any:
        return getattr(self.refit.model, "classes_", None)
