"""Gradient-boosted trees (XGBoost), boosting rounds added to the same booster."""

from __future__ import annotations

from typing import Any

from raysweep.families._base import Family


class XGBoostFamily(Family):
    name = "xgboost"
    encoding = "ordinal"
    native_missing = True
    reserved = ("n_estimators", "random_state", "n_jobs", "nthread", "verbosity", "early_stopping_rounds")

    def estimator_class(self, task: str) -> type:
        from xgboost import XGBClassifier, XGBRegressor

        return XGBClassifier if task == "classification" else XGBRegressor

    def valid_params(self, task: str) -> set[str]:
        # XGBoost's sklearn wrapper lists only some booster parameters in get_params().
        extra = {"max_leaves", "max_bin", "grow_policy", "tree_method", "max_delta_step", "colsample_bylevel",
                 "colsample_bynode", "num_parallel_tree", "scale_pos_weight", "base_score", "booster"}
        return (super().valid_params(task) | extra) - set(self.reserved)

    def build(self, params: dict[str, Any], task: str, seed: int, needs_proba: bool) -> Any:
        return self.estimator_class(task)(n_estimators=0, random_state=seed, n_jobs=1, **params)

    def train_step(self, model, X, y, step, resource, n_classes, seed):
        rounds = int(resource.at(step)) - int(resource.at(step - 1))
        previous = model.get_booster() if step > 1 else None
        # A new wrapper with the current parameters continues the same booster; parameters
        # changed by PBT take effect for the rounds added from here on.
        params = {k: v for k, v in model.get_params().items() if k != "n_estimators"}
        grown = type(model)(**params, n_estimators=rounds)
        grown.fit(X, y, xgb_model=previous, verbose=False)
        return grown
