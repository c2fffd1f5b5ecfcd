"""The sweep's output: the best config refit on train+validation, as one scikit-learn estimator."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator


class RefitModel(BaseEstimator):
    """Preprocessing plus the refit model, answering in the dataset's own labels and units.

    ``predict`` takes the raw feature columns (a DataFrame like the training data) and returns
    class labels as they appeared in the target column, or regression values in the target's
    units. ``predict_proba`` columns follow ``classes_``.
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
        return np.ascontiguousarray(self.preprocessor.transform(X), dtype=np.float64)

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
