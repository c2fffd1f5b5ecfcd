"""Population-based training (Ray Tune's ``PopulationBasedTraining``), noting every exploit for MLflow."""

from __future__ import annotations

import functools
import numbers
from typing import Any

from raysweep.recipes import highest


def build(recipe: Any, metric: str, mode: str, max_steps: int, seed: int, exploits: list, stops: dict | None = None) -> Any:
    from raysweep import space

    scheduler_class = _recording_pbt()
    return scheduler_class(
        exploits=exploits,
        time_attr="training_iteration",
        perturbation_interval=recipe.perturbation_interval,
        hyperparam_mutations=space.mutations(recipe.mutations),
        quantile_fraction=0.25,
        resample_probability=0.25,
        synch=False,
        # Ray perturbs a range by x0.8 / x1.2 without looking at its bounds (subsample 1.04,
        # min_samples_leaf 0): keep every explored value inside the recipe's range.
        custom_explore_fn=functools.partial(clip_to_bounds, mutation_bounds(recipe.mutations)),
    )


def mutation_bounds(mutations: dict[str, dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """The inclusive (low, high) of every numeric PBT mutation."""
    bounds = {}
    for name, spec in mutations.items():
        if "low" in spec:
            bounds[name] = (spec["low"], highest(spec))
    return bounds


def clip_to_bounds(bounds: dict[str, tuple[float, float]], config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with each bounded value moved into its range, keeping int values int."""
    for name, (low, high) in bounds.items():
        value = config.get(name)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            clipped = min(max(value, low), high)
            config[name] = int(round(clipped)) if isinstance(value, numbers.Integral) else float(clipped)
    return config


def _recording_pbt() -> type:
    """Ray's PBT, also noting each exploit (who cloned whom, when, into what) for MLflow.

    Private API: Ray Tune has no public hook for an exploit, so this overrides
    ``PopulationBasedTraining._exploit`` and reads the donor's ``_trial_state``. Checked on Ray
    2.60. (PBT's ``log_config`` policy files hold the same facts, but only once a trial ends.)
    """
    from ray.tune.schedulers import PopulationBasedTraining

    class RecordingPBT(PopulationBasedTraining):
        def __init__(self, exploits: list, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.exploits = exploits

        def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
            super()._exploit(tune_controller, trial, trial_to_clone)
            step = int((self._trial_state[trial_to_clone].last_result or {}).get("training_iteration", 0))
            self.exploits.append((trial.trial_id, trial_to_clone.trial_id, step, dict(trial.config)))

    return RecordingPBT
