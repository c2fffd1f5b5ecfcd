"""The protocol every model family implements."""

from __future__ import annotations

from typing import Any

import numpy as np

from raysweep.families._resource import Resource


class Family:
    """How to build, grow and adjust one kind of model.

    A family trains along its natural resource: ``train_step`` adds one step of it (trees,
    boosting rounds, epochs, a larger share of the rows) to a model and returns the model, so
    early-stopping schedulers and PBT have something to act on.
    """

    #: the name used in recipes
    name: str = ""
    #: "ordinal" (tree models) or "dense" (standardised numbers, one-hot categories)
    encoding: str = "ordinal"
    #: whether the model handles NaN in numeric features itself
    native_missing: bool = False
    #: whether PBT can carry a model's state over to a mutated config
    supports_pbt: bool = True
    #: whether the resource is a share of the training rows (a data budget, not a setting of the
    #: model): the refit then trains on all of them, as scikit-learn's successive halving refits
    refit_on_all_rows: bool = False
    #: parameters that raysweep sets itself and a recipe may not
    reserved: tuple[str, ...] = ()
    #: whether the resource must be a whole number per step
    integer_resource: bool = True
    #: whether a regression target should be standardised before fitting
    scale_target: bool = False
    #: the distributions a saved model of this family needs besides scikit-learn, numpy and pandas
    libraries: tuple[str, ...] = ()
    #: whether the model trains on a GPU when its trial is given one (``--gpus-per-trial``)
    uses_gpu: bool = False

    def estimator_class(self, task: str) -> type:
        raise NotImplementedError

    def valid_params(self, task: str) -> set[str]:
        """Parameter names a recipe may search or fix for ``task``."""
        return set(self.estimator_class(task)().get_params()) - set(self.reserved)

    def build(self, params: dict[str, Any], task: str, seed: int, needs_proba: bool) -> Any:
        """A fresh, untrained model for ``params``."""
        raise NotImplementedError

    def train_step(
        self, model: Any, X: np.ndarray, y: np.ndarray, step: int, resource: Resource, n_classes: int, seed: int
    ) -> Any:
        """Train ``model`` up to step ``step`` (1-based) of ``resource`` and return it."""
        raise NotImplementedError

    def check_model(self, model: Any, task: str) -> None:
        """Raise ValueError for a parameter value the library refuses only as it trains (before Ray
        starts; scikit-learn's own checks run without it)."""

    def apply_params(self, model: Any, params: dict[str, Any]) -> Any:
        """Make a partly trained model use ``params`` from its next step on (PBT's explore)."""
        model.set_params(**params)
        return model

    def native_flavor(self, has_categories: bool) -> str | None:
        """The MLflow flavor that logs this family's bare model, or None: raysweep's scikit-learn
        estimator (preprocessing included) goes out in the sklearn flavor instead."""
        return None

    def log_native_model(self, estimator: Any, **log_model_args: Any) -> Any:
        """Log the bare model in :meth:`native_flavor` (``log_model_args`` are MLflow's); returns its ModelInfo."""
        raise NotImplementedError

    def gpu_params(self) -> dict[str, Any]:
        """The parameters that make a model of this family train on the trial's GPU."""
        return {}

    def device(self, model: Any) -> str | None:
        """The device ``model`` really trained on, when the family can tell; else None."""
        return None

    def effective_params(self, model: Any, names: list[str]) -> dict[str, Any]:
        """The values of ``names`` the model will really train its next step with."""
        current = model.get_params()
        return {name: current.get(name) for name in names}
