"""Random forests, grown tree by tree with ``warm_start``."""

from __future__ import annotations

from typing import Any

from raysweep.families._base import Family


class RandomForestFamily(Family):
    name = "random_forest"
    encoding = "ordinal"
    native_missing = False
    reserved = ("n_estimators", "warm_start", "random_state", "n_jobs", "verbose", "oob_score")

    def estimator_class(self, task: str) -> type:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        return RandomForestClassifier if task == "classification" else RandomForestRegressor

    def build(self, params: dict[str, Any], task: str, seed: int, needs_proba: bool) -> Any:
        # One core per trial: Ray runs trials side by side, each on its own CPU.
        return self.estimator_class(task)(n_estimators=1, warm_start=True, random_state=seed, n_jobs=1, **params)

    def train_step(self, model, X, y, step, resource, n_classes, seed):
        model.set_params(n_estimators=int(resource.at(step)))
        return model.fit(X, y)
