"""Multi-layer perceptrons, trained epoch by epoch with ``partial_fit``."""

from __future__ import annotations

from typing import Any

import numpy as np

from raysweep.families._base import Family


class MLPFamily(Family):
    name = "mlp"
    encoding = "dense"
    native_missing = False
    scale_target = True
    reserved = ("random_state", "warm_start", "max_iter", "early_stopping", "verbose", "n_iter_no_change")

    def estimator_class(self, task: str) -> type:
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        return MLPClassifier if task == "classification" else MLPRegressor

    def build(self, params: dict[str, Any], task: str, seed: int, needs_proba: bool) -> Any:
        params = dict(params)
        if "hidden_layer_sizes" in params:
            sizes = params["hidden_layer_sizes"]
            params["hidden_layer_sizes"] = tuple(sizes) if isinstance(sizes, (list, tuple)) else (int(sizes),)
        if params.get("solver", "adam") == "lbfgs":
            raise ValueError("solver lbfgs has no partial_fit; use adam or sgd")
        return self.estimator_class(task)(random_state=seed, **params)

    def train_step(self, model, X, y, step, resource, n_classes, seed):
        epochs = int(resource.at(step)) - int(resource.at(step - 1))
        for _ in range(epochs):
            if n_classes:
                model.partial_fit(X, y, classes=np.arange(n_classes))
            else:
                model.partial_fit(X, y)
        return model

    def apply_params(self, model, params):
        model.set_params(**params)
        optimizer = getattr(model, "_optimizer", None)
        if optimizer is not None and "learning_rate_init" in params:
            # partial_fit builds its optimizer once, from the learning rate it had then; the
            # new rate must reach the optimizer to take effect.
            optimizer.learning_rate_init = params["learning_rate_init"]
            if hasattr(optimizer, "learning_rate"):
                optimizer.learning_rate = params["learning_rate_init"]
        return model

    def effective_params(self, model, names):
        values = super().effective_params(model, names)
        optimizer = getattr(model, "_optimizer", None)
        if optimizer is not None and "learning_rate_init" in names:
            values["learning_rate_init"] = optimizer.learning_rate_init
        return values
