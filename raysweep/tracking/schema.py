"""Every MLflow name raysweep writes or reads, and the decisions about what goes under them.

A sweep is one parent run with one nested child run per trial. Each tag, param and metric name
below is written and read through this module only (the writer, sync, the sweep's outcome, and
the readers: ``report``, ``ui``); each decision (how a trial ended, which step a result is) is
one function here. Nothing here imports MLflow or Ray.
"""

from __future__ import annotations

import os
import re
from typing import Any, NamedTuple

# -- MLflow's own names ----------------------------------------------------------------------
#: the tag that nests a trial run under its sweep's parent run
PARENT_RUN_ID = "mlflow.parentRunId"
#: the experiment tag that marks a model-training experiment. MLflow 3.17's UI does not read it
#: (a feature flag fixed on in its bundle makes the URL's ``workflowType``, else the browser's
#: saved choice, decide the layout): raysweep's links carry ``workflowType=machine_learning``
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
#: experiment tags holding the UI's shared views (one per sweep)
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."

# -- the experiment a sweep goes to ---------------------------------------------------------
EXPERIMENT_PREFIX = "raysweep-"


def default_experiment(dataset: str) -> str:
    """The experiment of every sweep on a dataset, whatever its recipe: ``raysweep-breast_cancer``."""
    return f"{EXPERIMENT_PREFIX}{dataset}"


def legacy_experiment(recipe: str, dataset: str) -> str:
    """The default experiment before sweeps of one dataset shared one: ``raysweep-xgboost-breast_cancer`` (still read)."""
    return f"{EXPERIMENT_PREFIX}{recipe}-{dataset}"


# -- on every run of a sweep -----------------------------------------------------------------
SWEEP = "raysweep.sweep"

# -- on the parent run -----------------------------------------------------------------------
RECIPE = "raysweep.recipe"
RECIPE_HASH = "raysweep.recipe_hash"
FAMILY = "raysweep.family"
SCHEDULER = "raysweep.scheduler"
SEARCHER = "raysweep.searcher"
DATASET = "raysweep.dataset"
DATASET_FINGERPRINT = "raysweep.dataset_fingerprint"
TASK = "raysweep.task"
METRIC = "raysweep.metric"
VERSION = "raysweep.version"
RAY_VERSION = "raysweep.ray_version"
MLFLOW_VERSION = "raysweep.mlflow_version"
PYTHON_VERSION = "raysweep.python_version"
RAY_ADDRESS = "raysweep.ray_address"
BEST_CONFIG = "raysweep.best_config"
MODEL_URI = "raysweep.model_uri"
MODEL_FLAVOR = "raysweep.model_flavor"
#: why the sweep ended before its trial count or budget (``--stop-at``, ``--patience``); absent otherwise
STOPPED_BY = "raysweep.stopped_by"
REGISTERED_MODEL = "raysweep.registered_model"
#: a registered model version's lineage: its sweep's parent run and experiment
LINEAGE_PARENT_RUN_ID = "raysweep.parent_run_id"
LINEAGE_EXPERIMENT_ID = "raysweep.experiment_id"
#: a hash of the resolved search space: a warm start takes trials of sweeps over the same space
SPACE_HASH = "raysweep.space_hash"
#: the earlier sweeps (names, comma-separated) a warm-started sweep's searcher learnt from
WARM_START_FROM = "raysweep.warm_start_from"
#: the param: how many earlier trials the searcher was given
WARM_START_TRIALS = "warm_start_trials"
#: on the runs of one fold of a nested validation: a warm start never takes them
NESTED_FOLD = "raysweep.nested_fold"
#: on the runs of a nested validation's inner sweeps and final sweep: the job's name. Listings of
#: sweeps leave them out; the job's own run (tagged ``raysweep.nested_cv``) stands for them all
NESTED_JOB = "raysweep.nested_job"
#: on a nested validation's own run: K, its number of outer folds
NESTED_CV = "raysweep.nested_cv"
#: the table of a nested validation's folds (score, inner best, config), on its own run
NESTED_FOLDS_FILE = "nested_folds.json"
#: metrics of a nested validation's own run; the per-fold score has the fold (1..K) as its step
NESTED_OPTIMISM = "nested_optimism"
#: the filter that finds sweeps (parent runs) among an experiment's runs
SWEEP_RUN_FILTER = f"tags.`{RECIPE}` LIKE '%' AND tags.`{NESTED_JOB}` IS NULL"


def nested_metric(metric: str, what: str = "") -> str:
    """A nested validation's metric: ``nested_accuracy`` (per fold), ``nested_accuracy_mean``, ``nested_accuracy_std``."""
    return f"nested_{metric}" + (f"_{what}" if what else "")
NUM_TRIALS = "num_trials"
NUM_ERRORS = "num_errors"
NUM_STOPPED_EARLY = "num_stopped_early"
#: artifacts of the parent run
LEADERBOARD_FILE = "leaderboard.csv"
PLOTS_DIR = "plots"
RECIPE_FILE = "recipe.yaml"
SEARCH_SPACE_FILE = "search_space.json"
PBT_EXPLOITS_FILE = "pbt_exploits.json"
#: plots of the parent run, under PLOTS_DIR
IMPORTANCE_PLOT = "importance.png"
PBT_LINEAGE_PLOT = "pbt_lineage.png"
#: why the sweep has no parameter importance (too few trials, PBT), and over how many trials it has one
IMPORTANCE_SKIPPED = "raysweep.importance_skipped"
IMPORTANCE_TRIALS = "raysweep.importance_trials"
IMPORTANCE_PREFIX = "importance/"
MODEL_CLASSES_FILE = "model_classes.json"


def validation_metric(metric: str) -> str:
    """The metric a trial reports: ``val_accuracy``."""
    return f"val_{metric}"


def best_metric(metric: str) -> str:
    """The best validation score: ``best_val_accuracy`` (the sweep's on its parent run, a trial's so far on its run)."""
    return best_of(validation_metric(metric))


def best_of(metric_key: str) -> str:
    """The best-so-far metric of a validation metric: ``best_val_accuracy`` for ``val_accuracy``."""
    return f"best_{metric_key}"


def test_metric(metric: str) -> str:
    """The parent run's test score of the refit model: ``test_accuracy``."""
    return f"test_{metric}"


def best_param(name: str) -> str:
    """The parent run's param holding one value of the best config: ``best.max_depth``."""
    return f"best.{name}"


def importance_metric(name: str) -> str:
    """The parent run's importance of one searched parameter: ``importance/max_depth`` (shares sum to 1)."""
    return f"{IMPORTANCE_PREFIX}{name}"


def importances(metrics: dict[str, float]) -> dict[str, float]:
    """A parent run's parameter importances from its metrics, most important first."""
    found = {key[len(IMPORTANCE_PREFIX):]: value for key, value in metrics.items() if key.startswith(IMPORTANCE_PREFIX)}
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def lineage_tag(name: str) -> str:
    """A registered model version's tag: ``raysweep.<name>``."""
    return f"raysweep.{name}"


# -- on every trial run ------------------------------------------------------------------------
TRIAL_ID = "raysweep.trial_id"
OUTCOME = "raysweep.outcome"
STOP_REASON = "raysweep.stop_reason"
#: which rule of the scheduler stopped a trial early, where, and the cutoff it missed
STOP_DETAIL = "raysweep.stop_detail"
#: the result key that carries a scheduler's stop decision (text, not a metric) to the writer,
#: Ray's result files and the leaderboard
STOP_DETAIL_RESULT = "stop_detail"
#: the result key that marks a trial the sweep's own end cut short (``--stop-at``, ``--patience``),
#: with why the sweep ended
SWEEP_STOP_RESULT = "sweep_stop"
ERROR = "raysweep.error"
FINAL_CONFIG = "raysweep.final_config"
NODE_KEYS = ("node_id", "node_ip", "hostname")
#: the device a trial's model really trained on (``cpu``, ``cuda:0``), as the family reads it back
DEVICE = "raysweep.device"
#: the result key that carries it to the writer
DEVICE_RESULT = "device"
#: the GPUs Ray gave a trial (``0``, ``0,1``), and its result key
GPU_IDS = "raysweep.gpu_ids"
GPU_IDS_RESULT = "gpu_ids"
RETRIES = "raysweep.retries"
PBT_LAST_DONOR = "raysweep.pbt.last_donor"
PBT_LAST_DONOR_RUN_ID = "raysweep.pbt.last_donor_run_id"
PBT_EXPLOITS = "raysweep.pbt.exploits"
#: metrics of a trial run besides the result's own numbers
RESOURCE = "resource"
STEP_TIME = "step_time"
PBT_EXPLOITED_TRIAL = "pbt/exploited_trial"


def new_trial_run_tags(parent_run_id: str, sweep: str, trial_id: str, family: str | None = None) -> dict[str, str]:
    """The tags a trial's run is created with: nested under its sweep, found again by its trial id,
    and (``raysweep run auto``) the family it trains, as :data:`FAMILY` (the parent's holds ``auto``)."""
    tags = {PARENT_RUN_ID: parent_run_id, SWEEP: sweep, TRIAL_ID: trial_id, OUTCOME: OUTCOME_RUNNING}
    return tags if family is None else tags | {FAMILY: family}


def node_tag(key: str) -> str:
    """Where a trial ran: ``raysweep.node_id``, ``raysweep.node_ip``, ``raysweep.hostname``."""
    return f"raysweep.{key}"


NODE_ID = node_tag("node_id")


def retry_error_tag(retry: int) -> str:
    return f"raysweep.retry.{retry}.error"


def pbt_exploit_tag(count: int) -> str:
    return f"raysweep.pbt.exploit.{count}"


def hyperparameter_metric(name: str) -> str:
    """A PBT trial's live hyperparameter, logged by step: ``hp/learning_rate``."""
    return f"hp/{name}"


# -- how a trial ended ---------------------------------------------------------------------------
OUTCOME_RUNNING = "running"
OUTCOME_COMPLETED = "completed"
OUTCOME_STOPPED = "stopped_early"
OUTCOME_FAILED = "failed"
#: a trial Ray had not saved when the driver died: ``raysweep resume`` ran another in its place and deleted its run
OUTCOME_LOST = "lost"
REASON_SCHEDULER = "scheduler"
REASON_TIME_BUDGET = "time_budget"
REASON_INTERRUPTED = "sweep_interrupted"
REASON_FAILED = "sweep_failed"
#: the sweep ended early by its own rule (``--stop-at``, ``--patience``), a success
REASON_SWEEP_STOPPED = "sweep_stopped"
#: see :data:`OUTCOME_LOST`
REASON_NOT_SAVED = "not_in_rays_saved_state"


class Outcome(NamedTuple):
    """How a trial ended: its run's MLflow status, the ``raysweep.outcome`` tag and the stop reason."""

    status: str
    outcome: str
    reason: str | None = None


def trial_outcome(
    *, steps: int, max_steps: int, errored: bool, done: bool, budget_spent: bool = False, sweep_stopped: bool = False
) -> Outcome:
    """The one decision of how a trial ended, from what Ray recorded of it.

    ``steps`` is its last ``training_iteration``; ``done`` whether Tune ended it (a completed or
    scheduler-stopped trial's last result carries it); ``sweep_stopped`` whether the sweep's own
    end (``--stop-at``, ``--patience``) cut it short (its last result carries
    :data:`SWEEP_STOP_RESULT`). A trial that is none of these nor failed was cut off: by a spent
    time budget, else by the sweep's interruption (``raysweep resume`` continues it).
    """
    if errored:
        return Outcome("FAILED", OUTCOME_FAILED)
    if steps >= max_steps:
        return Outcome("FINISHED", OUTCOME_COMPLETED)
    if sweep_stopped:
        return Outcome("FINISHED", OUTCOME_STOPPED, REASON_SWEEP_STOPPED)
    if done:
        return Outcome("FINISHED", OUTCOME_STOPPED, REASON_SCHEDULER)
    if budget_spent:
        return Outcome("FINISHED", OUTCOME_STOPPED, REASON_TIME_BUDGET)
    return Outcome("KILLED", OUTCOME_STOPPED, REASON_INTERRUPTED)


def outcome_of(last_result: dict[str, Any], *, max_steps: int, errored: bool, budget_spent: bool = False) -> Outcome:
    """:func:`trial_outcome` of a trial from its last result as Ray recorded it."""
    return trial_outcome(
        steps=int(last_result.get("training_iteration", 0) or 0), max_steps=max_steps, errored=errored,
        done=bool(last_result.get("done")), budget_spent=budget_spent, sweep_stopped=bool(last_result.get(SWEEP_STOP_RESULT)),
    )  # fmt: skip


def stop_detail(ended: Outcome, last_result: dict[str, Any]) -> str | None:
    """What a stopped trial's run says in :data:`STOP_DETAIL`: the scheduler's rule, or why the sweep ended."""
    key = {REASON_SCHEDULER: STOP_DETAIL_RESULT, REASON_SWEEP_STOPPED: SWEEP_STOP_RESULT}.get(ended.reason or "")
    detail = last_result.get(key) if key else None
    return str(detail)[:5000] if detail else None


# -- what a result becomes -------------------------------------------------------------------------
#: result keys that are Tune's bookkeeping, not measurements
NOT_METRICS = frozenset({
    "done", "timestamp", "pid", "hostname", "node_ip", "node_id", "trial_id", "experiment_tag",
    "date", "time_this_iter_s", "time_total_s", "time_since_restore", "iterations_since_restore",
    "timesteps_total", "timesteps_since_restore", "episodes_total", "training_iteration",
    "should_checkpoint", "checkpoint_dir_name", "config", "resource", STOP_DETAIL_RESULT, SWEEP_STOP_RESULT, DEVICE_RESULT, GPU_IDS_RESULT,
})


def result_step(result: dict[str, Any], integer_resource: bool) -> int:
    """The MLflow step of a result: the resource spent (trees, rounds, epochs), else Tune's step."""
    if integer_resource and isinstance(result.get("resource"), (int, float)):
        return int(result["resource"])
    return int(result.get("training_iteration", 0) or 0)


def result_metrics(result: dict[str, Any], integer_resource: bool) -> tuple[int, list[tuple[str, float]]]:
    """The step of one result and the (name, value) metrics a trial run gets for it."""
    step = result_step(result, integer_resource)
    values = [
        (key, float(value))
        for key, value in result.items()
        if key not in NOT_METRICS and not isinstance(value, bool) and isinstance(value, (int, float))
    ]
    if not integer_resource and isinstance(result.get("resource"), (int, float)):
        # A fractional resource (a share of the rows) cannot be a step: it goes beside the step.
        values.append((RESOURCE, float(result["resource"])))
    return step, values


def trial_name(trial_id: str) -> str:
    """A readable trial name, ``trial-0007``, from Tune's ``<experiment>_00007`` trial id; a
    searcher's id (eight hex digits, ``02885254`` among them) as it is: ``trial-02885254``."""
    number = trial_number(trial_id)
    return f"trial-{number:04d}" if number is not None else f"trial-{trial_id}"


def trial_number(trial_id: str) -> int | None:
    """The trial's index in the sweep (7 for ``a1b2c_00007``), or None for another id shape
    (a searcher's hex id, even one of digits only)."""
    head, _, index = trial_id.rpartition("_")
    return int(index) if head and index.isdigit() else None


def error_text(error_file: str | None, error_msg: str | None = None) -> str:
    """The last lines of a failed trial's error, as its run's ``raysweep.error`` tag holds them."""
    text = ""
    if error_file and os.path.exists(error_file):
        with open(error_file, errors="replace") as handle:
            text = handle.read()
    if not text:
        text = str(error_msg or "")
    lines = _without_native_trace([line for line in text.strip().splitlines() if line.strip()])
    start = max(len(lines) - 6, 0)
    # An excerpt that begins inside a tab-indented list (Ray's ``ActorDiedError`` lists the actor's
    # fields under "The actor died unexpectedly ...") reaches back to the line the list belongs to.
    while start > 0 and lines[start].startswith("\t") and len(lines) - start < 12:
        start -= 1
    return "\n".join(lines[start:])


#: a line of the native stack trace a C++ library appends to its error (XGBoost: "Stack trace:", "  [bt] (8) ...")
_NATIVE_FRAME = re.compile(r"^\s*(\[bt\] \(\d+\) |Stack trace:\s*$)")


def _without_native_trace(lines: list[str]) -> list[str]:
    """The error's lines without the native stack trace at their end: XGBoost's errors end in ten
    lines of C++ frames, and their last line ("[bt] (8) .../libffi.so.8(ffi_call+0xcd)") was all a
    failed sweep said of why."""
    end = len(lines)
    while end > 1 and _NATIVE_FRAME.match(lines[end - 1]):
        end -= 1
    return lines[:end]


def error_headline(text: Any) -> str:
    """The line of an error that says what went wrong: its last, a native stack trace left out."""
    lines = _without_native_trace([line for line in str(text).strip().splitlines() if line.strip()])
    return lines[-1].strip() if lines else ""


def trial_error(trial: Any) -> str:
    """The end of a failed Tune trial's error (from its error file, else its message)."""
    return error_text(getattr(trial, "error_file", None), getattr(trial, "error_msg", None))
