"""``raysweep ui`` and ``report`` links of a nested validation, on a real sqlite MLflow store holding
a job's runs as raysweep logs them (the job's run, its fold and final sweeps, their trials): the
trials link shows the final sweep's trials, not the job's sweeps, and the folds link lists these."""

from __future__ import annotations

import json
import urllib.parse

from fast_support import empty_store, store_uri  # noqa: F401 (fixtures)
from raysweep.tracking import schema
from raysweep.tracking.views import sweep_links

BASE = "http://127.0.0.1:5000"


def nested_job(client, experiment_id: str) -> tuple[object, dict[str, object], dict[str, list[str]]]:
    """A finished ``--nested-cv 2`` job named job: (its run, its sweeps' runs by name, their trial run ids)."""
    from mlflow.entities import Metric, Param

    top = client.create_run(
        experiment_id, run_name="job",
        tags={schema.SWEEP: "job", schema.RECIPE: "random_forest", schema.METRIC: "accuracy", schema.NESTED_CV: "2"},
    )  # fmt: skip
    client.log_batch(top.info.run_id, params=[Param("mode", "max"), Param("best.max_depth", "7"), Param("best.resource", "20")])
    parts, trials = {}, {}
    for fold in ("1", "2", None):
        name = f"job-fold{fold}" if fold else "job-final"
        tags = {
            schema.SWEEP: name, schema.RECIPE: "random_forest", schema.METRIC: "accuracy", schema.NESTED_JOB: "job",
            schema.PARENT_RUN_ID: top.info.run_id, **({schema.NESTED_FOLD: fold} if fold else {}),
        }  # fmt: skip
        part = client.create_run(experiment_id, run_name=name, tags=tags)
        client.log_batch(
            part.info.run_id, metrics=[Metric("best_val_accuracy", 0.9, 0, 0), Metric("test_accuracy", 0.8, 0, 0)],
            params=[Param("mode", "max"), Param("best.max_depth", "6")],
        )  # fmt: skip
        parts[name], trials[name] = part, []
        for i, score in enumerate((0.7, 0.9, 0.8)):
            trial = client.create_run(
                experiment_id, run_name=f"trial-000{i}",
                tags={schema.SWEEP: name, schema.TRIAL_ID: f"{name}_{i}", schema.PARENT_RUN_ID: part.info.run_id},
            )  # fmt: skip
            client.log_batch(trial.info.run_id, metrics=[Metric("best_val_accuracy", score, 0, 0)], params=[Param("max_depth", str(i + 5))])
            trials[name].append(trial.info.run_id)
    return client.get_run(top.info.run_id), parts, trials


def shared_view(client, experiment_id: str, url: str) -> dict:
    key = urllib.parse.parse_qs(url.split("?", 1)[1])["viewStateShareKey"][0]
    return json.loads(client.get_experiment(experiment_id).tags[schema.SHARED_VIEW_PREFIX + key])


def test_a_nested_jobs_trials_link_shows_its_final_sweeps_trials_and_folds_lists_its_sweeps(store_uri):  # noqa: F811
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri)
    experiment_id = client.create_experiment("raysweep-iris")
    job, parts, trials = nested_job(client, experiment_id)

    links = dict(sweep_links(client, BASE, job))
    assert list(links) == ["trials", "charts", "compare", "folds", "sweep", "sweeps"]

    def rows(url: str) -> set[str]:
        return {run.info.run_id for run in client.search_runs([experiment_id], filter_string=shared_view(client, experiment_id, url)["searchFilter"])}

    assert rows(links["trials"]) == rows(links["charts"]) == set(trials["job-final"])
    view = shared_view(client, experiment_id, links["trials"])
    assert "params.`max_depth`" in view["selectedColumns"] and view["orderByKey"] == "metrics.`best_val_accuracy`"
    compared = json.loads(urllib.parse.unquote(links["compare"].split("runs=", 1)[1].split("&", 1)[0]))
    assert compared == [trials["job-final"][1], trials["job-final"][2], trials["job-final"][0]]  # best first
    assert rows(links["folds"]) == {part.info.run_id for part in parts.values()}
    folds = shared_view(client, experiment_id, links["folds"])
    assert folds["selectedColumns"][:4] == ["tags.`raysweep.nested_fold`", "metrics.`best_val_accuracy`", "metrics.`test_accuracy`", "metrics.`num_trials`"]
    assert "params.`best.max_depth`" in folds["selectedColumns"] and "params.`best.resource`" not in folds["selectedColumns"]
    assert links["sweep"].endswith(f"/runs/{job.info.run_id}?workflowType=machine_learning")
    # The sweeps view lists the job as one sweep, not its fold and final sweeps.
    assert rows(links["sweeps"]) == {job.info.run_id}


def test_a_plain_sweeps_links_have_no_folds(store_uri):  # noqa: F811
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri)
    experiment_id = client.create_experiment("raysweep-iris")
    _, parts, trials = nested_job(client, experiment_id)
    final = client.get_run(parts["job-final"].info.run_id)
    links = dict(sweep_links(client, BASE, final))
    assert list(links) == ["trials", "charts", "compare", "sweep", "sweeps"]
    assert {run.info.run_id for run in client.search_runs([experiment_id], filter_string=shared_view(client, experiment_id, links["trials"])["searchFilter"])} == set(trials["job-final"])


def test_a_nested_jobs_sweep_is_found_by_its_name_but_listed_under_its_job(store_uri, tmp_path):  # noqa: F811
    from mlflow.tracking import MlflowClient

    from conftest import invoke_cli
    from raysweep.tracking.queries import find_sweep, recent_sweeps

    client = MlflowClient(store_uri)
    job, parts, _ = nested_job(client, client.create_experiment("raysweep-iris"))
    assert find_sweep(client, "job-fold2").info.run_id == parts["job-fold2"].info.run_id
    assert find_sweep(client, "job").info.run_id == job.info.run_id
    assert [run.info.run_id for run in recent_sweeps(client)] == [job.info.run_id]
    shown = invoke_cli("report", "job-fold1", "--tracking-uri", store_uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("sweep job-fold1 ("), shown.stdout[:300]
    # A fold's sweep is scored on the fold's held-out rows, not on a test split (it said "test accuracy").
    assert "accuracy of the refit model on outer fold 1's held-out rows: 0.8" in shown.stdout.splitlines(), shown.stdout
    assert "test accuracy" not in shown.stdout
    final = invoke_cli("report", "job-final", "--tracking-uri", store_uri, cwd=tmp_path)
    assert "test accuracy of the refit model: 0.8" in final.stdout.splitlines(), final.stdout


def test_a_finished_jobs_report_shows_its_folds_and_the_nested_estimate_beside_the_test_score(store_uri, tmp_path):  # noqa: F811
    import pandas as pd
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from conftest import invoke_cli

    client = MlflowClient(store_uri)
    job, _, _ = nested_job(client, client.create_experiment("raysweep-iris"))
    folds = pd.DataFrame([
        {"fold": 2, "score": 0.9, "inner_best": 0.97, "config": json.dumps({"max_depth": 6})},
        {"fold": 1, "score": 0.8, "inner_best": 0.95, "config": json.dumps({"max_depth": 7})},
    ])  # fmt: skip
    client.log_table(job.info.run_id, folds, schema.NESTED_FOLDS_FILE)
    client.log_batch(job.info.run_id, metrics=[Metric("test_accuracy", 0.875, 0, 0)])

    shown = invoke_cli("report", "job", "--tracking-uri", store_uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    table = [line for line in shown.stdout.splitlines() if line.startswith("│ ")]
    assert [line.split("│")[1:4] for line in table[-2:]] == [[" 1    ", " 0.8      ", " 0.95       "], [" 2    ", " 0.9      ", " 0.97       "]], shown.stdout
    assert '{"max_depth": 7}' in table[-2]
    # mean 0.85, std 0.05, optimism mean(0.95, 0.97) - 0.85 = +0.11
    assert "nested estimate of accuracy (unbiased): 0.85 ± 0.05 beside the test accuracy 0.875; optimism of the inner bests +0.11" in shown.stdout
    # --json has it as run --json does (it was left out)
    nested = json.loads(invoke_cli("report", "job", "--json", "--tracking-uri", store_uri, cwd=tmp_path).stdout)["nested"]
    assert nested is not None and abs(nested["mean"] - 0.85) < 1e-9 and abs(nested["std"] - 0.05) < 1e-9, nested
    assert [fold["fold"] for fold in nested["folds"]] == [1, 2]


def test_an_unfinished_jobs_report_lists_its_sweeps_and_says_there_is_no_estimate_yet(store_uri, tmp_path):  # noqa: F811
    from mlflow.tracking import MlflowClient

    from conftest import invoke_cli

    client = MlflowClient(store_uri)
    job, parts, _ = nested_job(client, client.create_experiment("raysweep-iris"))
    client.set_terminated(parts["job-fold1"].info.run_id, "FINISHED")
    client.set_terminated(parts["job-fold2"].info.run_id, "KILLED")
    client.set_terminated(job.info.run_id, "KILLED")

    shown = invoke_cli("report", "job", "--tracking-uri", store_uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert (
        "nested validation (2 outer folds): no estimate yet, the job did not finish; "
        "its sweeps: job-final (RUNNING), job-fold1 (FINISHED), job-fold2 (KILLED)"
    ) in shown.stdout, shown.stdout
    # Its runs beneath are its sweeps, not trials: they were a leaderboard of trials with no score,
    # their params as configs ("trials: 3 ... from the trial runs").
    assert "┏" not in shown.stdout and "from the trial runs" not in shown.stdout, shown.stdout
    assert "the nested validation did not finish (KILLED): raysweep resume job goes on with it" in shown.stdout
    outcome = json.loads(invoke_cli("report", "job", "--json", "--tracking-uri", store_uri, cwd=tmp_path).stdout)
    assert (outcome["leaderboard"], outcome["nested"], outcome["families"]) == ([], None, {})
