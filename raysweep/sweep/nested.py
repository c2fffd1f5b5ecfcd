"""Nested validation (``--nested-cv K``): an unbiased estimate of what tuning delivers.

A sweep's best validation score is the maximum over many configs scored on the same rows, so it is
optimistic. Here the tuning pool (train + validation; never the test split) is cut into K outer
folds. Each fold's inner sweep tunes on the other K-1 folds as a plain sweep would (the recipe's
searcher and scheduler, ``--cv`` or the usual inner split); its best config is refit on those rows
and scored once on the held-out fold. The mean of those K scores is the nested estimate. The final
sweep tunes on the whole pool as a plain sweep does; its refit model, scored on the test split, is
the job's output.

The K inner sweeps and the final sweep run at once on the same Ray, each with a Tuner of its own in
a thread of its own. One Tuner over fold-tagged trials would share one searcher between the folds:
a fold's searcher would then learn from scores measured on rows that are its own held-out fold.

With a time budget, not every sweep may start at once (:func:`sweeps_at_once`). A Tuner that
reuses its actors (raysweep's do) keeps the CPUs it got until it has no trial left to run, and a
budget-bound sweep always has one: on 2 CPUs, two of a job's six sweeps ran 450 trials each in
their 120 s while the other four never started a trial, and the job failed. Each sweep's budget
is Tune's, counted from its start, so a sweep starts when the cluster has CPUs for it.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import numpy as np

from raysweep.errors import SweepInterrupted, TrackingIncomplete
from raysweep.splits import outer_folds
from raysweep.sweep import nested_resume
from raysweep.sweep import record as sweep_record
from raysweep.sweep.options import SweepPlan
from raysweep.sweep.result import SweepResult
from raysweep.tracking import schema


@dataclass(frozen=True)
class Part:
    """One sweep of a nested validation, as :func:`raysweep.sweep.run.run_planned` takes it."""

    #: (the rows it tunes and refits on, the held-out rows it is scored on); None: the usual split
    rows: tuple[np.ndarray, np.ndarray] | None
    #: the job's own MLflow run, which the sweep's run is nested under
    parent_run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    #: what tells its trainable apart from the other sweeps' (see :meth:`trainable`)
    label: str = ""

    def trainable(self, base: type) -> type:
        """A subclass of ``base`` of the sweep's own: Tune files a trainable, and the data that
        ``with_parameters`` binds to it, under the class's name, and the sweeps run at once."""
        suffix = re.sub(r"\W", "_", self.label)
        return type(f"{base.__name__}_{suffix}", (base,), {})


@dataclass(frozen=True)
class FoldScore:
    """One outer fold: its score on its held-out rows, its inner sweep's best validation score, the config chosen."""

    fold: int
    score: float
    inner_best: float
    config: dict[str, Any]


@dataclass(frozen=True)
class NestedEstimate:
    """The nested validation's outcome: each fold's score and config, their mean and spread."""

    metric: str
    mode: str
    folds: list[FoldScore]

    @property
    def k(self) -> int:
        return len(self.folds)

    @property
    def mean(self) -> float:
        """The nested estimate: the mean of the folds' held-out scores."""
        return float(np.mean([fold.score for fold in self.folds]))

    @property
    def std(self) -> float:
        return float(np.std([fold.score for fold in self.folds]))

    @property
    def optimism(self) -> float:
        """How much better the inner sweeps' best validation scores looked than the held-out folds
        scored: mean inner best minus mean outer score, in the metric's direction (positive: optimistic)."""
        gap = float(np.mean([fold.inner_best for fold in self.folds])) - self.mean
        return gap if self.mode == "max" else -gap

    def to_dict(self) -> dict[str, Any]:
        """The ``nested`` entry of ``raysweep run --json``."""
        return {
            "metric": self.metric,
            "k": self.k,
            "mean": self.mean,
            "std": self.std,
            "optimism": self.optimism,
            "folds": [
                {"fold": fold.fold, "score": fold.score, "inner_best": fold.inner_best, "config": fold.config} for fold in self.folds
            ],
        }


def part_names(name: str, k: int) -> list[str]:
    """The names of a nested validation's sweeps: ``NAME-fold1`` .. ``NAME-foldK``, then ``NAME-final``."""
    return [f"{name}-fold{i}" for i in range(1, k + 1)] + [f"{name}-final"]


def run_nested(
    plan: SweepPlan,
    run_inner: Callable[..., SweepResult],
    *,
    verbose: bool = False,
    progress: bool = True,
    live: bool = True,
    tracking: bool = True,
    resume: dict[str, Any] | None = None,
) -> SweepResult:
    """Run the K inner sweeps and the final sweep at once; returns the final sweep's result with
    the nested estimate (``result.nested``). ``run_inner`` runs one of them (``run_planned``).
    ``resume`` is the job's record (``raysweep resume``): the folds that had finished are read
    back, the other sweeps continue from Ray's saved state (:mod:`raysweep.sweep.nested_resume`)."""
    from raysweep.sweep.connect import cluster_cpus, connect_ray
    from raysweep.sweep.gpus import check_cluster_gpus
    from raysweep.sweep.environment import _quiet_environment

    started = time.monotonic()
    k = plan.nested_cv
    tracking_uri = plan.tracking_uri if tracking else None
    if tracking_uri:
        from raysweep.tracking.store import check_reachable

        check_reachable(tracking_uri)
    say = _teller(progress)
    _quiet_environment(verbose)
    connect_ray(plan.address, verbose, resumed=plan.name if resume is not None else None)  # in this thread: the sweeps' threads find Ray started
    check_cluster_gpus(plan.gpus_per_trial, resuming=resume is not None)  # before the job's MLflow run and record
    # The job's run starts when the job did (before Ray): its duration in MLflow and `raysweep
    # compare` is the job's, as its summary gives it (it was 7 s short on a 30 s job).
    top = _open_job_run(plan, tracking_uri, resume, started=time.time() - (time.monotonic() - started)) if tracking_uri else None
    top_id = top.parent_run_id if top is not None else None
    names = part_names(plan.name, k)
    with _ended_on_failure(top):
        if resume is None:
            nested_resume.save_job(plan, top, names)
            states = [nested_resume.PartResume()] * len(names)
        else:
            states = nested_resume.resume_parts(names, plan.storage, k, top)
        parts = plan_parts(plan, top_id)
    # A fold that had finished before a resume is its outcome, read back: it does not run again.
    outcomes: dict[int, Any] = {
        i: FoldScore(i + 1, state.done["score"], state.done["inner_best"], state.done["config"]) for i, state in enumerate(states) if state.done
    }
    running = [i for i in range(len(parts)) if i not in outcomes]
    # The final sweep, had it finished, runs no trial and logs nothing again: the job needs its
    # result (refit model, scores, leaderboard) for its own run, which it had not logged yet.
    rebuilt = {i for i in running if (states[i].record or {}).get("outcome_done")}
    # The CPUs are shared among the sweeps that run (a resumed job's finished folds take none).
    at_once, per_sweep = sweeps_at_once(plan, max(1, len(running)), cluster_cpus())
    if per_sweep is not None:
        parts = [(replace(p, options=replace(p.options, max_concurrent=per_sweep)), part) for p, part in parts]
    gate = threading.BoundedSemaphore(at_once)
    if resume is None and at_once >= len(parts):
        say(f"raysweep: nested validation: {k} inner sweeps (one per outer fold) and the final sweep run at once")
    elif resume is None:
        say(
            f"raysweep: nested validation: {k} inner sweeps (one per outer fold) and the final sweep, {at_once} at a time "
            f"with {per_sweep} trial{'s' if per_sweep != 1 else ''} each (the cluster's CPUs shared out); "
            f"each sweep's {plan.time_budget:g} s budget starts when it does"
        )
    else:
        go_on = [names[i] for i in running if i not in rebuilt]
        say(
            f"raysweep: resuming nested validation {plan.name}: {', '.join(go_on) or 'no sweep'} "
            f"go{'es' if len(go_on) == 1 else ''} on; {len(outcomes)} fold(s) had finished"
            + (f"; {', '.join(names[i] for i in sorted(rebuilt))} had finished: refit for the job's outcome, MLflow kept as it was"
               if rebuilt else "")
        )

    def sweep(index: int, part_plan: SweepPlan, part: Part) -> None:
        while not gate.acquire(timeout=0.2):  # its turn (see sweeps_at_once)
            if interrupted.is_set():
                outcomes[index] = SweepInterrupted(f"{names[index]} had not started")
                return
        try:
            # The final sweep shows its progress a line per change; the folds say when they end.
            show = progress and index == len(parts) - 1
            outcomes[index] = run_inner(
                part_plan, verbose=verbose, progress=show and index not in rebuilt, live=False, tracking=tracking and index not in rebuilt,
                part=part, resume=states[index].record,
            )
            if index < k:
                nested_resume.save_fold_outcome(part_plan, outcomes[index])
        except BaseException as exc:  # handed to the job's thread, which reports it
            if isinstance(exc, TrackingIncomplete) and index < k:
                nested_resume.save_fold_outcome(part_plan, exc.result)
            outcomes[index] = exc
        finally:
            gate.release()

    status = "FAILED"
    try:
        with _shared_interrupt() as interrupted, _tune_registries_locked():
            threads = [threading.Thread(target=sweep, args=(i, *parts[i]), name=names[i], daemon=True) for i in running]
            for thread in threads:
                thread.start()
            told: set[int] = set()
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(timeout=0.2)
                for index in sorted(set(outcomes) - told):
                    told.add(index)
                    _tell_done(say, names[index], outcomes[index], plan.metric, k, index)
        if interrupted.is_set() or any(isinstance(o, (SweepInterrupted, KeyboardInterrupt)) for o in outcomes.values()):
            status = "KILLED"
            raise SweepInterrupted(
                f"nested validation {plan.name} interrupted; its runs are closed as KILLED and its state is saved. "
                f"Continue it with: {sweep_record.continue_command(plan)}",
                name=plan.name,
            )
        failed = next((o for o in outcomes.values() if isinstance(o, BaseException) and not isinstance(o, TrackingIncomplete)), None)
        if failed is not None:
            raise failed
        results = [o.result if isinstance(o, TrackingIncomplete) else o for _, o in sorted(outcomes.items())]
        estimate = NestedEstimate(plan.metric, plan.mode, [_fold_score(i, r) for i, r in enumerate(results[:-1])])
        final = results[-1]
        result = replace(final, name=plan.name, nested=estimate, parent_run_id=top_id, model_uri=None, storage_path=f"{plan.storage.rstrip('/')}/{plan.name}")
        if top is not None:
            result.model_uri = _log_job(top, plan, result, say if progress else None)
        result.elapsed_s = time.monotonic() - started
        sweep_record.update(sweep_record.sweep_dir(plan), **{nested_resume.JOB_DONE: True})
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception as exc:
        if status == "FAILED" and top is not None:
            top.note_failure(exc)
        raise
    finally:
        if top is not None:
            top.finish(status)
    incomplete = [names[i] for i, o in outcomes.items() if isinstance(o, TrackingIncomplete)]
    if incomplete:
        raise TrackingIncomplete(
            f"MLflow lacks part of {', '.join(incomplete)}; write the rest with: "
            + "; ".join(sweep_record.sync_command(name, plan.storage) for name in incomplete),
            result,
        )
    return result


def sweeps_at_once(plan: SweepPlan, sweeps: int, cpus: int) -> tuple[int, int | None]:
    """How many of a job's ``sweeps`` run at once on ``cpus`` CPUs, and how many trials each runs
    at once (None: the sweep's own ``--max-concurrent``, else the cluster's CPUs, as a plain sweep).

    Without a time budget all start at once: a sweep whose trials wait for CPUs gets them as
    another sweep's trials end, and its trial count is the same whenever they run. With one, every
    sweep must have CPUs from its start, for its budget runs from then: the CPUs are shared out,
    ``--max-concurrent`` trials per sweep (else an equal share, at least one), and as many sweeps
    start as that leaves CPUs for; the others start as those end.
    """
    if not plan.time_budget:
        return sweeps, None
    per_sweep = plan.max_concurrent or max(1, cpus // sweeps)
    return max(1, min(sweeps, cpus // per_sweep)), per_sweep


def plan_parts(plan: SweepPlan, top_id: str | None) -> list[tuple[SweepPlan, Part]]:
    """The job's sweeps, as ``run_planned`` takes them: each fold's (tuning on the other folds'
    rows, scored on its own), then the final sweep's (the usual split); ``top_id``: the job's run."""
    names = part_names(plan.name, plan.nested_cv)
    job = {schema.NESTED_JOB: plan.name}
    parts = [
        (_part_plan(plan, names[i], final=False), Part(rows, top_id, {**job, schema.NESTED_FOLD: str(i + 1)}, names[i]))
        for i, rows in enumerate(outer_folds(plan.dataset, plan.seed, plan.test_size, plan.nested_cv))
    ]
    return parts + [(_part_plan(plan, names[-1], final=True), Part(None, top_id, job, names[-1]))]


def _part_plan(plan: SweepPlan, name: str, *, final: bool) -> SweepPlan:
    """One sweep of the job: a plain sweep under its own name. The folds learn nothing from earlier
    sweeps (those tuned on rows that are now a fold's held-out rows); the job registers the model."""
    options = replace(plan.options, name=name, nested_cv=None, register_model=None, warm_start=plan.options.warm_start and final)
    return replace(plan, options=options)


def _fold_score(index: int, outcome: Any) -> FoldScore:
    """A fold's outcome: its sweep's result, or read back on resume."""
    if isinstance(outcome, FoldScore):
        return outcome
    return FoldScore(index + 1, outcome.test_score, outcome.best_validation_score, outcome.best_config)


def _open_job_run(plan: SweepPlan, tracking_uri: str, resume: dict[str, Any] | None = None, started: float | None = None) -> Any:
    """The job's own MLflow run: the one sweep listings show; the sweeps' runs are nested under it.
    A resumed job (``resume``: its record) opens its run again; a new one starts at ``started``
    (seconds since the epoch)."""
    from raysweep.sweep.tags import sweep_tags
    from raysweep.tracking.store import SweepTracker

    top = SweepTracker(
        tracking_uri, plan.experiment, plan.name, plan.metric_key, plan.recipe.resource.max_steps, plan.family.integer_resource,
        tags={**sweep_tags(plan), schema.NESTED_CV: str(plan.nested_cv)}, params=plan.settings(),
    )  # fmt: skip
    if resume is not None and resume.get("parent_run_id"):
        top.reopen(resume["experiment_id"], resume["parent_run_id"])
        return top
    top.start(started=started)
    with _ended_on_failure(top):
        top.log_text(plan.recipe.to_yaml(), schema.RECIPE_FILE)
        top.log_dict(plan.recipe.space, schema.SEARCH_SPACE_FILE)
    return top


@contextlib.contextmanager
def _ended_on_failure(top: Any) -> Iterator[None]:
    """The job's run, once open, is not left RUNNING by what raises before the job's own ``try``:
    FAILED with why (``raysweep report`` says it), KILLED on Ctrl-C."""
    try:
        yield
    except BaseException as exc:
        if top is not None:
            if isinstance(exc, Exception):
                top.note_failure(exc)
            top.finish("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise


def _log_job(top: Any, plan: SweepPlan, result: SweepResult, phase: Callable[[str], None] | None) -> str | None:
    """The job's outcome on its own run: the final sweep's (scores, leaderboard, importance, the
    model), then the nested estimate: each fold's score with the fold as the step, mean, spread,
    optimism and the folds' table."""
    from mlflow.entities import Metric

    from raysweep.data import prepare
    from raysweep.tracking.outcome import log_sweep_outcome

    estimate = result.nested
    now = int(time.time() * 1000)
    per_fold = schema.nested_metric(plan.metric)
    metrics = [Metric(per_fold, fold.score, now, fold.fold) for fold in estimate.folds] + [
        Metric(schema.nested_metric(plan.metric, "mean"), estimate.mean, now, 0),
        Metric(schema.nested_metric(plan.metric, "std"), estimate.std, now, 0),
        Metric(schema.NESTED_OPTIMISM, estimate.optimism, now, 0),
    ]
    # A resumed job whose driver was killed while logging this has part of it already: the
    # per-fold history would be doubled, and MLflow appends a table's rows to an existing table.
    if schema.nested_metric(plan.metric, "mean") not in top.client.get_run(top.parent_run_id).data.metrics:
        top.client.log_batch(top.parent_run_id, metrics=metrics)
    import json

    import pandas as pd

    table = pd.DataFrame(
        [{"fold": f.fold, "score": f.score, "inner_best": f.inner_best, "config": json.dumps(f.config, default=str)} for f in estimate.folds]
    )
    if schema.NESTED_FOLDS_FILE not in {a.path for a in top.client.list_artifacts(top.parent_run_id)}:
        top.client.log_table(top.parent_run_id, table, schema.NESTED_FOLDS_FILE)
    # The model's signature and input example come from the final sweep's split.
    prepared = prepare(plan.dataset, plan.family, seed=plan.seed, test_size=plan.test_size, val_size=plan.val_size, cv=plan.cv)
    return log_sweep_outcome(top, plan, prepared, result, phase=phase)


def _teller(progress: bool) -> Callable[[str], None]:
    if not progress:
        return lambda text: None

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    return say


def _tell_done(say: Callable[[str], None], name: str, outcome: Any, metric: str, k: int, index: int) -> None:
    if isinstance(outcome, TrackingIncomplete):
        outcome = outcome.result
    if isinstance(outcome, FoldScore):
        say(
            f"raysweep: fold {index + 1}/{k} had finished: {metric} {outcome.score:.5g} on its held-out rows "
            f"(inner best {outcome.inner_best:.5g}), config {outcome.config}"
        )
    elif isinstance(outcome, (SweepInterrupted, KeyboardInterrupt)):
        say(f"raysweep: {name} interrupted")
    elif not isinstance(outcome, SweepResult):
        say(f"raysweep: {name} ended without a result: {str(outcome).strip().splitlines()[0] if str(outcome).strip() else type(outcome).__name__}")
    elif index < k:
        say(
            f"raysweep: fold {index + 1}/{k} done: {metric} {outcome.test_score:.5g} on its held-out rows "
            f"(inner best {outcome.best_validation_score:.5g}), config {outcome.best_config}"
        )
    else:
        say(f"raysweep: final sweep done: test {metric} {outcome.test_score:.5g}")


@contextlib.contextmanager
def _tune_registries_locked() -> Iterator[None]:
    """Ray Tune's registries of trainables and of their bound data, written by one Tuner at a time.

    Private API: ``ray.tune.registry._global_registry`` and ``ray.tune.registry._ParameterRegistry``
    iterate over a dict that another thread's Tuner may be adding to (``RuntimeError: dictionary
    changed size during iteration``); they take no lock of their own (checked on Ray 2.60).
    """
    from ray.tune import registry

    lock = threading.RLock()
    patched = [(registry._global_registry, "register"), (registry._global_registry, "flush_values"), (registry._ParameterRegistry, "put")]
    originals = [getattr(owner, attribute) for owner, attribute in patched]

    def locked(function: Callable) -> Callable:
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return function(*args, **kwargs)

        return call

    for (owner, attribute), original in zip(patched, originals):
        setattr(owner, attribute, locked(original))
    try:
        yield
    finally:
        for (owner, attribute), original in zip(patched, originals):
            setattr(owner, attribute, original)


@contextlib.contextmanager
def _shared_interrupt() -> Iterator[threading.Event]:
    """Ctrl-C stops every sweep of the job as it stops one plain sweep (their state saved, their runs KILLED).

    Ray Tune catches SIGINT only when it runs in the main thread, and each Tuner.fit here runs in a
    thread of its own: this handler, in the main thread, sets the one event every Tuner's loop
    watches; a second Ctrl-C raises KeyboardInterrupt as usual. Private API: Tune makes that event
    in ``ray.tune.tune._setup_signal_catching`` and offers no other way to end a run from outside
    as an interruption (checked on Ray 2.60).
    """
    import ray.tune.tune as tune_module

    event = threading.Event()
    original = tune_module._setup_signal_catching
    tune_module._setup_signal_catching = lambda: event
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if in_main else None

    def interrupt(signum: int, frame: Any) -> None:
        event.set()
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)

    if in_main:
        signal.signal(signal.SIGINT, interrupt)
    try:
        yield event
    except KeyboardInterrupt:
        event.set()  # the sweeps' threads end as interrupted, not cut off
        raise
    finally:
        tune_module._setup_signal_catching = original
        if in_main:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
