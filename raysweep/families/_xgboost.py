"""Gradient-boosted trees (XGBoost), boosting rounds added to the same booster."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from raysweep.families._base import Family


#: booster parameters whose values are checked by the trials, not before Ray starts: they depend on
#: the data's columns or classes, or on a GPU the driver may not have
_LEFT_TO_THE_TRIALS = ("monotone_constraints", "interaction_constraints", "num_class", "device", "gpu_id", "nthread", "n_jobs")


class XGBoostFamily(Family):
    name = "xgboost"
    encoding = "ordinal"
    native_missing = True
    reserved = ("n_estimators", "random_state", "n_jobs", "nthread", "verbosity", "early_stopping_rounds")
    libraries = ("xgboost",)
    uses_gpu = True

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
        import xgboost

        rounds = int(resource.at(step)) - int(resource.at(step - 1))
        previous = model.get_booster() if step > 1 else None
        # A new wrapper with the current parameters continues the same booster; parameters
        # changed by PBT take effect for the rounds added from here on.
        params = {k: v for k, v in model.get_params().items() if k != "n_estimators"}
        grown = type(model)(**params, n_estimators=rounds)
        booster_params = grown.get_xgb_params()
        if n_classes > 2:
            # What XGBClassifier.fit sets for more than two classes.
            if booster_params.get("objective") != "multi:softmax":
                booster_params["objective"] = "multi:softprob"
            booster_params["num_class"] = n_classes
        matrix = self._matrices.get(X, y, n_classes, grown)
        if previous is None:
            booster = xgboost.train(booster_params, matrix, rounds, verbose_eval=False)
        else:
            # The same booster grows on the same matrix: its predictions on these rows stay cached,
            # where a copy of it (``xgboost.train(xgb_model=...)``) would first predict them again
            # with every tree it has (most of a step-by-step fit's extra cost on many classes).
            booster = previous
            if _applied.get(booster) != booster_params:
                # Only a change (PBT's): setting parameters restarts the booster's random stream.
                booster.set_param(booster_params)
            done = booster.num_boosted_rounds()
            for iteration in range(done, done + rounds):
                booster.update(matrix, iteration)
        _applied[booster] = booster_params
        _hold(grown, booster, booster_params["objective"], n_classes)
        return grown

    def check_model(self, model: Any, task: str) -> None:
        """XGBoost checks its parameters' values (``tree_method: histo``, ``booster``, bounds) only as it
        trains: one round on four made-up rows shows them before Ray starts. What needs the real data
        (constraints over its columns, the number of classes) or a GPU is left to the trials, and only
        a refusal of a parameter is raised (a made-up label another objective refuses is not the recipe's)."""
        import re

        import xgboost

        params = {key: value for key, value in model.get_xgb_params().items() if key not in _LEFT_TO_THE_TRIALS and value is not None}
        if "gpu" in str(params.get("tree_method", "")) or str(params.get("objective", "")).startswith("multi:"):
            return
        rows = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
        matrix = xgboost.DMatrix(rows, label=np.array([0.0, 1.0, 0.0, 1.0]))
        try:
            xgboost.train(params, matrix, 1)
        except xgboost.core.XGBoostError as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            text = re.sub(r"^\[[\d:]+\] \S+: (Check failed: [^:]*: )?", "", text).strip()
            if re.search(r"Invalid Input|[Pp]arameter|Unknown|valid values|exceed bound", text):
                raise ValueError(text) from None

    def gpu_params(self) -> dict[str, Any]:
        # Training and prediction both on the trial's GPU (Ray makes it the only visible one).
        return {"device": "cuda"}

    def device(self, model: Any) -> str | None:
        """The device XGBoost really trained on (``cpu``, ``cuda:0``): asked for ``cuda`` without a
        visible GPU, XGBoost falls back to the CPU with only a warning."""
        import json

        return json.loads(model.get_booster().save_config())["learner"]["generic_param"]["device"]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_matrices_cache"}

    @property
    def _matrices(self) -> "_Matrices":
        # One cache per family object, so per actor (each actor unpickles its own TrialSpec) and
        # kept across the trials a reused actor runs.
        if "_matrices_cache" not in self.__dict__:
            self._matrices_cache = _Matrices()
        return self._matrices_cache

    def native_flavor(self, has_categories: bool) -> str | None:
        # On all-numeric data the preprocessing is the identity: the booster is the whole model.
        return None if has_categories else "xgboost"

    def log_native_model(self, estimator: Any, **log_model_args: Any) -> Any:
        import mlflow

        # XGBoost 2.1's scikit-learn wrapper stamps `_estimator_type` into the files it saves, and
        # scikit-learn >= 1.6 no longer defines that attribute: saving fails, and a file carrying
        # the stamp cannot be loaded back. The booster's own file holds the same model without the
        # stamp, and MLflow still records (and loads back) the XGBClassifier/XGBRegressor class.
        estimator.save_model = estimator.get_booster().save_model
        try:
            return mlflow.xgboost.log_model(estimator, model_format="ubj", **log_model_args)
        finally:
            del estimator.save_model


#: the parameters each live booster last trained with
_applied: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()


def _hold(wrapper: Any, booster: Any, objective: str, n_classes: int) -> None:
    """Make the scikit-learn ``wrapper`` hold ``booster`` as its ``fit`` would have left it.

    Private API: XGBoost's wrapper keeps its booster in ``_Booster`` and a classifier its class
    count in ``n_classes_``, both set by ``fit`` (checked on XGBoost 3.2).
    """
    wrapper._Booster = booster
    wrapper.objective = objective
    if n_classes:
        wrapper.n_classes_ = n_classes


class _Matrices:
    """The training matrices of the data a family object has seen, built once and reused.

    A matrix holds the rows' quantile sketch, the costly part of building it: each step, each
    trial the actor runs on the same rows, and the refit's steps reuse it while the parameters
    that shape it (``max_bin``, the tree method) stay the same. Entries hold their arrays, so an
    array's ``id`` cannot be reused while its entry lives; the oldest go past ``size``.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.entries: dict[tuple, tuple[np.ndarray, np.ndarray, Any]] = {}

    def get(self, X: np.ndarray, y: np.ndarray, n_classes: int, model: Any) -> Any:
        import xgboost

        quantile = model.tree_method in (None, "hist", "auto") and model.booster != "gblinear"
        key = (id(X), id(y), n_classes, quantile, model.max_bin, repr(model.missing))
        held = self.entries.get(key)
        if held is not None and held[0] is X and held[1] is y:
            return held[2]
        rows, labels, weights = _every_class_present(X, y, n_classes)
        common = {"data": rows, "label": labels, "weight": weights, "missing": model.missing, "nthread": model.n_jobs}
        matrix = xgboost.QuantileDMatrix(**common, max_bin=model.max_bin) if quantile else xgboost.DMatrix(**common)
        self.entries[key] = (X, y, matrix)
        while len(self.entries) > self.size:
            del self.entries[next(iter(self.entries))]
        return matrix


def _every_class_present(X: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(X, y, sample_weight)`` in which every class 0..n_classes-1 occurs.

    XGBoost's classifier refuses labels that skip a class (a rare class the split left out of
    these rows); each missing class gets one stand-in row of weight 0, which changes no tree
    but keeps one output column per class.
    """
    if not n_classes:
        return X, y, None
    missing = np.setdiff1d(np.arange(n_classes), np.unique(y))
    if not len(missing):
        return X, y, None
    X = np.concatenate([X, np.repeat(X[:1], len(missing), axis=0)])
    weights = np.concatenate([np.ones(len(y)), np.zeros(len(missing))])
    y = np.concatenate([y, missing.astype(y.dtype)])
    return X, y, weights
