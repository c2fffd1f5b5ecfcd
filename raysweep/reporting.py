"""The sweep's outcome on its MLflow parent run: scores, leaderboard, plots and the refit model.

Extras (plots, the model) are best-effort: a failure is logged as a warning and never fails
the sweep.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def log_sweep_outcome(tracker: Any, plan: Any, prepared: Any, result: Any) -> None:
    """Record the best config, scores, leaderboard, plots and the refit model on the parent run."""
    tracker.log_summary(
        metrics={
            f"best_{plan.metric_key}": result.best_validation_score,
            f"test_{plan.metric}": result.test_score,
            "num_trials": result.num_trials,
            "num_errors": result.num_errors,
            "num_stopped_early": result.num_stopped_early,
        },
        params={f"best.{k}": v for k, v in result.best_config.items()} | {"best.resource": result.best_resource},
        tags={"raysweep.best_config": json.dumps(result.best_config, default=str)},
    )
    with tempfile.TemporaryDirectory() as folder:
        board = Path(folder) / "leaderboard.csv"
        result.leaderboard.to_csv(board, index=False)
        tracker.log_artifact(str(board))
        history = getattr(getattr(tracker, "trial_callback", None), "history", {})
        try:
            for path in write_plots(history, plan.metric_key, plan.mode, plan.recipe.resource.name, Path(folder)):
                tracker.log_artifact(str(path), "plots")
        except Exception as exc:  # plots are an extra
            logger.warning("raysweep: could not draw the sweep plots: %s", exc)
    try:
        model_uri = log_model(tracker, plan, prepared, result)
    except Exception as exc:  # the sweep's numbers are recorded already; the model is an extra
        logger.warning("raysweep: could not log the refit model to MLflow: %s", exc)
        return
    if plan.register_model:
        register_model(tracker, plan, model_uri)


def register_model(tracker: Any, plan: Any, model_uri: str) -> None:
    """Register the logged model under ``plan.register_model``, tagged with the sweep's lineage."""
    import mlflow

    mlflow.set_tracking_uri(tracker.tracking_uri)
    version = mlflow.register_model(model_uri, plan.register_model, tags={
        "raysweep.sweep": plan.name, "raysweep.parent_run_id": tracker.parent_run_id, "raysweep.recipe": plan.recipe.name,
    })
    tracker.client.set_tag(tracker.parent_run_id, "raysweep.registered_model", f"{plan.register_model}/{version.version}")


def write_plots(history: dict[str, list[tuple[float, float, float]]], metric_key: str, mode: str,
                resource_name: str, folder: Path) -> list[Path]:
    """Two PNGs: the metric against the resource for every trial, and best-so-far against time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(8, 5))
    for points in history.values():
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.plot(xs, ys, marker=".", linewidth=1, alpha=0.7)
    ax.set_xlabel(resource_name)
    ax.set_ylabel(metric_key)
    ax.set_title(f"{metric_key} by {resource_name} for every trial (short lines stopped early)")
    ax.grid(alpha=0.3)
    path = folder / "metric_by_resource.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    paths.append(path)

    events = sorted((p[2], p[1]) for points in history.values() for p in points)
    best, xs, ys = None, [], []
    for when, value in events:
        if best is None or (value > best if mode == "max" else value < best):
            best = value
        xs.append(when)
        ys.append(best)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.step(xs, ys, where="post")
    ax.set_xlabel("seconds since the sweep started")
    ax.set_ylabel(f"best {metric_key} so far")
    ax.set_title("best so far against wall time")
    ax.grid(alpha=0.3)
    path = folder / "best_so_far.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    paths.append(path)
    return paths


def log_model(tracker: Any, plan: Any, prepared: Any, result: Any) -> str:
    """Log the refit model on the parent run; returns its model URI.

    XGBoost models on all-numeric data go out in MLflow's xgboost flavor (their preprocessing
    is the identity; classes come out as their index in ``model_classes.json``); everything
    else as raysweep's scikit-learn estimator, preprocessing included.
    """
    import mlflow
    from mlflow.models import infer_signature

    example = prepared.X_test.head(5)
    predictions = result.model.predict(example)
    if plan.recipe.family == "xgboost" and not prepared.categorical_columns:
        predictions = result.model.model.predict(example.to_numpy(dtype=float))
    signature = infer_signature(example, predictions)
    mlflow.set_tracking_uri(tracker.tracking_uri)
    with mlflow.start_run(run_id=tracker.parent_run_id):
        if plan.recipe.family == "xgboost" and not prepared.categorical_columns:
            info = mlflow.xgboost.log_model(
                result.model.model, name="model", signature=signature, input_example=example,
                model_format="ubj",
            )
            flavor = "xgboost"
        else:
            info = mlflow.sklearn.log_model(result.model, name="model", signature=signature, input_example=example)
            flavor = "sklearn"
        if result.classes is not None:
            mlflow.log_dict({"classes": [str(c) for c in result.classes]}, "model_classes.json")
        mlflow.set_tag("raysweep.model_flavor", flavor)
        mlflow.set_tag("raysweep.model_uri", info.model_uri)
    return info.model_uri
