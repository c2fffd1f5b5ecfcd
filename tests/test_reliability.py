"""Faults a sweep must survive, each caused for real: a trial that raises or diverges, a sweep
whose every trial fails, the driver killed with SIGKILL (then ``raysweep sync`` and ``raysweep
resume``) or stopped with Ctrl-C (SIGINT) or SIGTERM and resumed, the MLflow tracking server stopped
mid-sweep and restarted, and secrets in the environment that must never reach MLflow, Ray's
results, Ray's logs or the output.

Every sweep is a ``raysweep`` process started as a user would, in its own temporary folder and
its own process session (so whatever Ray leaves behind when the driver is killed can be found
and ended), logging to a sqlite store there unless the test is about the tracking server.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import live_processes, session_processes

from raysweep.cli.review import server_environment

TERMINAL = {"FINISHED", "FAILED", "KILLED"}
RF_EXPERIMENT = "raysweep-make_classification"
#: the background sweeps: random forests grown 10 trees a step, 20 steps to 200 trees
RF_STEPS = list(range(10, 201, 10))

# Three trials, the recipe's three starting points: learning rate 0.1 trains; 100 makes XGBoost's
# predictions overflow to NaN (raysweep fails the trial as diverged); 0.3 with one monotone constraint
# more than diabetes has features makes XGBoost raise when it trains (raysweep's check before Ray, on
# made-up rows, leaves what depends on the data's columns to the trials).
FAULTY_RECIPE = """\
name: xgboost_faults
family: xgboost
tasks: [regression]
metric: {regression: rmse}
resource: {name: boosting_rounds, per_step: 10, max: 30}
scheduler: fifo
searcher: random
num_samples: 3
fixed: {tree_method: hist, max_depth: 3}
space:
  learning_rate: {type: choice, values: [0.1, 100.0, 0.3]}
  monotone_constraints: {type: choice, values: ["()", "(1,1,1,1,1,1,1,1,1,1,1)"]}
points_to_evaluate:
  - {learning_rate: 0.1, monotone_constraints: "()"}
  - {learning_rate: 100.0, monotone_constraints: "()"}
  - {learning_rate: 0.3, monotone_constraints: "(1,1,1,1,1,1,1,1,1,1,1)"}
"""

#: distinctive values for every secret a user may have in the environment of a sweep
#: (MLFLOW_TRACKING_USERNAME is left out: it names who logged, and MLflow records it as mlflow.user)
SECRETS = {
    "MLFLOW_TRACKING_TOKEN": "rs-secret-mlflow-token-7f3a9c",
    "MLFLOW_TRACKING_PASSWORD": "rs-secret-mlflow-password-51be2d",
    "AWS_ACCESS_KEY_ID": "AKIARSSECRET7Q2W9E4R",
    "AWS_SECRET_ACCESS_KEY": "rs-secret-aws-key-wJalrXUtnFEMIK7MDENGbPxRfiCY",
    "AWS_SESSION_TOKEN": "rs-secret-aws-session-9d81e0",
    "RAY_AUTH_TOKEN": "rs-secret-ray-token-3c4d5e6f",
}


# -- processes ------------------------------------------------------------------------------------
def raysweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "raysweep", *args]


def end_session(session_id: int) -> dict[int, str]:
    """SIGKILL whatever is left of a session; returns what was left."""
    left = session_processes(session_id)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 20
    while session_processes(session_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    #: processes of its session still alive when it exited (then killed)
    left_behind: dict[int, str]


class Sweep:
    """A ``raysweep`` process in the background, in its own session, output kept in files."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None, label: str = "sweep") -> None:
        self.cwd = cwd
        self.out = cwd / f"{label}.stdout"
        self.err = cwd / f"{label}.stderr"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                raysweep_command(*args), cwd=cwd, env={**os.environ, **(env or {})},
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> Finished:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            end_session(self.pid)
            raise AssertionError(f"raysweep did not finish within {timeout}s:\n{self.err.read_text()[-3000:]}") from None
        time.sleep(0.5)  # let Ray's own processes notice their driver is gone
        left = end_session(self.pid)
        return Finished(self.process.returncode, self.out.read_text(), self.err.read_text(), left)

    def stop(self) -> None:
        if self.running():
            self.process.kill()
            self.process.wait()
        end_session(self.pid)


def raysweep(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> Finished:
    """``raysweep ARGS`` to the end, as a user runs it from a shell."""
    return Sweep(list(args), cwd, env, label=args[0]).wait(timeout)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def summary_of(stdout: str) -> dict[str, Any]:
    """The one JSON object ``--json`` prints on stdout."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout is not one JSON object:\n{stdout[-3000:]}"
    return json.loads(lines[0])


# -- MLflow -----------------------------------------------------------------------------------------
def sqlite_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def client_for(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def sweep_runs(client: Any, experiment: str) -> tuple[list[Any], list[Any]]:
    """The parent runs and the trial runs of an experiment that holds one sweep."""
    from mlflow.entities import ViewType

    found = client.get_experiment_by_name(experiment)
    if found is None:
        return [], []
    runs = client.search_runs([found.experiment_id], run_view_type=ViewType.ALL, max_results=1000)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return parents, [run for run in runs if "mlflow.parentRunId" in run.data.tags]


def steps_of(client: Any, run: Any, key: str = "val_accuracy") -> list[int]:
    """The steps of a run's metric history, in step order, duplicates kept."""
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, key))


def trial_steps(client: Any, experiment: str) -> dict[str, list[int]]:
    """Trial run name -> the steps of its val_accuracy history, as MLflow has them now."""
    _, children = sweep_runs(client, experiment)
    return {run.info.run_name: steps_of(client, run) for run in children}


def started(cwd: Path, name: str) -> bool:
    """The sweep has opened its MLflow parent run (only then may this process open the sqlite
    store: opening it while raysweep creates the tables races the schema migration)."""
    return (cwd / "raysweep_results" / name / "raysweep_sweep.json").exists()


def ray_results(cwd: Path, name: str) -> dict[str, list[dict[str, Any]]]:
    """Trial id -> every result Ray recorded for it (result.json), in order."""
    found = {}
    for path in (cwd / "raysweep_results" / name).glob("*/result.json"):
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass  # the line a killed driver was writing
        if rows:
            found[rows[0]["trial_id"]] = rows
    return found


def ray_trial_ids(cwd: Path, name: str) -> set[str]:
    """The trials Ray made a folder for (some may not have reported yet)."""
    folders = (path for path in (cwd / "raysweep_results" / name).iterdir() if path.is_dir())
    found = (re.search(r"_([0-9a-f]{5}_\d{5})_", path.name) for path in folders)
    return {match.group(1) for match in found if match}


def wait_for_first_metrics(sweep: Any, client: Any, experiment: str) -> None:
    """Wait until the running sweep's first trial metrics are on the tracking server."""

    def metrics_logged() -> bool:
        assert sweep.running(), sweep.err.read_text()[-3000:]
        return any(steps for steps in trial_steps(client, experiment).values())

    wait_for(metrics_logged, 240, "the first trial metrics on the server")


def ctrl_c_then_resume(sweep: Sweep, name: str, cwd: Path, wait_s: float = 120) -> Finished:
    """Ctrl-C the running ``sweep`` as a terminal does (its process group): it must exit 130. Then
    ``raysweep resume NAME --json`` to its end, which must exit 0: the resume, finished."""
    os.killpg(sweep.pid, signal.SIGINT)
    stopped = sweep.wait(wait_s)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    done = raysweep("resume", name, "--json", cwd=cwd, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def background_rf_sweep(
    cwd: Path, name: str, tracking_uri: str, num_samples: int | None, n_samples: int = 3000, concurrent: int = 2,
    extra: list[str] | None = None, env: dict[str, str] | None = None,
) -> Sweep:
    """``num_samples`` None: no trial count (a time budget in ``extra`` then fills itself with trials)."""
    count = [] if num_samples is None else ["--num-samples", str(num_samples)]
    return Sweep(
        ["run", "random_forest", "--dataset", f"make_classification:n_samples={n_samples}",
         *count, "--scheduler", "fifo", "--searcher", "random", "--name", name,
         "--set", "resource.per_step=10", "--max-concurrent", str(concurrent), "--tracking-uri", tracking_uri,
         "--json", *(extra or [])],
        cwd, env,
    )  # fmt: skip


def assert_complete_histories(client: Any, children: list[Any], steps: list[int] = RF_STEPS) -> None:
    """Every trial ran to its last step (200 trees) and MLflow has each of its steps exactly once."""
    for run in children:
        assert steps_of(client, run) == steps, (run.info.run_name, steps_of(client, run))
        assert run.info.status == "FINISHED", (run.info.run_name, run.info.status)
        assert run.data.tags["raysweep.outcome"] == "completed", run.data.tags
        assert "raysweep.stop_reason" not in run.data.tags, run.data.tags


# -- a trial that raises, a trial that diverges, secrets in the environment ------------------------
@pytest.fixture(scope="module")
def faulty_sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One sweep of three trials (one trains, one diverges, one raises), each failing trial
    retried twice, run with secrets in its environment and Ray's files in a folder of its own."""
    cwd = tmp_path_factory.mktemp("faulty")
    (cwd / "faults.yaml").write_text(FAULTY_RECIPE)
    ray_tmp = tempfile.mkdtemp(prefix="rsr-")  # short: Ray's socket paths must stay < 108 bytes
    try:
        done = raysweep(
            "run", "faults.yaml", "--dataset", "diabetes", "--name", "faulty", "--max-failures", "2", "--json",
            "--tracking-uri", sqlite_uri(cwd), cwd=cwd, env={**SECRETS, "RAY_TMPDIR": ray_tmp},
        )  # fmt: skip
        yield {"cwd": cwd, "done": done, "ray_tmp": Path(ray_tmp)}
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def faulty_runs(faulty_sweep: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    client = client_for(sqlite_uri(faulty_sweep["cwd"]))
    parents, children = sweep_runs(client, "raysweep-diabetes")
    assert len(parents) == 1 and len(children) == 3, [r.info.run_name for r in parents + children]
    return client, parents[0], {run.data.params["learning_rate"]: run for run in children}


def test_a_trial_raising_in_training_fails_alone_is_retried_and_counted(faulty_sweep):
    done = faulty_sweep["done"]
    assert done.returncode == 0, done.stderr[-4000:]
    summary = summary_of(done.stdout)
    assert (summary["num_trials"], summary["num_errors"]) == (3, 2), summary
    assert summary["best_config"] == {"learning_rate": 0.1, "monotone_constraints": "()"}
    # the live view's last line counts them too
    assert re.search(r"trials: 1 of 3 done, 0 running, 0 waiting, 2 failed", done.stderr), done.stderr[-2000:]

    client, parent, runs = faulty_runs(faulty_sweep)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["num_errors"] == 2
    raised = runs["0.3"]
    assert raised.info.status == "FAILED"
    assert raised.data.tags["raysweep.outcome"] == "failed"
    assert "monotone constraint should be less or equal to the number of features" in raised.data.tags["raysweep.error"]
    # --max-failures 2: Tune ran the trial three times in all, and the run says it was retried twice
    assert raised.data.tags["raysweep.retries"] == "2"
    for attempt in ("1", "2"):
        assert "monotone constraint should be less or equal to the number of features" in raised.data.tags[f"raysweep.retry.{attempt}.error"]
    trained = runs["0.1"]
    assert trained.info.status == "FINISHED" and trained.data.tags["raysweep.outcome"] == "completed"
    assert "raysweep.retries" not in trained.data.tags
    assert steps_of(client, trained, "val_rmse") == [10, 20, 30]
    # Ray recorded the failure too: the trial's error.txt holds XGBoost's message
    errors = list((faulty_sweep["cwd"] / "raysweep_results" / "faulty").glob("*/error.txt"))
    assert len(errors) == 2, errors
    assert any("monotone constraint should be less or equal to the number of features" in path.read_text() for path in errors)


def test_a_trial_whose_score_turns_nan_fails_as_diverged_and_the_sweep_goes_on(faulty_sweep):
    done = faulty_sweep["done"]
    assert done.returncode == 0, done.stderr[-4000:]
    client, parent, runs = faulty_runs(faulty_sweep)
    diverged = runs["100.0"]
    assert diverged.info.status == "FAILED"
    assert diverged.data.tags["raysweep.outcome"] == "failed"
    error = diverged.data.tags["raysweep.error"]
    assert re.search(r"FloatingPointError: validation rmse is nan at boosting_rounds=\d+: the model diverged", error), error
    assert diverged.data.tags["raysweep.retries"] == "2"  # retried (from scratch: it had no checkpoint), diverged each time
    # the scores before it diverged are logged, once each although every retry repeated them; the NaN is not
    logged = client.get_metric_history(diverged.info.run_id, "val_rmse")
    assert all(math.isfinite(m.value) for m in logged) and max((m.step for m in logged), default=0) < 30, logged
    steps = [m.step for m in logged]
    assert len(steps) == len(set(steps)), steps
    # the sweep went on to refit the trial that trained
    assert summary_of(done.stdout)["test_score"] > 0
    assert parent.data.tags["raysweep.best_config"] == '{"learning_rate": 0.1, "monotone_constraints": "()"}'


def leaks_in(paths: list[Path]) -> list[str]:
    """Which of these files hold a secret's value, anywhere in their bytes."""
    leaks = []
    for path in paths:
        if path.is_file() and not path.is_symlink() and not path.is_socket():
            data = path.read_bytes()
            leaks += [f"{path}: {name}" for name, secret in SECRETS.items() if secret.encode() in data]
    return leaks


def test_secrets_in_the_environment_reach_no_param_tag_metric_artifact_output_or_result(faulty_sweep):
    done = faulty_sweep["done"]
    assert done.returncode == 0, done.stderr[-4000:]  # RAY_AUTH_TOKEN set leaves the embedded Ray working
    client, parent, runs = faulty_runs(faulty_sweep)
    texts: dict[str, str] = {"stdout": done.stdout, "stderr": done.stderr}
    downloads = faulty_sweep["cwd"] / "downloaded"
    for run in [parent, *runs.values()]:
        name = run.info.run_name
        for key, value in {**run.data.params, **run.data.tags}.items():
            texts[f"{name} param/tag {key}"] = f"{key}={value}"
        texts[f"{name} metric keys"] = " ".join(run.data.metrics)
        folder = downloads / run.info.run_id
        folder.mkdir(parents=True)
        client.download_artifacts(run.info.run_id, "", str(folder))
    # the refit model is a logged model of its own in MLflow 3
    import mlflow

    mlflow.set_tracking_uri(sqlite_uri(faulty_sweep["cwd"]))
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=parent.data.tags["raysweep.model_uri"], dst_path=str(downloads / "model"))
    finally:
        mlflow.set_tracking_uri(None)
    downloaded = [path for path in downloads.rglob("*") if path.is_file()]
    assert {"leaderboard.csv", "recipe.yaml", "MLmodel"} <= {path.name for path in downloaded}
    leaks = [f"{where}: {name}" for where, text in texts.items() for name, secret in SECRETS.items() if secret in text]
    # Then every byte the sweep left in its folder: the sqlite store with every run, the artifacts,
    # and Ray's results (result.json, params, experiment state, checkpoints).
    everything = list(faulty_sweep["cwd"].rglob("*"))
    assert any(path.name == "result.json" for path in everything) and any(path.name == "mlflow.db" for path in everything)
    leaks += leaks_in(everything)
    assert not leaks, leaks


def test_secrets_in_the_environment_reach_no_ray_log(faulty_sweep):
    logs = [path for path in faulty_sweep["ray_tmp"].rglob("*") if "logs" in path.parts]
    assert any(path.name == "raylet.out" for path in logs), logs[:20]
    leaks = leaks_in(logs)
    assert not leaks, leaks


# -- every trial fails ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def all_failed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One monotone constraint more than iris has features: XGBoost refuses it as it trains (raysweep's
    check before Ray, on made-up rows, leaves what depends on the data's columns to the trials)."""
    cwd = tmp_path_factory.mktemp("all-failed")
    done = raysweep(
        "run", "xgboost", "--dataset", "iris", "--scheduler", "fifo", "--searcher", "random", "--num-samples", "2",
        "--set", "resource.max=100", "--set", "fixed.monotone_constraints=(1,1,1,1,1)", "--name", "all-failed",
        "--tracking-uri", sqlite_uri(cwd), "--json", cwd=cwd,
    )  # fmt: skip
    return {"cwd": cwd, "done": done}


def test_a_sweep_whose_every_trial_fails_exits_1_with_the_first_error(all_failed):
    done = all_failed["done"]
    assert done.returncode == 1, done.stderr[-4000:]
    assert done.stdout.strip() == ""  # with --json too: no JSON for a failed sweep (README)
    failed = [line for line in done.stderr.splitlines() if line.startswith("sweep failed:")]
    assert len(failed) == 1 and failed[0].startswith(
        "sweep failed: every trial failed (2 of 2); first error: xgboost.core.XGBoostError: "
    ) and "monotone constraint should be less or equal to the number of features" in failed[0], failed
    assert done.stderr.strip().splitlines()[-1] == failed[0]
    client = client_for(sqlite_uri(all_failed["cwd"]))
    parents, children = sweep_runs(client, "raysweep-iris")
    assert [run.info.status for run in parents] == ["FAILED"]
    assert len(children) == 2
    for run in children:
        assert run.info.status == "FAILED" and run.data.tags["raysweep.outcome"] == "failed"
        assert "monotone constraint should be less or equal to the number of features" in run.data.tags["raysweep.error"]


def test_a_sweep_whose_every_trial_fails_prints_no_traceback(all_failed):
    stderr = all_failed["done"].stderr
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "ERROR" not in stderr, stderr[-3000:]


# -- the driver killed ------------------------------------------------------------------------------
def test_a_sweep_killed_with_sigkill_resumes_to_the_end_with_every_step_logged_once(tmp_path):
    name = "killed"
    uri = sqlite_uri(tmp_path)
    # A checkpoint after every step (the default is every 10 s, longer than these trials), so that
    # the trials caught part-way have one to continue from.
    sweep = background_rf_sweep(tmp_path, name, uri, num_samples=6, extra=["--checkpoint-every", "0"])
    try:
        wait_for(lambda: started(tmp_path, name) or not sweep.running(), 240, "the sweep to start")
        client = client_for(uri)

        def mid_sweep() -> dict[str, list[int]] | None:
            assert sweep.running(), sweep.err.read_text()[-3000:]
            steps = trial_steps(client, RF_EXPERIMENT)
            return steps if any(len(s) >= 3 for s in steps.values()) else None

        seen = wait_for(mid_sweep, 180, "a trial with 3 steps in MLflow")
        assert len(seen) < 6 or any(len(s) < 20 for s in seen.values()), "the sweep ended before the kill"
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.process.wait(30)
    finally:
        sweep.stop()
    left = end_session(sweep.pid)
    print(f"left behind by the killed driver (now ended): {left}")

    # What the killed driver left: runs still RUNNING, trials part-way
    parents, children = sweep_runs(client, RF_EXPERIMENT)
    assert [run.info.status for run in parents] == ["RUNNING"]
    logged = {run.data.tags["raysweep.trial_id"]: steps_of(client, run) for run in children}
    cut = {run.data.tags["raysweep.trial_id"] for run in children if run.info.status == "RUNNING"}
    cut = {trial for trial in cut if 0 < len(logged[trial]) < 20}
    assert cut, "no trial was caught part-way"

    # `raysweep sync` writes what Ray recorded and MLflow lacks, and ends the runs left open
    results = ray_results(tmp_path, name)
    missing = sum(len({row["resource"] for row in rows} - set(logged.get(trial, []))) for trial, rows in results.items())
    synced = raysweep("sync", name, "--json", cwd=tmp_path, timeout=120)
    assert synced.returncode == 0, synced.stderr[-3000:]
    report = summary_of(synced.stdout)
    started_trials = ray_trial_ids(tmp_path, name)
    assert set(results) <= started_trials
    assert report["trials"] == len(started_trials) and report["parent_status"] == "KILLED", report
    assert report["runs_created"] == len(started_trials - set(logged)), (report, logged)
    assert report["metrics_written"] == 2 * missing, (report, missing)  # val_accuracy and step_time
    parents, children = sweep_runs(client, RF_EXPERIMENT)
    assert [run.info.status for run in parents] == ["KILLED"]
    assert {run.info.status for run in children} <= TERMINAL
    by_trial = {run.data.tags["raysweep.trial_id"]: run for run in children}
    assert set(by_trial) == started_trials | set(logged)
    for trial, rows in results.items():
        steps = steps_of(client, by_trial[trial])
        assert len(steps) == len(set(steps)) and {row["resource"] for row in rows} <= set(steps), (trial, steps)
    for trial in cut:
        tags = by_trial[trial].data.tags
        assert by_trial[trial].info.status == "KILLED", trial
        assert (tags["raysweep.outcome"], tags["raysweep.stop_reason"]) == ("stopped_early", "sweep_interrupted")

    # A kill while Tune writes its experiment state leaves the file cut (Tune writes it in place):
    # cut it here, so that the resume below always goes through raysweep's complete copy of it.
    folder = tmp_path / "raysweep_results" / name
    state = max(folder.glob("experiment_state-*.json"))
    assert (folder / ".raysweep-state" / state.name).is_file(), sorted(path.name for path in folder.iterdir())
    state.write_text("")

    # ... and `raysweep resume` continues the sweep from Ray's saved state, into the same runs
    done = raysweep("resume", name, "--json", cwd=tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = summary_of(done.stdout)
    assert (summary["num_trials"], summary["num_errors"]) == (6, 0), summary
    assert not done.left_behind, done.left_behind

    parents, children = sweep_runs(client, RF_EXPERIMENT)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert summary["parent_run_id"] == parents[0].info.run_id
    children = each_trial_once(children, 6)
    assert_complete_histories(client, children)
    # The trials caught part-way continued from their last checkpoint (Ray's saved state), not
    # from scratch: Ray's results for them hold the first step once.
    for trial in cut:
        iterations = [row["training_iteration"] for row in ray_results(tmp_path, name)[trial]]
        assert iterations.count(1) == 1, f"{trial} started over: {iterations}"
        assert sorted(set(iterations)) == list(range(1, 21)), iterations



def each_trial_once(children: list[Any], trials: int) -> list[Any]:
    """The sweep's trial runs (not deleted): ``trials`` of them, each trial once, all FINISHED. A
    deleted run is one resume took for lost (its trial not in Ray's saved state), tagged so; Tune
    numbers the trials it makes on from its saved count, so a new trial may have a lost one's id."""
    active = [run for run in children if run.info.lifecycle_stage == "active"]
    ids = [run.data.tags["raysweep.trial_id"] for run in active]
    assert len(active) == trials and len(set(ids)) == trials, ids
    assert {run.info.status for run in active} == {"FINISHED"}
    for run in children:
        if run.info.lifecycle_stage == "deleted":
            tags = run.data.tags
            assert (tags["raysweep.outcome"], tags["raysweep.stop_reason"]) == ("lost", "not_in_rays_saved_state"), tags
            assert run.info.status in ("FINISHED", "KILLED")
    return active


def saved_trials(cwd: Path, name: str) -> set[str]:
    """The trials in Ray Tune's latest saved experiment state."""
    state = max((cwd / "raysweep_results" / name).glob("experiment_state-*.json"))
    return {json.loads(entry[0])["trial_id"] for entry in json.loads(state.read_text())["trial_data"]}


def test_trials_that_ray_had_not_saved_when_the_driver_was_killed_are_run_again_and_their_runs_deleted(tmp_path):
    """Ray Tune saves its experiment state every 10 s or more; the trials started since are unknown
    to it after a SIGKILL, and the resumed sweep runs new ones in their place. Here Tune saves it
    once, as the sweep starts (``TUNE_GLOBAL_CHECKPOINT_S``), so every trial run is of such a trial."""
    name = "unsaved"
    uri = sqlite_uri(tmp_path)
    sweep = background_rf_sweep(tmp_path, name, uri, num_samples=5, n_samples=1000, env={"TUNE_GLOBAL_CHECKPOINT_S": "100000"})
    try:
        wait_for(lambda: started(tmp_path, name) or not sweep.running(), 240, "the sweep to start")
        client = client_for(uri)

        def two_finished() -> bool:
            assert sweep.running(), sweep.err.read_text()[-3000:]
            return sum(run.info.status == "FINISHED" for run in sweep_runs(client, RF_EXPERIMENT)[1]) >= 2

        wait_for(two_finished, 180, "two finished trial runs in MLflow")
        os.kill(sweep.pid, signal.SIGKILL)
        killed_at = time.time() * 1000
        sweep.process.wait(30)
    finally:
        sweep.stop()
    end_session(sweep.pid)
    _, before = sweep_runs(client, RF_EXPERIMENT)
    unsaved = {run.data.tags["raysweep.trial_id"] for run in before} - saved_trials(tmp_path, name)
    assert len(unsaved) >= 2, "trial runs of trials Ray had not saved"

    done = raysweep("resume", name, "--json", cwd=tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = summary_of(done.stdout)
    assert (summary["num_trials"], summary["num_errors"]) == (5, 0), summary
    lost = len({run.info.run_id for run in before if run.data.tags["raysweep.trial_id"] in unsaved})
    assert (
        f"raysweep: {lost} trial runs of trials Ray had not saved when the driver died are deleted in MLflow; "
        "new trials take their place (mlflow runs restore --run-id ID brings one back)"
    ) in done.stderr.splitlines(), done.stderr[-3000:]
    parents, children = sweep_runs(client, RF_EXPERIMENT)
    assert [run.info.status for run in parents] == ["FINISHED"]
    active = each_trial_once(children, 5)
    assert sum(run.info.lifecycle_stage == "deleted" for run in children) == lost
    # The trials in the lost runs' places have runs of their own, begun after the kill, each step once.
    assert all(run.info.start_time > killed_at for run in active if run.data.tags["raysweep.trial_id"] in unsaved)
    assert_complete_histories(client, active)


@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_a_stop_during_the_refit_ends_the_sweep_as_killed_and_resume_logs_the_outcome(how, tmp_path):
    """Ctrl-C or SIGTERM after the trials, while the best config is refit: exit 130 and the command
    that finishes the sweep; resume then logs the outcome without running a trial."""
    name = "ending"
    uri = sqlite_uri(tmp_path)
    sweep = background_rf_sweep(tmp_path, name, uri, num_samples=2, n_samples=3000)
    try:
        wait_for(lambda: "refitting the best config" in sweep.err.read_text() or not sweep.running(), 300, "the refit", every=0.02)
        assert sweep.running(), sweep.err.read_text()[-3000:]
        os.kill(sweep.pid, signal.SIGINT if how == "ctrl_c" else signal.SIGTERM)
        stopped = sweep.wait(120)
    finally:
        sweep.stop()
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert stopped.stderr.rstrip().splitlines()[-1] == (
        f"sweep {name} interrupted after its trials, before its outcome was logged. "
        f"Finish it with: raysweep resume {name} --storage {tmp_path / 'raysweep_results'}"
    ), stopped.stderr[-3000:]
    assert stopped.stdout == ""
    client = client_for(uri)
    parents, children = sweep_runs(client, RF_EXPERIMENT)
    assert [run.info.status for run in parents] == ["KILLED"]
    assert "test_accuracy" not in parents[0].data.metrics
    trial_runs = sorted(run.info.run_id for run in children)

    done = raysweep("resume", name, "--json", cwd=tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = summary_of(done.stdout)
    assert summary["num_trials"] == 2 and 0.5 < summary["test_score"] <= 1
    parents, children = sweep_runs(client, RF_EXPERIMENT)
    assert [run.info.status for run in parents] == ["FINISHED"]
    assert parents[0].data.metrics["test_accuracy"] == pytest.approx(summary["test_score"])
    assert sorted(run.info.run_id for run in children) == trial_runs, "no trial ran again"


def test_sync_or_resume_of_a_running_sweep_is_refused_and_the_sweep_finishes_as_it_would(tmp_path):
    """``sync`` while the sweep ran closed its parent run KILLED, and the sweep, finishing a moment
    later with exit 0, left it so (report: "did not finish"; resume: "complete"; 1 time in 6)."""
    name = "busy"
    uri = sqlite_uri(tmp_path)
    sweep = background_rf_sweep(tmp_path, name, uri, num_samples=8, concurrent=1)
    try:
        wait_for(lambda: started(tmp_path, name) or not sweep.running(), 240, "the sweep's parent run")
        wait_for_first_metrics(sweep, client_for(uri), RF_EXPERIMENT)
        refusals = [raysweep(command, name, cwd=tmp_path, timeout=120) for command in ("sync", "resume")]
        assert sweep.running(), "the sweep ended before sync and resume were tried: give it more trials"
        finished = sweep.wait(400)
    finally:
        sweep.stop()
    for command, refused in zip(("sync", "resume"), refusals):
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert refused.stderr.strip().splitlines()[-1] == (
            f"error: sweep {name} is still running (process {sweep.pid}): {command} it once it has stopped; "
            f"Ctrl-C in its terminal (or kill {sweep.pid}) stops it, resumable"
        )
    assert finished.returncode == 0, finished.stderr[-3000:]
    parents, children = sweep_runs(client_for(uri), RF_EXPERIMENT)
    assert [run.info.status for run in parents] == ["FINISHED"]
    assert len(children) == 8 and {run.info.status for run in children} == {"FINISHED"}


def test_patience_goes_on_counting_after_ctrl_c_and_resume(tmp_path):
    """Resumed, a --patience sweep ran every trial (Ray Tune consulted its own unpickled copy of
    the stopper, which the sweep's callbacks never told of a finished trial) and then named a best
    that later trials had beaten as why it stopped (3 of 3)."""
    name = "patient"
    uri = sqlite_uri(tmp_path)
    sweep = background_rf_sweep(tmp_path, name, uri, num_samples=12, concurrent=1, extra=["--patience", "2"])
    try:
        wait_for(lambda: "trials: 1 of 12 done" in sweep.err.read_text() or not sweep.running(), 240, "the first finished trial", every=0.05)
        assert sweep.running(), sweep.err.read_text()[-3000:]
        done = ctrl_c_then_resume(sweep, name, tmp_path)
    finally:
        sweep.stop()
    summary = summary_of(done.stdout)
    # One trial at a time: no trial runs beside the finished ones, so their best is the sweep's.
    assert re.fullmatch(
        rf"--patience 2: no better val_accuracy in the last 2 finished trials \(the finished trials' best "
        rf"{re.escape(format(summary['best_validation_score'], '.5g'))} by trial-\w+\)", summary["stopped_by"] or "",
    ), (summary["stopped_by"], summary["best_validation_score"])
    assert summary["num_trials"] < 12


#: what shows that ``ray.init`` is under way: the GCS server up (the raylet comes next), or the raylet's agents
RAY_STARTING = {"gcs": ("gcs_server",), "agents": ("DashboardAgent", "dashboard/agent.py", "RuntimeEnvAgent", "runtime_env/agent")}


@pytest.mark.parametrize(("how", "when"), [("sigterm", "gcs"), ("sigterm", "agents"), ("ctrl_c", "agents")])
def test_a_stop_while_ray_starts_is_exit_130_and_leaves_no_process(how, when, tmp_path):
    """SIGTERM while ``ray.init`` ran met Ray's own handler: exit 15 and not a word (Ctrl-C's is
    130 and a line). Either way the raylet's agents, a half-started Ray's, lived on for a minute."""
    uri = sqlite_uri(tmp_path)
    sweep = background_rf_sweep(tmp_path, "early", uri, num_samples=2)

    def starting() -> bool:
        return any(mark in line for line in session_processes(sweep.pid).values() for mark in RAY_STARTING[when])

    try:
        wait_for(lambda: starting() or not sweep.running(), 120, f"Ray's {when}", every=0.02)
        assert sweep.running(), sweep.err.read_text()[-3000:]
        if how == "ctrl_c":
            os.killpg(sweep.pid, signal.SIGINT)  # a terminal's Ctrl-C: the command's process group
        else:
            os.kill(sweep.pid, signal.SIGTERM)
        sweep.process.wait(120)
        wait_for(lambda: not session_processes(sweep.pid), 10, "Ray's processes to end", every=0.2)
        stopped = sweep.wait(10)
    finally:
        sweep.stop()
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert stopped.stderr.rstrip().splitlines()[-1] == "sweep early interrupted before its trials started: nothing to resume; run it again"
    assert stopped.left_behind == {}
    parents, children = sweep_runs(client_for(uri), RF_EXPERIMENT)
    assert [run.info.lifecycle_stage for run in parents + children] in ([], ["deleted"])  # no sweep of no trials in report


def assert_sigterm_handled_after(cwd: Path, setup: str) -> None:
    """Run ``setup`` (Python: Ray started and shut down, a handler that prints "handled" and exits 0)
    in a process of its own, then send that process SIGTERM: it must be handled, not end the process."""
    probe = (
        "import os, signal, sys, threading, time, ray\n" + setup
        + "os.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(5)\nprint('not handled')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, timeout=180,
                          start_new_session=True)  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "handled"), (done.returncode, done.stdout, done.stderr[-2000:])


def test_sigterm_reaches_pythons_handler_after_rays_shutdown_in_the_background(tmp_path):
    """Ray's shutdown resets SIGTERM to the system's default at the C level; raysweep's shutdown
    (in a thread, beside the refit) puts the handler back, so a SIGTERM after it is handled."""
    assert_sigterm_handled_after(tmp_path, (
        "from raysweep.sweep import early\n"
        "ray.init(include_dashboard=False, logging_level='ERROR', num_cpus=1)\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('handled'), sys.exit(0)))\n"
        "early.shutdown_ray().join()\n"
    ))  # fmt: skip


def test_rays_shutdown_leaves_the_command_lines_sigterm_handler_in_place_throughout(tmp_path):
    """Ray's driver, as it shuts down, set SIGTERM back to the system's default (its C++ failure
    signal handler uninstalled): a SIGTERM in that moment, while the best config was refit, ended the
    process at once (exit 143). The command line's driver runs without that handler: a plain
    ray.shutdown, without raysweep putting anything back, leaves SIGTERM handled."""
    assert_sigterm_handled_after(tmp_path, (
        "from raysweep.sweep.connect import _sigterm_kept, interrupt_on_sigterm\n"
        "signal.signal(signal.SIGTERM, interrupt_on_sigterm)\n"
        "signal.signal(signal.SIGINT, lambda *_: (print('handled'), sys.exit(0)))\n"
        "with _sigterm_kept():\n"
        "    ray.init(include_dashboard=False, logging_level='ERROR', num_cpus=1)\n"
        "shutdown = threading.Thread(target=ray.shutdown)\n"
        "shutdown.start()\n"
        "shutdown.join()\n"
    ))  # fmt: skip


# -- the MLflow writer process killed -----------------------------------------------------------------
def writer_processes(driver_pid: int) -> list[int]:
    """The MLflow writer processes a sweep's driver started (their command line names raysweep
    and writer; they run in a session of their own)."""
    return [
        pid for pid, fields, cmdline in live_processes()
        if int(fields[1]) == driver_pid and "raysweep" in cmdline and "writer" in cmdline
    ]


def kill_the_writer(sweep: Sweep) -> int:
    """SIGKILL the running sweep's MLflow writer process; returns its pid."""
    writers = wait_for(lambda: writer_processes(sweep.pid) or not sweep.running(), 60, "the MLflow writer process")
    assert sweep.running(), f"the sweep ended before its writer was killed:\n{sweep.err.read_text()[-3000:]}"
    assert len(writers) == 1, writers
    os.kill(writers[0], signal.SIGKILL)
    return writers[0]


def test_a_writer_killed_mid_sweep_is_replaced_and_mlflow_ends_complete(tmp_path):
    name = "writer-killed"
    uri = sqlite_uri(tmp_path)
    sweep = background_rf_sweep(tmp_path, name, uri, num_samples=12, n_samples=2000)
    try:
        wait_for(lambda: started(tmp_path, name) or not sweep.running(), 240, "the sweep to start")
        client = client_for(uri)
        wait_for_first_metrics(sweep, client, RF_EXPERIMENT)
        kill_the_writer(sweep)
        assert len(ray_trial_ids(tmp_path, name)) < 12, "the sweep was near its end before the kill"
        done = sweep.wait(600)
    finally:
        sweep.stop()
    assert done.returncode == 0, done.stderr[-4000:]
    summary = summary_of(done.stdout)
    assert (summary["num_trials"], summary["num_errors"]) == (12, 0), summary
    assert "the MLflow writer process was killed by SIGKILL; a new one writes what it had not" in done.stderr
    assert "raysweep sync" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-3000:]

    # MLflow has every trial once, every step once, and nothing left open
    parents, children = sweep_runs(client, RF_EXPERIMENT)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert summary["parent_run_id"] == parents[0].info.run_id
    trial_ids = [run.data.tags["raysweep.trial_id"] for run in children]
    assert sorted(trial_ids) == sorted(ray_results(tmp_path, name)), trial_ids
    assert len(children) == 12
    assert_complete_histories(client, children)
    for run in children:
        assert len(run.data.params) == 3, run.data.params

    # ... so `raysweep sync` finds nothing left to write
    synced = raysweep("sync", name, "--json", cwd=tmp_path, timeout=120)
    assert synced.returncode == 0, synced.stderr[-3000:]
    report = summary_of(synced.stdout)
    assert (report["runs_created"], report["metrics_written"], report["runs_ended"], report["parent_status"]) == (0, 0, {}, None)

# -- Ctrl-C and SIGTERM ------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["ctrl_c", "sigterm", "sigterm_group"])
def interrupted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A sweep stopped part-way, then resumed: with one Ctrl-C (SIGINT to its process group, as a
    terminal sends it), with SIGTERM to the raysweep process alone (what ``kill`` sends), or with
    SIGTERM to its whole process group (what ``timeout`` and a job scheduler's time limit send:
    the embedded Ray's own processes must outlive it for the sweep to stop as after Ctrl-C)."""
    cwd = tmp_path_factory.mktemp(f"interrupted-{request.param}")
    name = "interrupted"
    uri = sqlite_uri(cwd)
    sweep = background_rf_sweep(cwd, name, uri, num_samples=4, n_samples=2000, extra=["--set", "resource.max=100"])
    try:
        wait_for(lambda: started(cwd, name) or not sweep.running(), 240, "the sweep to start")
        client = client_for(uri)

        def mid_sweep() -> bool:
            assert sweep.running(), sweep.err.read_text()[-3000:]
            return any(len(steps) >= 2 for steps in trial_steps(client, RF_EXPERIMENT).values())

        wait_for(mid_sweep, 180, "a trial with 2 steps in MLflow")
        if request.param == "ctrl_c":
            os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        elif request.param == "sigterm_group":
            os.killpg(sweep.pid, signal.SIGTERM)
        else:
            os.kill(sweep.pid, signal.SIGTERM)
        stopped = sweep.wait(180)
    finally:
        sweep.stop()
    parents, children = sweep_runs(client, RF_EXPERIMENT)
    at_stop = {
        "parent": parents[0].info.status if len(parents) == 1 else [r.info.status for r in parents],
        "children": {run.info.run_name: (run.info.status, run.data.tags.get("raysweep.outcome"), steps_of(client, run)) for run in children},
    }
    elsewhere = None
    if request.param == "sigterm_group":
        # As if the sweep had run on a cluster that is gone since: resume there fails in one line that
        # says how to continue elsewhere, and `--address local` continues it on an embedded Ray.
        record_path = cwd / "raysweep_results" / name / "raysweep_sweep.json"
        record = json.loads(record_path.read_text())
        record["options"]["address"] = "127.0.0.1:1"
        record_path.write_text(json.dumps(record))
        elsewhere = raysweep("resume", name, "--json", cwd=cwd, timeout=120)
        resumed = raysweep("resume", name, "--json", "--address", "local", cwd=cwd, timeout=400)
    else:
        resumed = raysweep("resume", name, "--json", cwd=cwd, timeout=400)
    return {"cwd": cwd, "name": name, "client": client, "stopped": stopped, "at_stop": at_stop, "resumed": resumed, "elsewhere": elsewhere}


def test_ctrl_c_or_sigterm_ends_the_open_trial_runs_as_killed(interrupted):
    children = interrupted["at_stop"]["children"]
    assert children, "no trial run was open at the Ctrl-C"
    statuses = {status for status, _, _ in children.values()}
    assert statuses <= TERMINAL, children
    cut = {name: state for name, state in children.items() if len(state[2]) < 10}
    assert cut, f"every trial had finished before the Ctrl-C: {children}"
    for name, (status, outcome, _) in cut.items():
        assert (status, outcome) == ("KILLED", "stopped_early"), (name, status, outcome)
    assert not interrupted["stopped"].left_behind, interrupted["stopped"].left_behind


def test_ctrl_c_or_sigterm_exits_130_marks_the_parent_killed_and_says_how_to_resume(interrupted):
    stopped = interrupted["stopped"]
    assert stopped.returncode == 130, (stopped.returncode, stopped.stdout[-2000:], stopped.stderr[-3000:])
    assert f"raysweep resume {interrupted['name']}" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert "SIGTERM received" not in stopped.stderr  # the stack dump Ray's core worker prints on its own handler
    assert interrupted["at_stop"]["parent"] == "KILLED"


def test_a_sweep_whose_cluster_is_gone_says_how_to_resume_it_elsewhere(interrupted):
    gone = interrupted["elsewhere"]
    if gone is None:
        pytest.skip("only the sigterm_group sweep is taken for one whose cluster is gone")
    assert gone.returncode == 2, gone.stderr[-3000:]
    last = gone.stderr.strip().splitlines()[-1]
    assert last == (
        "error: --address 127.0.0.1:1 (to resume sweep interrupted on): cannot connect to a Ray cluster there (Connection refused); "
        "check the address; continue it on another with: raysweep resume interrupted --address HOST:PORT, or --address local for a local Ray"
    ), last


def test_a_sweep_stopped_with_ctrl_c_or_sigterm_resumes_to_the_requested_number_of_trials(interrupted):
    done = interrupted["resumed"]
    assert done.returncode == 0, done.stderr[-4000:]
    summary = summary_of(done.stdout)
    assert (summary["num_trials"], summary["num_errors"]) == (4, 0), summary
    client = interrupted["client"]
    parents, children = sweep_runs(client, RF_EXPERIMENT)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4
    assert len({run.data.tags["raysweep.trial_id"] for run in children}) == 4
    assert_complete_histories(client, children, steps=list(range(10, 101, 10)))
    assert not done.left_behind, done.left_behind


def test_a_time_budgeted_sweep_stopped_with_ctrl_c_resumes_to_its_end_on_what_is_left_of_its_budget(tmp_path):
    """Tune saves its budget's clock with its state, and a resume spends only what is left: raysweep
    took such a resume for one more interruption (exit 130) when its own session had been short."""
    name, budget = "budgeted", 40
    uri = sqlite_uri(tmp_path)
    sweep = background_rf_sweep(tmp_path, name, uri, num_samples=None, n_samples=2000, extra=["--time-budget", str(budget)])
    try:
        wait_for(lambda: started(tmp_path, name) or not sweep.running(), 240, "the sweep to start")
        client = client_for(uri)

        def a_trial_ran() -> bool:
            assert sweep.running(), sweep.err.read_text()[-3000:]
            return bool(trial_steps(client, RF_EXPERIMENT))

        wait_for(a_trial_ran, 180, "a trial in MLflow")
        # Half the budget spent: what is left, with a resume's own start, is shorter than 90% of it.
        time.sleep(budget * 0.45)
        done = ctrl_c_then_resume(sweep, name, tmp_path, wait_s=180)
    finally:
        sweep.stop()
    assert "interrupted" not in done.stderr.splitlines()[-1], done.stderr[-2000:]
    summary = summary_of(done.stdout)
    parents, children = sweep_runs(client, RF_EXPERIMENT)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert summary["num_trials"] == len(children) > 0 and summary["test_score"] > 0.5, summary
    # The trials the budget's end cut off in the resumed session ended for the budget, not KILLED as interrupted.
    ended = Counter((run.info.status, run.data.tags.get("raysweep.stop_reason")) for run in children)
    assert set(ended) <= {("FINISHED", None), ("FINISHED", "scheduler"), ("FINISHED", "time_budget")}, ended
    assert not done.left_behind, done.left_behind


# -- the tracking server goes away ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """A real ``mlflow server`` of this test's own, stopped and started again on the same port
    with the same store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        #: how long its first start took (seconds), once it answered
        self.startup_s: float | None = None

    def start(self) -> None:
        with open(self.root / "server.log", "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                 "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
                 "--artifacts-destination", str(self.root / "artifacts"), "--workers", "1"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root, start_new_session=True,
                env=server_environment(),
            )  # fmt: skip
        if self.startup_s is None:
            threading.Thread(target=self._time_startup, args=(self.process, time.monotonic()), daemon=True).start()

    def _time_startup(self, process: subprocess.Popen, began: float) -> None:
        while process.poll() is None and not self.answers():
            time.sleep(0.5)
        self.startup_s = time.monotonic() - began

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.uri + "/health", timeout=2):
                return True
        except OSError:
            return False

    def wait_up(self) -> None:
        def up() -> bool:
            assert self.process is not None and self.process.poll() is None, (self.root / "server.log").read_text()[-3000:]
            return self.answers()

        wait_for(up, 180, f"mlflow server on port {self.port}", every=0.5)

    def stop(self, crash: bool = False) -> None:
        """Stop the server: with SIGTERM, which it took 3-6 s to act on here (after 30 s it is
        killed), or with ``crash``, SIGKILL, which ends it at once."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL if crash else signal.SIGTERM)
            self.process.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        end_session(self.process.pid)
        self.process = None


@pytest.fixture(scope="module", autouse=True)
def own_mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """Started with the module's first test, so that its start-up (10-40 s) overlaps the other
    sweeps; the test that needs it waits until it answers."""
    server = MlflowServer(tmp_path_factory.mktemp("own-mlflow"))
    server.start()
    try:
        yield server
    finally:
        server.stop()




def test_mlflow_server_stopped_mid_sweep_and_restarted_loses_and_duplicates_nothing(own_mlflow_server, tmp_path):
    server = own_mlflow_server
    server.wait_up()
    # The sweep runs this long whatever the machine's speed (a time budget, more trials than fit
    # in it): through the outage, which lasts as long as the server takes to stop and start again,
    # and on after it. Its restart beside the sweep took 1.2-2.6x its first start here (8-12 s on
    # a quiet machine, 50 s on a busy one); the sweep's first metrics come 5-10 s into the budget.
    # One trial at a time leaves the server's restart a core.
    budget = round(max(60.0, 25 + 4 * wait_for(lambda: server.startup_s, 60, "the server's start-up time")))
    name = experiment = "outage"
    sweep = background_rf_sweep(
        tmp_path, name, server.uri, num_samples=40, concurrent=1,
        extra=["--time-budget", str(budget), "--seed", "1", "--experiment", experiment],
    )  # fmt: skip
    try:
        client = client_for(server.uri)

        wait_for_first_metrics(sweep, client, experiment)
        began, away_from = time.monotonic(), time.time()
        server.stop()
        assert not server.answers()
        # Trials keep running while MLflow is away: Ray keeps recording their results. The
        # server is away for the time it takes to start again.
        server.start()
        server.wait_up()
        outage, away_to = time.monotonic() - began, time.time()
        assert sweep.running(), f"the sweep ({budget}s) ended during the {outage:.0f}s outage"
        done = sweep.wait(400)
    finally:
        sweep.stop()
    # Counted by the results' own timestamps once the sweep is over: the result files in the
    # sweep's folder are brought up to date about every 10 s, so counting them before and after
    # a 10-15 s outage could see no new result at all (CI did: "0 results in 16s").
    during = sum(1 for rows in ray_results(tmp_path, name).values() for row in rows if int(away_from) <= row["timestamp"] <= away_to)
    print(f"MLflow was away {outage:.1f}s (its first start took {server.startup_s:.1f}s, the sweep {budget}s); "
          f"Ray recorded {during} results meanwhile")
    assert during >= outage / 4, f"only {during} results in {outage:.0f}s without MLflow: the sweep stalled on it"
    assert done.returncode == 0, done.stderr[-4000:]
    summary = summary_of(done.stdout)
    assert summary["num_errors"] == 0, summary
    assert "MLflow is not taking metrics right now" in done.stderr or "MLflow is not answering" in done.stderr

    # MLflow has every result Ray recorded, each step once, and no run left open
    parents, children = sweep_runs(client, experiment)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert summary["parent_run_id"] == parents[0].info.run_id
    results = ray_results(tmp_path, name)
    by_trial = {run.data.tags["raysweep.trial_id"]: run for run in children}
    assert len(by_trial) == len(children), "two runs for one trial"
    assert set(results) <= set(by_trial) <= set(results) | {t for t in by_trial if not steps_of(client, by_trial[t])}
    assert sum(len(rows) == 20 for rows in results.values()) >= 1, "no trial ran to the end"
    for trial_id, rows in results.items():
        run = by_trial[trial_id]
        assert run.info.status in ("FINISHED", "KILLED"), (run.info.run_name, run.info.status)
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert sorted(m.step for m in history) == [row["resource"] for row in rows], run.info.run_name
        assert {m.step: m.value for m in history} == pytest.approx({row["resource"]: row["val_accuracy"] for row in rows})
        assert len(run.data.params) == 3, run.data.params

    # With nothing missing, `raysweep sync` writes nothing
    synced = raysweep("sync", name, "--json", cwd=tmp_path, timeout=120)
    assert synced.returncode == 0, synced.stderr[-3000:]
    assert summary_of(synced.stdout) | {"tracking_uri": None} == {
        "sweep": name, "tracking_uri": None, "parent_run_id": parents[0].info.run_id, "trials": len(results),
        "runs_created": 0, "metrics_written": 0, "runs_ended": {}, "parent_status": None,
    }  # fmt: skip


def test_mlflow_server_away_when_the_sweep_ends_then_raysweep_sync_writes_the_rest(own_mlflow_server, tmp_path):
    server = own_mlflow_server
    server.wait_up()
    name = experiment = "away-at-end"
    sweep = background_rf_sweep(
        tmp_path, name, server.uri, num_samples=3, n_samples=2000,
        extra=["--experiment", experiment, "--set", "resource.max=100"],
    )  # fmt: skip
    try:
        client = client_for(server.uri)

        wait_for_first_metrics(sweep, client, experiment)
        server.stop()
        done = sweep.wait(400)  # ... and stays away until the sweep has ended
    finally:
        sweep.stop()
    # The sweep does not fail for want of its tracking server: it reports its outcome and says
    # what it could not record.
    assert done.returncode == 0, done.stderr[-4000:]
    summary = summary_of(done.stdout)
    assert (summary["num_trials"], summary["num_errors"]) == (3, 0), summary
    assert "the MLflow tracking server does not answer; the sweep's summary is not recorded" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-3000:]

    server.start()
    server.wait_up()
    results = ray_results(tmp_path, name)
    assert len(results) == 3 and all(len(rows) == 10 for rows in results.values())
    logged = trial_steps(client, experiment)
    lacking = sum(10 - len(logged.get(f"trial-{i:04d}", [])) for i in range(3))  # steps MLflow lacks
    assert lacking > 0, logged
    synced = raysweep("sync", name, "--json", cwd=tmp_path, timeout=120)
    assert synced.returncode == 0, synced.stderr[-3000:]
    report = summary_of(synced.stdout)
    assert report["trials"] == 3 and report["runs_created"] == 3 - len(logged), (report, logged)
    assert report["metrics_written"] == 3 * lacking, (report, logged)  # val_accuracy, best_val_accuracy and step_time
    assert report["parent_status"] == "FINISHED", report

    parents, children = sweep_runs(client, experiment)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 3 and {run.data.tags["raysweep.trial_id"] for run in children} == set(results)
    assert_complete_histories(client, children, steps=list(range(10, 101, 10)))
    for run in children:
        rows = results[run.data.tags["raysweep.trial_id"]]
        logged_values = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_accuracy")}
        assert logged_values == pytest.approx({row["resource"]: row["val_accuracy"] for row in rows})
        assert {k: float(v) for k, v in run.data.params.items()} == pytest.approx(rows[0]["config"])
        assert run.data.tags["raysweep.node_id"] == rows[0]["node_id"]

    # A second sync finds nothing left to write
    again = raysweep("sync", name, "--json", cwd=tmp_path, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    report = summary_of(again.stdout)
    assert (report["runs_created"], report["metrics_written"], report["runs_ended"], report["parent_status"]) == (0, 0, {}, None)


def test_sync_of_an_unknown_sweep_says_so_in_one_line(tmp_path):
    done = raysweep("sync", "no-such-sweep", cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no sweep 'no-such-sweep' under "), done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sync.stderr", "sync.stdout"]  # no store made


def test_roc_auc_on_a_class_the_validation_split_lacks_is_one_line_and_no_run(tmp_path):
    """3 rows of one class in 300: the validation split holds none; every trial failed "diverged"."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    labels = np.array(["yes"] * 149 + ["no"] * 148 + ["rare"] * 3)
    pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300), "label": labels}).to_csv(tmp_path / "rare.csv", index=False)
    done = raysweep(
        "run", "random_forest", "--dataset", "rare.csv", "--target", "label", "--metric", "roc_auc", "--num-samples", "2",
        "--scheduler", "fifo", "--tracking-uri", sqlite_uri(tmp_path), cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --metric roc_auc: the validation split has no row of class 'rare' (too few rows of it), and roc_auc is "
        "undefined without one; use --cv 2 (each row is scored in one fold), another --metric (log_loss, accuracy, "
        "f1_macro), or more rows of that class"
    )
    assert "Traceback" not in done.stderr
    if (tmp_path / "mlflow.db").exists():  # the writer may have opened the store: it holds no run
        client = client_for(sqlite_uri(tmp_path))
        assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_a_writer_killed_while_the_tracking_server_is_away_exits_1_and_names_raysweep_sync(own_mlflow_server, tmp_path):
    server = own_mlflow_server
    server.wait_up()
    name = experiment = "writer-and-server-away"
    # Trials long enough that the sweep still runs once the server has stopped (a few seconds).
    sweep = background_rf_sweep(tmp_path, name, server.uri, num_samples=4, n_samples=8000, extra=["--experiment", experiment])
    try:
        client = client_for(server.uri)
        wait_for_first_metrics(sweep, client, experiment)
        # The writer started in place of the killed one cannot reach MLflow: it stays away
        # until the sweep has ended. It goes at once (a server's SIGTERM shutdown can take longer
        # than what is left of the sweep).
        server.stop(crash=True)
        kill_the_writer(sweep)
        done = sweep.wait(600)
    finally:
        sweep.stop()
    assert done.returncode == 1, done.stderr[-4000:]
    assert done.stdout.strip(), f"no summary on stdout; stderr:\n{done.stderr[-4000:]}"
    summary = summary_of(done.stdout)  # the sweep's result is printed all the same
    assert (summary["num_trials"], summary["num_errors"]) == (4, 0), summary
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("raysweep: the MLflow writer process was killed by SIGKILL, and the one started in its place "
                           "could not complete the tracking: "), last
    assert last.endswith(f"MLflow lacks part of sweep {name}. Write the rest from Ray's results with: "
                         f"raysweep sync {name} --storage {tmp_path / 'raysweep_results'}"), last
    assert f"could not complete the tracking: the trial results could not be written again from Ray's results " \
           f"(the tracking server {server.uri} does not answer)" in last, last

    # ... and that command completes it
    server.start()
    server.wait_up()
    synced = raysweep("sync", name, "--storage", str(tmp_path / "raysweep_results"), "--json", cwd=tmp_path, timeout=120)
    assert synced.returncode == 0, synced.stderr[-3000:]
    assert summary_of(synced.stdout)["parent_status"] == "FINISHED"
    parents, children = sweep_runs(client, experiment)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(run.data.tags["raysweep.trial_id"] for run in children) == sorted(ray_results(tmp_path, name))
    assert_complete_histories(client, children)
