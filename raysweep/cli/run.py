"""``raysweep run`` and ``raysweep resume``: a sweep from the command line, its result printed."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click

from raysweep.cli.summary import report
from raysweep.errors import NothingToResume, SweepInterrupted, TrackingIncomplete


def _run_options(func: Any) -> Any:
    options = [
        click.option("--dataset", required=True, help="A built-in name (iris, wine, breast_cancer, digits, diabetes, make_classification[:n_samples=N,...], make_regression[:...]) or a CSV/Parquet path."),
        click.option("--target", help="The target column of a CSV/Parquet dataset."),
        click.option("--task", help="classification or regression: override the task inferred from the target."),
        click.option("--metric", help="accuracy, roc_auc, log_loss, f1_macro | rmse, mae, r2 (default: the recipe's)."),
        click.option("--scheduler", help="fifo, asha, hyperband or pbt: when to stop trials (default: the recipe's)."),
        click.option("--searcher", help="random, grid, hyperopt (TPE), optuna (TPE), gp (Gaussian process) or anneal: what to try next (default: the recipe's)."),
        click.option("--recipes", metavar="NAME,...", help="With RECIPE auto: the recipes (prebuilt names or YAML files) whose families compete in one sweep (default: every prebuilt recipe that fits the task)."),
        click.option("--num-samples", type=int, help="How many trials (default: the recipe's num_samples, 20 in the prebuilt ones; with grid: passes over the grid, default 1); with --nested-cv, per inner sweep."),
        click.option("--time-budget", type=float, help="Stop starting and running trials after this many seconds; without --num-samples, trials start until it is spent; with --nested-cv, per inner sweep (each starts when the cluster has CPUs for its trials, its budget with it)."),
        click.option("--stop-at", type=float, metavar="VALUE", help="End the sweep as soon as a trial's validation metric reaches VALUE (in the metric's direction: accuracy >= VALUE, rmse <= VALUE); the best config is refit as usual."),
        click.option("--patience", type=int, metavar="N", help="End the sweep when N finished trials in a row (run to the end or stopped early by the scheduler; failed ones do not count) did not improve the best validation score."),
        click.option("--gpus-per-trial", metavar="F", help="GPUs Ray reserves for each trial: a fraction in (0, 1] to share one (0.25: four trials per GPU) or a whole number. XGBoost trials train on their GPU; other families say they cannot."),
        click.option("--max-concurrent", type=int, help="Trials at once (default: one per CPU in the cluster); under hyperband, trials it paused come beside them."),
        click.option("--cv", type=int, help="Score each trial by K-fold cross-validation instead of one validation split."),
        click.option("--nested-cv", type=int, metavar="K", help="Nested validation: K outer folds of train+validation, each tuned by an inner sweep of its own and scored on its held-out fold (an unbiased estimate), then the final sweep; all at once on the same Ray. --num-samples and --time-budget apply to each inner sweep."),
        click.option("--seed", type=int, default=0, show_default=True, help="Makes the split, the configs and the models reproducible (0 to 4294967295)."),
        click.option("--name", help="The sweep's name (default: RECIPE-DATASET-TIMESTAMP)."),
        click.option("--storage", help="Where Ray keeps results and checkpoints (a path or a cloud URI; default: ./raysweep_results)."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field, e.g. space.max_depth.high=12."),
        click.option("--address", help="A Ray cluster to join (its head's GCS address HOST:PORT, or 'auto'); default: an embedded local Ray, or RAY_ADDRESS."),
        click.option("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."),
        click.option("--experiment", help="MLflow experiment (default: raysweep-DATASET, shared by every recipe run on the dataset)."),
        click.option("--max-failures", type=int, default=0, show_default=True, help="Retry a failed trial this many times."),
        click.option("--checkpoint-every", type=float, metavar="SECONDS", help="Checkpoint a running trial at most this often, for resume and retries; 0: after every step (default: 10)."),
        click.option("--warm-start", is_flag=True, help="Let the searcher learn first from earlier sweeps' trials of this recipe, dataset, metric and space, in any experiment of the store (optuna, gp: all as evaluated points; hyperopt, anneal: the best few tried first)."),
        click.option("--register-model", help="Register the refit best model in the MLflow Model Registry under this name."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the outcome on stdout."),
        click.option("--verbose", is_flag=True, help="Show Ray's own output instead of the live view."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command()
@click.argument("recipe")
@_run_options
def run(recipe: str, as_json: bool, verbose: bool, **options: Any) -> None:
    """Run a sweep of RECIPE (a prebuilt name or a YAML path, or auto: several families in one sweep) on a dataset."""
    _stop_on_sigterm()
    from raysweep.sweep.options import plan_sweep
    from raysweep.tracking.store import resolve_tracking_uri

    # A nested job's sweeps start their own writers, each on its thread.
    with _writer_started(None if options.get("nested_cv") else resolve_tracking_uri(options.get("tracking_uri")), verbose):
        options["overrides"] = list(options["overrides"])
        with _nothing_started_on_ctrl_c():
            plan = plan_sweep(recipe, options.pop("dataset"), **options)
            if options.get("name"):
                from raysweep.sweep.record import refuse_a_name_in_use

                refuse_a_name_in_use(plan)
        _execute(plan, as_json=as_json, verbose=verbose)


@contextlib.contextmanager
def _nothing_started_on_ctrl_c(
    message: str = "raysweep: interrupted before the sweep started: nothing was written, nothing to resume",
) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) while the input is read and checked: exit 130 and one line, as later
    (click alone says "Aborted!", exit 1)."""
    try:
        yield
    except KeyboardInterrupt:
        raise SweepInterrupted(message) from None


def _stop_on_sigterm() -> None:
    """SIGTERM (``kill``, ``timeout``, a job scheduler) stops the sweep as Ctrl-C does, resumable;
    Ctrl-C is never raised inside an import (:func:`raysweep.sweep.connect.interrupt_outside_imports`;
    a SIGINT ignored from the start, as under ``nohup``, stays ignored). Only a main thread can set
    a handler: a command invoked on another thread leaves both as they are."""
    from raysweep.sweep.connect import interrupt_on_sigterm, interrupt_outside_imports

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt_on_sigterm)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, interrupt_outside_imports)


@contextlib.contextmanager
def _writer_started(tracking_uri: str | None, verbose: bool) -> Iterator[None]:
    """Start the sweep's MLflow writer process for ``tracking_uri`` now, before this process reads
    its input (see :func:`raysweep.sweep.early.start_writer`): its MLflow import runs on the core
    this single-threaded start leaves idle. The sweep takes it; when the block raises first (bad
    input, Ctrl-C), it is ended at once. ``None``: no writer."""
    from raysweep.sweep import early
    from raysweep.sweep.environment import _quiet_environment

    if tracking_uri is not None:
        _quiet_environment(verbose)  # the writer inherits the sweep's environment (warnings off unless --verbose)
        early.start_writer(tracking_uri)
    try:
        yield
    except BaseException:
        early.drop_writer()
        raise


@click.command()
@click.argument("sweep")
@click.option("--storage", help="Where the sweep kept its state (default: ./raysweep_results).")
@click.option("--address", help="Continue on this Ray cluster (HOST:PORT, or 'local' for an embedded local Ray) instead of the one the sweep ran on.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the outcome on stdout.")
@click.option("--verbose", is_flag=True, help="Show Ray's own output instead of the live view.")
def resume(sweep: str, storage: str | None, address: str | None, as_json: bool, verbose: bool) -> None:
    """Continue an interrupted or killed sweep (by name, or the path of its folder)."""
    _stop_on_sigterm()
    from rich.console import Console

    from raysweep.sweep.run import find_resumable, resume_sweep
    from raysweep.tracking.store import resolve_tracking_uri

    if address and address != "local":  # its form is checked before anything else is read (it was after the data)
        from raysweep.sweep.connect import Target, check_address_form

        check_address_form(Target(address, "--address"))
    try:
        with _nothing_started_on_ctrl_c(f"raysweep: interrupted before the resume started: sweep {sweep} is as it was; resume it again"):
            folder, record = find_resumable(sweep, storage)  # a sweep that is complete says so in one line, before anything starts
    except NothingToResume as done:
        if as_json:  # a program reading stdout gets an object too, not nothing
            click.echo(json.dumps({"name": done.name or sweep, "nothing_to_resume": True, "message": str(done)}))
        raise
    nested = record.get("nested_cv") or record.get("nested_job")
    # Its import runs while the sweep's data is read again and Ray's results are synced.
    with _writer_started(None if nested else resolve_tracking_uri(record.get("options", {}).get("tracking_uri")), verbose):
        Console(stderr=True, highlight=False).print(f"raysweep: resuming {sweep}")
        live = not (as_json or verbose)
        stopped = None if nested else (record["name"], folder.rstrip("/").rsplit("/", 1)[0])
        _report_when_done(lambda: resume_sweep(sweep, storage=storage, verbose=verbose, progress=True, live=live, address=address), as_json, stopped)


def _execute(plan: Any, *, as_json: bool, verbose: bool) -> None:
    from rich.console import Console
    from rich.markup import escape

    from raysweep.space import grid_entries_size, grid_size
    from raysweep.sweep.run import run_planned
    from raysweep.strategies.registry import get_searcher

    from raysweep.tracking.store import check_reachable, resolve_tracking_uri

    with _nothing_started_on_ctrl_c():
        check_reachable(resolve_tracking_uri(plan.tracking_uri))
    err = Console(stderr=True, highlight=False)
    exhaustive = get_searcher(plan.searcher).exhaustive
    for line in plan.said_at_start():
        err.print(f"[yellow]{escape(line)}[/]" if line.startswith("note: ") else f"[dim]{escape(line)}[/]", soft_wrap=True)
    # soft_wrap: one line in a file or a pipe (Rich wraps at 80 columns there), the terminal wraps its own.
    err.print(
        f"raysweep: {plan.recipe.name} on {plan.dataset.name} ({plan.task}, {len(plan.dataset.y)} rows), "
        f"{plan.scheduler} + {plan.searcher}, {plan.options.trials_rule(exhaustive, (grid_size if exhaustive else grid_entries_size)(plan.recipe.space))}, "
        f"metric {plan.metric} ({plan.mode})"
        + (f"; nested validation: {plan.nested_cv} outer folds, the rule above for each inner sweep and the final sweep" if plan.nested_cv else ""),
        soft_wrap=True,
    )
    # The live view on a terminal; with --json (output for a program) or Ray's own output, a line per change.
    live = not (as_json or verbose)
    # A command-line sweep is the process's only use of the Ray it starts: Ray shuts down while the
    # best config is refit and logged (run_planned's release_ray).
    stopped = None if plan.nested_cv else (plan.name, plan.storage)
    _report_when_done(lambda: run_planned(plan, verbose=verbose, progress=True, live=live, release_ray=True), as_json, stopped)


def _report_when_done(sweep: Any, as_json: bool, stopped: tuple[str, str] | None = None) -> None:
    """Run the sweep and print its result, also when MLflow lacks part of it (then exit 1).
    ``stopped``: the sweep's (name, storage), for what a Ctrl-C before its trials says."""
    held_before = _ray_up()  # a program that invoked this command keeps its own Ray
    # With --json, stdout is the one JSON object: what Ray Tune prints there (its tables with --verbose) goes to stderr.
    kept = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        try:
            with kept:
                result = sweep()
        except TrackingIncomplete as exc:
            report(exc.result, as_json)
            raise
        except KeyboardInterrupt:
            if stopped is None:
                raise
            raise _interrupted_before_its_trials(*stopped) from None
        report(result, as_json)
    finally:
        if not held_before and _ray_up():
            _release_ray()


def _interrupted_before_its_trials(name: str, storage: str) -> SweepInterrupted:
    """What Ctrl-C (or SIGTERM) says when it came before Ray Tune took the sweep over (while Ray
    started, say: Tune's own handler turns one during the trials into a saved state), or after the
    sweep's outcome was logged: exit 130, and whether there is anything to resume (click alone
    says "Aborted!", exit 1)."""
    from raysweep.sweep import record as sweep_record
    from raysweep.tracking.store import report_command

    found = sweep_record.find(name, storage)
    if found is not None and found[1].get("outcome_done"):  # as it ended: its outcome was logged, nothing is left to resume
        tracking_uri = (found[1].get("options") or {}).get("tracking_uri")
        where = f"; see it with: {report_command(name, tracking_uri)}" if tracking_uri else ""
        return SweepInterrupted(f"sweep {name} interrupted as it ended: it is complete, its outcome logged, nothing to resume{where}")
    if sweep_record.tune_state_saved(f"{storage.rstrip('/')}/{name}"):
        return SweepInterrupted(f"sweep {name} interrupted; continue it with: {sweep_record.resume_command(name, storage)}")
    return SweepInterrupted(f"sweep {name} interrupted before its trials started: nothing to resume; run it again")


def _ray_up() -> bool:
    """This process is connected to a Ray (without importing Ray when it is not)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def _release_ray() -> None:
    """Shut down the Ray this command connected to (a resumed sweep's, a nested job's; a sweep run
    by ``raysweep run`` released its own already) and wait for its workers to exit
    (:func:`raysweep.sweep.early.shutdown_ray`). Ray's own shutdown as the interpreter exits does
    not wait for them: after an interrupt, trial actors that Tune had not ended yet could outlive
    the command."""
    from raysweep.sweep import early

    early.shutdown_ray().join()
