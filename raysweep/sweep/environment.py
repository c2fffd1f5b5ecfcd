"""Ray's and the libraries' environment for a sweep: their own output quietened outside --verbose.

raysweep prints its own header, progress line and summary; Tune's per-trial tracebacks (raysweep
records each error itself), its loggers' files, MLflow's table-creation lines and its schema hint
stay out of that unless ``--verbose``. Trial actors get no runtime env of Tune's own while a sweep
runs, so that Ray starts them in the workers it already has.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

from raysweep.sweep.record import is_uri

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
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        tune_logger = logging.getLogger(name)
        if verbose:
            tune_logger.removeFilter(_TUNE_ERROR_FILTER)
        else:
            tune_logger.addFilter(_TUNE_ERROR_FILTER)
    _propagate_credentials(is_uri(storage))


#: sweeps inside :func:`trial_actors_in_started_workers` now, and what it took out of Tune's env
_sweeps_running = 0
_sweeps_lock = threading.Lock()
_removed: dict[str, str] = {}


@contextlib.contextmanager
def trial_actors_in_started_workers() -> Iterator[None]:
    """While the sweep runs, let trial actors start in the workers Ray has already started.

    Tune gives every trial actor the runtime env ``{"env_vars": {"PL_DISABLE_FORK": "1"}}`` (for
    PyTorch Lightning, which no raysweep family uses). A non-empty runtime env keeps Ray from
    handing the actor one of the idle workers it starts with ``ray.init`` (their env is empty):
    each actor then starts a new process through Ray's ``setup_worker.py`` and the runtime-env
    agent, and the idle workers go unused. Measured with a cold ``ray.init`` and two actors:
    0.80 s to both actors' first answer with that env, 0.27 s without.

    Private API: Tune copies ``ray.tune.execution.class_cache.DEFAULT_ENV_VARS`` into every trial
    actor's runtime env and offers no setting for it. Checked on Ray 2.60. The variable is put
    back afterwards, for plain Tune runs in the same process.
    """
    from ray.tune.execution import class_cache

    global _sweeps_running
    with _sweeps_lock:
        if _sweeps_running == 0:
            _removed.clear()
            if "PL_DISABLE_FORK" in class_cache.DEFAULT_ENV_VARS:
                _removed["PL_DISABLE_FORK"] = class_cache.DEFAULT_ENV_VARS.pop("PL_DISABLE_FORK")
        _sweeps_running += 1
    try:
        yield
    finally:
        with _sweeps_lock:
            _sweeps_running -= 1
            if _sweeps_running == 0:  # the last of a nested job's sweeps, running in threads at once
                class_cache.DEFAULT_ENV_VARS.update(_removed)


def _propagate_credentials(needed: bool) -> None:
    """Copy cloud credentials into trial actors only when results go to the cloud.

    Private API: Tune copies ``ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE`` into every
    trial actor's runtime env, and offers no setting for it. Checked on Ray 2.60.
    """
    from ray.tune.execution import class_cache

    # Results going to a local folder: trials have no use for cloud credentials.
    wanted = _CREDENTIALS_NOT_PROPAGATED if needed else set()
    others = set(class_cache.ENV_VARS_TO_PROPAGATE) - _CREDENTIALS_NOT_PROPAGATED
    class_cache.ENV_VARS_TO_PROPAGATE = others | wanted
