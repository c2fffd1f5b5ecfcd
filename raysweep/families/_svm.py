"""Support vector machines, grown along the share of training rows (successive halving on data)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from raysweep.families._base import Family


class SVMFamily(Family):
    name = "svm"
    encoding = "dense"
    native_missing = False
    scale_target = True
    # Each step refits on more rows; nothing carries over, so PBT has no state to exploit.
    supports_pbt = False
    refit_on_all_rows = True
    integer_resource = False
    reserved = ("random_state", "verbose", "probability")

    def estimator_class(self, task: str) -> type:
        from sklearn.svm import SVC, SVR

        return SVC if task == "classification" else SVR

    def build(self, params: dict[str, Any], task: str, seed: int, needs_proba: bool) -> Any:
        if task == "classification":
            # `probability` only when a metric needs probabilities: scikit-learn 1.9 deprecates the
            # parameter (to be removed in 1.11), and warns whenever it is given, False included.
            extra = {"probability": True} if needs_proba else {}
            return self.estimator_class(task)(random_state=seed, **extra, **params)
        return self.estimator_class(task)(**params)

    def train_step(self, model, X, y, step, resource, n_classes, seed):
        fraction = min(1.0, float(resource.at(step)) / float(resource.max))
        rows = row_order(y, n_classes, seed)[: max(math.ceil(fraction * len(y)), 2 * max(n_classes, 1))]
        with warnings.catch_warnings():
            # With roc_auc or log_loss, SVC(probability=True) (Platt scaling in libsvm) is still the
            # model trained and logged; scikit-learn's notice of its deprecation is not the user's to act on.
            warnings.filterwarnings("ignore", message="The `probability` parameter was deprecated", category=FutureWarning)
            return model.fit(X[rows], y[rows])


def row_order(y: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """A fixed shuffled order of rows in which every class appears among the first ones.

    Growing the row share takes a prefix of this order, so each step sees the rows of the
    step before it plus new ones.
    """
    order = np.random.default_rng(seed).permutation(len(y))
    if not n_classes:
        return order
    # Two rows of each class up front, so even a small share can fit every class.
    first: list[int] = []
    for label in range(n_classes):
        first.extend(order[y[order] == label][:2].tolist())
    leading = np.array(first, dtype=int)
    return np.concatenate([leading, order[~np.isin(order, leading)]])
