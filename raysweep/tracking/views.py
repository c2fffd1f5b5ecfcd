"""Links into MLflow's UI for a sweep: its trials as rows with chosen columns, compared, and its own run.

MLflow 3.17's UI opens an experiment in its GenAI views (an overview of traces, no runs) unless
the page says otherwise: it reads the ``workflowType`` query parameter (else the browser's
saved choice, GenAI by default) and ignores the ``mlflow.experimentKind`` experiment tag. The
runs-table URLs here carry ``workflowType=machine_learning``.

The runs table picks its columns only from a shared view (the UI's own "share" mechanism: an
experiment tag ``mlflow.sharedViewState.<key>`` holding the view as JSON, opened by
``viewStateShareKey=<key>``) or from the browser's storage. A shared view cannot expand a
parent run (the UI drops ``runsExpanded``) and is ignored when the URL carries search
parameters of its own, so raysweep's view selects the trial runs themselves (by their
``mlflow.parentRunId`` tag), sorts them by the validation metric and picks the metric, the
outcome and the searched parameters as columns. The UI shows its "You're viewing a shared
view" banner above it. The compare-runs page (no banner) puts the trials' parameters and
metrics side by side with parallel-coordinates, scatter and contour plots.

The same shared view also holds the runs page's chart setup (``compareRunCharts`` and
``compareRunSections``, drawn when the page's ``compareRunsMode`` is ``CHART``): the trials'
learning curves, a parallel-coordinates chart of the searched parameters and the score, and the
score against each of the two most important parameters. The UI adds a chart of every other
metric below them by itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from typing import Any

from raysweep.tracking import schema
from raysweep.tracking.charts import sweep_charts
from raysweep.tracking.queries import child_runs, metric_and_mode, sweep_metric, trials_filter

#: the query that makes MLflow 3.17's UI show the model-training views of an experiment
ML_WORKFLOW_QUERY = "workflowType=machine_learning"
#: the compare-runs link holds at most this many trials (the best ones): its URL lists their ids
COMPARE_MAX_RUNS = 50
#: the query that opens the runs page on its charts rather than its table
CHART_MODE_QUERY = "compareRunsMode=CHART"


def experiment_runs_url(base_url: str, experiment_id: str, share_key: str | None = None, charts: bool = False) -> str:
    """The MLflow 3.17 UI URL of an experiment's model-training runs table (optionally a shared view, its charts)."""
    url = f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{ML_WORKFLOW_QUERY}"
    if share_key:
        url += "&viewStateShareKey=" + urllib.parse.quote(share_key, safe="")
    if charts:
        url += "&" + CHART_MODE_QUERY
    return url


def compare_runs_url(base_url: str, experiment_id: str, run_ids: list[str]) -> str:
    """The MLflow UI URL of the compare-runs page of ``run_ids`` (parameters, metrics and plots)."""
    runs = urllib.parse.quote(json.dumps(run_ids, separators=(",", ":")), safe="")
    experiments = urllib.parse.quote(json.dumps([experiment_id]), safe="")
    return f"{base_url.rstrip('/')}/#/compare-runs?runs={runs}&experiments={experiments}&{ML_WORKFLOW_QUERY}"


def run_url(base_url: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI URL of one run's page (its parameters, metrics, artifacts and logged models)."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{ML_WORKFLOW_QUERY}"


def _share_key(sweep_name: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]", "-", sweep_name)[:200]
    if readable != sweep_name:
        readable += "-" + hashlib.sha1(sweep_name.encode()).hexdigest()[:8]
    return f"raysweep-{readable}"


def _column(kind: str, key: str) -> str:
    """A runs-table column id, also the form of an ``orderByKey``: ``metrics.`val_accuracy```."""
    return f"{kind}.`{key}`"


def publish_sweep_view(client: Any, sweep_run: Any) -> str:
    """Store a shared runs-table view of the sweep's trials on its experiment; returns its share key.

    The view lists the sweep's trial runs as rows, best validation score first, with the
    validation metric, each trial's outcome and duration and the searched parameters as columns;
    its charts are those of :func:`raysweep.tracking.charts.sweep_charts`.
    """
    params = sweep_run.data.params
    metric_key, mode = metric_and_mode(sweep_run)
    prefix = schema.best_param("")
    searched = sorted(k.removeprefix(prefix) for k in params if k.startswith(prefix) and k != schema.best_param("resource"))
    if not searched:  # a sweep that ended before its summary: take a trial's params
        children = child_runs(client, sweep_run, max_results=1)
        searched = sorted(children[0].data.params) if children else []
    auto = sweep_run.data.tags.get(schema.FAMILY) == "auto"
    if auto:
        # raysweep run auto: each trial's family is a tag, and its params are its family's own.
        searched = sorted({name for child in child_runs(client, sweep_run) for name in child.data.params})
    # A trial's score is its best step's (raysweep.best): the runs table shows and sorts by it.
    best_key = schema.best_of(metric_key)
    columns = [_column("metrics", best_key), _column("tags", schema.OUTCOME)]
    columns += [_column("tags", schema.FAMILY)] * auto
    columns += [_column("params", name) for name in searched]
    columns += [_column("attributes", "Duration")]
    # Keys the UI reads from a shared view (MLflow 3.17): the search facets searchFilter,
    # orderByKey, orderByAsc, startTime, lifecycleFilter, datasetsFilter, modelVersionFilter, and
    # the table state selectedColumns, runsHiddenMode, ... (runsExpanded, runsPinned and
    # runsHidden are dropped). Sorting by a metric also stops the table nesting runs.
    view = {
        "searchFilter": trials_filter(sweep_run),
        "orderByKey": _column("metrics", best_key),
        "orderByAsc": mode == "min",
        "selectedColumns": columns,
        "runsHiddenMode": "SHOW_ALL",
        **sweep_charts(metric_key, best_key, searched, schema.importances(sweep_run.data.metrics)),
    }
    key = _share_key(sweep_run.data.tags.get(schema.SWEEP, sweep_run.info.run_name))
    client.set_experiment_tag(sweep_run.info.experiment_id, schema.SHARED_VIEW_PREFIX + key, json.dumps(view))
    return key


#: the share key of an experiment's view of its sweeps (one per experiment)
SWEEPS_SHARE_KEY = "raysweep-sweeps"


def publish_sweeps_view(client: Any, sweep_run: Any) -> str:
    """Store a shared runs-table view of the sweeps in ``sweep_run``'s experiment; returns its share key.

    One row per sweep (its own run, not its trials), best validation score first in the metric's
    direction, with the recipe, scheduler, searcher, trial count, best validation and test scores
    and the duration as columns: ``raysweep compare`` in the UI. Sweeps of another metric sort
    after those of this one (they have no value in its column).
    """
    metric, mode = sweep_metric(sweep_run)
    best_key = schema.best_metric(metric)
    columns = [_column("tags", name) for name in (schema.RECIPE, schema.SCHEDULER, schema.SEARCHER)]
    columns += [_column("metrics", key) for key in (schema.NUM_TRIALS, best_key, schema.test_metric(metric))]
    columns += [_column("attributes", "Duration")]
    view = {
        "searchFilter": schema.SWEEP_RUN_FILTER,
        "orderByKey": _column("metrics", best_key),
        "orderByAsc": mode == "min",
        "selectedColumns": columns,
        "runsHiddenMode": "SHOW_ALL",
    }
    client.set_experiment_tag(sweep_run.info.experiment_id, schema.SHARED_VIEW_PREFIX + SWEEPS_SHARE_KEY, json.dumps(view))
    return SWEEPS_SHARE_KEY


#: the share key suffix of a nested validation's view of its sweeps (its folds and final sweep)
FOLDS_SHARE_SUFFIX = "-folds"


def publish_folds_view(client: Any, job_run: Any) -> str:
    """Store a shared runs-table view of a nested validation's sweeps; returns its share key.

    One row per sweep of the job (``NAME-fold1`` .. ``NAME-foldK``, ``NAME-final``), with the
    fold, the inner best validation score, the score on the held-out fold (the final sweep's: on
    the test split), the trial count and the chosen config as columns.
    """
    metric, _ = sweep_metric(job_run)
    prefix = schema.best_param("")
    chosen = sorted(k for k in job_run.data.params if k.startswith(prefix) and k != schema.best_param("resource"))
    columns = [_column("tags", schema.NESTED_FOLD)]
    columns += [_column("metrics", key) for key in (schema.best_metric(metric), schema.test_metric(metric), schema.NUM_TRIALS)]
    columns += [_column("params", name) for name in chosen] + [_column("attributes", "Duration")]
    view = {
        "searchFilter": trials_filter(job_run),
        "orderByKey": _column("tags", "mlflow.runName"),
        "orderByAsc": True,
        "selectedColumns": columns,
        "runsHiddenMode": "SHOW_ALL",
    }
    key = _share_key(job_run.data.tags.get(schema.SWEEP, job_run.info.run_name)) + FOLDS_SHARE_SUFFIX
    client.set_experiment_tag(job_run.info.experiment_id, schema.SHARED_VIEW_PREFIX + key, json.dumps(view))
    return key


def sweep_links(client: Any, base_url: str, sweep_run: Any) -> list[tuple[str, str]]:
    """The UI links of a sweep, most useful first, as (label, URL); publishes its shared view.

    ``trials``: the trial runs as rows sorted by the validation metric, with the metric and the
    searched parameters as columns; ``charts``: the same view drawn as the sweep's charts
    (learning curves, parallel coordinates, the score against the most important parameters);
    ``compare``: the best trials' parameters and metrics side by
    side with plots; ``sweep``: the sweep's own run (best config, test score, model, plots);
    ``sweeps``: every sweep of the experiment as a row, best first (:func:`publish_sweeps_view`).

    Of a nested validation (``--nested-cv``), whose own run holds sweeps rather than trials:
    ``trials``, ``charts`` and ``compare`` are those of its final sweep (the one whose model is the
    job's), and ``folds`` lists its sweeps (:func:`publish_folds_view`); ``sweep`` is the job's run.
    """
    experiment_id, run_id = sweep_run.info.experiment_id, sweep_run.info.run_id
    job_run, folds = sweep_run, []
    if schema.NESTED_CV in sweep_run.data.tags:
        final = [run for run in child_runs(client, sweep_run) if schema.NESTED_FOLD not in run.data.tags]
        sweep_run = final[0] if final else sweep_run
        folds = [("folds", experiment_runs_url(base_url, experiment_id, publish_folds_view(client, job_run)))]
    key = publish_sweep_view(client, sweep_run)
    links = [
        ("trials", experiment_runs_url(base_url, experiment_id, key)),
        ("charts", experiment_runs_url(base_url, experiment_id, key, charts=True)),
    ]
    metric_key, mode = metric_and_mode(sweep_run)
    order = f"metrics.`{schema.best_of(metric_key)}` {'ASC' if mode == 'min' else 'DESC'}"
    best = [run.info.run_id for run in child_runs(client, sweep_run, order_by=[order], max_results=COMPARE_MAX_RUNS)]
    if best:
        links.append(("compare", compare_runs_url(base_url, experiment_id, best)))
    links += folds
    links.append(("sweep", run_url(base_url, experiment_id, run_id)))
    links.append(("sweeps", experiment_runs_url(base_url, experiment_id, publish_sweeps_view(client, job_run))))
    return links
