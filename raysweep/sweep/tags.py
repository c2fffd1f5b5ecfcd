"""The tags on a sweep's own MLflow run: what ran, on which data, with which versions, where."""

from __future__ import annotations

import platform

from raysweep import space
from raysweep._version import __version__
from raysweep.sweep.options import SweepPlan
from raysweep.tracking import schema


def sweep_tags(plan: SweepPlan) -> dict[str, str]:
    import mlflow
    import ray

    return {
        schema.RECIPE: plan.recipe.name,
        schema.RECIPE_HASH: plan.recipe.content_hash,
        schema.FAMILY: plan.recipe.family,
        schema.SCHEDULER: plan.scheduler,
        schema.SEARCHER: plan.searcher,
        schema.DATASET: plan.dataset.name,
        schema.DATASET_FINGERPRINT: plan.dataset.fingerprint,
        schema.SPACE_HASH: space.space_hash(plan.recipe.space),
        schema.TASK: plan.task,
        schema.METRIC: plan.metric,
        schema.VERSION: __version__,
        schema.RAY_VERSION: ray.__version__,
        schema.MLFLOW_VERSION: mlflow.__version__,
        schema.PYTHON_VERSION: platform.python_version(),
        schema.RAY_ADDRESS: _ray_address(),
    }


def _ray_address() -> str:
    import ray

    try:
        return ray.get_runtime_context().gcs_address or "local"
    except Exception:
        return "local"
