"""A nested validation killed with SIGKILL part-way and continued with ``raysweep resume``, as a
user runs them from a shell: the folds that had finished are read back, the others go on, and
MLflow ends with one tree (one job run, one run per fold, the final sweep's run, each sweep's
trials once), nothing left RUNNING."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from raysweep.cli import main
from raysweep.sweep.nested_resume import FOLD_OUTCOME, JOB_DONE
from raysweep.tracking import schema
from raysweep.tracking.views import sweep_links
from test_reliability import Sweep, client_for, end_session, raysweep, ray_trial_ids, sqlite_uri, started, summary_of, wait_for

pytestmark = pytest.mark.e2e

NAME = "job"
K = 3
TRIALS = 1
PARTS = [f"{NAME}-fold{i}" for i in range(1, K + 1)] + [f"{NAME}-final"]


def fold_outcomes(cwd: Path) -> dict[str, dict]:
    """The folds whose sweep had ended, by name: the outcome their record keeps for a resume."""
    found = {}
    for name in PARTS[:K]:
        path = cwd / "raysweep_results" / name / "raysweep_sweep.json"
        try:
            outcome = json.loads(path.read_text()).get(FOLD_OUTCOME)
        except (OSError, ValueError):
            continue  # not written yet, or being written
        if outcome:
            found[name] = outcome
    return found


def test_a_nested_validation_killed_with_sigkill_resumes_its_unfinished_sweeps_once(ray_local, tmp_path):
    uri = sqlite_uri(tmp_path)
    # The drivers join the test run's Ray (the resume finds the address in the job's record): a
    # killed driver's trials end with it, and neither driver waits for a Ray of its own to start.
    address = ray_local.get_runtime_context().gcs_address
    sweep = Sweep(
        ["run", "random_forest", "--dataset", "breast_cancer", "--nested-cv", str(K), "--num-samples", str(TRIALS),
         "--scheduler", "fifo", "--searcher", "random", "--set", "resource.max=20", "--name", NAME, "--tracking-uri", uri, "--json",
         "--address", address],
        tmp_path,
    )  # fmt: skip
    try:

        def a_fold_ended() -> dict[str, dict]:
            assert sweep.running(), sweep.err.read_text()[-3000:]
            return fold_outcomes(tmp_path)

        wait_for(a_fold_ended, 180, "a fold's sweep to end", every=0.1)
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.process.wait(30)
    finally:
        sweep.stop()
    end_session(sweep.pid)
    before = fold_outcomes(tmp_path)
    job_record = json.loads((tmp_path / "raysweep_results" / NAME / "raysweep_sweep.json").read_text())
    assert not job_record.get(JOB_DONE), "the job ended before the kill"
    client = client_for(uri)
    experiment = client.get_experiment_by_name("raysweep-breast_cancer").experiment_id
    (top,) = [run for run in client.search_runs([experiment]) if schema.PARENT_RUN_ID not in run.data.tags]
    assert top.info.status == "RUNNING"
    print(f"killed with {sorted(before)} ended")

    # `raysweep sync JOB` closes what the kill left open, sweep by sweep, and the job's run as KILLED.
    synced = raysweep("sync", NAME, "--json", cwd=tmp_path, timeout=120)
    assert synced.returncode == 0, synced.stderr[-3000:]
    report = summary_of(synced.stdout)
    assert report["nested_job"] == NAME and report["job_status"] == "KILLED", report
    assert sorted([r["sweep"] for r in report["sweeps"]] + report["never_started"]) == sorted(PARTS), report
    statuses = {run.info.run_name: run.info.status for run in client.search_runs([experiment], max_results=1000)}
    assert "RUNNING" not in statuses.values(), statuses

    done = raysweep("resume", NAME, "--json", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert not done.left_behind, done.left_behind
    summary = summary_of(done.stdout)
    nested = summary["nested"]
    assert [fold["fold"] for fold in nested["folds"]] == [1, 2, 3] and nested["k"] == K
    assert all(0.8 < fold["score"] <= 1 and 0.8 < fold["inner_best"] <= 1 for fold in nested["folds"]), nested
    # The folds that had ended are read back, not run again: their outcome as their record kept it.
    for name, outcome in before.items():
        fold = nested["folds"][int(name.removeprefix(f"{NAME}-fold")) - 1]
        assert (fold["score"], fold["inner_best"], fold["config"]) == (outcome["score"], outcome["inner_best"], outcome["config"])
        assert f"fold {fold['fold']}/{K} had finished" in done.stderr
    for name in PARTS:  # Ray made each sweep's trials once, across the kill
        assert len(ray_trial_ids(tmp_path, name)) == TRIALS, (name, ray_trial_ids(tmp_path, name))

    # MLflow: one job run, under it one run per sweep, under each its trials once; all FINISHED.
    runs = client.search_runs([experiment], max_results=1000)
    assert sorted({run.info.status for run in runs}) == ["FINISHED"], [(r.info.run_name, r.info.status) for r in runs]
    by_parent: dict[str | None, list] = {}
    for run in runs:
        by_parent.setdefault(run.data.tags.get(schema.PARENT_RUN_ID), []).append(run)
    (job,) = by_parent[None]
    assert job.info.run_id == top.info.run_id == summary["parent_run_id"]
    parts = {run.info.run_name: run for run in by_parent[job.info.run_id]}
    assert sorted(parts) == sorted(PARTS) and len(by_parent[job.info.run_id]) == K + 1
    for name, part in parts.items():
        trials = [run.data.tags[schema.TRIAL_ID] for run in by_parent.get(part.info.run_id, [])]
        assert len(trials) == len(set(trials)) == TRIALS, (name, trials)
    assert len(runs) == 1 + (K + 1) * (1 + TRIALS)
    # The job's outcome, as a job that ran through gets it.
    history = client.get_metric_history(job.info.run_id, schema.nested_metric("accuracy"))
    assert sorted((m.step, m.value) for m in history) == [(fold["fold"], fold["score"]) for fold in nested["folds"]]
    assert job.data.metrics[schema.nested_metric("accuracy", "mean")] == nested["mean"]
    assert job.data.tags[schema.MODEL_URI] == summary["model_uri"]
    # `raysweep ui`: the job's trials link lists its final sweep's trials; its folds link, its sweeps.
    links = dict(sweep_links(client, "http://127.0.0.1:5000", job))
    shown = {}
    for label in ("trials", "folds"):
        key = links[label].split("viewStateShareKey=")[1]
        view = json.loads(client.get_experiment(experiment).tags[schema.SHARED_VIEW_PREFIX + key])
        shown[label] = {run.info.run_id for run in client.search_runs([experiment], filter_string=view["searchFilter"])}
    assert shown["folds"] == {part.info.run_id for part in parts.values()}
    assert shown["trials"] == {run.info.run_id for run in by_parent[parts[f"{NAME}-final"].info.run_id]}

    # Resuming it again: complete, one line, exit 0 (by a sweep's name: tests/test_nested_input.py).
    again = CliRunner().invoke(main, ["resume", NAME, "--storage", str(tmp_path / "raysweep_results")], prog_name="raysweep")
    assert again.exit_code == 0, again.output
    # Its store is not the default one of the folder resume ran in: the report command names it.
    assert again.stderr.strip() == (
        f"raysweep: nested validation {NAME} is complete; nothing to resume. Its result: raysweep report {NAME} --tracking-uri {uri}"
    )


def test_a_nested_validation_stopped_with_ctrl_c_exits_130_and_resumes_to_one_finished_tree(ray_local, tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while the inner sweeps run in
    their threads: raysweep handles it itself (Ray Tune's handler is the main thread's only)."""
    name, k, trials = "stopped", 2, 2
    parts = [f"{name}-fold{i}" for i in range(1, k + 1)] + [f"{name}-final"]
    uri = sqlite_uri(tmp_path)
    address = ray_local.get_runtime_context().gcs_address
    sweep = Sweep(
        ["run", "random_forest", "--dataset", "breast_cancer", "--nested-cv", str(k), "--num-samples", str(trials),
         "--scheduler", "fifo", "--searcher", "random", "--set", "resource.max=200", "--name", name, "--tracking-uri", uri,
         "--json", "--address", address],
        tmp_path,
    )  # fmt: skip
    try:

        def a_trial_run_is_open() -> bool:
            assert sweep.running(), sweep.err.read_text()[-3000:]
            # Not before the job's run is open: MLflow's client opens its store as it is made, and
            # one made here while the sweep makes it would have two processes create its tables.
            if not started(tmp_path, name):
                return False
            client = client_for(uri)
            experiment = client.get_experiment_by_name("raysweep-breast_cancer")
            runs = client.search_runs([experiment.experiment_id]) if experiment is not None else []
            return any(schema.TRIAL_ID in run.data.tags and run.info.status == "RUNNING" for run in runs)

        wait_for(a_trial_run_is_open, 180, "a fold's trial run to open", every=0.1)
        os.killpg(sweep.pid, signal.SIGINT)
        stopped = sweep.wait(120)
    finally:
        sweep.stop()
    assert stopped.returncode == 130, (stopped.returncode, stopped.stderr[-3000:])
    assert f"raysweep resume {name}" in stopped.stderr and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    assert not stopped.left_behind, stopped.left_behind
    job_record = json.loads((tmp_path / "raysweep_results" / name / "raysweep_sweep.json").read_text())
    assert not job_record.get(JOB_DONE), "the job ended before the Ctrl-C"
    client = client_for(uri)
    experiment = client.get_experiment_by_name("raysweep-breast_cancer").experiment_id
    at_stop = client.search_runs([experiment], max_results=1000)
    assert "RUNNING" not in {run.info.status for run in at_stop}, [(r.info.run_name, r.info.status) for r in at_stop]
    (top,) = [run for run in at_stop if schema.PARENT_RUN_ID not in run.data.tags]
    assert top.info.status == "KILLED"

    done = raysweep("resume", name, "--json", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert not done.left_behind, done.left_behind
    nested = summary_of(done.stdout)["nested"]
    assert [fold["fold"] for fold in nested["folds"]] == list(range(1, k + 1)), nested
    runs = client.search_runs([experiment], max_results=1000)
    assert sorted({run.info.status for run in runs}) == ["FINISHED"], [(r.info.run_name, r.info.status) for r in runs]
    children = {}
    for run in runs:
        children.setdefault(run.data.tags.get(schema.PARENT_RUN_ID), []).append(run)
    (job,) = children[None]
    assert job.info.run_id == top.info.run_id
    assert sorted(run.info.run_name for run in children[job.info.run_id]) == sorted(parts)
    for part in children[job.info.run_id]:
        ids = [run.data.tags[schema.TRIAL_ID] for run in children.get(part.info.run_id, [])]
        assert len(ids) == len(set(ids)) == trials, (part.info.run_name, ids)
    assert len(runs) == 1 + (k + 1) * (1 + trials)
