"""Sweeps run unchanged on a real multi-node Ray cluster.

One local cluster for the whole module (a head with 0 CPUs and two workers with 1 CPU each,
joined over loopback with token authentication), started by ``start_local_cluster`` and always
stopped in a finalizer, which also checks that none of its processes is left. Every sweep is a
separate ``raysweep run`` process, as a user would start it, logging to the suite's real MLflow
server; this test process never joins the cluster itself.

The tests run in file order and share the cluster: the node-failure test kills worker 0, so it
comes last (the check after it only reads what it recorded).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raysweep.cluster import LocalCluster, start_local_cluster, stop_local_cluster

pytestmark = pytest.mark.cluster

TERMINAL = {"FINISHED", "FAILED", "KILLED"}
TOKEN_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")
#: what the node-failure test saw, for the check that reads it afterwards
KILL_RECORD: dict[str, Any] = {}


# -- helpers ------------------------------------------------------------------------------------
def raysweep(*args: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``raysweep ARGS`` in a subprocess with exactly ``env`` (conftest's run_cli would merge
    os.environ back in, and with it a RAY_AUTH_TOKEN that must stay unset)."""
    return subprocess.run(
        [sys.executable, "-m", "raysweep", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def ray_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The ``ray`` CLI of this interpreter (what ``ray ARGS`` runs from a shell)."""
    return subprocess.run(
        [sys.executable, "-m", "ray.scripts.scripts", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def summary_of(stdout: str) -> dict[str, Any]:
    """The JSON object ``raysweep run --json`` prints (the last line that is one)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            return json.loads(line)
    raise AssertionError(f"no JSON summary in the output:\n{stdout[-3000:]}")


def sweep_runs(client: Any, experiment: str) -> tuple[Any, list[Any]]:
    """The sweep's one parent run and its child runs, in an experiment holding only this sweep."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1, "every other run of the experiment is nested under the sweep"
    return parent, children


def cmdlines_mentioning(text: str) -> dict[int, str]:
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            if stat[stat.rindex(")") + 2 :].split()[0] in ("Z", "X"):
                continue
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if text in cmdline:
            found[int(entry.name)] = cmdline[:200]
    return found


def stop_and_check(state_dir: Path, cluster: LocalCluster | None) -> None:
    """Stop the cluster; fail the teardown if any of its processes outlived the stop."""
    stop_local_cluster(state_dir, grace_period_s=1.0)
    if cluster is None:
        return
    left = cmdlines_mentioning(str(cluster.temp_dir))
    for pid in left:  # ours by their temp dir; do not let them outlive the suite
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    assert not left, f"processes of the local cluster survived its stop: {left}"


# -- the cluster --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    state_dir = tmp_path_factory.mktemp("cluster-sweeps-state")
    started: list[LocalCluster] = []
    # Registered before anything starts: whatever fails from here on, the cluster is stopped.
    request.addfinalizer(lambda: stop_and_check(state_dir, started[0] if started else None))
    began = time.monotonic()
    cluster = start_local_cluster(workers=2, cpus_per_node=1, head_cpus=0, state_dir=state_dir)
    started.append(cluster)
    print(f"local cluster up in {time.monotonic() - began:.1f}s at {cluster.address}, dashboard {cluster.dashboard_url}")
    yield cluster


@pytest.fixture(scope="module")
def mlflow_client(mlflow_server: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(mlflow_server)


def unique_experiment(label: str) -> str:
    return f"cluster-{label}-{uuid.uuid4().hex[:8]}"


# -- a sweep with --address spreads over the nodes ----------------------------------------------
def test_a_sweep_with_address_runs_on_several_nodes_and_logs_every_trial(
    cluster: LocalCluster, mlflow_server: str, mlflow_client: Any, tmp_path: Path
) -> None:
    import pandas as pd
    from sklearn.datasets import make_classification

    # The CSV exists on the driver's side only, under a path relative to the driver's cwd: a
    # trial that tried to read it would not find it. The driver reads it, the trials get the
    # arrays through the object store, and the file is deleted as soon as the driver has read it.
    # Big enough for a trial to last a few seconds: with actor reuse, trials shorter than a Ray
    # worker's start-up all run on the first actor, on one node (at 200 rounds, since XGBoost keeps
    # its matrix between steps, all six once ran on one node on an idle machine).
    X, y = make_classification(n_samples=12000, n_features=30, n_informative=15, random_state=0)
    data = tmp_path / "customers.csv"
    pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]).assign(target=y).to_csv(data, index=False)
    experiment = unique_experiment("address")

    driver = subprocess.Popen(
        [sys.executable, "-m", "raysweep", "run", "xgboost", "--dataset", "customers.csv", "--target", "target",
         "--address", cluster.address, "--num-samples", "6", "--scheduler", "fifo", "--searcher", "random",
         "--set", "resource.max=600", "--set", "space.max_depth.high=5", "--storage", str(tmp_path / "results"),
         "--tracking-uri", mlflow_server, "--experiment", experiment, "--json"],
        cwd=tmp_path, env=cluster.driver_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert driver.stderr is not None
        head = []
        # "raysweep: xgboost on customers (...)" is printed once the data is loaded, before Ray starts.
        while not any(line.startswith("raysweep: ") for line in head):
            line = driver.stderr.readline()
            if not line:
                break
            head.append(line)
        data.unlink()
        stdout, stderr = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    stderr = "".join(head) + stderr

    assert driver.returncode == 0, stderr[-3000:]
    summary = summary_of(stdout)
    assert summary["num_trials"] == 6 and summary["num_errors"] == 0, summary
    parent, children = sweep_runs(mlflow_client, experiment)
    assert summary["parent_run_id"] == parent.info.run_id
    assert parent.info.status == "FINISHED"
    # The sweep ran on this cluster, not on an embedded Ray (Ray advertises the host's primary
    # address for the GCS, so only the port is compared).
    assert parent.data.tags["raysweep.ray_address"].endswith(":" + cluster.address.rsplit(":", 1)[1])
    assert len(children) == 6
    assert {run.info.status for run in children} <= TERMINAL
    assert {run.data.tags.get("raysweep.outcome") for run in children} == {"completed"}
    assert len({run.data.tags["raysweep.trial_id"] for run in children}) == 6
    nodes = [run.data.tags.get("raysweep.node_id") for run in children]
    worker_ids = {w.node_id for w in cluster.workers}
    # Every trial ran on a worker node (the head offers no CPUs), and on both of them.
    assert set(nodes) <= worker_ids, (nodes, worker_ids)
    assert len(set(nodes)) >= 2, nodes


# -- ray job submit --------------------------------------------------------------------------------
def test_a_sweep_submitted_as_a_ray_job_completes(
    cluster: LocalCluster, mlflow_server: str, mlflow_client: Any, tmp_path: Path
) -> None:
    assert cluster.dashboard_url, "ray[default] is installed, so the local cluster must serve the dashboard / job API"
    working_dir = tmp_path / "job"
    working_dir.mkdir()
    (working_dir / "README.txt").write_text("the job's working dir: uploaded to the cluster by ray job submit\n")
    experiment = unique_experiment("job")
    command = ["raysweep"] if shutil.which("raysweep") else [sys.executable, "-m", "raysweep"]
    # No --address: the job's driver runs on the head, and Ray gives it RAY_ADDRESS; connect_ray
    # must take the cluster from there (an embedded Ray would show up as another node below).
    # The MLflow server listens on this machine's loopback, which the head shares.
    entrypoint = [
        *command, "run", "mlp", "--dataset", "breast_cancer", "--num-samples", "2", "--json",
        "--scheduler", "fifo", "--searcher", "random", "--set", "resource.max=10",
        "--storage", str(tmp_path / "results"), "--tracking-uri", mlflow_server, "--experiment", experiment,
    ]  # fmt: skip

    submitted = ray_cli(
        "job", "submit", "--address", cluster.dashboard_url, "--working-dir", str(working_dir), "--", *entrypoint,
        env=cluster.driver_env(), cwd=tmp_path,
    )

    output = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, output[-4000:]
    job_id = re.search(r"Job '(\S+)' submitted successfully", output)
    assert job_id, output[-4000:]
    assert re.search(rf"Job '{job_id.group(1)}' succeeded", output), output[-4000:]
    summary = summary_of(submitted.stdout)
    assert summary["num_trials"] == 2 and summary["num_errors"] == 0, summary

    status = ray_cli("job", "status", "--address", cluster.dashboard_url, job_id.group(1), env=cluster.driver_env(), cwd=tmp_path)
    assert status.returncode == 0, status.stderr[-2000:]
    assert re.search(rf"Job '{job_id.group(1)}' succeeded", status.stdout + status.stderr), status.stdout[-2000:]

    parent, children = sweep_runs(mlflow_client, experiment)
    assert summary["parent_run_id"] == parent.info.run_id and parent.info.status == "FINISHED"
    assert parent.data.tags["raysweep.ray_address"].endswith(":" + cluster.address.rsplit(":", 1)[1])
    assert len(children) == 2 and {run.info.status for run in children} <= TERMINAL
    assert {run.data.tags.get("raysweep.node_id") for run in children} <= {w.node_id for w in cluster.workers}


# -- a driver without the token ------------------------------------------------------------------
def test_a_driver_without_the_token_gets_one_error_line(
    cluster: LocalCluster, mlflow_server: str, mlflow_client: Any, tmp_path: Path
) -> None:
    env = cluster.driver_env()
    for name in TOKEN_VARS:
        env.pop(name, None)
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token from elsewhere can stand in for the token
    experiment = unique_experiment("no-token")

    began = time.monotonic()
    done = raysweep(
        "run", "xgboost", "--dataset", "breast_cancer", "--address", cluster.address, "--num-samples", "1",
        "--storage", str(tmp_path / "results"), "--tracking-uri", mlflow_server, "--experiment", experiment, "--json",
        cwd=tmp_path, env=env, timeout=180,
    )  # fmt: skip
    elapsed = time.monotonic() - began

    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stdout.strip() == ""
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == errors[0]
    assert f"--address {cluster.address}" in errors[0]
    assert "RAY_AUTH_MODE=token" in errors[0] and "RAY_AUTH_TOKEN_PATH" in errors[0]
    assert "gcs_client" not in done.stderr
    assert elapsed < 30, f"the refusal took {elapsed:.0f}s"
    # Nothing reached MLflow: the tracker starts only once Ray is connected.
    assert mlflow_client.get_experiment_by_name(experiment) is None


# -- a worker node dies mid-sweep (last: the cluster keeps one worker afterwards) -------------------
def test_a_sweep_survives_a_worker_node_dying(
    cluster: LocalCluster, mlflow_server: str, mlflow_client: Any, tmp_path: Path
) -> None:
    from mlflow.entities import ViewType

    victim_node, survivor_node = (w.node_id for w in cluster.workers)
    experiment = unique_experiment("node-failure")
    per_step, max_trees = 20, 400  # 20 steps a trial: long enough to be caught mid-trial
    driver = subprocess.Popen(
        [sys.executable, "-m", "raysweep", "run", "random_forest",
         "--dataset", "make_classification:n_samples=2000,n_features=20", "--address", cluster.address,
         "--max-failures", "3", "--num-samples", "6", "--scheduler", "fifo", "--searcher", "random",
         "--set", f"resource.per_step={per_step}", "--set", f"resource.max={max_trees}",
         "--storage", str(tmp_path / "results"), "--tracking-uri", mlflow_server, "--experiment", experiment, "--json"],
        cwd=tmp_path, env=cluster.driver_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # Wait until a trial has reported from worker 0 and is still running there, with at least half
        # its steps to go (MLflow hears of a trial's progress a moment late), then kill the node.
        victims: dict[str, str] = {}
        deadline = time.monotonic() + 180
        while not victims and driver.poll() is None and time.monotonic() < deadline:
            found = mlflow_client.get_experiment_by_name(experiment)
            if found is not None:
                running = mlflow_client.search_runs(
                    [found.experiment_id],
                    filter_string=f"tags.`raysweep.node_id` = '{victim_node}' and tags.`raysweep.outcome` = 'running'",
                    run_view_type=ViewType.ACTIVE_ONLY,
                )
                victims = {
                    run.info.run_id: run.data.tags["raysweep.trial_id"] for run in running
                    if max((m.step for m in mlflow_client.get_metric_history(run.info.run_id, "val_accuracy")), default=0) <= max_trees // 2
                }
            if not victims:
                time.sleep(0.3)
        assert victims, f"no trial was seen running on worker 0 (driver exit {driver.poll()})"
        killed_at_ms = int(time.time() * 1000)
        killed = cluster.kill_worker(0)
        assert killed
        stdout, stderr = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()

    # Ray's FailureConfig retried the trial that lost its node on the surviving one: the sweep completes.
    assert driver.returncode == 0, f"exit {driver.returncode}:\n{stderr[-4000:]}"
    summary = summary_of(stdout)
    assert summary["num_trials"] == 6 and summary["num_errors"] == 0, summary

    parent, children = sweep_runs(mlflow_client, experiment)
    assert parent.info.status == "FINISHED" and summary["parent_run_id"] == parent.info.run_id
    assert len(children) == 6
    assert {run.info.status for run in children} == {"FINISHED"}
    assert {run.data.tags.get("raysweep.outcome") for run in children} == {"completed"}
    by_id = {run.info.run_id: run for run in children}
    steps_expected = list(range(per_step, max_trees + 1, per_step))
    # Ray words a lost actor by what it saw first: the node's death, or the worker process's exit
    # when the node's processes were killed ("The actor died unexpectedly before finishing this task").
    lost_actor = re.compile(
        r"actor \S+ is unavailable|Actor(Died|Unavailable)Error|RayActorError|node \S+ .*(died|dead)|actor died unexpectedly", re.I
    )
    for run_id, trial_id in victims.items():
        # Tune really saw the node failure on that trial (it writes error.txt even when it retries) ...
        trial_dirs = list((tmp_path / "results" / summary["name"]).glob(f"*{trial_id}*"))
        assert len(trial_dirs) == 1, trial_dirs
        error = (trial_dirs[0] / "error.txt").read_text()
        assert lost_actor.search(error), error[-2000:]
        # ... MLflow says so on the trial's run: one retry, and why ...
        tags = by_id[run_id].data.tags
        assert tags.get("raysweep.retries") == "1", tags
        assert lost_actor.search(tags.get("raysweep.retry.1.error", "")), tags
        # ... and the run went on to the end. The retry continued from the trial's last checkpoint,
        # or started over if it had none yet (these trials are shorter than the default interval):
        # every step is there, once, although some ran twice.
        history = mlflow_client.get_metric_history(run_id, "val_accuracy")
        assert sorted(m.step for m in history) == steps_expected, [m.step for m in history]
        assert by_id[run_id].info.status == "FINISHED"
    # The trials that did not lose their node were not retried.
    assert all("raysweep.retries" not in run.data.tags for run in children if run.info.run_id not in victims)
    # Every trial that started after the kill ran on the surviving worker.
    late = [run for run in children if run.info.start_time > killed_at_ms]
    assert all(run.data.tags.get("raysweep.node_id") == survivor_node for run in late), [
        (run.info.run_name, run.data.tags.get("raysweep.node_id")) for run in late
    ]
    assert survivor_node in {run.data.tags.get("raysweep.node_id") for run in children}
    KILL_RECORD.update(victims={rid: by_id[rid] for rid in victims}, survivor=survivor_node)


def test_a_retried_trial_names_the_node_it_finished_on() -> None:
    if not KILL_RECORD:
        pytest.skip("the node-failure sweep did not get far enough")
    for run in KILL_RECORD["victims"].values():
        assert run.data.tags.get("raysweep.node_id") == KILL_RECORD["survivor"], run.data.tags
