"""What a sweep produced: each trial's best step, the leaderboard, the refit model and its test score."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from raysweep.data import PreparedData, make_preprocessor
from raysweep.errors import SweepFailed
from raysweep.metrics import needs_proba, score
from raysweep.sweep.gpus import fallback_warnings
from raysweep.sweep.auto import family_of, family_step, flat_config, split
from raysweep.sweep.options import SweepPlan
from raysweep.sweep.record import is_uri
from raysweep.tracking import schema

logger = logging.getLogger(__name__)


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
    #: each searched parameter's importance (raysweep.tracking.importance.Importance), or why there is none
    importance: Any = None
    #: with ``warm_start``: the earlier sweeps the searcher learnt from, and how many of their trials
    warm_start_from: list[str] = field(default_factory=list)
    warm_start_trials: int | None = None
    #: why the sweep ended before its trial count or budget (``--stop-at``, ``--patience``), else None
    stopped_by: str | None = None
    #: what the user should know about how the trials ran (asked for a GPU, trained on the CPU)
    warnings: list[str] = field(default_factory=list)
    #: with both a trial count and ``--time-budget``: how many trials ran when the budget ran out first, else None
    budget_ran_out: str | None = None
    #: ``raysweep run auto``: each family's trials and best validation score, best family first
    families: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: with ``nested_cv``: the nested validation's estimate (:class:`raysweep.sweep.nested.NestedEstimate`)
    nested: Any = None

    def __repr__(self) -> str:
        # The leaderboard and the model pipeline are attributes to look at, not to print here.
        return (
            f"<SweepResult {self.name}: best val_{self.metric} {self.best_validation_score:.5g} of {self.num_trials} trials "
            f"({self.num_stopped_early} stopped early, {self.num_errors} failed), test {self.metric} {self.test_score:.5g}, "
            f"best config {self.best_config}>"
        )

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
            "importance": dict(self.importance.values) if self.importance is not None else {},
            "warm_start_from": self.warm_start_from,
            "families": self.families,
            "warm_start_trials": self.warm_start_trials,
            "stopped_by": self.stopped_by,
            "warnings": self.warnings,
        } | ({"nested": self.nested.to_dict()} if self.nested is not None else {})


def steps_to_refit(family: Any, resource: Any, best_steps: int) -> int:
    """The steps the best config is refit for: its best step's (trees, rounds, epochs are the
    model's size), but all of a resource that is a share of the rows (a data budget: the best
    step's share was 0.2, say, and the refit takes the whole)."""
    return resource.max_steps if family.refit_on_all_rows else best_steps


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
        rows = _step_rows(frame, plan.metric_key) if frame is not None and len(frame) else [result.metrics or {}]
        bests.append(trial_best(rows, plan.metric_key, plan.mode, result.config or {}))
    return bests


def _step_rows(frame: Any, metric_key: str) -> list[dict[str, Any]]:
    """A trial's results table as rows of only the columns its best step reads (the score, the
    step, the config): a whole-row ``to_dict`` costs ten times as much, per trial, at the sweep's end."""
    from raysweep.best import CONFIG_PREFIX

    names = [c for c in frame.columns if c in (metric_key, "training_iteration", "config") or str(c).startswith(CONFIG_PREFIX)]
    columns = [frame[name].tolist() for name in names]
    return [dict(zip(names, values)) for values in zip(*columns)]


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
            # which rule stopped it early, where, and the cutoff it missed (empty otherwise)
            # (or, for a trial the sweep's own end cut short, why the sweep ended)
            schema.STOP_DETAIL_RESULT: str(metrics.get(schema.STOP_DETAIL_RESULT) or metrics.get(schema.SWEEP_STOP_RESULT) or "")
            if outcome == "stopped_early" else "",
        }
        family, params = split(best.config if best else result.config or {})
        if family is not None:
            row["family"] = family
        row.update({f"config/{k}": v for k, v in params.items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.sort_values(plan.metric_key, ascending=plan.mode == "min", na_position="last", kind="stable").reset_index(drop=True)
    return frame


def _made_order(result: Any) -> tuple[int, str]:
    """Where a trial came in the order Tune made it (:func:`raysweep.best.made_order`)."""
    from raysweep.best import made_order

    metrics = result.metrics or {}
    return made_order(metrics.get("experiment_tag"), metrics.get("trial_id"))


def summarise(
    plan: SweepPlan,
    prepared: PreparedData,
    results: Any,
    tracker: Any,
    started: float,
    tracking_uri: str | None,
    phase: Callable[[str], None] | None = None,
    never_started: set[str] = frozenset(),
    stopped_by: str | None = None,
    log_model: bool = True,
    drawer: Any = None,
) -> SweepResult:
    """The sweep's result from Tune's: leaderboard, the best config refit and scored, its outcome in MLflow.

    ``phase`` hears what is being done as it starts (the refit, each step of the logging); without
    it nothing is said. ``stopped_by`` says why the sweep's own rule ended it early, if it did.
    ``drawer`` draws the charts in a process of its own (:mod:`raysweep.tracking.drawing`).
    """
    # A trial the searcher made but the time budget ended before it started is no trial of the
    # sweep (one that started is, even if it reported nothing: it has a run in MLflow).
    # In the order the trials were made (a restored Tune lists them in another): of equal bests the
    # first is then the same trial however often the sweep is resumed.
    results = sorted((r for r in results if str(r.path) not in never_started), key=_made_order)
    bests = _trial_bests(results, plan)
    importance = _importance(results, plan, phase, bests)
    leaderboard = _leaderboard(results, plan, bests)
    if importance.values:
        from raysweep.tracking.importance import ordered_leaderboard

        leaderboard = ordered_leaderboard(leaderboard, importance)
    errors = [schema.error_headline(r.error) for r in results if r.error is not None]
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
    index = sweep_best(bests, plan.mode)
    best = bests[index]
    best_config = flat_config(dict(best.config))
    best_steps = best.steps
    refit_plan = plan
    if plan.auto is not None:
        plan, refit_plan, prepared, best_steps = _winner(plan, best.config, best_steps)
        best_config.pop("family")
    resource = refit_plan.recipe.resource
    refit_steps = steps_to_refit(refit_plan.family, resource, best_steps)
    if phase is not None:
        trial = schema.trial_name(str((results[index].metrics or {}).get("trial_id") or ""))
        phase(
            f"refitting the best config ({trial}) on {len(prepared.y_pool):,} rows for {refit_steps} "
            f"step{'s' if refit_steps != 1 else ''} ({resource.at(refit_steps):g} {resource.name})"
            + (f"; its best score came at {resource.at(best_steps):g}" if refit_steps != best_steps else "")
        )
    model, test_score = refit(refit_plan, prepared, best_config, refit_steps)
    if plan.auto is not None:
        best_config = {"family": refit_plan.recipe.name, **best_config}
    result = SweepResult(
        name=plan.name,
        recipe=plan.recipe.name,
        dataset=plan.dataset.name,
        task=plan.task,
        metric=plan.metric,
        mode=plan.mode,
        best_config=_plain(best_config),
        best_resource=plan.recipe.resource.at(best.steps),
        best_validation_score=float(best.value),
        test_score=float(test_score),
        num_trials=len(results),
        num_errors=len(errors),
        num_stopped_early=int((leaderboard["outcome"] == "stopped_early").sum()) if len(leaderboard) else 0,
        leaderboard=leaderboard,
        model=model,
        classes=prepared.classes,
        storage_path=str(Path(plan.storage) / plan.name) if not is_uri(plan.storage) else f"{plan.storage}/{plan.name}",
        tracking_uri=tracking_uri,
        experiment_id=tracker.experiment_id if tracker else None,
        parent_run_id=tracker.parent_run_id if tracker else None,
        elapsed_s=time.monotonic() - started,
        errors=errors,
        importance=importance,
        stopped_by=stopped_by,
        warnings=list(prepared.notes) + fallback_warnings(
            plan.gpus_per_trial, plan.family, results, {m.name: m.family for m in plan.auto.members} if plan.auto else None
        ),
        families=_families(leaderboard, plan) if plan.auto is not None else {},
        budget_ran_out=None if stopped_by else _budget_ran_out(plan, len(results)),
    )
    if tracker is not None:
        from raysweep.tracking.outcome import log_sweep_outcome

        lineage = _lineage_series(results, plan) if _population(plan) else None
        result.model_uri = log_sweep_outcome(tracker, plan, prepared, result, phase=phase, lineage=lineage, model=log_model, drawer=drawer)
    return result


def _winner(plan: SweepPlan, config: dict[str, Any], steps: int) -> tuple[SweepPlan, SweepPlan, PreparedData, int]:
    """An auto sweep's winning family: the plan that logs it (its family's flavor), the plan that
    refits it (its recipe), its data and its own steps at the best common step."""
    from dataclasses import replace

    from raysweep.data import prepare

    member = plan.auto.member(str(split(config)[0]))
    prepared = prepare(plan.dataset, member.family, seed=plan.seed, test_size=plan.test_size, val_size=plan.val_size, cv=plan.cv)
    own_steps = family_step(steps, plan.auto.steps, member.recipe.resource.max_steps)
    return replace(plan, family=member.family), replace(plan, recipe=member.recipe, family=member.family, auto=None), prepared, own_steps


def _budget_ran_out(plan: SweepPlan, trials: int) -> str | None:
    """``the time budget of 8 s ran out first: 158 of 500 trials ran`` for a sweep of a trial count
    and a time budget that the budget ended (the summary said only how many trials ran), else None."""
    if not plan.time_budget or plan.options.fill_time_budget:
        return None
    from raysweep.space import grid_entries_size, grid_size
    from raysweep.strategies import registry as strategies

    planned = plan.options.num_samples
    if plan.auto is None:
        planned *= (grid_size if strategies.get_searcher(plan.searcher).exhaustive else grid_entries_size)(plan.recipe.space)
    if trials >= planned:
        return None
    return f"the time budget of {plan.time_budget:g} s ran out first: {trials} of {planned} trials ran"


def _families(leaderboard: Any, plan: SweepPlan) -> dict[str, dict[str, Any]]:
    """Each member family's trial count and best validation score (None: no score), best family first."""
    from raysweep.best import family_bests

    return family_bests(leaderboard, plan.metric_key, plan.mode, [member.name for member in plan.auto.members])


def _population(plan: SweepPlan) -> bool:
    from raysweep.strategies.registry import get_scheduler

    return get_scheduler(plan.scheduler).population


def _importance(results: Any, plan: SweepPlan, phase: Callable[[str], None] | None = None, bests: list[Any] | None = None) -> Any:
    """Each searched parameter's importance over the trials' last scores; never fails the sweep.

    A trial that a scheduler stopped early enters with its last score; a failed trial not at all.
    An auto sweep's is the winning family's, over its own trials and parameters: the families search
    different parameters, and over all of them the family alone was left (``family 1.00``).
    """
    from raysweep.best import sweep_best
    from raysweep.tracking.importance import MIN_TRIALS, Importance, sweep_importance

    try:
        trials = [(flat_config(r.config or {}), (r.metrics or {}).get(plan.metric_key)) for r in results if r.error is None]
        space = plan.recipe.space
        index = sweep_best(bests, plan.mode) if plan.auto is not None and bests else None
        if index is not None:
            winner = family_of(dict(bests[index].config))
            trials = [(config, value) for config, value in trials if config.get("family") == winner]
            space = plan.auto.member(winner).recipe.space
        population = _population(plan)
        if phase is not None and not population and sum(_finite(value) for _, value in trials) >= MIN_TRIALS:
            phase("computing the parameter importance")
        found = sweep_importance(trials, space, population=population, seed=plan.seed or 0)
        if index is not None and found.skipped:  # its counts are the winning family's, not the sweep's
            found = dataclasses.replace(found, skipped=f"over the winning family {winner}'s trials: {found.skipped}")
        return found
    except Exception as exc:  # an extra: the sweep's result stands without it
        logger.warning("raysweep: could not compute the parameter importance: %s", exc)
        return Importance(skipped=f"could not be computed: {exc}"[:500])


def _lineage_series(results: Any, plan: SweepPlan) -> dict[str, Any]:
    """Each PBT member's mutated hyperparameters at each of its results: trial id -> points."""
    from raysweep.tracking.lineage import member_series

    names = list(plan.recipe.mutations)
    series = {}
    for result in results:
        frame = getattr(result, "metrics_dataframe", None)
        trial_id = str((result.metrics or {}).get("trial_id") or "")
        if frame is not None and len(frame) and trial_id:
            series[trial_id] = member_series(frame.to_dict("records"), names)
    return series


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """Config values as plain Python (numpy scalars become int/float) for JSON and MLflow."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in config.items()}
