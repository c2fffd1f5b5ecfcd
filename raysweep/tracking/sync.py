"""``raysweep sync``: bring a sweep's MLflow runs up to date from Ray's own record of its trials.

While a sweep runs, every trial result goes to MLflow from the driver. What could not go (the
tracking server was away when the sweep ended, the driver was killed between two flushes) is
still in Ray's results: each trial folder holds ``result.json``, one JSON object per reported
result. ``raysweep sync SWEEP`` reads them and writes to MLflow whatever is missing there: the
trial runs (found by their ``raysweep.trial_id`` tag, created when absent), the metric values
of the steps MLflow does not have yet, and the end status of runs left open. It never writes a
step twice, so running it again changes nothing.

Run it once the sweep has stopped: a trial still open then is taken as cut off (KILLED), and
``raysweep resume`` continues it. Ray and MLflow are imported inside the command, so
``raysweep --help`` stays fast.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysweep.errors import UserError
from raysweep.tracking import schema

__all__ = ["ReplayedRun", "SyncReport", "replay_trial_folders", "sync_sweep"]

#: Tune's trial ids: the experiment's short id and the trial's index, ``e55ae_00007``
_TRIAL_ID = re.compile(r"_([0-9a-f]{5}_\d{5})_")


@dataclass
class SyncReport:
    """What one sync wrote to MLflow."""

    sweep: str
    tracking_uri: str
    parent_run_id: str
    trials: int = 0
    runs_created: int = 0
    metrics_written: int = 0
    runs_ended: dict[str, str] = field(default_factory=dict)  # run name -> the status it was given
    parent_status: str | None = None  # the status the parent run was given, None when left alone

    def to_dict(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep,
            "tracking_uri": self.tracking_uri,
            "parent_run_id": self.parent_run_id,
            "trials": self.trials,
            "runs_created": self.runs_created,
            "metrics_written": self.metrics_written,
            "runs_ended": self.runs_ended,
            "parent_status": self.parent_status,
        }


@dataclass
class _Trial:
    """One trial as Ray recorded it."""

    trial_id: str
    folder: Path
    results: list[dict[str, Any]]  # each step once, in step order
    config: dict[str, Any]
    error: str | None  # the end of error.txt, when Tune wrote one
    status: str | None  # Tune's status in its latest saved experiment state, when there is one


# -- reading Ray's record ------------------------------------------------------------------------
def _sweep_folder(name_or_path: str, storage: str | None) -> tuple[Path, dict[str, Any]]:
    from raysweep.sweep import record as sweep_record

    if sweep_record.is_uri(name_or_path) or sweep_record.is_uri(storage):
        raise UserError(f"sweep {name_or_path}: raysweep sync reads Ray's results from a local folder; copy the sweep's folder here first")
    found = sweep_record.find(name_or_path, storage)
    if found is None:
        raise UserError(sweep_record.not_found(name_or_path, storage, "under"))
    return Path(found[0]), found[1]


def _json_lines(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short when the driver was killed while writing it
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _saved_trials(folder: Path) -> dict[str, dict[str, Any]]:
    """Trial id -> its ``status`` and ``config`` in Tune's latest experiment state; empty when it
    cannot be read."""
    # The file Tune restores from: the greatest name (its session's start), not the newest time:
    # Tune copies every session's file again as a sweep ends, a fraction of a millisecond apart.
    states = sorted(folder.glob("experiment_state-*.json"), key=lambda path: path.name)
    if not states:
        return {}
    try:
        saved = json.loads(states[-1].read_text())
        trials = (json.loads(entry[0]) for entry in saved["trial_data"])
        return {trial["trial_id"]: {"status": trial["status"], "config": trial.get("config")} for trial in trials}
    except (ValueError, KeyError, TypeError, IndexError):
        return {}  # another Ray version's format: the results alone decide


def saved_trial_ids(folder: Path) -> set[str] | None:
    """The trials in Tune's latest experiment state in ``folder``, those a resumed sweep goes on
    with; None when there is no state to read (then nothing is taken for lost)."""
    return set(_saved_trials(folder)) or None


def _read_trials(folder: Path) -> list[_Trial]:
    saved = _saved_trials(folder)
    found = (_read_trial(path, saved) for path in sorted(path for path in folder.iterdir() if path.is_dir()))
    return [trial for trial in found if trial is not None]


def _read_trial(trial_folder: Path, saved: dict[str, dict[str, Any]]) -> _Trial | None:
    """One trial as Ray recorded it in its folder (and Tune's experiment state, ``saved``); None
    for a folder that is not a trial's."""
    found = _TRIAL_ID.search(f"_{trial_folder.name}_")
    results_file = trial_folder / "result.json"
    if found is None and not results_file.is_file():
        return None
    by_step: dict[int, dict[str, Any]] = {}
    for row in _json_lines(results_file) if results_file.is_file() else []:
        # A restored trial reports again the steps after its checkpoint: the first report counts.
        by_step.setdefault(int(row.get("training_iteration", 0) or 0), row)
    results = [by_step[step] for step in sorted(by_step)]
    trial_id = str(results[0]["trial_id"]) if results else (found.group(1) if found else None)
    if trial_id is None:
        return None
    config = results[-1].get("config") if results else None
    if config is None and (trial_folder / "params.json").is_file():
        config = json.loads((trial_folder / "params.json").read_text())
    state = saved.get(trial_id, {})
    if not config and isinstance(state.get("config"), dict):
        # A trial that had reported nothing when its sweep stopped has neither file in the
        # storage (Ray writes them elsewhere first); Tune's experiment state has its config.
        config = state["config"]
    error_file = trial_folder / "error.txt"
    error = schema.error_text(str(error_file)) if error_file.is_file() else None
    return _Trial(trial_id, trial_folder, results, dict(config or {}), error, state.get("status"))


# -- writing to MLflow ---------------------------------------------------------------------------
def _metrics(result: dict[str, Any], integer_resource: bool) -> tuple[int, list[Any]]:
    """The step and the metric values of one result, as the trial writer logs them."""
    from mlflow.entities import Metric

    step, values = schema.result_metrics(result, integer_resource)
    timestamp = int(result.get("timestamp", 0) * 1000)
    return step, [Metric(key, value, timestamp, step) for key, value in values]


def _outcome(trial: _Trial, max_steps: int, stopped_by: str | None = None) -> schema.Outcome:
    """How a trial whose run was left open ended, as Ray recorded it.

    Still open and neither done nor failed when the sweep stopped (a killed driver, a tracking
    server away at the end): cut off, and `raysweep resume` continues it; unless the sweep's own
    rule had ended it (``stopped_by``, from the sweep record).
    """
    last = trial.results[-1] if trial.results else {}
    if stopped_by and not last.get("done"):
        last = {**last, schema.SWEEP_STOP_RESULT: stopped_by}
    return schema.outcome_of(last, max_steps=max_steps, errored=trial.status == "ERROR")


@dataclass
class ReplayedRun:
    """A trial run as MLflow holds it once Ray's results for it are written."""

    run_id: str
    status: str  # MLflow's status of the run
    last_step: int  # the latest step MLflow has of the trial; -1 when it has none
    tags: dict[str, str]


def _trial_runs(client: Any, experiment_id: str, parent_id: str) -> dict[str, Any]:
    """The sweep's trial runs in MLflow, by trial id (their ``raysweep.trial_id`` tag)."""
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.`{schema.PARENT_RUN_ID}` = '{parent_id}'", max_results=50000
    )
    return {run.data.tags[schema.TRIAL_ID]: run for run in children if schema.TRIAL_ID in run.data.tags}


def _replay_trial(
    client: Any, trial: _Trial, run: Any, *, experiment_id: str, parent_id: str, sweep: str, integer_resource: bool
) -> tuple[Any, int, int]:
    """Write to a trial's run (``run``, or a new one when None) what Ray recorded and MLflow lacks:
    params, the steps MLflow does not have, the node tags. Never writes a step twice, never
    changes the run's status. Returns (the run as it was read, metric values written, the latest
    step MLflow now has)."""
    from mlflow.entities import Param, RunTag

    from raysweep.tracking.store import clean_param
    from raysweep.tracking.writer import BATCH_LIMIT as _BATCH_LIMIT

    from raysweep.sweep.auto import split

    family, config = split(dict(trial.config))
    if run is None:
        created = client.create_run(
            experiment_id,
            run_name=schema.trial_name(trial.trial_id),
            tags=schema.new_trial_run_tags(parent_id, sweep, trial.trial_id, family),
        )
        run = client.get_run(created.info.run_id)
    run_id = run.info.run_id
    # A new run, or one opened just before the server went away, lacks its params (they go
    # out with the trial's first metrics).
    params = [Param(k, clean_param(v)) for k, v in config.items() if k not in run.data.params]
    if params:
        client.log_batch(run_id, params=params)
    # the metric values of the steps MLflow does not have yet, key by key
    logged: dict[str, set[int]] = {}
    missing = []
    for result in trial.results:
        step, values = _metrics(result, integer_resource)
        for metric in values:
            if metric.key not in logged:
                logged[metric.key] = {m.step for m in client.get_metric_history(run_id, metric.key)}
            if step not in logged[metric.key]:
                missing.append(metric)
                logged[metric.key].add(step)
    for start in range(0, len(missing), _BATCH_LIMIT):
        client.log_batch(run_id, metrics=missing[start : start + _BATCH_LIMIT])
    first = next((r for r in trial.results if r.get("node_id")), None)
    if first is not None and schema.NODE_ID not in run.data.tags:
        tags = {schema.node_tag(k): str(first[k]) for k in schema.NODE_KEYS if first.get(k)}
        for key, tag in ((schema.DEVICE_RESULT, schema.DEVICE), (schema.GPU_IDS_RESULT, schema.GPU_IDS)):
            if first.get(key):
                tags[tag] = str(first[key])
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        run.data.tags.update(tags)
    return run, len(missing), max((max(steps, default=-1) for steps in logged.values()), default=-1)


def replay_trial_folders(
    client: Any, folders: list[str], *, experiment_id: str, parent_run_id: str, sweep: str, integer_resource: bool
) -> dict[str, ReplayedRun]:
    """Write to a running sweep's trial runs what Ray recorded in these trial folders and MLflow lacks.

    The same replay as ``raysweep sync`` and ``raysweep resume``, minus the ending: runs are
    found by their trial-id tag (created when absent), steps MLflow has are not written again,
    and no run's status changes (their trials may still be running). Returns every trial run
    of the sweep, by trial id, as MLflow now holds it.
    """
    runs = _trial_runs(client, experiment_id, parent_run_id)
    replayed = {
        trial_id: ReplayedRun(run.info.run_id, run.info.status, -1, dict(run.data.tags)) for trial_id, run in runs.items()
    }
    for folder in folders:
        trial = _read_trial(Path(folder), {}) if Path(folder).is_dir() else None
        if trial is None:
            continue
        run, _, last_step = _replay_trial(
            client, trial, runs.get(trial.trial_id), experiment_id=experiment_id, parent_id=parent_run_id,
            sweep=sweep, integer_resource=integer_resource,
        )  # fmt: skip
        replayed[trial.trial_id] = ReplayedRun(run.info.run_id, run.info.status, last_step, dict(run.data.tags))
    return replayed


def sync_sweep(name_or_path: str, *, storage: str | None = None, tracking_uri: str | None = None) -> SyncReport:
    """Write to MLflow what Ray recorded of a sweep's trials and MLflow lacks; returns what was written."""
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    from raysweep.tracking.store import check_reachable, resolve_tracking_uri, sqlite_path

    folder, record = _sweep_folder(name_or_path, storage)
    name = record["name"]
    if not record.get("parent_run_id"):
        raise UserError(f"sweep {name} ran without MLflow tracking: there is no parent run to sync to")
    uri = resolve_tracking_uri(tracking_uri or record["options"].get("tracking_uri"))
    check_reachable(uri)
    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        raise UserError(f"--tracking-uri {uri}: no MLflow store at {database}; pass the --tracking-uri sweep {name} logged to")
    client = MlflowClient(uri)
    parent_id, experiment_id = record["parent_run_id"], record["experiment_id"]
    from raysweep.tracking.writer_lock import refuse_while_running, wait_for_writer

    refuse_while_running(parent_id, name, "sync")
    # A killed driver's writer still writes what it was sent: read MLflow once it has, or a trial
    # it was about to create a run for would get two.
    if not wait_for_writer(parent_id, say=lambda line: print(line, file=sys.stderr)):
        raise UserError(f"sweep {name}: another raysweep process is still writing its MLflow runs; let it end (or stop it), then run this again")
    try:
        parent = client.get_run(parent_id)
    except Exception:
        raise UserError(
            f"--tracking-uri {uri}: no parent run {parent_id} of sweep {name} there; pass the --tracking-uri it logged to"
        ) from None
    integer_resource, max_steps = _resource_of(record)

    runs = _trial_runs(client, experiment_id, parent_id)
    report = SyncReport(name, uri, parent_id)
    trials = _read_trials(folder)
    report.trials = len(trials)
    open_after = False
    for trial in trials:
        report.runs_created += trial.trial_id not in runs
        run, written, _ = _replay_trial(
            client, trial, runs.get(trial.trial_id), experiment_id=experiment_id, parent_id=parent_id, sweep=name,
            integer_resource=integer_resource,
        )  # fmt: skip
        report.metrics_written += written
        if run.info.status == "RUNNING":
            ended = _outcome(trial, max_steps, record.get("stopped_by"))
            status, outcome, reason = ended
            tags = {schema.OUTCOME: outcome, schema.FINAL_CONFIG: json.dumps(trial.config, default=str)[:5000]}
            if reason:
                tags[schema.STOP_REASON] = reason
            last = trial.results[-1] if trial.results else {}
            detail = schema.stop_detail(ended, {**last, schema.SWEEP_STOP_RESULT: last.get(schema.SWEEP_STOP_RESULT) or record.get("stopped_by")})
            if detail:
                tags[schema.STOP_DETAIL] = detail
            if status == "FAILED" and trial.error:
                tags[schema.ERROR] = trial.error[-5000:]
            client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            client.set_terminated(run.info.run_id, status=status)
            report.runs_ended[run.info.run_name] = status
            open_after = open_after or status == "KILLED"
    seen = {trial.trial_id for trial in trials}
    for trial_id, run in runs.items():
        if trial_id not in seen and run.info.status == "RUNNING":
            # A run opened for a trial that never got as far as Ray's record of it.
            client.log_batch(
                run.info.run_id,
                tags=[RunTag(schema.OUTCOME, schema.OUTCOME_STOPPED), RunTag(schema.STOP_REASON, schema.REASON_INTERRUPTED)],
            )
            client.set_terminated(run.info.run_id, status="KILLED")
            report.runs_ended[run.info.run_name] = "KILLED"
            open_after = True
    if parent.info.status == "RUNNING":
        # All trials there and ended, and the outcome (refit, test score, model) made: the sweep ran
        # to its end (its summary may be missing: the tracking server was away). Otherwise it was
        # cut off, before or after its trials, and `raysweep resume` reopens the parent.
        options = record["options"]
        from raysweep.strategies.registry import get_searcher

        uncounted = options.get("fill_time_budget") or get_searcher(options.get("searcher") or "random").exhaustive
        expected = None if uncounted or record.get("stopped_by") else options.get("num_samples")
        # A record from before `outcome_done` was kept (None) goes by its trials alone.
        outcome = record.get("outcome_done") is not False
        complete = not open_after and (expected is None or len(trials) >= expected) and outcome
        report.parent_status = "FINISHED" if complete else "KILLED"
        client.set_terminated(parent_id, status=report.parent_status)
    return report


def end_job_run(record: dict[str, Any], done: bool, tracking_uri: str | None = None) -> str | None:
    """A nested validation's own run, once its sweeps are synced: FINISHED if the job wrote its
    outcome, otherwise KILLED (``raysweep resume`` writes the rest). None when it was not RUNNING."""
    from mlflow.tracking import MlflowClient

    from raysweep.tracking.store import check_reachable, resolve_tracking_uri

    if not record.get("parent_run_id"):
        return None
    uri = resolve_tracking_uri(tracking_uri or record["options"].get("tracking_uri"))
    check_reachable(uri)  # one line, not a traceback, when no sweep of the job got as far as syncing
    client = MlflowClient(uri)
    if client.get_run(record["parent_run_id"]).info.status != "RUNNING":
        return None
    status = "FINISHED" if done else "KILLED"
    client.set_terminated(record["parent_run_id"], status=status)
    return status


def _resource_of(record: dict[str, Any]) -> tuple[bool, int]:
    """Whether the sweep's resource is a whole number, and its steps: an auto sweep's are its common scale."""
    from raysweep.families import get_family
    from raysweep.recipes import validate_recipe_data
    from raysweep.sweep.auto import AUTO, common_steps

    raw = record["recipe"]
    if raw.get("family") == AUTO:
        members = [validate_recipe_data(member, record["recipe_source"], name) for name, member in raw["recipes"].items()]
        return False, common_steps(members)
    recipe = validate_recipe_data(raw, record["recipe_source"], record["recipe_name"])
    return get_family(recipe.family).integer_resource, recipe.resource.max_steps
