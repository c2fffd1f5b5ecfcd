"""How a resumed nested validation takes up each of its sweeps (raysweep.sweep.nested_resume), from
synthetic sweep records and Tune state files, with a real sqlite MLflow store: a fold that had
ended is read back, a sweep with Ray's saved state is resumed from it, and a sweep killed before
Ray saved anything starts again without the MLflow runs its first try opened."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from fast_support import empty_store, store_uri  # noqa: F401 (fixtures)
from raysweep.sweep import record as sweep_record
from raysweep.sweep.nested_resume import FOLD_OUTCOME, PartResume, resume_parts
from raysweep.tracking import schema

NAMES = ["job-fold1", "job-fold2", "job-fold3", "job-final"]


def test_each_sweep_is_read_back_resumed_or_started_again(tmp_path, store_uri):  # noqa: F811
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri)
    experiment_id = client.create_experiment("raysweep-iris")
    top = client.create_run(experiment_id, run_name="job", tags={schema.SWEEP: "job", schema.NESTED_CV: "3"})
    job = SimpleNamespace(client=client, experiment_id=experiment_id, parent_run_id=top.info.run_id)

    def part_run(name: str) -> str:
        run = client.create_run(experiment_id, run_name=name, tags={schema.SWEEP: name, schema.PARENT_RUN_ID: top.info.run_id})
        client.create_run(experiment_id, run_name="trial-0000", tags={schema.SWEEP: name, schema.PARENT_RUN_ID: run.info.run_id})
        return run.info.run_id

    storage = tmp_path / "results"
    outcome = {"score": 0.9, "inner_best": 0.95, "config": {"max_depth": 3}}
    # fold1 ended; fold2 has Ray's saved state; fold3 was killed before Ray saved it; the final
    # sweep had not written its record yet, but had opened its MLflow run.
    sweep_record.save(str(storage / "job-fold1"), {"name": "job-fold1", "parent_run_id": part_run("job-fold1"), FOLD_OUTCOME: outcome})
    fold2 = {"name": "job-fold2", "parent_run_id": None}
    sweep_record.save(str(storage / "job-fold2"), fold2)
    (storage / "job-fold2" / "experiment_state-2026-12-01_02-49-37.json").write_text(json.dumps({"trial_data": []}))
    sweep_record.save(str(storage / "job-fold3"), {"name": "job-fold3", "parent_run_id": part_run("job-fold3")})
    part_run("job-final")

    states = resume_parts(NAMES, str(storage), 3, job)
    assert states[0] == PartResume(done=outcome)
    assert states[1] == PartResume(record={**fold2, "path": str(storage / "job-fold2")})
    assert states[2] == states[3] == PartResume()
    # The sweeps that start again lost their first try's runs (and its trials'); fold1's stay.
    left = {run.info.run_name for run in client.search_runs([experiment_id]) if run.data.tags.get(schema.PARENT_RUN_ID) == top.info.run_id}
    assert left == {"job-fold1"}
    assert len(client.search_runs([experiment_id])) == 1 + 2  # the job's run, fold1's and its trial


def test_a_final_sweep_that_had_ended_is_resumed_not_read_back(tmp_path):
    # Only folds are read back: the job's outcome needs the final sweep's whole result.
    storage = tmp_path / "results"
    final = {"name": "job-final", "parent_run_id": None, FOLD_OUTCOME: {"score": 0.9}}
    sweep_record.save(str(storage / "job-final"), final)
    (storage / "job-final" / "experiment_state-2026-12-01_02-49-37.json").write_text("{}")
    states = resume_parts(["job-final"], str(storage), 0, None)
    assert states == [PartResume(record={**final, "path": str(Path(storage / "job-final"))})]
