"""Reading a sweep back from MLflow: finding sweeps, their trial runs and their leaderboard.

Every name read here comes from :mod:`raysweep.tracking.schema`. MLflow is imported by the caller
(the client it passes in), so this module stays light.
"""

from __future__ import annotations

import math
import re
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from raysweep.errors import UserError
from raysweep.tracking import schema
from raysweep.tracking.store import check_reachable, sqlite_path, uri_label


def open_store(uri: str) -> Any:
    """An MLflow client for an existing store: a missing sqlite file is an error, not a new store."""
    from mlflow.tracking import MlflowClient

    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        label, _ = uri_label(uri)
        raise UserError(
            f"{label}: no MLflow store at {database}; run a sweep here first, "
            "or pass the --tracking-uri the sweep logged to (or set MLFLOW_TRACKING_URI)"
        )
    check_reachable(uri)
    return MlflowClient(uri)


def all_experiment_ids(client: Any) -> list[str]:
    return [experiment.experiment_id for experiment in client.search_experiments(max_results=50000)]


def recent_sweeps(client: Any, limit: int = 10, experiment_ids: list[str] | None = None) -> list[Any]:
    """The newest sweep (parent) runs in the store, newest first."""
    ids = experiment_ids if experiment_ids is not None else all_experiment_ids(client)
    if not ids:
        return []
    return list(
        client.search_runs(ids, filter_string=schema.SWEEP_RUN_FILTER, order_by=["attributes.start_time DESC"], max_results=limit)
    )


def _quoted(value: str) -> str:
    return f'"{value}"' if "'" in value else f"'{value}'"


def find_sweep(client: Any, name: str, experiment_ids: list[str] | None = None) -> Any | None:
    """The newest sweep run named ``name`` (tag ``raysweep.sweep``), or the sweep run whose run id
    ``name`` is, or None. A nested validation's sweeps (``NAME-fold2``, ``NAME-final``), left out of
    the listings, are found by their name too."""
    ids = experiment_ids if experiment_ids is not None else all_experiment_ids(client)
    if not ids:
        return None
    for scope in (schema.SWEEP_RUN_FILTER, f"tags.`{schema.RECIPE}` LIKE '%'"):
        runs = client.search_runs(
            ids, filter_string=f"tags.`{schema.SWEEP}` = {_quoted(name)} AND {scope}", order_by=["attributes.start_time DESC"], max_results=1,
        )  # fmt: skip
        if runs:
            return runs[0]
    return _sweep_of_run_id(client, name, ids)


def _sweep_of_run_id(client: Any, text: str, experiment_ids: list[str]) -> Any | None:
    """The sweep run whose MLflow run id ``text`` is (as the UI and ``report`` print it), or None."""
    if not _RUN_ID.fullmatch(text):
        return None
    try:
        run = client.get_run(text)
    except Exception:  # no such run in this store
        return None
    if run.info.experiment_id not in experiment_ids or schema.RECIPE not in run.data.tags or schema.PARENT_RUN_ID in run.data.tags:
        return None  # a trial's run, or one that is not raysweep's
    return run


_RUN_ID = re.compile(r"[0-9a-f]{32}")


def same_named_sweeps(client: Any, sweep_run: Any) -> list[Any]:
    """The other sweeps of ``sweep_run``'s experiment with its name (another ``--storage``, or a
    name used again after its folder was removed), newest first."""
    name = sweep_run.data.tags.get(schema.SWEEP)
    if not name:
        return []
    runs = client.search_runs(
        [sweep_run.info.experiment_id], filter_string=f"tags.`{schema.SWEEP}` = {_quoted(name)} AND {schema.SWEEP_RUN_FILTER}",
        order_by=["attributes.start_time DESC"], max_results=100,
    )  # fmt: skip
    return [run for run in runs if run.info.run_id != sweep_run.info.run_id]


def experiments_with_sweep(client: Any, name: str) -> list[str]:
    """The names of the experiments that hold a sweep named ``name``, newest sweep first."""
    ids = all_experiment_ids(client)
    runs = client.search_runs(
        ids, filter_string=f"tags.`{schema.SWEEP}` = {_quoted(name)} AND {schema.SWEEP_RUN_FILTER}", order_by=["attributes.start_time DESC"],
        max_results=100,
    ) if ids else []  # fmt: skip
    found = dict.fromkeys(run.info.experiment_id for run in runs)
    return [client.get_experiment(experiment_id).name for experiment_id in found]


def newest_sweep(client: Any, uri: str) -> Any:
    """The sweep run that started last in the store; an empty store is an error that says so."""
    newest = recent_sweeps(client, 1)
    if not newest:
        raise UserError(f"no sweep in {uri} yet: run one with `raysweep run`, or pass the --tracking-uri a sweep logged to")
    return newest[0]


def unknown_sweep(client: Any, name: str, uri: str) -> UserError:
    names = [run.data.tags.get(schema.SWEEP, run.info.run_name) for run in recent_sweeps(client)]
    if not names:
        return UserError(f"no sweep named {name!r} in {uri}: it holds no raysweep sweeps yet; run one with `raysweep run`")
    return UserError(f"no sweep named {name!r} in {uri}; recent sweeps: {', '.join(names)}")


def trials_filter(sweep_run: Any) -> str:
    """The search filter that selects a sweep's trial runs (and not the sweep's own run)."""
    return f"tags.`{schema.PARENT_RUN_ID}` = '{sweep_run.info.run_id}'"


def child_runs(client: Any, sweep_run: Any, order_by: list[str] | None = None, max_results: int = 50000) -> list[Any]:
    return list(
        client.search_runs(
            [sweep_run.info.experiment_id], filter_string=trials_filter(sweep_run), order_by=order_by, max_results=max_results
        )
    )


def first_failed_trial(client: Any, sweep_run: Any) -> Any:
    """The sweep's first trial run to fail (its ``raysweep.error`` says why), or None."""
    found = client.search_runs(
        [sweep_run.info.experiment_id], filter_string=f"{trials_filter(sweep_run)} and tags.`{schema.OUTCOME}` = '{schema.OUTCOME_FAILED}'",
        order_by=["attributes.start_time ASC"], max_results=1,
    )  # fmt: skip
    return found[0] if found else None


def sweep_metric(sweep_run: Any) -> tuple[str, str]:
    """The sweep's metric (``accuracy``) and its mode (``max`` or ``min``)."""
    tags, params = sweep_run.data.tags, sweep_run.data.params
    return tags.get(schema.METRIC) or params.get("metric", ""), params.get("mode", "max")


def metric_and_mode(sweep_run: Any) -> tuple[str, str]:
    """The sweep's validation metric key (``val_<metric>``) and its mode (``max`` or ``min``)."""
    metric, mode = sweep_metric(sweep_run)
    return schema.validation_metric(metric), mode


def named_experiments(client: Any, uri: str, experiment: str) -> dict[str, str]:
    """Experiment id -> name of ``--experiment``: the experiment of that name, and for a dataset's
    default experiment (``raysweep-iris``) also the per-recipe ones older raysweep put that dataset's
    sweeps in (``raysweep-xgboost-iris``). None of them is a :class:`UserError` naming those there are.
    """
    found = client.get_experiment_by_name(experiment)
    named = {found.experiment_id: found.name} if found is not None else {}
    if experiment.startswith(schema.EXPERIMENT_PREFIX):
        dataset = experiment[len(schema.EXPERIMENT_PREFIX):]
        pattern = schema.legacy_experiment("%", dataset)
        for candidate in client.search_experiments(filter_string=f"name LIKE {_quoted(pattern)}", max_results=1000):
            if candidate.experiment_id in named:
                continue
            # the LIKE pattern is loose ("_" matches any character): a legacy experiment holds
            # sweeps on this dataset whose recipe gives exactly its name
            sweeps = client.search_runs(
                [candidate.experiment_id], filter_string=f"tags.`{schema.DATASET}` = {_quoted(dataset)} AND {schema.SWEEP_RUN_FILTER}",
                max_results=1,
            )
            if sweeps and schema.legacy_experiment(sweeps[0].data.tags.get(schema.RECIPE, ""), dataset) == candidate.name:
                named[candidate.experiment_id] = candidate.name
    if not named:
        names = [e.name for e in client.search_experiments(max_results=20, order_by=["last_update_time DESC"])]
        raise UserError(f"--experiment {experiment}: no such experiment in {uri}; experiments there: {', '.join(names) or '(none)'}")
    return named


def target_sweep(client: Any, uri: str, experiment: str | None, sweep: str | None, named_by: str = "--sweep") -> tuple[str | None, Any | None]:
    """The experiment id and sweep run the UI (or ``report``) should open (None, None for an empty
    store); ``named_by``: how the command's errors name the sweep's argument."""
    ids = None
    if experiment:
        ids = list(named_experiments(client, uri, experiment))
    if sweep:
        run = find_sweep(client, sweep, ids)
        if run is None:
            # named in another experiment than --experiment: say which, not that it does not exist
            elsewhere = find_sweep(client, sweep) if ids is not None else None
            if elsewhere is not None:
                name = client.get_experiment(elsewhere.info.experiment_id).name
                raise UserError(
                    f"{named_by} {sweep}: that sweep is in experiment {name}, not {experiment}; "
                    f"pass --experiment {name}, or leave --experiment out"
                )
            raise unknown_sweep(client, sweep, uri)
        return run.info.experiment_id, run
    newest = recent_sweeps(client, 1, ids)
    if newest:
        return newest[0].info.experiment_id, newest[0]
    return (ids[0] if ids else None), None


def leaderboard(client: Any, sweep_run: Any) -> Any:
    """The sweep's leaderboard: its leaderboard.csv artifact, else rebuilt from the trial runs.

    Either way a trial's score is its best step's (:mod:`raysweep.best`), with the resource at it.
    """
    import pandas as pd

    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(sweep_run.info.run_id, schema.LEADERBOARD_FILE, folder)
            return pd.read_csv(path)
        except Exception:
            pass  # an interrupted or failed sweep has none: rebuild it from the trials
    if schema.NESTED_CV in sweep_run.data.tags:
        return pd.DataFrame()  # a nested validation's runs beneath are its sweeps, not trials
    return leaderboard_from_trials(client, sweep_run)


def _outcome(run: Any) -> str:
    """A trial run's outcome for the board: a trial the sweep's stop cut off (Ctrl-C, a killed
    driver) is ``interrupted``, not ``stopped_early``, which its tag says beside the reason."""
    tags = run.data.tags
    outcome = tags.get(schema.OUTCOME, run.info.status.lower())
    if outcome == schema.OUTCOME_STOPPED and tags.get(schema.STOP_REASON) == schema.REASON_INTERRUPTED:
        return "interrupted"
    return outcome


def leaderboard_from_trials(client: Any, sweep_run: Any) -> Any:
    """The leaderboard rebuilt from the sweep's trial runs: each trial at its best step, best first."""
    import pandas as pd

    from raysweep.best import better

    params = sweep_run.data.params
    metric_key, mode = metric_and_mode(sweep_run)
    rows = []
    for child in child_runs(client, sweep_run):
        history = client.get_metric_history(child.info.run_id, metric_key) if metric_key in child.data.metrics else []
        best = None
        for point in sorted(history, key=lambda m: (m.step, m.timestamp)):
            if math.isfinite(point.value) and better(point.value, best.value if best else None, mode):
                best = point
        # The step is the resource for whole-unit resources, else Tune's step: the resource metric says.
        resources = {m.step: m.value for m in client.get_metric_history(child.info.run_id, schema.RESOURCE)} if best else {}
        row = {
            "trial": child.info.run_name,
            "trial_id": child.data.tags.get(schema.TRIAL_ID, ""),
            metric_key: best.value if best else float("nan"),
            "resource": resources.get(best.step, best.step) if best else 0,
            "outcome": _outcome(child),
            schema.STOP_DETAIL_RESULT: child.data.tags.get(schema.STOP_DETAIL, ""),
        }
        if schema.FAMILY in child.data.tags:  # an auto sweep's trial: its model family, as the sweep's own leaderboard
            row["family"] = child.data.tags[schema.FAMILY]
        row.update({f"config/{k}": _param_value(v) for k, v in child.data.params.items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.sort_values(metric_key, ascending=params.get("mode") == "min", na_position="last").reset_index(drop=True)
    return frame


def _param_value(text: str) -> Any:
    """A trial's parameter as MLflow holds it (text) read back as the number it was, as the
    leaderboard's CSV reads back: ``0.48451234523`` is shown ``0.4845`` like the other columns."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def artifact_location(run: Any, path: str, uri: str) -> str:
    """Where a user finds an artifact: a local path, a download URL on a server, else its URI."""
    base = run.info.artifact_uri.rstrip("/")
    if base.startswith("file://"):
        base = urllib.parse.urlparse(base).path
    if base.startswith("/"):
        return str(Path(base) / path)
    if uri.startswith(("http://", "https://")):
        query = urllib.parse.urlencode({"path": path, "run_uuid": run.info.run_id}, safe="/")
        return f"{uri.rstrip('/')}/get-artifact?{query}"
    return f"{base}/{path}"
