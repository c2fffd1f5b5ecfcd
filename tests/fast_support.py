"""Shared pieces of the fast tests: a real MLflow sqlite store per test, synthetic Tune results,
and readers of what a user would look at in MLflow (runs, statuses, tags, metric histories).

No Ray is started and no MLflow server runs: raysweep's tracking code is fed synthetic trial
events and Ray result files, and writes to a real sqlite store in the test's tmp_path.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

#: the parent run's sweep name and the experiment every fast test logs to
SWEEP = "fast-sweep"
EXPERIMENT = "raysweep-fast"
METRIC = "val_accuracy"
#: random-forest-like steps: 20 trees a step
PER_STEP = 20
NODE = {"node_id": "4d4e33fc9996f43346dea4e45c784d446ea1927f46abdb0623d24069", "node_ip": "192.0.2.2", "hostname": "vm"}
OTHER_NODE = {"node_id": "9a9a33fc9996f43346dea4e45c784d446ea1927f46abdb0623d2ffff", "node_ip": "192.0.2.9", "hostname": "vm2"}


def _template_db(config: Any, tmp_path_factory: Any) -> Path:
    """An empty, fully migrated MLflow sqlite store.

    Creating one runs MLflow's schema migrations (seconds); each test copies this one instead.
    It is kept in pytest's cache between sessions, keyed by MLflow's version.
    """
    import mlflow

    name = f"mlflow-{mlflow.__version__}-empty.db"
    cache = getattr(config, "cache", None)
    folder = cache.mkdir("raysweep-fast-mlflow") if cache is not None else tmp_path_factory.mktemp("mlflow-template")
    template = Path(folder) / name
    if not template.is_file():
        from mlflow.tracking import MlflowClient

        building = template.with_name(f"{name}.{os.getpid()}.tmp")
        MlflowClient(f"sqlite:///{building}").search_experiments()
        os.replace(building, template)  # another session may build one at the same time
    return template


@pytest.fixture(scope="session")
def empty_store(request: Any, tmp_path_factory: Any) -> Path:
    return _template_db(request.config, tmp_path_factory)


@pytest.fixture
def store_uri(tmp_path: Path, empty_store: Path) -> str:
    """A fresh MLflow sqlite store for this test: ``sqlite:///<tmp_path>/mlflow.db``."""
    database = tmp_path / "mlflow.db"
    shutil.copyfile(empty_store, database)
    return f"sqlite:///{database}"


# -- synthetic Tune results --------------------------------------------------------------------
def tune_result(
    trial_id: str,
    iteration: int,
    value: float,
    *,
    config: dict[str, Any] | None = None,
    done: bool = False,
    resource: float | None = None,
    node: dict[str, str] | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """One result as Ray Tune 2.60 reports it for a raysweep trial (the keys of result.json)."""
    node = NODE if node is None else node
    stamp = timestamp if timestamp is not None else 1796051567 + iteration
    return {
        METRIC: value,
        "resource": iteration * PER_STEP if resource is None else resource,
        "step_time": 0.1 * iteration,
        **({"node_id": node["node_id"]} if node else {}),
        "done": done,
        "training_iteration": iteration,
        "trial_id": trial_id,
        "date": "2026-11-30_15-12-47",
        "timestamp": stamp,
        "time_this_iter_s": 0.1,
        "time_total_s": 0.1 * iteration,
        "pid": 16132,
        **({"hostname": node["hostname"], "node_ip": node["node_ip"]} if node else {}),
        "config": dict(config or {}),
        "time_since_restore": 0.1 * iteration,
        "iterations_since_restore": iteration,
    }


def fake_trial(
    trial_id: str,
    config: dict[str, Any],
    last_result: dict[str, Any] | None = None,
    status: str = "RUNNING",
    error_file: str | None = None,
    error_msg: str | None = None,
) -> SimpleNamespace:
    """What raysweep reads of a Tune ``Trial`` (``run_metadata`` None: ``last_result`` is read)."""
    return SimpleNamespace(
        trial_id=trial_id, config=dict(config), last_result=dict(last_result or {}), status=status,
        run_metadata=None, error_file=error_file, error_msg=error_msg,
    )  # fmt: skip


def write_error_file(folder: Path, message: str) -> Path:
    """An error.txt as Tune writes it for a failed trial: a traceback ending in the error."""
    path = folder / "error.txt"
    lines = [
        "Failure # 1 (occurred at 2026-11-30_15-12-48)",
        "ray::SweepTrainable.train() (pid=16132, ip=192.0.2.2, actor_id=abc, repr=SweepTrainable)",
        '  File "/usr/lib/python3.11/site-packages/ray/tune/trainable/trainable.py", line 330, in train',
        "    raise skipped from exception_cause(skipped)",
        '  File "/work/raysweep/trainable.py", line 85, in step',
        "    raise FloatingPointError(",
        "",
        message,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def last_lines(path: Path, count: int = 6) -> str:
    return "\n".join([line for line in path.read_text().splitlines() if line.strip()][-count:])


# -- what a user sees in MLflow ----------------------------------------------------------------
def client_for(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def trial_runs(uri: str, parent_run_id: str) -> dict[str, Any]:
    """The parent run's child runs by run name (every name must be unique)."""
    client = client_for(uri)
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=1000
    )
    names = Counter(run.info.run_name for run in children)
    assert all(count == 1 for count in names.values()), f"duplicate trial runs: {names}"
    return {run.info.run_name: run for run in children}


def history(uri: str, run_id: str, key: str = METRIC) -> list[tuple[int, float]]:
    """The metric's (step, value) pairs in step order; fails on a step logged twice."""
    points = client_for(uri).get_metric_history(run_id, key)
    steps = Counter(point.step for point in points)
    duplicated = sorted(step for step, count in steps.items() if count > 1)
    assert not duplicated, f"{key} logged twice at steps {duplicated}"
    return sorted((point.step, point.value) for point in points)


def steps(uri: str, run_id: str, key: str = METRIC) -> list[int]:
    return [step for step, _ in history(uri, run_id, key)]


def raysweep_tags(run: Any) -> dict[str, str]:
    return {key: value for key, value in run.data.tags.items() if key.startswith("raysweep.")}


def snapshot(uri: str, parent_run_id: str) -> dict[str, Any]:
    """Everything a user reads of a sweep's trial runs, without times and run ids."""
    runs = trial_runs(uri, parent_run_id)
    client = client_for(uri)
    out = {}
    for name, run in sorted(runs.items()):
        tags = raysweep_tags(run)
        if "raysweep.pbt.last_donor_run_id" in tags:
            tags["raysweep.pbt.last_donor_run_id"] = client.get_run(tags["raysweep.pbt.last_donor_run_id"]).info.run_name
        out[name] = {
            "status": run.info.status,
            "tags": tags,
            "params": dict(run.data.params),
            "metrics": {key: history(uri, run.info.run_id, key) for key in sorted(run.data.metrics)},
        }
    return out


def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
