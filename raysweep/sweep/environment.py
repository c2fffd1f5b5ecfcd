"""Ray's and the libraries' environment for a sweep: their own output quietened outside --verbose.

raysweep prints its own header, progress line and summary; Tune's per-trial tracebacks (raysweep
records each error itself), its loggers' files, MLflow's table-creation lines and its schema hint
stay out of that unless ``--verbose``. While a sweep runs, trial actors get no runtime env of
Tune's own (so that Ray starts them in the workers it already has) and no cloud credentials unless
results go to the cloud.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from raysweep.sweep.record import is_uri

#: what a sweep sets in its process for itself and the processes it starts: Tune's loggers and
#: output, Python's warnings, MLflow's client (quick-failing HTTP calls, no "View run" lines)
SWEEP_VARIABLES = (
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "RAY_AIR_NEW_OUTPUT", "TUNE_DISABLE_STRICT_METRIC_CHECKING", "RAY_DEDUP_LOGS",
    "PYTHONWARNINGS", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_TIMEOUT",
)  # fmt: skip


@contextlib.contextmanager
def callers_environment_kept() -> Iterator[None]:
    """Around a sweep run from Python: the caller's environment variables, warnings filters,
    library log levels and Python's global random state as they were before, once the sweep returns or raises (a plain Ray Tune
    run after a sweep wrote no result files, and a child process showed no warnings)."""
    import warnings

    import random

    variables = {name: os.environ.get(name) for name in SWEEP_VARIABLES}
    levels = {name: logging.getLogger(name).level for name in _CHATTY_LOGGERS}
    filtered = {name: _TUNE_ERROR_FILTER in logging.getLogger(name).filters for name in _TUNE_LOGGERS}
    draws = random.getstate()  # PBT seeds Python's global random module for its decisions
    try:
        with warnings.catch_warnings():  # the filters as they were, at its end
            yield
    finally:
        random.setstate(draws)
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        _replaced_levels.clear()
        for name, was in filtered.items():  # Tune's own lines, quietened for the sweep
            (logging.getLogger(name).addFilter if was else logging.getLogger(name).removeFilter)(_TUNE_ERROR_FILTER)


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
#: scikit-learn's imputer on a column with no value in any row, once per fit (seven times in an SVM
#: or MLP sweep's output): the dataset's note names the column once, and the model leaves it out
_EMPTY_COLUMN = r"Skipping features without any observed values"
_QUIETENED = (_SCHEMA_HINT, _EMPTY_COLUMN)
#: levels the loggers had before raysweep quietened them, put back under --verbose
_replaced_levels: dict[str, int] = {}


def _quiet_libraries(verbose: bool) -> None:
    import warnings

    if verbose:
        for name, level in _replaced_levels.items():
            logging.getLogger(name).setLevel(level)
        _replaced_levels.clear()
        warnings.filters[:] = [f for f in warnings.filters if f[1] is None or f[1].pattern not in _QUIETENED]
        return
    for name in _CHATTY_LOGGERS:
        library_logger = logging.getLogger(name)
        _replaced_levels.setdefault(name, library_logger.level)
        library_logger.setLevel(max(library_logger.level, logging.WARNING))
    for message in _QUIETENED:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)


class _TuneTrialErrors(logging.Filter):
    """Drops Tune's per-trial tracebacks (raysweep records each error itself: summary, MLflow) and
    its closing line about its result files (shown when the caller's own ``ray.init`` set INFO)."""

    PREFIXES = ("Trial task failed for trial", "Trials did not complete", "Wrote the latest version of all result files")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


_TUNE_ERROR_FILTER = _TuneTrialErrors()
#: credentials Tune would copy from the driver into every trial actor's runtime env (see
#: :func:`trial_runtime_env`)
_CREDENTIALS_NOT_PROPAGATED = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"}


#: the Tune loggers a sweep quietens outside --verbose (see :class:`_TuneTrialErrors`)
_TUNE_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune")


def _quiet_tune(verbose: bool) -> None:
    for name in _TUNE_LOGGERS:
        tune_logger = logging.getLogger(name)
        if verbose:
            tune_logger.removeFilter(_TUNE_ERROR_FILTER)
        else:
            tune_logger.addFilter(_TUNE_ERROR_FILTER)


#: sweeps inside :func:`trial_runtime_env` now, and Tune's settings as they were before the first
_sweeps_running = 0
_sweeps_lock = threading.Lock()
_tune_settings: dict[str, Any] = {}


@contextlib.contextmanager
def trial_runtime_env(storage: str) -> Iterator[None]:
    """While the sweep runs, the runtime env Tune gives each trial actor holds only what a trial
    of raysweep's needs; Tune's own settings are put back afterwards, for plain Tune runs in the
    same process. In a nested job, whose sweeps run in threads at once, the last one to end puts
    them back.

    - No ``PL_DISABLE_FORK`` (for PyTorch Lightning, which no raysweep family uses). A non-empty
      runtime env keeps Ray from handing the actor one of the idle workers it starts with
      ``ray.init`` (their env is empty): each actor then starts a new process through Ray's
      ``setup_worker.py`` and the runtime-env agent, and the idle workers go unused. Measured
      with a cold ``ray.init`` and two actors: 0.80 s to both actors' first answer with that
      env, 0.27 s without.
    - Cloud credentials only when results go to the cloud (``storage`` a URI): trials read their
      data from the object store, and Ray's runtime-env agent writes the env to its log.

    Private API: Tune copies ``ray.tune.execution.class_cache.DEFAULT_ENV_VARS`` and the variables
    named in ``ENV_VARS_TO_PROPAGATE`` into every trial actor's runtime env and offers no setting
    for either. Checked on Ray 2.60.
    """
    from ray.tune.execution import class_cache

    global _sweeps_running
    with _sweeps_lock:
        if _sweeps_running == 0:
            _tune_settings.update(defaults=dict(class_cache.DEFAULT_ENV_VARS), propagated=class_cache.ENV_VARS_TO_PROPAGATE)
            class_cache.DEFAULT_ENV_VARS.pop("PL_DISABLE_FORK", None)
            others = set(class_cache.ENV_VARS_TO_PROPAGATE) - _CREDENTIALS_NOT_PROPAGATED
            class_cache.ENV_VARS_TO_PROPAGATE = others | (_CREDENTIALS_NOT_PROPAGATED if is_uri(storage) else set())
        _sweeps_running += 1
    try:
        yield
    finally:
        with _sweeps_lock:
            _sweeps_running -= 1
            if _sweeps_running == 0:
                class_cache.DEFAULT_ENV_VARS.clear()
                class_cache.DEFAULT_ENV_VARS.update(_tune_settings.pop("defaults"))
                class_cache.ENV_VARS_TO_PROPAGATE = _tune_settings.pop("propagated")
