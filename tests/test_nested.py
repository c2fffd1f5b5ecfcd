"""Nested validation end to end, in-process on the test run's Ray and a real sqlite MLflow store:
one job on breast_cancer (the estimate, the MLflow tree, the listings, a resume after its sweeps
ended) and one on data built so that tuning overfits (the optimism the feature exists to show)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fast_support import empty_store, store_uri  # noqa: F401 (fixtures)
from raysweep.data import Dataset
from raysweep.tracking import schema

COMMON = dict(scheduler="fifo", searcher="random", seed=0, overrides=["resource.max=20"])


def test_nested_cv_on_breast_cancer_scores_every_fold_logs_one_tree_and_resumes_after_its_end(ray_local, tmp_path, store_uri):  # noqa: F811
    from mlflow.tracking import MlflowClient

    from raysweep.sweep.run import run_sweep
    from raysweep.tracking.queries import recent_sweeps

    result = run_sweep(
        "random_forest", "breast_cancer", nested_cv=3, num_samples=2, name="job", tracking_uri=store_uri,
        storage=str(tmp_path / "results"), **COMMON,
    )  # fmt: skip
    nested = result.nested
    assert [fold.fold for fold in nested.folds] == [1, 2, 3]
    assert all(0.8 < fold.score <= 1 and 0.8 < fold.inner_best <= 1 for fold in nested.folds)
    assert all(set(fold.config) == {"max_depth", "min_samples_leaf", "max_features"} for fold in nested.folds)
    assert nested.mean == np.mean([fold.score for fold in nested.folds])
    assert nested.optimism == np.mean([fold.inner_best for fold in nested.folds]) - nested.mean
    out = result.to_dict()
    assert out["name"] == "job" and out["test_score"] == result.test_score and out["model_uri"].startswith("models:/")
    assert set(out["nested"]) == {"metric", "k", "mean", "std", "optimism", "folds"} and out["nested"]["k"] == 3
    assert [set(fold) for fold in out["nested"]["folds"]] == [{"fold", "score", "inner_best", "config"}] * 3

    client = MlflowClient(store_uri)
    experiment = client.get_experiment_by_name("raysweep-breast_cancer").experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    assert not [run.info.run_name for run in runs if run.info.status != "FINISHED"]
    by_parent: dict[str | None, list] = {}
    for run in runs:
        by_parent.setdefault(run.data.tags.get(schema.PARENT_RUN_ID), []).append(run)
    (top,) = by_parent[None]
    assert top.info.run_id == result.parent_run_id and top.data.tags[schema.NESTED_CV] == "3"
    # The job's run spans the job from its start (compare's wall time), as its elapsed_s does.
    assert (top.info.end_time - top.info.start_time) / 1000 >= round(result.elapsed_s, 1) - 0.1, (top.info, result.elapsed_s)
    parts = {run.info.run_name: run for run in by_parent[top.info.run_id]}
    assert sorted(parts) == ["job-final", "job-fold1", "job-fold2", "job-fold3"]
    assert [parts[f"job-fold{i}"].data.tags[schema.NESTED_FOLD] for i in (1, 2, 3)] == ["1", "2", "3"]
    assert schema.NESTED_FOLD not in parts["job-final"].data.tags
    for name, part in parts.items():  # each sweep's trials under its own run: 2 trials each
        assert len(by_parent[part.info.run_id]) == 2, name
        assert part.data.tags[schema.NESTED_JOB] == "job"
    assert len(runs) == 1 + 4 + 4 * 2
    # The job's run: the scores by fold (the fold as the step), mean, spread, optimism, the folds' table, the model.
    history = client.get_metric_history(top.info.run_id, schema.nested_metric("accuracy"))
    assert sorted((m.step, m.value) for m in history) == [(fold.fold, fold.score) for fold in nested.folds]
    metrics = top.data.metrics
    assert metrics[schema.nested_metric("accuracy", "mean")] == nested.mean
    assert metrics[schema.nested_metric("accuracy", "std")] == nested.std
    assert metrics[schema.NESTED_OPTIMISM] == nested.optimism
    assert metrics[schema.test_metric("accuracy")] == result.test_score
    table = json.loads(Path(client.download_artifacts(top.info.run_id, schema.NESTED_FOLDS_FILE, str(tmp_path))).read_text())
    assert table["columns"] == ["fold", "score", "inner_best", "config"]
    assert [row[3] for row in table["data"]] == [json.dumps(fold.config) for fold in nested.folds]
    assert top.data.tags[schema.MODEL_URI] == result.model_uri
    # Listings show the job as one sweep, not four.
    assert [run.data.tags[schema.SWEEP] for run in recent_sweeps(client)] == ["job"]

    # A driver killed after the sweeps had ended, before the job's outcome was written: resume
    # reads the folds back, takes the final sweep's result again and writes the outcome, with no new run.
    from raysweep.sweep import record as sweep_record
    from raysweep.sweep.nested_resume import JOB_DONE
    from raysweep.sweep.run import resume_sweep

    job_folder = str(tmp_path / "results" / "job")
    job_record = json.loads((Path(job_folder) / sweep_record.SWEEP_FILE).read_text())
    sweep_record.save(job_folder, {**job_record, JOB_DONE: False})
    client.update_run(top.info.run_id, status="RUNNING")
    again = resume_sweep("job", storage=str(tmp_path / "results"))
    assert again.nested.folds == nested.folds and again.test_score == result.test_score
    runs = client.search_runs([experiment], max_results=1000)
    assert len(runs) == 1 + 4 + 4 * 2 and {run.info.status for run in runs} == {"FINISHED"}
    assert client.get_run(top.info.run_id).data.tags[schema.MODEL_URI] == again.model_uri
    # The job's estimate is on its run once: K scores by fold, K rows in the folds' table.
    history = client.get_metric_history(top.info.run_id, schema.nested_metric("accuracy"))
    assert sorted(m.step for m in history) == [1, 2, 3]
    # The final sweep had finished: it is refit for the job's model, and its own run is left as it was.
    final_run = parts["job-final"].info.run_id
    for key in (schema.test_metric("accuracy"), schema.best_metric("accuracy"), schema.NUM_TRIALS):
        assert len(client.get_metric_history(final_run, key)) == 1, key
    assert client.get_run(final_run).info.end_time == parts["job-final"].info.end_time
    (tmp_path / "again").mkdir()
    table = json.loads(Path(client.download_artifacts(top.info.run_id, schema.NESTED_FOLDS_FILE, str(tmp_path / "again"))).read_text())
    assert len(table["data"]) == 3


def test_tuning_on_noise_looks_better_inside_than_on_the_held_out_folds(ray_local, tmp_path):
    from raysweep.sweep.run import run_sweep

    rng = np.random.default_rng(0)
    rows, features = 100, 40
    X = pd.DataFrame(rng.normal(size=(rows, features)), columns=[f"noise{i}" for i in range(features)])
    y = pd.Series(rng.integers(0, 2, rows), name="label")  # no feature says anything about it
    noise = Dataset(name="noise", X=X, y=y, task="classification")
    result = run_sweep("random_forest", noise, nested_cv=3, num_samples=6, tracking=False, storage=str(tmp_path / "results"), **COMMON)
    inner = np.mean([fold.inner_best for fold in result.nested.folds])
    assert inner > result.nested.mean and result.nested.optimism > 0.05, result.nested


def test_a_time_budget_gives_every_sweep_of_the_job_its_turn_and_its_trials(ray_local, tmp_path):
    """With a time budget the job's sweeps start as the cluster has CPUs for them: each reuses its
    actors until its budget is spent, so on 2 CPUs a third sweep started at once got none (before,
    two sweeps of three ran trials for their whole budget and the job failed with "the time budget
    ... ran out before any trial reported a score")."""
    from raysweep.sweep.run import run_sweep

    budget = 14  # 8 s was enough in one process; beside another test worker a fold's sweep once had no trial report in it
    result = run_sweep(
        "random_forest", "breast_cancer", nested_cv=2, time_budget=budget, tracking=False, storage=str(tmp_path / "results"),
        scheduler="fifo", searcher="random", seed=0, overrides=["resource.max=20"],
    )  # fmt: skip
    assert [fold.fold for fold in result.nested.folds] == [1, 2]
    assert all(0.8 < fold.score <= 1 and 0.8 < fold.inner_best <= 1 for fold in result.nested.folds), result.nested
    for name in ("fold1", "fold2", "final"):
        trials = list((tmp_path / "results" / f"{result.name}-{name}").glob("*/result.json"))
        reported = [path for path in trials if path.read_text().strip()]
        assert len(reported) >= 2, f"{name}: {len(reported)} trials reported in its {budget} s"


def test_a_nested_job_whose_sweeps_fail_says_why_on_its_run(ray_local, tmp_path, store_uri):  # noqa: F811
    """`raysweep report` of a failed job said "no reason recorded": the job's run had none."""
    import pytest
    from mlflow.tracking import MlflowClient

    from raysweep.errors import SweepFailed
    from raysweep.sweep.run import run_sweep

    with pytest.raises(SweepFailed, match="monotone constraint should be less or equal to the number of features"):
        run_sweep("xgboost", "iris", nested_cv=2, num_samples=1, name="failing", tracking_uri=store_uri, storage=str(tmp_path / "results"),
                  scheduler="fifo", searcher="random", overrides=["resource.max=100", "fixed.monotone_constraints=(1,1,1,1,1)"])  # fmt: skip
    client = MlflowClient(store_uri)
    experiment = client.get_experiment_by_name("raysweep-iris")
    (job,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{schema.NESTED_CV}` = '2'")
    assert job.info.status == "FAILED"
    assert "every trial failed" in job.data.tags[schema.ERROR] and "monotone constraint should be less or equal to the number of features" in job.data.tags[schema.ERROR]
