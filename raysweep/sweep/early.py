"""Work a sweep starts before it needs it, so that a small sweep does not wait for it in turn.

Four pieces of a sweep's time are not on its own critical path, measured on the README's demo
(2 cores, cold start):

* Opening the MLflow store (importing MLflow, checking the sqlite tables or, for a new store,
  copying empty ones: see :mod:`raysweep.tracking.new_store`)
  and importing Ray Tune, the trainable and the searcher's library (about 1 s) do not need a
  running Ray; they run while Ray starts, which spends most of its 4 s waiting for its processes.
* The modules the end of a sweep uses (MLflow's model flavors and signature inference, skops for
  a scikit-learn model, Optuna for the importance, matplotlib for a PBT lineage chart: 1-2 s of
  imports) load while the trials
  run in Ray's workers and the driver mostly waits for their results. The other charts are drawn
  by a process of their own at the end (:mod:`raysweep.tracking.drawing`).
* The MLflow writer process's import of MLflow (about 1 s of CPU) runs while the sweep prepares its
  data, with a core to itself, instead of beside the first trials: measured on 300 no-op trials,
  median of 3 pairs, the sweep took 6.30 s against 6.80 s. The command line starts it before it
  even reads the recipe and the dataset (see :func:`start_writer`).
* Ray's own shutdown (about 0.4 s once its autoscaler monitor is killed first, 1.1 s otherwise:
  its processes are asked to exit and waited for, its workers too) runs while the best config is
  refit and logged, when the command-line sweep started Ray itself: the refit, the plots and the
  model need nothing from Ray.

Tried and left out: Ray's ``preload_python_modules`` (every worker of an embedded Ray imports Ray
Tune and XGBoost as it starts). A lone actor's first result came 1.6 s sooner, but in the demo
the workers' imports competed with the driver for the two cores and the first trial came 3 s
later (median of 3 runs each).

Each piece runs in a daemon thread and never fails the sweep: when it fails, the step that needs
its work does that work itself, in turn, and reports its own error as before.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

logger = logging.getLogger(__name__)

#: held while MLflow's map of installed distributions is built (see :func:`import_modules`)
_PACKAGES_MAP = threading.Lock()


def in_background(name: str, work: Callable[[], Any]) -> threading.Thread:
    """Start ``work`` in a daemon thread; an exception in it is logged at debug level and dropped."""

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # the step that needs this work repeats it and reports
            logger.debug("raysweep: %s in the background failed: %s", name, exc)

    thread = threading.Thread(target=run, name=f"raysweep-{name}", daemon=True)
    thread.start()
    return thread


def before_ray(tracking_uri: str | None, modules: list[str]) -> threading.Thread:
    """Open (and for sqlite, create) the MLflow store of ``tracking_uri``, then import ``modules``, in the background.

    MLflow keeps one store per URI (``_get_store`` is cached), so the tracker's own client finds
    it open. Join the thread before anything else opens the same store: two threads creating one
    sqlite database's tables at once would collide.
    """

    def work() -> None:
        if tracking_uri:
            from mlflow.tracking import MlflowClient

            from raysweep.tracking.new_store import seed_sqlite_store
            from raysweep.tracking.store import quick_failing_client_defaults, sqlite_path

            quick_failing_client_defaults()
            seed_sqlite_store(sqlite_path(tracking_uri))
            MlflowClient(tracking_uri)._tracking_client.store  # noqa: B018 (the property opens the store)
        for name in modules:
            importlib.import_module(name)

    return in_background("mlflow-store", work)


def import_modules(names: list[str], model: Callable[[], Any] | None = None) -> threading.Thread:
    """Import ``names`` in the background (the imports the end of the sweep will need), after
    ``model``, which imports the refit's model class (``Family.estimator_class``: the recipe check
    imported it before Ray starts unless the check was remembered, see :mod:`raysweep._cache`)."""

    def work() -> None:
        if model is not None:
            try:
                model()
            except Exception:  # a family without one class (an auto sweep's stand-in): the refit imports its own
                pass
        for name in names:
            try:
                if name == "skops.io":
                    from raysweep.tracking._skops import import_skops_io

                    import_skops_io()  # without skops' scan of every loaded module for each ufunc
                else:
                    importlib.import_module(name)
            except ImportError:  # the step that needs it says so
                continue
        if "matplotlib" in names:
            import matplotlib

            matplotlib.use("Agg")
        if "mlflow.models" in names:
            # MLflow checks a logged model's requirements against what is installed, from a map of
            # every installed distribution that it builds once (half a second): built here, it is
            # off the end of the sweep. Private: without it, log_model builds the map itself.
            # MLflow builds it when its global is unset and does not lock: the sweeps of a nested
            # validation, started at once, each built it (a sixth of a py-spy profile's samples of
            # the driver on letter, though its CPU time did not measurably drop once built once).
            try:
                from mlflow.utils.requirements_utils import _init_modules_to_packages_map

                with _PACKAGES_MAP:
                    _init_modules_to_packages_map()
            except Exception:
                pass

    return in_background("imports", work)


def end_modules(family: Any, has_categories: bool, *, tracked: bool, importance: bool, charts: bool = True) -> list[str]:
    """The modules the end of a sweep imports: Optuna for the importance; when tracked, the model's
    (MLflow's flavor for the refit model, its signature inference, and for a scikit-learn model
    skops, the format it is saved in: 0.8-1.1 s, most of it skops listing scikit-learn's
    estimators) and, with ``charts`` (drawn in this process, not by a drawing process),
    matplotlib."""
    names = []
    if importance:
        names += ["optuna", "optuna.importance"]
    if tracked:
        flavor = family.native_flavor(has_categories) or "sklearn"
        if charts:
            names += ["matplotlib", "matplotlib.pyplot", "matplotlib.collections"]
        # mlflow.pyfunc: every flavor's save_model adds the pyfunc flavor (0.8 s, MLflow's pydantic types)
        names += ["mlflow.models", "mlflow.models.signature", f"mlflow.{flavor}", "mlflow.pyfunc", "raysweep.tracking.outcome"]
        if flavor == "sklearn":
            names.append("skops.io")  # imported by raysweep.tracking._skops (see import_modules)
    return names


#: the writer processes started by :func:`start_writer`, until their sweeps' callbacks take them:
#: one per thread (the sweeps of a nested job start at once, each in a thread of its own)
_early_writers: dict[int, Any] = {}
_EARLY_WRITERS = threading.Lock()


def start_writer(tracking_uri: str) -> None:
    """Start the sweep's MLflow writer process now (``raysweep.tracking._writer_process.spawn``):
    its MLflow import (about a second of CPU) runs while this process prepares the sweep, not
    beside the first trials. :func:`take_writer`, on the same thread, hands it to the callback;
    one never taken (the sweep failed first) is ended by :func:`drop_writer`, by the thread's next
    call here when it does not suit that call's store (it is kept when it does, see below), or
    when this process exits (its input closes).

    A writer this thread started earlier for the same kind of store, still running, is kept: the
    command line starts one before it reads the recipe and the dataset (the writer only imports
    until it is told its sweep, so nothing reaches MLflow before the input is checked), and on 2
    cores its import then runs beside that single-threaded start, on the idle core. The README's
    demo: 0.94x the wall time (6 alternating pairs, 0.90-0.97x), before :func:`shutdown_ray` stopped
    waiting on Ray's autoscaler monitor."""
    from raysweep.tracking._writer_process import spawn, suits

    with _EARLY_WRITERS:
        kept = _early_writers.get(threading.get_ident())
    if kept is not None and suits(kept, tracking_uri):
        return
    drop_writer()
    try:
        process = spawn(tracking_uri)
    except OSError as exc:  # the callback starts one itself, and says so if it cannot
        logger.debug("raysweep: could not start the MLflow writer early: %s", exc)
        return
    with _EARLY_WRITERS:
        _early_writers[threading.get_ident()] = process


def take_writer() -> Any:
    """The writer process :func:`start_writer` started on this thread (None if none), now the caller's."""
    with _EARLY_WRITERS:
        return _early_writers.pop(threading.get_ident(), None)


def drop_writer() -> None:
    """End a writer process this thread started early and never took."""
    process = take_writer()
    if process is not None:
        process.kill()
        process.wait()


def shutdown_ray() -> threading.Thread:
    """Shut down the Ray this process started, in the background (see the module's docstring)."""

    def work() -> None:
        import ray

        workers = _node_workers()
        _stop_autoscaler_monitor()
        with _sigterm_disposition_kept():
            ray.shutdown()
        _wait_for_exit(workers, WORKERS_EXIT_S)

    return in_background("ray-shutdown", work)


@contextmanager
def _sigterm_disposition_kept() -> Iterator[None]:
    """Put SIGTERM's disposition back as it was once ``ray.shutdown`` has returned.

    Ray's core worker, as it shuts down, resets SIGTERM to the system's default at the C level
    (its failure signal handler covers SIGTERM; checked on Ray 2.60), while Python still names its
    own handler: a SIGTERM during the refit or the model's logging then ended the process at once
    (exit 143), its parent run left RUNNING, where it should stop the sweep as Ctrl-C does. Python's
    ``signal.signal`` works in the main thread only, and the shutdown runs in a thread of its own:
    so the disposition is read and written back with the C library's ``sigaction``, into and out
    of one buffer larger than any platform's ``struct sigaction`` (its layout never matters). Where
    that is not possible, Ray's shutdown goes on as before.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        saved: Any = ctypes.create_string_buffer(512)
        if libc.sigaction(signal.SIGTERM, None, saved) != 0:
            saved = None
    except (OSError, AttributeError, ImportError):
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            libc.sigaction(signal.SIGTERM, saved, None)


#: how long the shutdown waits for the node's worker processes to exit before it kills them
WORKERS_EXIT_S = 10.0


def _node_workers() -> list[Any]:
    """The processes the raylet of the Ray this process started has started (its workers, the
    trial actors among them, and its agents), as ``psutil.Process``; none when this process
    started no Ray.

    ``ray.shutdown`` returns once it has asked the raylet to stop. A worker exits after its
    raylet is gone, and a trial actor that Tune had not ended yet (a sweep stopped by Ctrl-C or
    SIGTERM) was measured still running 0.5 s after the command had exited, on a loaded machine:
    the Ray worker's own SIGTERM handler raised ``SystemExit`` inside a weak reference's callback,
    where Python ignores it.
    """
    try:
        import psutil  # Ray's own copy: importable once Ray is
        from ray._private import ray_constants

        raylets = _started_here(ray_constants.PROCESS_TYPE_RAYLET)
        return [child for process in raylets for child in psutil.Process(process.pid).children(recursive=True)]
    except Exception as exc:  # Ray's shutdown goes on as before
        logger.debug("raysweep: could not list Ray's worker processes: %s", exc)
        return []


def _wait_for_exit(processes: list[Any], timeout_s: float) -> None:
    """Wait until ``processes`` have exited; SIGKILL what is left after ``timeout_s``: their Ray is gone."""
    if not processes:
        return
    try:
        import psutil

        _, alive = psutil.wait_procs(processes, timeout=timeout_s)
        for process in alive:
            logger.debug("raysweep: Ray's process %s did not exit with its node; killed", process.pid)
            process.kill()
        psutil.wait_procs(alive, timeout=1)
    except Exception as exc:
        logger.debug("raysweep: could not wait for Ray's worker processes: %s", exc)


def _stop_autoscaler_monitor() -> None:
    """Kill the autoscaler monitor of the Ray this process started, before ``ray.shutdown``.

    ``ray.shutdown`` stops the raylet and the GCS first, then sends the monitor SIGTERM. The
    monitor's SIGTERM handler tells the drivers, through the GCS that is gone, that the
    autoscaler failed, and Ray kills it after waiting a second: a second of every shutdown
    (1.13 s, 1.01 of them on the monitor, measured on a local Ray with two actors). Killed first
    (SIGKILL, so no handler runs), the whole shutdown took 0.36 s. The monitor of a local Ray
    started by ``ray.init`` has no nodes to scale; the Ray a sweep starts has no monitor
    (``raysweep.sweep.connect._embedded_head``) unless Ray refused the setting. Private API
    (``Node.all_processes``, checked on Ray 2.60): without it, Ray's own shutdown runs as before.
    """
    try:
        from ray._private import ray_constants

        for process in _started_here(ray_constants.PROCESS_TYPE_MONITOR):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=1)
    except Exception as exc:  # Ray's shutdown kills it then
        logger.debug("raysweep: could not stop Ray's autoscaler monitor first: %s", exc)


def _started_here(kind: str) -> list[Any]:
    """The processes of one of Ray's kinds (``ray_constants.PROCESS_TYPE_*``) that the Ray this
    process started runs, as ``subprocess.Popen``; none when this process joined a Ray or has
    none. Private API (``Node.all_processes``, checked on Ray 2.60)."""
    from ray._private import worker

    node = worker._global_node
    if node is None or not node.head:
        return []
    return [info.process for info in node.all_processes.get(kind, [])]
