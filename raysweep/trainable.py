"""The Ray Tune trainable that grows one model (or one per fold) a resource step at a time."""

from __future__ import annotations

import math
import os
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

from ray import tune

from raysweep.data import TrialData
from raysweep.families import Family
from raysweep.best import better
from raysweep.metrics import direction, score
from raysweep.sweep.auto import family_step, split
from raysweep.tracking import schema
from raysweep.families._resource import Resource

STATE_FILE = "state.pkl"


@dataclass(frozen=True)
class TrialSpec:
    """Everything a trial needs besides its config and data; the same for the whole sweep."""

    family: Family
    task: str
    metric: str
    resource: Resource
    seed: int
    needs_proba: bool
    #: seconds between a trial's checkpoints (0: after every step); see :meth:`SweepTrainable.step`
    checkpoint_every: float
    fixed: dict[str, Any] = field(default_factory=dict)
    mutable: tuple[str, ...] = ()

    @property
    def metric_key(self) -> str:
        """The name under which the validation metric is reported to Tune and MLflow."""
        return schema.validation_metric(self.metric)


def model_params(spec: TrialSpec, config: dict[str, Any]) -> dict[str, Any]:
    """The estimator parameters for a trial: the recipe's fixed ones plus the sampled ones."""
    return {**spec.fixed, **config}


class SweepTrainable(tune.Trainable):
    """Trains one config along the family's resource; each ``step`` adds one resource step.

    Works with actor reuse: :meth:`reset_config` drops every trace of the previous trial.
    """

    def setup(self, config: dict[str, Any], data: TrialData | None = None, spec: TrialSpec | None = None) -> None:
        assert data is not None and spec is not None  # supplied by tune.with_parameters, not users
        self.data = data
        self.spec = spec
        self.family = spec.family
        self._node_id = _node_id()
        # An actor keeps its resources for every trial it runs (actor reuse): asked once.
        self._gpu_ids = _gpu_ids()
        self._gpu_params = self.family.gpu_params() if self._gpu_ids else {}
        self._start(config)

    def _start(self, config: dict[str, Any]) -> None:
        params = {**model_params(self.spec, config), **self._gpu_params}
        self.models = [
            self.family.build(params, self.spec.task, self.spec.seed, self.spec.needs_proba)
            for _ in self.data.splits()
        ]
        self.steps = 0
        #: an auto trial's steps on the common scale (see :class:`AutoTrainable`)
        self.common_steps = 0
        #: the trial's best validation score so far (see raysweep.best): MLflow's runs table can
        #: show and sort by a metric's latest value only, so each result carries it
        self.best: float | None = None
        self._last_checkpoint = time.monotonic()

    def step(self) -> dict[str, Any]:
        started = time.perf_counter()
        result = self._report(self._grow(self.steps + 1), started)
        if self.steps >= self.spec.resource.max_steps:
            result["done"] = True
            result.pop("should_checkpoint", None)  # a finished trial is never restored
        return result

    def _grow(self, target: int) -> float:
        """Train every fold's model up to the family's step ``target``; its mean validation score."""
        splits = self.data.splits()
        while self.steps < target:
            self.steps += 1
            for index, (X_fit, y_fit, _, _) in enumerate(splits):
                self.models[index] = self.family.train_step(
                    self.models[index], X_fit, y_fit, self.steps, self.spec.resource, self.data.n_classes, self.spec.seed
                )
        scores = [
            score(self.spec.metric, self.models[index], X_score, y_score, self.data.n_classes, self.data.y_scale)
            for index, (_, _, X_score, y_score) in enumerate(splits)
        ]
        value = float(sum(scores) / len(scores))
        if not math.isfinite(value):
            resource = self.spec.resource
            raise FloatingPointError(
                f"validation {self.spec.metric} is {value} at {resource.name}={resource.at(self.steps)}: the model diverged"
            )
        return value

    def _report(self, value: float, started: float, resource: float | None = None) -> dict[str, Any]:
        """The step's result for Tune; ``resource`` is what the trial has trained (default: the family's own)."""
        if better(value, self.best, direction(self.spec.metric)):
            self.best = value
        result: dict[str, Any] = {
            # The best so far first: MLflow lists a run's metrics in the order they were first
            # logged, and its compare-runs page colours its parallel-coordinates plot by the first.
            schema.best_metric(self.spec.metric): self.best,
            self.spec.metric_key: value,
            schema.RESOURCE: self.spec.resource.at(self.steps) if resource is None else resource,
            schema.STEP_TIME: time.perf_counter() - started,
            "node_id": self._node_id,
        }
        device = self.family.device(self.models[0])
        if device:
            result[schema.DEVICE_RESULT] = device
        if self._gpu_ids:
            result[schema.GPU_IDS_RESULT] = self._gpu_ids
        if self.spec.mutable:
            effective = self.family.effective_params(self.models[0], list(self.spec.mutable))
            result.update({schema.hyperparameter_metric(name): v for name, v in effective.items() if isinstance(v, (int, float))})
        if time.monotonic() - self._last_checkpoint >= self.spec.checkpoint_every:
            # A resumed sweep, or a retried trial, continues from the last checkpoint. Each one
            # is a save round trip through Tune's controller, as long as a short step, so a trial
            # is checkpointed once checkpoint_every seconds have passed since its last one.
            # (HyperBand saves the trials it pauses, PBT the ones it copies from.)
            result["should_checkpoint"] = True
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        self._last_checkpoint = time.monotonic()
        with open(os.path.join(checkpoint_dir, STATE_FILE), "wb") as handle:
            pickle.dump({"models": self.models, "steps": self.steps, "best": self.best, "common_steps": self.common_steps}, handle)

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        with open(os.path.join(checkpoint_dir, STATE_FILE), "rb") as handle:
            state = pickle.load(handle)
        self.models, self.steps, self.best = state["models"], state["steps"], state.get("best")
        self.common_steps = state.get("common_steps", 0)
        # Under PBT the checkpoint may be a donor's: its model continues with this trial's
        # (mutated) config from the next step on, and the trial checkpoints after that step, for
        # the donor deletes its checkpoint once it has saved a few newer ones.
        self._last_checkpoint = -math.inf
        params = {k: v for k, v in model_params(self.spec, self.config).items() if k in self.spec.mutable}
        if params:
            self.models = [self.family.apply_params(model, params) for model in self.models]

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        # Actor reuse: the next trial must start from nothing the previous one left behind.
        self.config = new_config
        self._start(new_config)
        return True


class AutoTrainable(SweepTrainable):
    """A trial of ``raysweep run auto``: trains the family its config names (``raysweep.sweep.auto``).

    Step ``k`` of the sweep's ``steps`` trains the family to its own step ``ceil(k * n / steps)``
    and reports the share of its resource trained so far, so every family's rungs fall alike.
    """

    def setup(self, config: dict[str, Any], data: dict[str, TrialData] | None = None, spec: Any = None) -> None:
        """``spec`` is a :class:`raysweep.sweep.auto.AutoSpec`."""
        assert data is not None and spec is not None  # supplied by tune.with_parameters, not users
        self.all_data = data
        self.auto = spec
        self._node_id = _node_id()
        self._gpu_ids = _gpu_ids()
        self._start(config)

    def _start(self, config: dict[str, Any]) -> None:
        family_name, params = split(config)
        self.spec = self.auto.members[str(family_name)]
        self.family = self.spec.family
        self.data = self.all_data[self.auto.data_keys[str(family_name)]]
        # Each trial may be of another family: only those that train on a GPU get its parameters.
        self._gpu_params = self.family.gpu_params() if self._gpu_ids else {}
        super()._start(params)

    def step(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.common_steps += 1
        value = self._grow(family_step(self.common_steps, self.auto.steps, self.spec.resource.max_steps))
        result = self._report(value, started, resource=round(self.common_steps / self.auto.steps, 6))
        if self.common_steps >= self.auto.steps:
            result["done"] = True
            result.pop("should_checkpoint", None)
        return result


def _gpu_ids() -> str:
    """The GPU ids Ray gave this actor, comma-separated ("" without a GPU)."""
    from raysweep.sweep.gpus import trial_gpu_ids

    return ",".join(str(gpu) for gpu in trial_gpu_ids())


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # outside a Ray worker (direct use in tests)
        return ""
