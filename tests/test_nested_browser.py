"""A nested validation's MLflow tree as a user sees it in MLflow's UI, in a real headless Chromium.

A small ``--nested-cv 2`` job logs to a real ``mlflow server``. On the experiment's runs page the
job is one row; expanding it shows its fold sweeps and its final sweep, and expanding a fold shows
that fold's trials: MLflow draws the three levels of raysweep's tree.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from test_ui_browser import _browser_page

pytestmark = pytest.mark.browser

# The runs table's rows that carry a run name, in the order drawn: (name, has an expand button).
_NAMED_ROWS_JS = """() => Array.from(document.querySelectorAll('.ag-row'))
    .map(row => [Number(row.getAttribute('aria-rowindex')), row.querySelector("[col-id='attributes.`Run Name`']")])
    .filter(([, cell]) => cell && cell.querySelector('a'))
    .sort((a, b) => a[0] - b[0])
    .map(([, cell]) => [cell.querySelector('a').innerText.trim(), !!cell.querySelector('button')])"""


def _rows(page: Any, count: int) -> list[list[Any]]:
    """The named rows once at least ``count`` of them are drawn."""
    page.wait_for_function(f"() => ({_NAMED_ROWS_JS})().length >= {count}", timeout=60_000)
    return page.evaluate(_NAMED_ROWS_JS)


def _expand(page: Any, run_name: str) -> None:
    """Click the expand button in the run-name cell of the row named ``run_name``."""
    cell = page.locator(".ag-row [col-id='attributes.`Run Name`']").filter(
        has=page.get_by_role("link", name=run_name, exact=True)
    )
    cell.locator("button").first.click()


def test_the_job_expands_into_its_fold_sweeps_and_a_fold_into_its_trials(ray_local, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    from raysweep.sweep.run import run_sweep

    name = f"nested-ui-{uuid.uuid4().hex[:6]}"
    experiment = f"raysweep-tests-{name}"
    result = run_sweep(
        "random_forest", "breast_cancer", nested_cv=2, num_samples=2, name=name, scheduler="fifo", searcher="random",
        seed=0, overrides=["resource.max=20"], tracking_uri=mlflow_server, experiment=experiment,
        storage=str(tmp_path / "results"),
    )  # fmt: skip
    assert len(result.nested.folds) == 2
    experiment_id = MlflowClient(mlflow_server).get_experiment_by_name(experiment).experiment_id
    parts = [f"{name}-fold1", f"{name}-fold2", f"{name}-final"]
    trials = {part: [] for part in parts}
    client = MlflowClient(mlflow_server)
    by_id = {run.info.run_id: run for run in client.search_runs([experiment_id], max_results=100)}
    for run in by_id.values():
        parent = by_id.get(run.data.tags.get("mlflow.parentRunId", ""))
        if parent is not None and parent.info.run_name in trials:
            trials[parent.info.run_name].append(run.info.run_name)
    assert all(len(names) == 2 for names in trials.values()), trials

    with _browser_page() as page:
        page.goto(f"{mlflow_server}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
        # First level: the job alone, as one row that can expand.
        assert _rows(page, 1) == [[name, True]]

        _expand(page, name)
        rows = _rows(page, 1 + len(parts))
        assert rows[0] == [name, True]
        # Second level: the fold sweeps and the final sweep, each with trials of its own under it.
        assert sorted(row[0] for row in rows[1:]) == sorted(parts)
        assert all(expandable for _, expandable in rows[1:])

        _expand(page, f"{name}-fold1")
        rows = _rows(page, 1 + len(parts) + 2)
        names = [row[0] for row in rows]
        # Third level: fold 1's trials, drawn right under fold 1's row, and no other fold's.
        at = names.index(f"{name}-fold1")
        assert sorted(names[at + 1 : at + 3]) == sorted(trials[f"{name}-fold1"])
        assert sorted(names) == sorted([name, *parts, *trials[f"{name}-fold1"]])
        assert not any(expandable for row_name, expandable in rows if row_name in trials[f"{name}-fold1"])
        page.screenshot(path=str(tmp_path / "nested.png"))
    assert (tmp_path / "nested.png").stat().st_size > 10_000
