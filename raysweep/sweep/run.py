"""Running a sweep: Ray, the Tuner and its callbacks, tracking, and resuming a stopped sweep.

The runner wires the pieces together: the plan (:mod:`raysweep.sweep.options`), the strategies
(:mod:`raysweep.strategies`), the trainable, the MLflow tracking (:mod:`raysweep.tracking`) and the
result (:mod:`raysweep.sweep.result`).
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from raysweep.data import PREPARE_MODULES, prepare
from raysweep.errors import NothingToResume, SweepFailed, SweepInterrupted, TrackingIncomplete, UserError
from raysweep.metrics import check_every_class_scored, needs_proba
from raysweep.recipes import Recipe
from raysweep import space
from raysweep.strategies import registry as strategies
from raysweep.sweep import auto
from raysweep.sweep import record as sweep_record
from raysweep.sweep.connect import cluster_cpus, connect_ray
from raysweep.sweep.gpus import check_cluster_gpus, trial_resources
from raysweep.sweep.environment import _quiet_environment, _quiet_tune, trial_runtime_env
from raysweep.sweep.options import SweepPlan, plan_sweep

logger = logging.getLogger(__name__)
from raysweep.sweep.result import SweepResult, summarise
from raysweep.sweep.tags import sweep_tags
from raysweep.sweep.warm_start import warm_start_for
from raysweep.tracking import schema
from raysweep.tracking.drawing import start_drawer


def run_planned(
    plan: SweepPlan,
    *,
    verbose: bool = False,
    progress: bool = True,
    live: bool = True,
    tracking: bool = True,
    resume: dict[str, Any] | None = None,
    part: Any = None,
    release_ray: bool = False,
) -> SweepResult:
    """Run a checked plan: start Ray, sweep, refit the best config and score it on the test split.

    ``progress`` shows the sweep's progress and then each phase after its trials on stderr
    (:mod:`raysweep.progress`): a live view when stderr is a terminal and ``live`` is true,
    else one line per change. Without it the sweep prints nothing of its own.
    ``resume`` is the saved sweep record (see :func:`resume_sweep`): the sweep then continues
    from Ray's saved state and logs into the same MLflow parent run. A plan with ``nested_cv`` runs
    a nested validation (:mod:`raysweep.sweep.nested`); ``part`` is then one of its sweeps
    (:class:`raysweep.sweep.nested.Part`): its rows, its MLflow parent and tags.
    ``release_ray`` shuts down a local Ray that this call started as soon as the trials are
    over (the command line's sweeps: nothing after them needs Ray), overlapping the refit.
    """
    if plan.nested_cv and part is None:
        from raysweep.sweep.nested import run_nested

        return run_nested(plan, run_planned, verbose=verbose, progress=progress, live=live, tracking=tracking, resume=resume)
    from raysweep.sweep import early
    from raysweep.tracking import store as tracking_module

    started = time.monotonic()
    tracking_uri = plan.tracking_uri if tracking else None
    if tracking_uri:
        tracking_module.check_reachable(tracking_uri)
    warm = warm_start_for(plan, resume, progress)
    _quiet_environment(verbose)
    # The MLflow store opens and Ray Tune is imported while Ray starts (see raysweep.sweep.early),
    # and so are scikit-learn's parts that split and encode the data once Ray is up (see raysweep._cache).
    libraries = ["ray.tune", "raysweep.trainable", *strategies.get_searcher(plan.searcher).imports, *PREPARE_MODULES]
    opening: list[Any] = []
    # Ray first: an address that does not answer is a one-line error within seconds, before
    # the data is prepared and before anything opens the MLflow store.
    try:
        started_ray = connect_ray(
            plan.address, verbose, before_init=lambda: opening.append(early.before_ray(tracking_uri, libraries)),
            resumed=plan.name if resume is not None else None,
        )
    finally:
        for thread in opening:
            thread.join()
    # Known once Ray is up; still before any trial and before the sweep's MLflow runs.
    check_cluster_gpus(plan.gpus_per_trial, resuming=resume is not None)
    from ray import tune
    from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig

    from raysweep.progress import LiveProgress
    from raysweep.trainable import AutoTrainable, SweepTrainable, TrialSpec

    if tracking_uri:
        early.start_writer(tracking_uri)
    prepared = prepare(plan.dataset, plan.family, seed=plan.seed, test_size=plan.test_size, val_size=plan.val_size, cv=plan.cv,
                       rows=part.rows if part else None)
    if part is not None:  # a nested validation's sweep, on its fold's rows (plan_sweep checked any other sweep before Ray)
        data = prepared.trial
        check_every_class_scored(
            plan.metric, [data.y_train[va] for _, va in data.folds] if data.folds else [data.y_val], prepared.classes, cv=plan.cv,
            pool=prepared.y_pool,
        )  # before any MLflow run
    _quiet_tune(verbose)
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
    from raysweep.strategies.stoppers import build_stopper
    from raysweep.strategies.stops import StopNotes

    # --stop-at and --patience: Tune's Stopper interface, beside each trial's step limit.
    sweep_stopper = build_stopper(plan.metric_key, plan.mode, max_steps, stop_at=plan.stop_at, patience=plan.patience,
                                 sweep=sweep_record.sweep_dir(plan))
    # What the scheduler notes (a resume builds its scheduler anew with it: _use_callbacks).
    stops: dict[str, str] = {}
    # First: the scheduler's stop notes go into the results before anything else reads them.
    callbacks: list[Any] = [StopNotes(stops, sweep_stopper)]
    view = None
    # A resumed sweep goes on with what Tune left of its time budget (Tune saves its clock with its state).
    from raysweep.sweep.saved_state import budget_used as saved_budget_used

    budget_before = (saved_budget_used(resume["path"]) or 0.0) if resume and plan.time_budget and not sweep_record.is_uri(resume["path"]) else 0.0
    if progress:
        view = LiveProgress(
            plan.metric_key, plan.mode, total=_total_trials(plan), resource=plan.recipe.resource,
            concurrency=max_concurrent, time_budget=plan.time_budget, budget_used=budget_before, started=started,
            live=None if live else False,
        )  # fmt: skip
        callbacks.append(view)
    phase = view.phase if view is not None else None
    exploits: list = []
    drawer = None
    status = "FAILED"
    ray_release = None
    results = None
    discard = False
    try:  # from here on the parent run, once open, ends FAILED should anything raise (its first artifacts too)
        if tracking_uri:
            tracker = tracking_module.SweepTracker(
                tracking_uri,
                plan.experiment,
                plan.name,
                plan.metric_key,
                max_steps,
                plan.family.integer_resource,
                tags={**sweep_tags(plan), **warm.tags, **(part.tags if part else {})},
                params={**plan.settings(), **warm.params},
            )
            tracker.exploits = exploits
            tracker.budget_used = budget_before
            if resume and resume.get("parent_run_id"):
                from raysweep.tracking.sync import saved_trial_ids

                saved = None if sweep_record.is_uri(resume["path"]) else saved_trial_ids(Path(resume["path"]))
                tracker.reopen(resume["experiment_id"], resume["parent_run_id"], saved_trials=saved)
                if view is not None:
                    view.resumed(tracker.resumed_history)
                if tracker.lost_runs and progress:
                    lost = len(tracker.lost_runs)
                    print(
                        f"raysweep: {lost} trial run{'s' if lost > 1 else ''} of trials Ray had not saved when the driver died "
                        f"{'are' if lost > 1 else 'is'} deleted in MLflow; new trials take their place "
                        "(mlflow runs restore --run-id ID brings one back)",
                        file=sys.stderr, flush=True,
                    )  # fmt: skip
            else:
                tracker.start(parent_run_id=part.parent_run_id if part else None, started=time.time() - (time.monotonic() - started))
                tracker.log_text(plan.recipe.to_yaml(), schema.RECIPE_FILE)
                tracker.log_dict(plan.recipe.space, schema.SEARCH_SPACE_FILE)
            from raysweep.tracking.callback import start_trial_logging

            callbacks.append(start_trial_logging(tracker, early.take_writer()))
        from ray.tune.logger import JsonLoggerCallback

        from raysweep.sweep.ledger import TrialLedger

        from raysweep.sweep.saved_state import DropFinishedCheckpoints, StateCopy, saved_results

        from raysweep.sweep.actors import KeepStartingActors, keep_starting_actors

        ledger = TrialLedger()
        keep_starting_actors()
        callbacks += [JsonLoggerCallback(), ledger, KeepStartingActors()]
        if not sweep_record.is_uri(plan.storage):
            callbacks.append(StateCopy(Path(plan.storage, plan.name)))
            if not strategies.get_scheduler(plan.scheduler).population:  # PBT copies checkpoints between trials
                callbacks.append(DropFinishedCheckpoints())
        if plan.auto is not None:
            from raysweep.sweep import auto

            trainable = tune.with_resources(tune.with_parameters(AutoTrainable, **auto.trial_inputs(plan, spec)), trial_resources(plan.gpus_per_trial))
            param_space = auto.param_space(plan.auto, plan.searcher)
        else:
            trainable = tune.with_resources(
                tune.with_parameters(SweepTrainable if part is None else part.trainable(SweepTrainable), data=prepared.trial, spec=spec),
                trial_resources(plan.gpus_per_trial),
            )
            param_space = space.param_space(plan.recipe.space, plan.searcher, plan.recipe.source)
        if resume:
            tuner = tune.Tuner.restore(
                resume["path"], trainable=trainable, param_space=param_space, resume_unfinished=True, resume_errored=False
            )
            _use_callbacks(tuner, callbacks, sweep_stopper, scheduler=_scheduler(plan, max_steps, exploits, stops))
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=TuneConfig(
                    metric=plan.metric_key,
                    mode=plan.mode,
                    num_samples=plan.tune_num_samples,
                    scheduler=_scheduler(plan, max_steps, exploits, stops),
                    search_alg=_searcher(plan, _live_trials(plan, max_concurrent, max_steps), warm.points),
                    reuse_actors=True,
                    time_budget_s=plan.time_budget,
                ),
                run_config=RunConfig(
                    name=plan.name,
                    storage_path=plan.storage,
                    stop=sweep_stopper or {"training_iteration": max_steps},
                    callbacks=callbacks,
                    verbose=2 if verbose else 0,
                    failure_config=FailureConfig(max_failures=plan.max_failures),
                    # A finished trial is never restored (the best config is refit): no checkpoint at its end.
                    checkpoint_config=CheckpointConfig(num_to_keep=4 if strategies.get_scheduler(plan.scheduler).population else None, checkpoint_at_end=False),
                ),
            )
            sweep_record.save_plan(plan, tracker, warm.record, part.tags.get(schema.NESTED_JOB) if part else None)
        if strategies.get_scheduler(plan.scheduler).population:
            import random

            # Ray's PBT draws its explore/exploit decisions from Python's global random module.
            random.seed(plan.seed)
        population = strategies.get_scheduler(plan.scheduler).population
        # The charts are drawn by a process of their own (PBT's lineage here): no matplotlib in this one.
        end_imports = early.import_modules(early.end_modules(plan.family, bool(prepared.categorical_columns), tracked=tracker is not None,
                                                             importance=not population, charts=population),
                                          model=lambda: plan.family.estimator_class(plan.task))
        # A sweep its own rule ended, killed before its outcome: its trials are over, only the outcome is left.
        finishing = bool(resume and resume.get("stopped_by"))
        stop_asked = _StopAsked()
        if finishing:
            results = saved_results(resume["path"], plan.metric_key, plan.mode)
        else:
            with trial_runtime_env(plan.storage), _sigint_kept(stop_asked):
                results = tuner.fit()
        if release_ray and started_ray:
            ray_release = early.shutdown_ray()
        stopped_by = resume["stopped_by"] if finishing else sweep_stopper.reason if sweep_stopper is not None else None
        # A resume that only finishes the outcome takes the trials that never started from the record.
        never_started = set(resume.get("never_started", ())) if finishing else ledger.never_started
        if stopped_by:
            if view is not None and not finishing:  # a resume that only logs the outcome ran no trial to show
                view.ended_early()
            # No trial is left for `raysweep resume`, only the outcome until `outcome_done` says it is logged.
            sweep_record.update(sweep_record.sweep_dir(plan), stopped_by=stopped_by, outcome_done=False, never_started=sorted(never_started))
        elif _interrupted(ledger, plan, _time_budget_spent(plan, started - budget_before)):
            status = "KILLED"
            raise SweepInterrupted(
                f"sweep {plan.name} interrupted; its state is saved. Continue it with: {sweep_record.continue_command(plan)}",
                name=plan.name,
            )
        if stop_asked.came:  # as the last trials ended, too late for Tune to cut any: it stops here, as during the refit
            raise KeyboardInterrupt
        # Started after the trials, not with them: its imports would take CPU from them (measured on
        # the overhead suite's 500 no-op trials: 0.5 s longer). It draws while the model is logged.
        drawer = start_drawer() if tracker is not None else None
        end_imports.join()  # no module half-imported by two threads at once
        result = summarise(
            plan, prepared, results, tracker, started, tracking_uri, phase=phase, never_started=never_started, stopped_by=stopped_by,
            log_model=part is None, drawer=drawer,
        )
        # Complete: `raysweep resume` says there is nothing to resume instead of refitting it again.
        sweep_record.update(sweep_record.sweep_dir(plan), outcome_done=True)
        if warm.record is not None:
            result.warm_start_from, result.warm_start_trials = list(warm.record["from"]), int(warm.record["trials"])
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        if results is not None:  # Ctrl-C or SIGTERM after the trials, during the refit or the logging
            raise SweepInterrupted(
                f"sweep {plan.name} interrupted after its trials, before its outcome was logged. Finish it with: "
                + sweep_record.continue_command(plan),
                name=plan.name,
            ) from None
        # Before its trials (Ray Tune saved nothing): nothing ran and nothing is left to resume, so its
        # parent run goes too (it stayed as a KILLED sweep of no trials in report and compare).
        discard = resume is None and part is None and not sweep_record.tune_state_saved(str(sweep_record.sweep_dir(plan)))
        raise
    except Exception as exc:
        if status == "FAILED" and tracker is not None:
            tracker.note_failure(exc)
        if isinstance(exc, SweepFailed) and part is None and not sweep_record.is_uri(plan.storage):
            # Ray Tune runs no failed trial again: `raysweep resume` says so instead of starting Ray for nothing.
            try:
                sweep_record.update(sweep_record.sweep_dir(plan), failed=str(exc))
            except (OSError, ValueError) as unwritten:  # the sweep's own failure is what the user is told
                logger.warning("raysweep: could not note the failure in the sweep's record: %s", unwritten)
        raise
    finally:
        try:
            if tracker is not None and phase is not None:
                phase("waiting for the MLflow writer")
            try:
                lacking = tracker.finish(status) if tracker is not None else None
                if discard and tracker is not None:
                    tracker.discard()
            except KeyboardInterrupt:
                if status != "FINISHED":
                    raise
                # The outcome is logged: Ctrl-C (or SIGTERM) cut only the writer's last writes, which sync makes.
                lacking = "interrupted while the MLflow writer wrote its last results"
                tracker.end_parent(status)
        finally:
            early.drop_writer()
            if drawer is not None:
                drawer.close()
            if view is not None:
                view.close()
            if ray_release is not None:
                ray_release.join()
    if lacking:
        raise TrackingIncomplete(
            f"{lacking}; MLflow lacks part of sweep {plan.name}. Write the rest from Ray's results with: "
            + sweep_record.sync_command(plan.name, plan.storage),
            result,
        )
    return result


def _scheduler(plan: Any, max_steps: int, exploits: list, stops: dict[str, str]) -> Any:
    """The sweep's scheduler. An auto sweep's gives each family a scheduler of its own
    (:class:`raysweep.strategies._per_group.PerGroupScheduler`): a trial is stopped for trailing
    its own family's trials at a rung. Under ASHA a family's first trial at a rung, which has no
    family to trail, is judged against every family's trials there."""

    def build(notes: dict[str, str]) -> Any:
        return strategies.build_scheduler(plan.scheduler, plan.recipe, plan.metric_key, plan.mode, max_steps, plan.seed, exploits, notes)

    if plan.auto is None or plan.scheduler == "fifo":
        return build(stops)
    from raysweep.strategies._per_group import PerGroupScheduler
    from raysweep.sweep.auto import family_of

    # Measured on letter, adult and california_housing (benchmarks/ANALYSIS.md): judging a family's
    # first 3 results at a rung against every family's kept the SVM's best at 0.947 on letter (0.970
    # alone); judging none let an SVM's first trials on adult run to full data and take the budget.
    quorum = 1 if plan.scheduler == "asha" else 0
    return PerGroupScheduler(build, family_of, quorum=quorum, stops=stops)


def _live_trials(plan: SweepPlan, max_concurrent: int, max_steps: int) -> int:
    """The trials the searcher may have live at once: ``max_concurrent``, and under HyperBand a band
    of paused ones beside them (:func:`raysweep.strategies.registry.searcher_concurrency`)."""
    groups = len(plan.auto.members) if plan.auto is not None else 1
    return strategies.searcher_concurrency(plan.scheduler, max_concurrent, max_steps, plan.recipe.reduction_factor, groups)


def _searcher(plan: SweepPlan, max_concurrent: int, evaluated: list | None) -> Any:
    """The sweep's search algorithm (an auto sweep's: :func:`raysweep.sweep.auto.searcher`)."""
    if plan.auto is not None:
        from raysweep.sweep.auto import searcher

        return searcher(plan.auto, plan.searcher, plan.metric_key, plan.mode, plan.seed, max_concurrent)
    return strategies.build_searcher(
        plan.searcher, plan.metric_key, plan.mode, plan.seed, max_concurrent, plan.recipe.points_to_evaluate, evaluated=evaluated
    )


def _total_trials(plan: SweepPlan) -> int | None:
    """How many trials the sweep runs: the trial count, or for grid search the passes × the configs of one pass."""
    if plan.fill_time_budget or not plan.num_samples or plan.num_samples < 0:
        return None  # trials until the time budget is spent
    if strategies.get_searcher(plan.searcher).exhaustive:
        return plan.num_samples * space.grid_size(plan.recipe.space)
    # `type: grid` entries are Tune grid searches under any searcher: each sample runs them all.
    return plan.num_samples * space.grid_entries_size(plan.recipe.space)


class _StopAsked:
    """Whether a Ctrl-C (or SIGTERM) came while ``Tuner.fit`` ran (see :func:`_sigint_kept`)."""

    came = False


@contextmanager
def _sigint_kept(stop_asked: _StopAsked | None = None) -> Iterator[None]:
    """Around ``Tuner.fit``: SIGINT's handler put back as it was before.

    Tune installs a handler of its own for the trials (the first Ctrl-C saves the state and ends
    the run) and leaves it installed when ``fit`` returns: a Ctrl-C, or a SIGTERM (handled as one,
    :func:`raysweep.sweep.connect.interrupt_on_sigterm`), during the refit or the model's logging
    then only set Tune's finished event and the sweep went on as if nothing had been asked. With
    the handler from before, it stops the sweep there (``raysweep resume`` logs the outcome).

    Tune's handler, once it has run, puts the one from before back itself: the handler from before
    in place after ``fit`` tells ``stop_asked`` that a stop came during it. One that came as the
    last trials ended cut none of them, and the sweep went on to its outcome and exit 0 as if
    nothing had been asked.
    """
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    tune_catches = main and not int(os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") or 0)
    try:
        yield
    finally:
        now = signal.getsignal(signal.SIGINT) if main else None
        if stop_asked is not None and tune_catches and before is not None and now is before:
            stop_asked.came = True
        if main and before is not None and now is not before:
            signal.signal(signal.SIGINT, before)


def _use_callbacks(tuner: Any, callbacks: list[Any], sweep_stopper: Any = None, scheduler: Any = None) -> None:
    """Give a restored Tuner this run's callbacks, stopper and scheduler.

    The restored run config carries callbacks unpickled from the first run; this run's hold live
    MLflow clients and find the trial runs again by their tags. The sweep's stopper must be the
    one its callbacks tell of finished trials. The scheduler Tune pickled as the sweep began holds
    no trial yet, and its class's code with it (raysweep's schedulers are classes made in their
    builders): one built now runs this raysweep's code, fixes included. Private API:
    ``Tuner.restore`` takes no run or tune config in Ray 2.60, so this sets ``_local_tuner``'s
    (checked on Ray 2.60).
    """
    run_config = tuner._local_tuner.get_run_config()
    run_config.callbacks = callbacks
    if sweep_stopper is not None:
        run_config.stop = sweep_stopper
    if scheduler is not None:
        tuner._local_tuner._tune_config.scheduler = scheduler


def _time_budget_spent(plan: SweepPlan, started: float) -> bool:
    """Whether Tune's time budget ran out: as Tune's own clock says, saved with its state after the
    trials (Ctrl-C with a second of the budget left is an interruption, not its end). Without a
    local saved state, by the clock: ``started`` on ``time.monotonic()``, a resume's as far back as
    its earlier sessions spent of the budget."""
    from raysweep.sweep.ledger import budget_spent
    from raysweep.sweep.saved_state import budget_used

    if not plan.time_budget:
        return False
    used = None if sweep_record.is_uri(plan.storage) else budget_used(sweep_record.sweep_dir(plan))
    if used is not None:
        return used >= plan.time_budget
    return budget_spent(plan.time_budget, time.monotonic() - started)


def _interrupted(ledger: Any, plan: SweepPlan, budget_spent: bool) -> bool:
    """Whether Tune came back early because of Ctrl-C (trials left unfinished, budget not spent)."""
    if budget_spent:
        return False
    trials = ledger.trials
    if any(status in ("PENDING", "RUNNING", "PAUSED") for status, _ in trials):
        return True
    # On Ctrl-C Tune stops the running trials and marks them TERMINATED, but their last result
    # lacks the `done` that a finished or scheduler-stopped trial carries, and no more are created.
    if any(status == "TERMINATED" and not done for status, done in trials):
        return True
    # Trials that fill a time budget have no count to fall short of.
    counted = not plan.fill_time_budget and not strategies.get_searcher(plan.searcher).exhaustive
    return counted and len(trials) < plan.num_samples


def find_resumable(name_or_path: str, storage: str | None = None) -> tuple[str, dict[str, Any]]:
    """The folder and record of a sweep that ``resume`` can continue.

    Raises :class:`UserError` when there is no such sweep, and :class:`NothingToResume` when it is
    complete: its outcome (refit, test score, model) is logged, whether it ran all its trials or its
    own rule (``--stop-at``, ``--patience``) ended it.
    Of a nested validation's sweep, the job's folder and record
    (:func:`raysweep.sweep.nested_resume.resumable_job`).
    """
    found = sweep_record.find(name_or_path, storage)
    if found is None:
        raise UserError(sweep_record.not_found(name_or_path, storage, "to resume under"))
    candidate, record = found
    if record.get("nested_cv") or record.get("nested_job"):
        from raysweep.sweep.nested_resume import resumable_job

        return resumable_job(candidate, record)
    from raysweep.tracking.outcome import outcome_logged
    from raysweep.tracking.writer_lock import refuse_while_running

    refuse_while_running(record.get("parent_run_id"), record["name"], "resume")
    # Killed after its trials (or its rule) but before its outcome (refit, test score, model): resume finishes that.
    done = record.get("outcome_done")
    if done is None and (record.get("stopped_by") or record.get("parent_run_id")):
        done = outcome_logged(record)  # a record from before `outcome_done` was kept for every sweep: ask MLflow
    if done:
        how = f"ended by its own rule ({record['stopped_by']})" if record.get("stopped_by") else "is complete"
        from raysweep.tracking.store import report_command

        raise NothingToResume(
            f"raysweep: sweep {record['name']} {how}; nothing to resume. "
            f"Its result: {report_command(record['name'], record.get('options', {}).get('tracking_uri'))}",
            name=record["name"],
        )
    if record.get("failed"):
        raise SweepFailed(
            f"{record['name']} failed ({record['failed']}), and Ray Tune runs no failed trial again: nothing to resume; "
            "fix the cause and run the sweep again"
        )
    if auto.is_auto_record(record):
        auto.from_record(record)  # a record that cannot rebuild the members is refused before anything starts
    if not record.get("stopped_by") and not sweep_record.tune_state_saved(candidate):
        # Stopped before Ray Tune saved anything (while Ray started, say): Tune has nothing to restore.
        raise UserError(
            f"sweep {record['name']} stopped before Ray Tune saved its state ({candidate} has no tuner.pkl): "
            f"nothing to continue; remove {candidate} and run the sweep again"
        )
    return candidate, record


def resume_sweep(
    name_or_path: str, *, storage: str | None = None, verbose: bool = False, progress: bool = False, live: bool = True,
    address: str | None = None, dataset: Any = None,
) -> SweepResult:
    """Continue an interrupted or killed sweep from Ray's saved state, into the same MLflow runs.

    ``storage``: where its state is (default ./raysweep_results). ``address``: a Ray cluster to
    continue it on instead of the one it ran on (``"local"``: an embedded local Ray), for a cluster
    that is gone. ``dataset``: the data again, for a sweep that was given its data in memory (a
    DataFrame, an ``(X, y)`` pair, a :class:`raysweep.data.Dataset`); checked to be the same. ``progress``,
    ``live`` and ``verbose`` as for :func:`run_sweep`. Raises :class:`NothingToResume` for a sweep
    that is complete, :class:`UserError` for one that cannot be found or resumed."""
    candidate, record = find_resumable(name_or_path, storage)
    from raysweep.recipes import validate_recipe_data

    if auto.is_auto_record(record):
        recipe = auto.from_record(record)
    else:
        recipe = validate_recipe_data(record["recipe"], record["recipe_source"], record["recipe_name"])
    if record["dataset"] is None and dataset is None:
        raise UserError(
            f"sweep {record['name']} was given its data in memory: resume it from Python with the same data, "
            f"raysweep.resume_sweep({record['name']!r}, dataset=...)"
        )
    if record["dataset"] is not None and dataset is not None:
        raise UserError(f"dataset: sweep {record['name']} reads its data from {record['dataset']} itself; leave dataset out")
    options = dict(record["options"])
    if address is not None:
        options["address"] = None if address == "local" else address
    # Records written before the options object held the name and storage beside the options.
    plan = plan_sweep(recipe, record["dataset"] or dataset, **{"name": record["name"], "storage": record["storage"], **options})
    if plan.dataset.fingerprint != record["dataset_fingerprint"]:
        raise UserError(
            f"{'--dataset ' + record['dataset'] if record['dataset'] else 'dataset'}: its contents changed since sweep "
            f"{record['name']} started (fingerprint differs); resuming would mix two datasets, start a new sweep instead"
        )
    record["path"] = candidate
    from raysweep.sweep.saved_state import mend

    # A driver killed while Tune saved its state leaves the file cut; Tune would start over.
    if not sweep_record.is_uri(candidate):
        mend(candidate, record["name"])
    # A nested validation's sweeps are made ready one by one (raysweep.sweep.nested_resume).
    if record.get("parent_run_id") and not record.get("nested_cv"):
        from raysweep.tracking.sync import sync_sweep

        # What the killed driver had not written to MLflow yet (it writes from a queue) goes in
        # first, from Ray's results: the resumed trials then continue each run at the right step.
        sync_sweep(candidate)
    from raysweep.sweep.environment import callers_environment_kept

    with callers_environment_kept():
        return run_planned(plan, verbose=verbose, progress=progress, live=live, resume=record)


#: the options :func:`run_sweep` passes on to :func:`plan_sweep`
_PLAN_OPTIONS = tuple(name for name in inspect.signature(plan_sweep).parameters if name not in ("recipe", "dataset"))


def run_sweep(
    recipe: str | Path | Recipe,
    dataset: Any,
    *,
    verbose: bool = False,
    progress: bool = False,
    tracking: bool = True,
    **options: Any,
) -> SweepResult:
    """Run a hyperparameter sweep of ``recipe`` on ``dataset`` and return its result.

    ``recipe``: a prebuilt recipe's name, a YAML file, a :class:`~raysweep.Recipe`, or ``"auto"``
    (several families in one sweep, ``recipes=[...]``). ``dataset``: a built-in name, a CSV/Parquet
    path, a pandas DataFrame (with ``target=``) or an ``(X, y)`` pair. The options are the command
    line's flags (``raysweep run --help`` says each): target, task, metric, scheduler, searcher,
    num_samples, time_budget, max_concurrent, cv, nested_cv, seed, name, storage, overrides (a list of
    ``KEY.PATH=VALUE``, as ``--set``), address, tracking_uri, experiment, max_failures,
    checkpoint_every, register_model, warm_start, stop_at, patience, gpus_per_trial, recipes,
    test_size and val_size (the shares of the rows held out, 0.2 each). ``progress``: print what the
    command line prints on stderr (else nothing); ``verbose``: Ray's own output; ``tracking``: log to
    MLflow (False: nothing is logged).

    Raises :class:`~raysweep.UserError` for bad input before Ray starts,
    :class:`~raysweep.SweepFailed` when no trial succeeds, :class:`~raysweep.SweepInterrupted` on
    Ctrl-C during the trials (resume with :func:`resume_sweep`), and
    :class:`~raysweep.TrackingIncomplete` (its ``result`` is the sweep's result) when MLflow lacks part
    of the sweep because the process that writes the trial runs died.
    """
    unknown = sorted(set(options) - set(_PLAN_OPTIONS))
    if unknown:  # named after this function, not the one it passes them to
        import difflib

        close = difflib.get_close_matches(unknown[0], _PLAN_OPTIONS, n=1)
        raise TypeError(f"run_sweep() got an unexpected keyword argument {unknown[0]!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    plan = plan_sweep(recipe, dataset, **options)
    if options.get("name"):
        sweep_record.refuse_a_name_in_use(plan)
    if progress:  # as the command line says them
        for line in plan.said_at_start():
            print(line, file=sys.stderr, flush=True)
    from raysweep.sweep.environment import callers_environment_kept

    with callers_environment_kept():
        return run_planned(plan, verbose=verbose, progress=progress, tracking=tracking)


# help(run_sweep) and inspect.signature (notebooks' tooltips) show every option, not **options.
run_sweep.__signature__ = inspect.signature(run_sweep).replace(parameters=[  # type: ignore[attr-defined]
    *(p for p in inspect.signature(run_sweep).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD),
    *(p for name, p in inspect.signature(plan_sweep).parameters.items() if name in _PLAN_OPTIONS),
])
