"""``raysweep resume`` of an auto sweep whose driver was killed with SIGKILL: Ray's saved state, the
sweep record's members and common scale, the same MLflow parent run, one run per trial, each tagged
with its family, and the winning family refit.

End to end: the sweep is a ``raysweep`` process as a user starts it (the helpers of
test_reliability), joined to the shared local Ray and killed; ``raysweep resume`` runs through the
CLI in this process, on that Ray (each Ray start costs seconds). A sqlite MLflow store, breast_cancer.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from fast_support import empty_store, store_uri  # noqa: F401  (fixtures)
from test_reliability import (
    TERMINAL,
    client_for,
    end_session,
    ray_results,
    ray_trial_ids,
    sqlite_uri,
    summary_of,
    Sweep,
    sweep_runs,
    wait_for,
)

pytestmark = pytest.mark.e2e

FAMILIES = ["random_forest", "xgboost"]
TRIALS = 4
EXPERIMENT = "raysweep-breast_cancer"


def test_an_auto_sweep_killed_with_sigkill_resumes_into_the_same_runs_and_refits_the_winning_family(ray_local, tmp_path, store_uri, monkeypatch):
    from click.testing import CliRunner

    from raysweep.cli import main
    from raysweep.tracking import schema

    name = "auto-killed"
    uri = store_uri  # an MLflow store already migrated (the migrations take seconds): the sweep only opens it
    assert uri == sqlite_uri(tmp_path)
    # The sweep's driver joins the shared local Ray rather than starting one of its own (seconds
    # instead of tens under load); its trials' actors die with it.
    address = ray_local.get_runtime_context().gcs_address
    sweep = Sweep(
        ["run", "auto", "--recipes", ",".join(FAMILIES), "--dataset", "breast_cancer", "--num-samples", str(TRIALS),
         "--searcher", "random", "--scheduler", "fifo", "--max-concurrent", "2", "--checkpoint-every", "0",
         "--name", name, "--tracking-uri", uri, "--address", address, "--json"],
        tmp_path,
    )  # fmt: skip
    try:
        # Killed as soon as Ray has the first trial's first result: the sweep is part-way.
        wait_for(lambda: ray_results(tmp_path, name) or (not sweep.running() and sweep.err.read_text()), 120, "a first trial result", every=0.05)
        assert sweep.running(), sweep.err.read_text()[-3000:]
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.process.wait(30)
    finally:
        sweep.stop()
    end_session(sweep.pid)
    client = client_for(uri)
    parents, _ = sweep_runs(client, EXPERIMENT)
    assert [run.info.status for run in parents] == ["RUNNING"], "the sweep ended before the kill"
    assert len(ray_trial_ids(tmp_path, name)) < TRIALS
    record = json.loads((tmp_path / "raysweep_results" / name / "raysweep_sweep.json").read_text())
    assert [m["name"] for m in record["auto"]["members"]] == FAMILIES and record["auto"]["steps"] == 6

    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(main, ["resume", name, "--json"], prog_name="raysweep")
    assert done.exit_code == 0, done.output[-4000:]
    summary = summary_of(done.stdout)
    assert (summary["num_trials"], summary["num_errors"]) == (TRIALS, 0), summary

    parents, children = sweep_runs(client, EXPERIMENT)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert summary["parent_run_id"] == parents[0].info.run_id, "the resumed sweep logs into the same parent run"
    trial_ids = [run.data.tags[schema.TRIAL_ID] for run in children]
    assert len(children) == TRIALS and len(set(trial_ids)) == TRIALS, sorted(trial_ids)
    assert {run.info.status for run in children} <= TERMINAL and "RUNNING" not in {run.info.status for run in children}
    tagged = [run.data.tags.get(schema.FAMILY) for run in children]
    assert set(tagged) <= set(FAMILIES) and None not in tagged, tagged
    # The summary counts each family's trials as MLflow has them, and the refit model is the winner's.
    assert {family: f["trials"] for family, f in summary["families"].items()} == {f: tagged.count(f) for f in FAMILIES}
    winner = summary["best_config"]["family"]
    assert winner in FAMILIES and summary["families"][winner]["best"] == summary["best_validation_score"]
    parent = client.get_run(summary["parent_run_id"])
    assert parent.data.tags[schema.MODEL_FLAVOR] == ("xgboost" if winner == "xgboost" else "sklearn")
    assert 0.85 < parent.data.metrics[schema.test_metric("accuracy")] <= 1
