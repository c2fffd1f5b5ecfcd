"""The sweep record of an auto sweep, and which sweeps ``raysweep resume`` takes: fast, no Ray (a
sqlite MLflow store where the parent run matters)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import invoke_cli
from fast_support import empty_store, store_uri  # noqa: F401  (fixtures)
from raysweep.errors import NothingToResume
from raysweep.sweep import auto
from raysweep.sweep import record as sweep_record
from raysweep.sweep.options import plan_sweep
from raysweep.sweep.run import find_resumable
from raysweep.tracking import schema


def saved(tmp_path: Path, **options) -> tuple[dict, Path]:
    plan = plan_sweep("auto", "breast_cancer", recipes="random_forest,xgboost", name="auto-rec", storage=str(tmp_path / "results"), **options)
    sweep_record.save_plan(plan, None)
    folder = tmp_path / "results" / "auto-rec"
    return json.loads((folder / sweep_record.SWEEP_FILE).read_text()), folder


def test_the_record_rebuilds_the_auto_plan_from_the_members_as_they_were(tmp_path):
    record, _ = saved(tmp_path)
    assert record["auto"]["steps"] == 6 and [m["name"] for m in record["auto"]["members"]] == ["random_forest", "xgboost"]
    # A member as the record holds it wins over the file as it is now.
    record["auto"]["members"][0]["recipe"]["space"]["max_depth"]["high"] = 9
    rebuilt = auto.from_record(record)
    assert [m.name for m in rebuilt.members] == ["random_forest", "xgboost"] and rebuilt.steps == 6
    assert rebuilt.member("random_forest").recipe.space["max_depth"]["high"] == 9
    plan = plan_sweep(rebuilt, "breast_cancer", **{"name": record["name"], "storage": record["storage"], **record["options"]})
    assert plan.auto is rebuilt and plan.recipe.name == "auto" and plan.settings()["recipes"] == "random_forest,xgboost"


def test_a_record_without_the_members_is_refused_in_one_line(tmp_path):
    record, folder = saved(tmp_path)
    del record["auto"]
    (folder / sweep_record.SWEEP_FILE).write_text(json.dumps(record))
    outcome = invoke_cli("resume", "auto-rec", "--storage", str(tmp_path / "results"), cwd=tmp_path)
    assert outcome.returncode == 2 and outcome.stdout == ""
    assert outcome.stderr == (
        "error: sweep auto-rec is an auto sweep whose record predates resuming auto sweeps; start it again with raysweep run auto "
        "(its trials so far are in MLflow; raysweep sync auto-rec writes any that are missing)\n"
    )


def test_a_sweep_its_rule_ended_is_resumable_until_its_parent_run_has_the_outcome(tmp_path, store_uri):
    from mlflow.tracking import MlflowClient

    record, folder = saved(tmp_path, tracking_uri=store_uri)
    client = MlflowClient(store_uri)
    experiment = client.create_experiment("stops")
    parent = client.create_run(experiment).info.run_id
    stopped_by = "--stop-at 0.9: trial-0001 reached val_accuracy 0.95"
    # A record from before `outcome_done` was kept: MLflow's parent run says whether the outcome is logged.
    older = {key: value for key, value in record.items() if key != "outcome_done"}
    (folder / sweep_record.SWEEP_FILE).write_text(json.dumps({**older, "experiment_id": experiment, "parent_run_id": parent, "stopped_by": stopped_by}))
    # Killed during the refit: no test score on the parent run yet, so resume goes on to finish it.
    _, found = find_resumable("auto-rec", str(tmp_path / "results"))
    assert found["stopped_by"] == stopped_by
    client.log_metric(parent, schema.test_metric("accuracy"), 0.96)
    with pytest.raises(NothingToResume, match=r"^raysweep: sweep auto-rec ended by its own rule \(--stop-at 0\.9: .*\); nothing to resume"):
        find_resumable("auto-rec", str(tmp_path / "results"))
