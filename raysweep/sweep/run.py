"""Run a sweep: check everything, then wire recipe, data, strategy, Ray and MLflow together."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from raysweep._version import __version__
from raysweep.data import Dataset, PreparedData, load_dataset, make_preprocessor, prepare
from raysweep.errors import SweepFailed, SweepInterrupted, TrackingIncomplete, UserError
from raysweep.families import Family, get_family
from raysweep.metrics import direction, needs_proba, score
from raysweep.recipes import METRICS, TASKS, Recipe, load_recipe
from raysweep import space
from raysweep.strategies import registry as strategies
from raysweep.sweep import record as sweep_record
from raysweep.tracking import schema

logger = logging.getLogger(__name__)

#: seconds between a running trial's checkpoints, unless --checkpoint-every says otherwise
DEFAULT_CHECKPOINT_EVERY = 10.0


@dataclass
class SweepPlan:
    """A fully checked sweep, ready to run: every user error has been raised by now."""

    recipe: Recipe
    family: Family
    dataset: Dataset
    task: str
    metric: str
    mode: str
    scheduler: str
    searcher: str
    num_samples: int
    max_concurrent: int | None
    time_budget: float | None
    cv: int | None
    seed: int
    name: str
    storage: str
    experiment: str
    tracking_uri: str | None
    address: str | None
    max_failures: int
    checkpoint_every: float
    test_size: float
    val_size: float
    register_model: str | None = None
    #: how the dataset was named (a built-in name or a path), for resuming; None for an object
    dataset_spec: str | None = None
    target: str | None = None

    @property
    def metric_key(self) -> str:
        return f"val_{self.metric}"

    def settings(self) -> dict[str, Any]:
        """The sweep's settings, as logged to MLflow."""
        return {
            "recipe": self.recipe.name,
            "family": self.recipe.family,
            "dataset": self.dataset.name,
            "task": self.task,
            "metric": self.metric,
            "mode": self.mode,
            "scheduler": self.scheduler,
            "searcher": self.searcher,
            "num_samples": self.num_samples,
            "max_concurrent": self.max_concurrent or "auto",
            "time_budget_s": self.time_budget or "none",
            "cv": self.cv or "none",
            "seed": self.seed,
            "resource": self.recipe.resource.name,
            "resource_per_step": self.recipe.resource.per_step,
            "resource_max": self.recipe.resource.max,
            "test_size": self.test_size,
            "val_size": self.val_size,
            "max_failures": self.max_failures,
            "checkpoint_every_s": self.checkpoint_every,
        }


@dataclass
class SweepResult:
    """What a sweep produced: the best config, its scores, the leaderboard and the refit model."""

    name: str
    recipe: str
    dataset: str
    task: str
    metric: str
    mode: str
    best_config: dict[str, Any]
    best_resource: float
    best_validation_score: float
    test_score: float
    num_trials: int
    num_errors: int
    num_stopped_early: int
    leaderboard: Any  # pandas.DataFrame, best first
    model: Any  # raysweep.model.RefitModel: preprocessing + the refit model, raw columns in
    classes: np.ndarray | None
    storage_path: str
    tracking_uri: str | None = None
    experiment_id: str | None = None
    parent_run_id: str | None = None
    #: the refit model in MLflow (``models:/m-...``); None when the sweep was not tracked or logging it failed
    model_uri: str | None = None
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the refit model, in the dataset's own labels and units."""
        return self.model.predict(X)

    def to_dict(self) -> dict[str, Any]:
        """The summary printed by ``raysweep run --json``."""
        return {
            "name": self.name,
            "recipe": self.recipe,
            "dataset": self.dataset,
            "task": self.task,
            "metric": self.metric,
            "mode": self.mode,
            "best_config": self.best_config,
            "best_resource": self.best_resource,
            "best_validation_score": self.best_validation_score,
            "test_score": self.test_score,
            "num_trials": self.num_trials,
            "num_errors": self.num_errors,
            "num_stopped_early": self.num_stopped_early,
            "storage_path": self.storage_path,
            "tracking_uri": self.tracking_uri,
            "experiment_id": self.experiment_id,
            "parent_run_id": self.parent_run_id,
            "model_uri": self.model_uri,
            "elapsed_s": round(self.elapsed_s, 2),
        }


def check_family_params(recipe: Recipe, family: Family, task: str) -> None:
    """Every searched, fixed or mutated parameter must be one the family's model takes."""
    valid = family.valid_params(task)
    for section, names in (("fixed", recipe.fixed), ("space", recipe.space)):
        for param in names:
            if param in family.reserved:
                raise UserError(f"{recipe.where(f'{section}.{param}')}: raysweep sets {param} itself (it is the resource, the seed or the parallelism); remove it")
            if param not in valid:
                import difflib

                close = difflib.get_close_matches(param, sorted(valid), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"see {family.estimator_class(task).__name__}'s parameters"
                raise UserError(f"{recipe.where(f'{section}.{param}')}: not a parameter of {family.estimator_class(task).__name__}; {hint}")
    if family.integer_resource and not float(recipe.resource.per_step).is_integer():
        raise UserError(f"{recipe.where('resource.per_step')}: {recipe.family} grows in whole {recipe.resource.name}, got {recipe.resource.per_step}")
    # Let scikit-learn's own parameter constraints speak for the fixed values and the grid ends.
    sample = {**recipe.fixed, **{k: space.grid_points(v)[0] for k, v in recipe.space.items()}}
    try:
        model = family.build(sample, task, 0, False)
        if hasattr(model, "_parameter_constraints"):
            model._validate_params()
    except (ValueError, TypeError) as exc:
        message = str(exc).strip().splitlines()[0]
        raise UserError(f"{recipe.where('fixed', 'space')}: the model rejects these parameters ({message}); fix the fixed values or the space bounds") from None


def check_recipe(
    recipe: Recipe, *, scheduler: str | None = None, searcher: str | None = None, tasks: tuple[str, ...] | None = None
) -> Family:
    """Every check of a sweep that needs no data; raises :class:`UserError` on the first problem.

    ``scheduler`` and ``searcher`` are the flags (None: the recipe's own); ``tasks`` defaults to
    every task of the recipe. ``raysweep validate`` and :func:`plan_sweep` both refuse through it.
    """
    family = get_family(recipe.family)
    strategies.check(recipe, scheduler, searcher, family.supports_pbt)
    for task in tasks or recipe.tasks:
        check_family_params(recipe, family, task)
    return family


def plan_sweep(
    recipe: str | Path | Recipe,
    dataset: str | Dataset,
    *,
    target: str | None = None,
    task: str | None = None,
    metric: str | None = None,
    scheduler: str | None = None,
    searcher: str | None = None,
    num_samples: int | None = None,
    time_budget: float | None = None,
    max_concurrent: int | None = None,
    cv: int | None = None,
    seed: int = 0,
    name: str | None = None,
    storage: str | Path | None = None,
    overrides: list[str] | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    max_failures: int = 0,
    checkpoint_every: float | None = None,
    test_size: float = 0.2,
    val_size: float = 0.2,
    register_model: str | None = None,
) -> SweepPlan:
    """Check a sweep's inputs without starting anything; raises :class:`UserError` on the first problem."""
    if isinstance(recipe, Recipe):
        if overrides:
            raise UserError("overrides apply to a recipe name or file; pass the path instead of a Recipe object")
    else:
        recipe = load_recipe(recipe, overrides)
    if num_samples is not None and (not isinstance(num_samples, int) or num_samples < 1):
        raise UserError(f"--num-samples {num_samples}: must be a whole number >= 1")
    if cv is not None and cv < 2:
        raise UserError(f"--cv {cv}: cross-validation needs at least 2 folds; use --cv 5, or leave --cv out for one validation split")
    if max_concurrent is not None and max_concurrent < 1:
        raise UserError(f"--max-concurrent {max_concurrent}: must be >= 1")
    if time_budget is not None and time_budget <= 0:
        raise UserError(f"--time-budget {time_budget}: must be a positive number of seconds")
    if max_failures < 0:
        raise UserError(f"--max-failures {max_failures}: must be >= 0")
    if checkpoint_every is None:
        checkpoint_every = DEFAULT_CHECKPOINT_EVERY
    if not checkpoint_every >= 0:  # also refuses NaN
        raise UserError(f"--checkpoint-every {checkpoint_every}: must be a number of seconds >= 0 (0 checkpoints after every step)")
    if not (0 < test_size < 0.9 and 0 < val_size < 0.9 and test_size + val_size < 0.95):
        raise UserError(f"test_size={test_size}, val_size={val_size}: each must be in (0, 0.9) and together below 0.95")
    if task is not None and task not in TASKS:
        raise UserError(f"--task {task}: unknown task; use one of {', '.join(TASKS)}")
    if task is not None and task not in recipe.tasks:
        raise UserError(f"--task {task}: recipe {recipe.name} supports {', '.join(recipe.tasks)}")
    dataset_spec = dataset if isinstance(dataset, str) else None
    if isinstance(dataset, str):
        dataset = load_dataset(dataset, target=target, task=task, seed=seed)
    chosen_task = task or dataset.task
    if chosen_task not in recipe.tasks:
        raise UserError(f"{recipe.source}: recipe {recipe.name} supports {', '.join(recipe.tasks)}, but {dataset.name} is a {chosen_task} dataset; pick another recipe or --task")
    metric = metric or recipe.default_metric(chosen_task)
    if metric not in METRICS:
        raise UserError(f"--metric {metric}: unknown metric; use one of {', '.join(m for m, (t, _) in METRICS.items() if t == chosen_task)}")
    if METRICS[metric][0] != chosen_task:
        fitting = ", ".join(m for m, (t, _) in METRICS.items() if t == chosen_task)
        raise UserError(f"--metric {metric}: a {METRICS[metric][0]} metric, but the task is {chosen_task}; use one of {fitting}")
    family = check_recipe(recipe, scheduler=scheduler, searcher=searcher, tasks=(chosen_task,))
    scheduler = scheduler or recipe.scheduler
    searcher = searcher or recipe.searcher
    if cv is not None:
        rows = int(len(dataset.y) * (1 - test_size))
        if rows < cv:
            raise UserError(f"--cv {cv}: only {rows} rows remain for tuning after the test split; use fewer folds")
    if num_samples is None:
        num_samples = 1 if strategies.get_searcher(searcher).exhaustive else recipe.num_samples
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = name or f"{recipe.name}-{dataset.name}-{stamp}"
    if "/" in name or name.startswith("."):
        raise UserError(f"--name {name}: a sweep name may not contain '/' or start with '.'")
    storage_path = str(Path(storage or "raysweep_results").expanduser().resolve()) if not _is_uri(storage) else str(storage)
    return SweepPlan(
        recipe=recipe,
        family=family,
        dataset=dataset,
        task=chosen_task,
        metric=metric,
        mode=direction(metric),
        scheduler=scheduler,
        searcher=searcher,
        num_samples=num_samples,
        max_concurrent=max_concurrent or recipe.max_concurrent,
        time_budget=time_budget,
        cv=cv,
        seed=seed,
        name=name,
        storage=storage_path,
        experiment=experiment or f"raysweep-{recipe.name}-{dataset.name}",
        tracking_uri=tracking_uri,
        address=address,
        max_failures=max_failures,
        checkpoint_every=checkpoint_every,
        test_size=test_size,
        val_size=val_size,
        register_model=register_model,
        dataset_spec=dataset_spec,
        target=target,
    )


_is_uri = sweep_record.is_uri


def _quiet_environment(verbose: bool) -> None:
    # Tune's per-trial CSV/TensorBoard loggers cost time on every result and raysweep records
    # to MLflow instead; the JSON results stay (see the callbacks in run_planned).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    if not verbose:
        # The classic reporter is the one that stays silent at verbose=0; LiveProgress shows progress.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "0")
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
    _quiet_libraries(verbose)


#: library loggers whose INFO lines are chatter in a sweep's output (MLflow creating or
#: migrating its sqlite tables, alembic's migration steps); they stay under --verbose
_CHATTY_LOGGERS = ("mlflow.store.db", "alembic")
#: MLflow's six-line hint when a model signature has integer columns: a note to whoever writes
#: the signature (raysweep), nothing the user of a sweep acts on
_SCHEMA_HINT = r"Hint: Inferred schema contains integer column"
#: levels the loggers had before raysweep quietened them, put back under --verbose
_replaced_levels: dict[str, int] = {}


def _quiet_libraries(verbose: bool) -> None:
    import warnings

    if verbose:
        for name, level in _replaced_levels.items():
            logging.getLogger(name).setLevel(level)
        _replaced_levels.clear()
        warnings.filters[:] = [f for f in warnings.filters if f[1] is None or f[1].pattern != _SCHEMA_HINT]
        return
    for name in _CHATTY_LOGGERS:
        library_logger = logging.getLogger(name)
        _replaced_levels.setdefault(name, library_logger.level)
        library_logger.setLevel(max(library_logger.level, logging.WARNING))
    warnings.filterwarnings("ignore", message=_SCHEMA_HINT, category=UserWarning)


class _TuneTrialErrors(logging.Filter):
    """Drops Tune's per-trial tracebacks: raysweep records each error itself (summary, MLflow)."""

    PREFIXES = ("Trial task failed for trial", "Trials did not complete")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


_TUNE_ERROR_FILTER = _TuneTrialErrors()
# Credentials Tune would copy from the driver into every trial actor's runtime_env, which
# Ray's runtime-env agent then writes to its log; trials read data from the object store.
_CREDENTIALS_NOT_PROPAGATED = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"}


def _quiet_tune(verbose: bool, storage: str) -> None:
    from ray.tune.execution import class_cache

    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        tune_logger = logging.getLogger(name)
        if verbose:
            tune_logger.removeFilter(_TUNE_ERROR_FILTER)
        else:
            tune_logger.addFilter(_TUNE_ERROR_FILTER)
    # Results going to a local folder: trials have no use for cloud credentials.
    wanted = _CREDENTIALS_NOT_PROPAGATED if _is_uri(storage) else set()
    others = set(class_cache.ENV_VARS_TO_PROPAGATE) - _CREDENTIALS_NOT_PROPAGATED
    class_cache.ENV_VARS_TO_PROPAGATE = others | wanted


def connect_ray(address: str | None, verbose: bool) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start an embedded local Ray.

    An address that refuses, does not answer or rejects the token is a ``UserError`` within
    seconds (see :mod:`raysweep.ray_connect`), before Ray's own connect would retry for minutes.
    """
    import ray

    from raysweep.ray_connect import cannot_connect, prepare_connection

    if ray.is_initialized():
        return
    level = logging.INFO if verbose else logging.ERROR
    target = prepare_connection(address)
    try:
        if target is not None:
            ray.init(address=target.address, logging_level=level, log_to_driver=verbose)
        else:
            ray.init(include_dashboard=False, logging_level=level, log_to_driver=verbose)
    except (ConnectionError, RuntimeError) as exc:
        if target is None:
            raise
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise cannot_connect(target, first) from None


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def refit(plan: SweepPlan, prepared: PreparedData, config: dict[str, Any], steps: int) -> tuple[Any, float]:
    """The best config retrained on train+validation for ``steps`` steps (its best step's), scored once on test."""
    from raysweep.model import RefitModel

    preprocessor = make_preprocessor(
        plan.family.encoding, prepared.numeric_columns, prepared.categorical_columns, plan.family.native_missing
    )
    X_pool = np.ascontiguousarray(preprocessor.fit_transform(prepared.X_pool, prepared.y_pool), dtype=np.float64)
    n_classes = len(prepared.classes) if prepared.classes is not None else 0
    model = plan.family.build({**plan.recipe.fixed, **config}, plan.task, plan.seed, needs_proba(plan.metric))
    y_pool = (prepared.y_pool - prepared.y_center) / prepared.y_scale
    from threadpoolctl import threadpool_limits

    # One BLAS thread, as in the trials: Ray's idle workers still hold the other core, and an
    # oversubscribed BLAS makes an MLP refit many times slower.
    with threadpool_limits(limits=1):
        for step in range(1, steps + 1):
            model = plan.family.train_step(model, X_pool, y_pool, step, plan.recipe.resource, n_classes, plan.seed)
    refit_model = RefitModel(preprocessor, model, prepared.classes, prepared.y_center, prepared.y_scale)
    y_test = (prepared.y_test - prepared.y_center) / prepared.y_scale
    test_score = score(plan.metric, refit_model.encoded(), prepared.X_test, y_test, n_classes, prepared.y_scale)
    return refit_model, test_score


def _trial_bests(results: Any, plan: SweepPlan) -> list[Any]:
    """Each trial's best step (see :mod:`raysweep.best`), in the order of ``results``."""
    from raysweep.best import trial_best

    bests = []
    for result in results:
        frame = getattr(result, "metrics_dataframe", None)
        # Every step's result, with the config in force at it; else only the last one is known.
        rows = frame.to_dict("records") if frame is not None and len(frame) else [result.metrics or {}]
        bests.append(trial_best(rows, plan.metric_key, plan.mode, result.config or {}))
    return bests


def _leaderboard(results: Any, plan: SweepPlan, bests: list[Any] | None = None) -> Any:
    """One row per trial, best first: its best step's score, the resource at it and its config then."""
    import pandas as pd

    bests = _trial_bests(results, plan) if bests is None else bests
    rows = []
    max_steps = plan.recipe.resource.max_steps
    for result, best in zip(results, bests):
        metrics = result.metrics or {}
        iterations = int(metrics.get("training_iteration", 0) or 0)
        if result.error is not None:
            outcome = "failed"
        elif iterations >= max_steps:
            outcome = "completed"
        else:
            outcome = "stopped_early"
        trial_id = str(metrics.get("trial_id") or "")
        row = {
            "trial": schema.trial_name(trial_id),
            "trial_id": trial_id,
            plan.metric_key: best.value if best else float("nan"),
            "resource": plan.recipe.resource.at(best.steps) if best else 0,
            "steps": iterations,
            "outcome": outcome,
        }
        row.update({f"config/{k}": v for k, v in (best.config if best else result.config or {}).items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.sort_values(plan.metric_key, ascending=plan.mode == "min", na_position="last", kind="stable").reset_index(drop=True)
    return frame


def run_planned(
    plan: SweepPlan,
    *,
    verbose: bool = False,
    progress: bool = True,
    tracking: bool = True,
    resume: dict[str, Any] | None = None,
) -> SweepResult:
    """Run a checked plan: start Ray, sweep, refit the best config and score it on the test split.

    ``resume`` is the saved sweep record (see :func:`resume_sweep`): the sweep then continues
    from Ray's saved state and logs into the same MLflow parent run.
    """
    from raysweep.tracking import store as tracking_module

    started = time.monotonic()
    tracking_uri = tracking_module.resolve_tracking_uri(plan.tracking_uri) if tracking else None
    if tracking_uri:
        tracking_module.check_reachable(tracking_uri)
    prepared = prepare(plan.dataset, plan.family, seed=plan.seed, test_size=plan.test_size, val_size=plan.val_size, cv=plan.cv)

    _quiet_environment(verbose)
    from ray import tune
    from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig

    from raysweep.progress import LiveProgress
    from raysweep.trainable import SweepTrainable, TrialSpec

    connect_ray(plan.address, verbose)
    _quiet_tune(verbose, plan.storage)
    max_concurrent = plan.max_concurrent or cluster_cpus()
    max_steps = plan.recipe.resource.max_steps
    spec = TrialSpec(
        family=plan.family,
        task=plan.task,
        metric=plan.metric,
        resource=plan.recipe.resource,
        seed=plan.seed,
        needs_proba=needs_proba(plan.metric),
        fixed=dict(plan.recipe.fixed),
        mutable=tuple(plan.recipe.mutations) if strategies.get_scheduler(plan.scheduler).population else (),
        checkpoint_every=plan.checkpoint_every,
    )

    tracker = None
    callbacks: list[Any] = []
    if progress:
        callbacks.append(LiveProgress(plan.metric_key, plan.mode, plan.num_samples))
    exploits: list = []
    if tracking_uri:
        tracker = tracking_module.SweepTracker(
            tracking_uri,
            plan.experiment,
            plan.name,
            plan.metric_key,
            max_steps,
            plan.family.integer_resource,
            tags=_parent_tags(plan),
            params=plan.settings(),
        )
        tracker.exploits = exploits
        if resume and resume.get("parent_run_id"):
            tracker.reopen(resume["experiment_id"], resume["parent_run_id"])
        else:
            tracker.start()
            tracker.log_text(plan.recipe.to_yaml(), schema.RECIPE_FILE)
            tracker.log_dict(plan.recipe.space, schema.SEARCH_SPACE_FILE)
        from raysweep.tracking.callback import start_trial_logging

        callbacks.append(start_trial_logging(tracker))

    from ray.tune.logger import JsonLoggerCallback

    callbacks.append(JsonLoggerCallback())
    trainable = tune.with_resources(
        tune.with_parameters(SweepTrainable, data=prepared.trial, spec=spec), {"cpu": 1}
    )
    param_space = space.param_space(plan.recipe.space, plan.searcher, plan.recipe.source)
    if resume:
        tuner = tune.Tuner.restore(
            resume["path"], trainable=trainable, param_space=param_space, resume_unfinished=True, resume_errored=False
        )
        # The restored run config carries callbacks unpickled from the first run; swap in this
        # run's, which hold live MLflow clients and find the trial runs again by their tags.
        tuner._local_tuner.get_run_config().callbacks = callbacks
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=TuneConfig(
                metric=plan.metric_key,
                mode=plan.mode,
                num_samples=plan.num_samples,
                scheduler=strategies.build_scheduler(
                    plan.scheduler, plan.recipe, plan.metric_key, plan.mode, max_steps, plan.seed, exploits
                ),
                search_alg=strategies.build_searcher(
                    plan.searcher, plan.metric_key, plan.mode, plan.seed, max_concurrent, plan.recipe.points_to_evaluate
                ),
                reuse_actors=True,
                time_budget_s=plan.time_budget,
            ),
            run_config=RunConfig(
                name=plan.name,
                storage_path=plan.storage,
                stop={"training_iteration": max_steps},
                callbacks=callbacks,
                verbose=2 if verbose else 0,
                failure_config=FailureConfig(max_failures=plan.max_failures),
                # A finished trial is never restored (the best config is refit): no checkpoint at its end.
                checkpoint_config=CheckpointConfig(num_to_keep=4 if strategies.get_scheduler(plan.scheduler).population else 2, checkpoint_at_end=False),
            ),
        )
        _save_sweep_record(plan, tracker)
    if strategies.get_scheduler(plan.scheduler).population:
        import random

        # Ray's PBT draws its explore/exploit decisions from Python's global random module.
        random.seed(plan.seed)
    status = "FAILED"
    try:
        results = tuner.fit()
        if _interrupted(results, plan, started):
            status = "KILLED"
            raise SweepInterrupted(
                f"sweep {plan.name} interrupted; its state is saved. Continue it with: "
                f"raysweep resume {plan.name} --storage {plan.storage}"
            )
        result = _summarise(plan, prepared, results, tracker, started, tracking_uri)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        lacking = tracker.finish(status) if tracker is not None else None
    if lacking:
        raise TrackingIncomplete(
            f"{lacking}; MLflow lacks part of sweep {plan.name}. Write the rest from Ray's results with: "
            f"raysweep sync {plan.name} --storage {plan.storage}",
            result,
        )
    return result


def _interrupted(results: Any, plan: SweepPlan, started: float) -> bool:
    """Whether Tune came back early because of Ctrl-C (trials left unfinished, budget not spent)."""
    if plan.time_budget and time.monotonic() - started >= plan.time_budget * 0.9:
        return False
    trials = getattr(getattr(results, "_experiment_analysis", None), "trials", None) or []
    if any(trial.status in ("PENDING", "RUNNING", "PAUSED") for trial in trials):
        return True
    # On Ctrl-C Tune stops the running trials and marks them TERMINATED, but their last result
    # lacks the `done` that a finished or scheduler-stopped trial carries, and no more are created.
    if any(trial.status == "TERMINATED" and not (trial.last_result or {}).get("done") for trial in trials):
        return True
    return not strategies.get_searcher(plan.searcher).exhaustive and len(trials) < plan.num_samples


def _sweep_dir(plan: SweepPlan) -> str:
    return f"{plan.storage.rstrip('/')}/{plan.name}"


def _save_sweep_record(plan: SweepPlan, tracker: Any) -> None:
    """What ``raysweep resume`` needs to rebuild this sweep, next to Ray's own state."""
    from raysweep.tracking.store import absolute_tracking_uri

    record = {
        "name": plan.name,
        "storage": plan.storage,
        "recipe": plan.recipe.raw,
        "recipe_source": plan.recipe.source,
        "recipe_name": plan.recipe.name,
        "dataset": plan.dataset_spec,
        "dataset_fingerprint": plan.dataset.fingerprint,
        "options": {
            "target": plan.target, "task": plan.task, "metric": plan.metric, "scheduler": plan.scheduler,
            "searcher": plan.searcher, "num_samples": plan.num_samples, "time_budget": plan.time_budget,
            "max_concurrent": plan.max_concurrent, "cv": plan.cv, "seed": plan.seed, "address": plan.address,
            "tracking_uri": absolute_tracking_uri(tracker.tracking_uri) if tracker else plan.tracking_uri, "experiment": plan.experiment, "max_failures": plan.max_failures,
            "checkpoint_every": plan.checkpoint_every, "test_size": plan.test_size, "val_size": plan.val_size, "register_model": plan.register_model,
        },
        "experiment_id": tracker.experiment_id if tracker else None,
        "parent_run_id": tracker.parent_run_id if tracker else None,
    }
    sweep_record.save(_sweep_dir(plan), record)


def resume_sweep(name_or_path: str, *, storage: str | None = None, verbose: bool = False, progress: bool = False) -> SweepResult:
    """Continue an interrupted or killed sweep from Ray's saved state, into the same MLflow runs."""
    found = sweep_record.find(name_or_path, storage)
    if found is None:
        raise UserError(
            f"no sweep {name_or_path!r} to resume under {sweep_record.storage_base(storage)}; pass the sweep's name with --storage where it ran, or its folder"
        )
    candidate, record = found
    from raysweep.recipes import validate_recipe_data

    recipe = validate_recipe_data(record["recipe"], record["recipe_source"], record["recipe_name"])
    if record["dataset"] is None:
        raise UserError(f"sweep {record['name']} was given its data as a Python object; resume it from Python with the same data")
    options = dict(record["options"])
    plan = plan_sweep(recipe, record["dataset"], name=record["name"], storage=record["storage"], **options)
    if plan.dataset.fingerprint != record["dataset_fingerprint"]:
        raise UserError(
            f"--dataset {record['dataset']}: its contents changed since sweep {record['name']} started "
            "(fingerprint differs); resuming would mix two datasets, start a new sweep instead"
        )
    record["path"] = candidate
    if record.get("parent_run_id"):
        from raysweep.tracking.sync import sync_sweep

        # What the killed driver had not written to MLflow yet (it writes from a queue) goes in
        # first, from Ray's results: the resumed trials then continue each run at the right step.
        sync_sweep(candidate)
    return run_planned(plan, verbose=verbose, progress=progress, resume=record)


def _summarise(plan: SweepPlan, prepared: PreparedData, results: Any, tracker: Any, started: float, tracking_uri: str | None) -> SweepResult:
    bests = _trial_bests(results, plan)
    leaderboard = _leaderboard(results, plan, bests)
    errors = [str(r.error).strip().splitlines()[-1] for r in results if r.error is not None]
    ok = [r for r in results if r.error is None and _finite(r.metrics.get(plan.metric_key))]
    if not ok:
        if not errors and plan.time_budget:
            raise SweepFailed(
                f"the time budget of {plan.time_budget:g}s ran out before any trial reported a score; "
                "give a larger --time-budget"
            )
        first = errors[0] if errors else "no trial reported a finite score"
        raise SweepFailed(f"every trial failed ({len(errors)} of {len(results)}); first error: {first}")
    from raysweep.best import sweep_best

    # The best step of any trial: its config then, refit for as many steps (raysweep.best).
    best = bests[sweep_best(bests, plan.mode)]
    best_config = dict(best.config)
    best_steps = best.steps
    model, test_score = refit(plan, prepared, best_config, best_steps)
    result = SweepResult(
        name=plan.name,
        recipe=plan.recipe.name,
        dataset=plan.dataset.name,
        task=plan.task,
        metric=plan.metric,
        mode=plan.mode,
        best_config=_plain(best_config),
        best_resource=plan.recipe.resource.at(best_steps),
        best_validation_score=float(best.value),
        test_score=float(test_score),
        num_trials=len(results),
        num_errors=len(errors),
        num_stopped_early=int((leaderboard["outcome"] == "stopped_early").sum()) if len(leaderboard) else 0,
        leaderboard=leaderboard,
        model=model,
        classes=prepared.classes,
        storage_path=str(Path(plan.storage) / plan.name) if not _is_uri(plan.storage) else f"{plan.storage}/{plan.name}",
        tracking_uri=tracking_uri,
        experiment_id=tracker.experiment_id if tracker else None,
        parent_run_id=tracker.parent_run_id if tracker else None,
        elapsed_s=time.monotonic() - started,
        errors=errors,
    )
    if tracker is not None:
        from raysweep.tracking.outcome import log_sweep_outcome

        result.model_uri = log_sweep_outcome(tracker, plan, prepared, result)
    return result


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """Config values as plain Python (numpy scalars become int/float) for JSON and MLflow."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in config.items()}


def _parent_tags(plan: SweepPlan) -> dict[str, str]:
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


def run_sweep(
    recipe: str | Path | Recipe,
    dataset: str | Dataset,
    *,
    verbose: bool = False,
    progress: bool = False,
    tracking: bool = True,
    **options: Any,
) -> SweepResult:
    """Run a hyperparameter sweep of ``recipe`` on ``dataset`` and return its result.

    ``options`` are those of :func:`plan_sweep` (target, task, metric, scheduler, searcher,
    num_samples, time_budget, max_concurrent, cv, seed, name, storage, overrides, address,
    tracking_uri, experiment, max_failures, checkpoint_every, register_model). Raises :class:`~raysweep.UserError` for bad
    input before Ray starts, :class:`~raysweep.errors.SweepFailed` when no trial succeeds, and
    :class:`~raysweep.errors.TrackingIncomplete` (its ``result`` is the sweep's result) when MLflow
    lacks part of the sweep because the process that writes the trial runs died.
    """
    plan = plan_sweep(recipe, dataset, **options)
    return run_planned(plan, verbose=verbose, progress=progress, tracking=tracking)
