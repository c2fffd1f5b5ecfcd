"""The sweep's outcome on its MLflow parent run: scores, leaderboard, plots and the refit model.

Extras (plots, the model, the registry) are best-effort: a failure is logged as a warning and
never fails the sweep.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from raysweep.tracking import schema
from raysweep.tracking.drawing import drawn

logger = logging.getLogger(__name__)

PLOTS_DIR = schema.PLOTS_DIR
LEADERBOARD_FILE = schema.LEADERBOARD_FILE


def log_sweep_outcome(
    tracker: Any, plan: Any, prepared: Any, result: Any, phase: Callable[[str], None] | None = None,
    lineage: dict[str, Any] | None = None, model: bool = True, drawer: Any = None,
) -> str | None:
    """Record the best config, scores, leaderboard, plots, importance and the refit model on the parent run.

    Returns the refit model's URI (``models:/m-...``), or None when it could not be logged.
    ``phase`` hears each step as it starts; without it nothing is said. ``lineage`` (a PBT sweep's
    members' hyperparameters by step, :func:`raysweep.tracking.lineage.member_series`) draws
    ``plots/pbt_lineage.png`` with the exploits. Without ``model`` the refit model is not logged.
    ``drawer`` (:class:`raysweep.tracking.drawing.Drawer`) draws the plots while the model is logged.
    """
    say = phase or (lambda text: None)
    say("logging the scores and the leaderboard to MLflow")
    metrics = {
        schema.best_metric(plan.metric): result.best_validation_score,
        schema.test_metric(plan.metric): result.test_score,
        schema.NUM_TRIALS: result.num_trials,
        schema.NUM_ERRORS: result.num_errors,
        schema.NUM_STOPPED_EARLY: result.num_stopped_early,
    }
    tags = {schema.BEST_CONFIG: json.dumps(result.best_config, default=str)[:5000]}
    if getattr(result, "stopped_by", None):
        tags[schema.STOPPED_BY] = result.stopped_by
    params = {schema.best_param(k): v for k, v in result.best_config.items()} | {schema.best_param("resource"): result.best_resource}
    try:
        tracker.log_summary(metrics=metrics, params=params, tags=tags)
    except Exception as exc:
        # A resumed sweep may have logged other best.* params already, and MLflow refuses to
        # change a param: the scores and the best-config tag still go in.
        logger.warning("raysweep: could not log the best config as params (%s); it is in the raysweep.best_config tag", exc)
        tracker.log_summary(metrics=metrics, params={}, tags=tags)
    model_uri = None
    with tempfile.TemporaryDirectory() as folder:
        board = Path(folder) / LEADERBOARD_FILE
        result.leaderboard.to_csv(board, index=False)
        tracker.log_artifact(str(board))
        if tracker.exploits:
            exploits = [
                {"trial_id": trial, "donor_trial_id": donor, "donor_iteration": step, "config": config}
                for trial, donor, step, config in tracker.exploits
            ]
            _best_effort("log the PBT exploits", tracker.log_dict, exploits, schema.PBT_EXPLOITS_FILE)
        callback = getattr(tracker, "trial_callback", None)
        history = getattr(callback, "history", {}) or {}
        importance = getattr(result, "importance", None)
        say("drawing the plots")
        plots = chart = None
        if drawer is not None:
            plots = drawer.draw("plots", history, plan.metric_key, plan.mode, plan.recipe.resource.name, Path(folder))
            if importance is not None and not importance.skipped:
                chart = drawer.draw("importance", importance, plan.metric_key, plan.name, Path(folder))
            if model:  # while the process draws
                say("logging the model to MLflow")
                model_uri = _best_effort("log the refit model", log_model, tracker, plan, prepared, result, said=result.warnings)
        try:
            # Drawn here when there is no drawing process, or it did not draw them.
            paths = drawn(plots) or write_plots(history, plan.metric_key, plan.mode, plan.recipe.resource.name, Path(folder))
            for path in paths:
                tracker.log_artifact(str(path), PLOTS_DIR)
        except Exception as exc:  # plots are an extra
            logger.warning("raysweep: could not draw the sweep plots: %s", exc)
        if importance is not None:
            from raysweep.tracking.importance import log_importance

            _best_effort("log the parameter importance", log_importance, tracker, importance, plan.metric_key, plan.name, Path(folder), drawn(chart))
        if lineage:
            _best_effort("draw the PBT lineage", _log_lineage, tracker, plan, lineage, Path(folder))
    if not model:  # one sweep of a nested validation: the job's own run holds the model
        return None
    if drawer is None:
        say("logging the model to MLflow")
        model_uri = _best_effort("log the refit model", log_model, tracker, plan, prepared, result, said=result.warnings)
    if model_uri is None:
        return None
    if plan.register_model:
        say(f"registering the model as {plan.register_model}")
        _best_effort("register the model", register_model, tracker, plan, model_uri, result, said=result.warnings)
    return model_uri


def _log_lineage(tracker: Any, plan: Any, lineage: dict[str, Any], folder: Path) -> None:
    from raysweep.tracking.lineage import write_lineage_plot

    mutations = plan.recipe.mutations
    logs = [name for name, spec in mutations.items() if spec.get("type", "").startswith(("log", "qlog"))]
    resource = plan.recipe.resource
    path = write_lineage_plot(
        lineage, list(tracker.exploits), list(mutations), resource.name, plan.name, folder, log_scale=logs
    )
    tracker.log_artifact(str(path), PLOTS_DIR)


def _best_effort(what: str, function: Any, *args: Any, said: list[str] | None = None) -> Any:
    """``function(*args)``; when it raises, a warning instead: logged, or added to ``said`` (a result's
    warnings, which its summary prints and ``result.warnings`` and ``--json`` hold)."""
    try:
        return function(*args)
    except Exception as exc:
        if said is None:
            logger.warning("raysweep: could not %s in MLflow: %s", what, exc)
        else:
            said.append(f"could not {what} in MLflow: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
        return None


@contextlib.contextmanager
def _mlflow_quiet() -> Iterator[None]:
    """Without the lines MLflow prints itself ("Successfully registered model 'x'.", "Created version
    '1' of model 'x'."): the command line says what it does in its own words, and ``run_sweep``
    prints nothing unless asked. Private API: MLflow's ``MLFLOW_LOGGING_STREAM``, the stream of its
    ``eprint`` and its loggers, which its own ``disable_logging`` turns off (checked on MLflow 3.17)."""
    try:
        from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM
    except ImportError:  # pragma: no cover - another MLflow: its lines show
        yield
        return
    enabled = MLFLOW_LOGGING_STREAM.enabled
    MLFLOW_LOGGING_STREAM.enabled = False
    try:
        yield
    finally:
        MLFLOW_LOGGING_STREAM.enabled = enabled


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (used by log_model and register_model) at ``uri`` for a while.

    The process-wide tracking URI is put back afterwards, and so is ``MLFLOW_TRACKING_URI``
    (MLflow's own helper unsets that variable when no URI had been set in code): raysweep used
    as a library must not redirect its caller's own MLflow logging.

    Private API: MLflow's ``_use_tracking_uri`` is the one way to point the fluent API at a store
    for a while and put the caller's choice back (``set_tracking_uri`` would make an unset URI a
    set one). Checked on MLflow 3.17 and 3.18.
    """
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    variable = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if variable is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = variable


def outcome_logged(record: dict[str, Any]) -> bool:
    """Whether the MLflow parent run of the sweep in ``record`` (a sweep record) holds its test score:
    what tells, for a record written before ``outcome_done`` was kept, that the outcome was logged.
    A sweep without a parent run has nothing to finish: true."""
    from raysweep.tracking.queries import open_store
    from raysweep.tracking.store import resolve_tracking_uri

    if not record.get("parent_run_id"):
        return True
    options = record["options"]
    try:
        parent = open_store(resolve_tracking_uri(options.get("tracking_uri"))).get_run(record["parent_run_id"])
    except Exception:  # the store is away or lacks the run: resume finds out and says so itself
        return False
    return schema.test_metric(options["metric"]) in parent.data.metrics


def register_model(tracker: Any, plan: Any, model_uri: str, result: Any = None) -> Any:
    """Register the logged model under ``plan.register_model``, tagged with the sweep's lineage.

    Returns the new model version.
    """
    import mlflow

    lineage = {
        schema.SWEEP: plan.name,
        schema.LINEAGE_PARENT_RUN_ID: tracker.parent_run_id,
        schema.LINEAGE_EXPERIMENT_ID: tracker.experiment_id,
        schema.RECIPE: plan.recipe.name,
        schema.RECIPE_HASH: plan.recipe.content_hash,
        schema.FAMILY: plan.recipe.family,
        schema.DATASET: plan.dataset.name,
        schema.DATASET_FINGERPRINT: plan.dataset.fingerprint,
        schema.METRIC: plan.metric,
    }
    if result is not None:
        lineage[schema.BEST_CONFIG] = json.dumps(result.best_config, default=str)[:5000]
        lineage[schema.lineage_tag(schema.best_metric(plan.metric))] = f"{result.best_validation_score:.6g}"
        lineage[schema.lineage_tag(schema.test_metric(plan.metric))] = f"{result.test_score:.6g}"
    with _tracking_uri(tracker.tracking_uri), _mlflow_quiet():
        version = mlflow.register_model(model_uri, plan.register_model, tags=lineage)
    description = (
        f"Best config of raysweep sweep {plan.name} ({plan.recipe.name} on {plan.dataset.name}, "
        f"run {tracker.parent_run_id}), refit on train+validation"
        + (f"; test {plan.metric} {result.test_score:.4g}" if result is not None else "")
    )
    client = tracker.client
    client.update_model_version(plan.register_model, version.version, description=description)
    client.set_tag(tracker.parent_run_id, schema.REGISTERED_MODEL, f"{plan.register_model}/{version.version}")
    return version


#: how many of the best trials the metric-by-resource plot names in its legend
LEGEND_TRIALS = 5
#: the colour of the trials the metric-by-resource plot does not name
OTHER_TRIALS_COLOR = "#9e9e9e"


def top_trials(history: dict[str, list[tuple[float, float, float]]], mode: str, count: int) -> dict[str, float]:
    """The ``count`` trials with the best score at any step, best first: trial id -> that score."""
    import math

    bests = {}
    for trial_id, points in history.items():
        values = [p[1] for p in points if math.isfinite(p[1])]
        if values:
            bests[trial_id] = max(values) if mode == "max" else min(values)
    ranked = sorted(bests, key=lambda t: bests[t], reverse=mode == "max")[:count]
    return {trial_id: bests[trial_id] for trial_id in ranked}


def write_plots(history: dict[str, list[tuple[float, float, float]]], metric_key: str, mode: str,
                resource_name: str, folder: Path) -> list[Path]:
    """Two PNGs: the metric against the resource for every trial, and best-so-far against time.

    "Best" is the best validation score at any step of any trial (:mod:`raysweep.best`): the
    best-so-far curve ends at the sweep's best validation score, which the first plot marks
    with a star at the resource the refit trains for.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from raysweep.best import better

    paths = []
    fig, ax = plt.subplots(figsize=(8, 5))
    best_point: tuple[float, float] | None = None
    # The best trials are named in the legend (with their best score), so their lines can be told apart.
    named = top_trials(history, mode, LEGEND_TRIALS)
    # The other trials go in as one collection each of lines, points and ends: one artist per trial
    # makes drawing a sweep of thousands of trials take seconds.
    # The named trials each have a colour of their own (the cycle's first, best first); the rest are grey:
    # with colours by turn, two trials ten apart shared one, a named trial's among them.
    cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    own_color = {trial_id: cycle[rank % len(cycle)] for rank, trial_id in enumerate(named)}
    lines, line_colors, dots, dot_colors, ends, end_colors = [], [], [], [], [], []
    handles: dict[str, Any] = {}  # the named trials' lines, for the legend, best first
    for trial_id, points in history.items():
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        color = own_color.get(trial_id, OTHER_TRIALS_COLOR)
        if trial_id in named:
            (handles[trial_id],) = ax.plot(xs, ys, marker=".", linewidth=2, alpha=0.9, color=color, label=f"{schema.trial_name(trial_id)}: {named[trial_id]:.5g}")
            if xs:  # where each trial ended: early stops end short of the right edge
                ax.plot(xs[-1:], ys[-1:], marker="o", markersize=5, color=color)
        elif xs:
            if len(xs) > 1:
                lines.append(list(zip(xs, ys)))
                line_colors.append(color)
            dots += zip(xs, ys)
            dot_colors += [color] * len(xs)
            ends.append((xs[-1], ys[-1]))
            end_colors.append(color)
        for x, y, _ in points:
            if better(y, best_point[1] if best_point else None, mode):
                best_point = (x, y)
    if lines:
        ax.add_collection(LineCollection(lines, colors=line_colors, linewidths=1, alpha=0.5))
    if dots:
        ax.scatter(*zip(*dots), s=4, c=dot_colors, alpha=0.5)
        ax.scatter(*zip(*ends), s=25, c=end_colors)
    ax.autoscale_view()
    legend = [handles[trial_id] for trial_id in named]
    if best_point is not None:
        legend += ax.plot([best_point[0]], [best_point[1]], marker="*", markersize=14, color="black", linestyle="none",
                          label=f"best step: {metric_key} {best_point[1]:.5g} at {resource_name} {best_point[0]:g}")
    if legend:
        ax.legend(handles=legend, loc="best", fontsize="small", title=f"best {len(named)} of {len(history)} trials" if named else None)
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
        if better(value, best, mode):
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


#: MLflow refuses these in a logged model's name (mlflow.utils.validation._validate_logged_model_name)
_REFUSED_IN_MODEL_NAMES = re.compile(r"[/:.%\"']")


def model_name(sweep_name: str) -> str:
    """The refit model's name in MLflow: the sweep's name, with the characters MLflow refuses made ``-``."""
    return _REFUSED_IN_MODEL_NAMES.sub("-", sweep_name) or "model"


def _new_logged_model(tracker: Any, plan: Any) -> Any:
    """An empty LoggedModel in the sweep's experiment, produced by the parent run.

    Created here because MLflow's ``log_model`` files a new model under the caller's *active*
    experiment (Default when none is set), whatever run it is given.
    """
    client = tracker.client
    params = client.get_run(tracker.parent_run_id).data.params  # what log_model would copy from the run
    return client.create_logged_model(
        experiment_id=tracker.experiment_id,
        name=model_name(plan.name),
        source_run_id=tracker.parent_run_id,
        params=params,
        tags={schema.SWEEP: plan.name},
    )


def log_model(tracker: Any, plan: Any, prepared: Any, result: Any) -> str:
    """Log the refit model on the parent run, with a signature and an input example; returns its URI.

    The model is in the sweep's experiment, named after the sweep. A family with a flavor of its
    own for the data (XGBoost's on all-numeric data, see ``Family.native_flavor``) logs its bare
    model: it takes the numeric columns and predicts classes as their index in
    ``model_classes.json``. Everything else goes out as raysweep's scikit-learn estimator,
    preprocessing included: raw columns in, the dataset's own labels and units out.
    """
    import mlflow
    from mlflow.models import infer_signature

    logged = _new_logged_model(tracker, plan)
    family = plan.family
    flavor = family.native_flavor(bool(prepared.categorical_columns))
    if flavor:
        estimator = result.model.model
        example = prepared.X_test[list(prepared.numeric_columns)].head(5)
        signature = infer_signature(example, estimator.predict(example.to_numpy(dtype=float)))
        requirements = _requirements(*family.libraries, "numpy", "pandas")
        with _tracking_uri(tracker.tracking_uri):
            info = family.log_native_model(
                estimator, name=logged.name, model_id=logged.model_id, signature=signature, input_example=example,
                run_id=tracker.parent_run_id, pip_requirements=requirements,
            )  # fmt: skip
    else:
        example = prepared.X_test.head(5)
        signature = infer_signature(example, result.model.predict(example))
        if not schema_holds(example):  # without one, MLflow hands the frame to the model as it is
            example = signature = None
        flavor = "sklearn"
        serialization = _sklearn_serialization(result.model)
        # raysweep's own estimator class is part of the model, and the family's library with it.
        requirements = _requirements(
            "scikit-learn", "numpy", "pandas", *family.libraries, serialization["serialization_format"], "raysweep"
        )
        with _tracking_uri(tracker.tracking_uri):
            info = mlflow.sklearn.log_model(
                result.model, name=logged.name, model_id=logged.model_id, signature=signature, input_example=example,
                run_id=tracker.parent_run_id, pip_requirements=requirements, **serialization,
            )
    if result.classes is not None:
        tracker.log_dict({"classes": [str(c) for c in result.classes]}, schema.MODEL_CLASSES_FILE)
    tracker.client.set_tag(tracker.parent_run_id, schema.MODEL_FLAVOR, flavor)
    tracker.client.set_tag(tracker.parent_run_id, schema.MODEL_URI, info.model_uri)
    return info.model_uri


def schema_holds(frame: Any) -> bool:
    """Whether MLflow's model signature can describe ``frame``'s columns so that the frame itself
    passes it: a pandas ``category``, nullable ``boolean`` or time-zone-aware datetime column does not
    (the signature inferred from it refused the very frame the model was trained from: "Can not safely
    convert category to <U0", "cannot convert float NaN to bool"). Checked on MLflow 3.17."""
    import pandas as pd

    for dtype in frame.dtypes:
        if isinstance(dtype, pd.CategoricalDtype) or isinstance(dtype, pd.BooleanDtype) or getattr(dtype, "tz", None) is not None:
            return False
    return True


def _requirements(*distributions: str) -> list[str]:
    """The model's pip requirements, pinned to what is installed here.

    Given explicitly because MLflow would otherwise infer them by loading the model in a
    subprocess, which costs seconds at the end of every sweep.
    """
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for name in distributions:
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pinned.append(name)
    return pinned


def _sklearn_serialization(model: Any) -> dict[str, Any]:
    """skops (MLflow's safe default) trusting the types of the model raysweep itself built; else cloudpickle."""
    try:
        from raysweep.tracking._skops import import_skops_io

        skops_io = import_skops_io()
        trusted = skops_io.get_untrusted_types(data=skops_io.dumps(model))
        return {"serialization_format": "skops", "skops_trusted_types": trusted}
    except Exception as exc:  # a model part skops cannot write
        logger.info("raysweep: skops cannot serialise the refit model (%s); using cloudpickle", exc)
        return {"serialization_format": "cloudpickle"}
