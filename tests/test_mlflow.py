"""What a sweep leaves in MLflow, checked against a real `mlflow server` on 127.0.0.1.

Each sweep runs once per module (they are the slow part) and several tests read what it left:
the parent run with its tags, params and artifacts; nested trial runs with params, metric
histories whose steps are resource units, node and outcome tags; PBT exploits; the refit model
loaded back with ``mlflow.pyfunc``; the Model Registry entry; and no run left RUNNING.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_cli

# Unique per session: .ci/run may hand the suite a tracking server that outlives one session.
SESSION = uuid.uuid4().hex[:6]
SWEEP_ASHA = f"mlflow-asha-{SESSION}"
SWEEP_PBT = f"mlflow-pbt-{SESSION}"
SWEEP_FAILING = f"mlflow-failing-{SESSION}"
SWEEP_BUDGET = f"mlflow-budget-{SESSION}"
SWEEP_ALL_FAIL = f"mlflow-all-fail-{SESSION}"
SWEEP_CLI = f"mlflow-cli-{SESSION}"
EXPERIMENT = "raysweep-tests-mlflow"
REGISTERED = "raysweep-tests-xgboost"

# A recipe whose second grid point passes raysweep's checks (XGBoost checks its parameters only at
# its first fit) but makes XGBoost refuse to train: that trial fails inside training, the other completes.
FAILING_RECIPE = """\
name: xgb_breaks
family: xgboost
tasks: [classification]
metric: {classification: accuracy}
resource: {name: boosting_rounds, per_step: 5, max: 10}
scheduler: fifo
searcher: random
num_samples: 1
space:
  monotone_constraints: {type: grid, values: ["(0,0,0,0)", "(1,1,1,1,1)"]}
"""


# -- helpers -------------------------------------------------------------------------------------
def client_for(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def trial_runs(client: Any, result: Any) -> list[Any]:
    return client.search_runs(
        [result.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'", max_results=1000
    )


def history(client: Any, run: Any, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


def assert_no_run_left_running(client: Any, result: Any, trials: int | None = None) -> None:
    """The sweep's parent and its ``trials`` trial runs (default: all) all ended."""
    runs = client.search_runs([result.experiment_id], filter_string=f"tags.`raysweep.sweep` = '{result.name}'", max_results=1000)
    assert len(runs) == (result.num_trials if trials is None else trials) + 1
    assert {run.info.status for run in runs} <= {"FINISHED", "FAILED", "KILLED"}, [(r.info.run_name, r.info.status) for r in runs]


def assert_model_filed_with_the_sweep(uri: str, experiment_id: str, parent_run_id: str, model_uri: str, name: str) -> None:
    """The refit model ``model_uri`` is in the sweep's experiment, named ``name``, the one model of the parent run."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        found = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list")
    finally:
        mlflow.set_tracking_uri(None)
    mine = [model for model in found if model.source_run_id == parent_run_id]
    assert [f"models:/{model.model_id}" for model in mine] == [model_uri]
    assert mine[0].name == name and mine[0].experiment_id == experiment_id
    assert str(mine[0].status) == "READY"
    parent = client_for(uri).get_run(parent_run_id)
    # the parent run's "Logged models": this one, once
    assert [output.model_id for output in parent.outputs.model_outputs] == [mine[0].model_id]
    assert parent.data.tags["raysweep.model_uri"] == model_uri


def sweep(tmp_path_factory: Any, mlflow_server: str, recipe: str, dataset: str, name: str, **options: Any) -> Any:
    from threadpoolctl import threadpool_limits

    from raysweep.sweep.run import run_sweep

    storage = tmp_path_factory.mktemp(name)
    # The refit on the driver runs with one BLAS thread, as the trials do: on a 2-core CI machine
    # busy with Ray, OpenBLAS spinning on two threads makes an MLP refit 25x slower.
    with threadpool_limits(1):
        return run_sweep(
            recipe, dataset, name=name, storage=str(storage), tracking_uri=mlflow_server, experiment=EXPERIMENT, **options
        )


# -- sweeps (one each per module) -----------------------------------------------------------------
@pytest.fixture(scope="module")
def asha_sweep(ray_local, mlflow_server, tmp_path_factory):
    """XGBoost under ASHA, registered in the Model Registry; metrics may only go out in batches."""
    from mlflow.tracking import MlflowClient

    def unbatched(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("raysweep must log metrics and params with log_batch")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MlflowClient, "log_metric", unbatched)
        patch.setattr(MlflowClient, "log_param", unbatched)
        return sweep(
            tmp_path_factory, mlflow_server, "xgboost", "breast_cancer", SWEEP_ASHA,
            scheduler="asha", searcher="random", num_samples=8, overrides=["resource.per_step=25", "resource.max=100"],
            register_model=REGISTERED,
        )


@pytest.fixture(scope="module")
def pbt_sweep(ray_local, mlflow_server, tmp_path_factory):
    """An MLP under PBT, exploiting and exploring after every step."""
    return sweep(
        tmp_path_factory, mlflow_server, "mlp", "breast_cancer", SWEEP_PBT,
        scheduler="pbt", searcher="random", num_samples=4,
        overrides=["resource.max=30", "pbt.perturbation_interval=1", "space.hidden_layer_sizes.values=[[16]]"],
    )


# -- the parent run -------------------------------------------------------------------------------
def test_parent_run_holds_the_sweep_tags_settings_and_recipe(asha_sweep, mlflow_server):
    import mlflow
    import ray

    from raysweep import __version__
    from raysweep.recipes import load_recipe

    client = client_for(mlflow_server)
    experiment = client.get_experiment(asha_sweep.experiment_id)
    assert experiment.name == EXPERIMENT
    parent = client.get_run(asha_sweep.parent_run_id)
    assert parent.info.run_name == SWEEP_ASHA
    assert parent.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in parent.data.tags
    tags = parent.data.tags
    recipe = load_recipe("xgboost", ["resource.per_step=25", "resource.max=100"])
    assert tags["raysweep.sweep"] == SWEEP_ASHA
    assert tags["raysweep.recipe"] == "xgboost"
    assert tags["raysweep.recipe_hash"] == recipe.content_hash
    assert tags["raysweep.family"] == "xgboost"
    assert (tags["raysweep.scheduler"], tags["raysweep.searcher"]) == ("asha", "random")
    assert tags["raysweep.dataset"] == "breast_cancer"
    assert re.fullmatch(r"[0-9a-f]{16}", tags["raysweep.dataset_fingerprint"])
    assert tags["raysweep.version"] == __version__
    assert tags["raysweep.ray_version"] == ray.__version__
    assert tags["raysweep.mlflow_version"] == mlflow.__version__
    assert tags["raysweep.ray_address"] not in ("", None)
    params = parent.data.params
    assert params["num_samples"] == "8"
    assert params["scheduler"] == "asha"
    assert params["resource_max"] == "100"
    assert params["metric"] == "accuracy"

    artifacts = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert {"recipe.yaml", "search_space.json", "leaderboard.csv", "plots", "model_classes.json"} <= artifacts
    plots = {item.path for item in client.list_artifacts(parent.info.run_id, "plots")}
    # 8 trials: enough for the parameter importance, and its chart
    assert plots == {"plots/metric_by_resource.png", "plots/best_so_far.png", "plots/importance.png"}
    assert {key for key in parent.data.metrics if key.startswith("importance/")} == {f"importance/{name}" for name in recipe.space}
    folder = client.download_artifacts(parent.info.run_id, "search_space.json")
    assert json.loads(Path(folder).read_text()) == recipe.space
    recipe_text = Path(client.download_artifacts(parent.info.run_id, "recipe.yaml")).read_text()
    assert "max: 100" in recipe_text


def test_parent_run_ends_with_the_best_config_scores_and_leaderboard(asha_sweep, mlflow_server):
    import pandas as pd

    client = client_for(mlflow_server)
    parent = client.get_run(asha_sweep.parent_run_id)
    metrics = parent.data.metrics
    assert metrics["best_val_accuracy"] == pytest.approx(asha_sweep.best_validation_score)
    assert metrics["test_accuracy"] == pytest.approx(asha_sweep.test_score)
    assert metrics["num_trials"] == 8
    assert json.loads(parent.data.tags["raysweep.best_config"]) == pytest.approx(asha_sweep.best_config)
    for name, value in asha_sweep.best_config.items():
        assert float(parent.data.params[f"best.{name}"]) == pytest.approx(value)
    board = pd.read_csv(client.download_artifacts(parent.info.run_id, "leaderboard.csv"))
    assert len(board) == 8
    assert board["val_accuracy"].iloc[0] == pytest.approx(asha_sweep.best_validation_score)


# -- the trial runs -------------------------------------------------------------------------------
def test_every_trial_is_a_nested_child_run_with_its_config_and_node(asha_sweep, mlflow_server, ray_local):
    client = client_for(mlflow_server)
    children = trial_runs(client, asha_sweep)
    assert len(children) == 8
    assert sorted(run.info.run_name for run in children) == [f"trial-{i:04d}" for i in range(8)]
    node_ids = {node["NodeID"] for node in ray_local.nodes()}
    board = asha_sweep.leaderboard.set_index("trial_id")
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == asha_sweep.parent_run_id
        trial_id = run.data.tags["raysweep.trial_id"]
        config = {k[len("config/"):]: v for k, v in board.loc[trial_id].items() if k.startswith("config/")}
        assert set(run.data.params) == set(config)
        for name, value in config.items():
            assert float(run.data.params[name]) == pytest.approx(float(value))
        assert run.data.tags["raysweep.node_id"] in node_ids
        assert run.data.tags["raysweep.node_ip"]


def test_metric_histories_are_stepped_in_boosting_rounds(asha_sweep, mlflow_server):
    client = client_for(mlflow_server)
    board = asha_sweep.leaderboard.set_index("trial_id")
    for run in trial_runs(client, asha_sweep):
        values = history(client, run, "val_accuracy")
        steps = [step for step, _ in values]
        row = board.loc[run.data.tags["raysweep.trial_id"]]
        # one point per step of 25 rounds, up to where the trial stopped
        assert steps == list(range(25, int(row["steps"]) * 25 + 1, 25))
        # the leaderboard holds the trial's best step: the first to reach its best score
        best = max(value for _, value in values)
        assert row["val_accuracy"] == pytest.approx(best)
        assert row["resource"] == next(step for step, value in values if value == pytest.approx(best))
        assert [step for step, _ in history(client, run, "step_time")] == steps
        assert all(value > 0 for _, value in history(client, run, "step_time"))


def test_outcome_tags_show_which_trials_asha_stopped_early(asha_sweep, mlflow_server):
    client = client_for(mlflow_server)
    outcomes = {}
    board = asha_sweep.leaderboard.set_index("trial_id")
    for run in trial_runs(client, asha_sweep):
        tags = run.data.tags
        outcome = tags["raysweep.outcome"]
        outcomes[run.info.run_name] = outcome
        assert outcome == board.loc[tags["raysweep.trial_id"]]["outcome"]
        last_step = history(client, run, "val_accuracy")[-1][0]
        assert run.info.status == "FINISHED"
        if outcome == "completed":
            assert last_step == 100
        else:
            assert outcome == "stopped_early"
            assert tags["raysweep.stop_reason"] == "scheduler"
            assert last_step < 100
        assert json.loads(tags["raysweep.final_config"])
    assert "completed" in outcomes.values() and "stopped_early" in outcomes.values(), outcomes
    assert list(outcomes.values()).count("stopped_early") == asha_sweep.num_stopped_early


def test_no_run_is_left_running_after_asha(asha_sweep, mlflow_server):
    assert_no_run_left_running(client_for(mlflow_server), asha_sweep)


# -- the refit model --------------------------------------------------------------------------------
def test_xgboost_model_round_trips_through_pyfunc_with_signature(asha_sweep, mlflow_server):
    import mlflow

    from raysweep.data import load_dataset

    client = client_for(mlflow_server)
    parent = client.get_run(asha_sweep.parent_run_id)
    assert parent.data.tags["raysweep.model_flavor"] == "xgboost"
    model_uri = parent.data.tags["raysweep.model_uri"]
    mlflow.set_tracking_uri(mlflow_server)
    try:
        loaded = mlflow.pyfunc.load_model(model_uri)
        info = mlflow.models.get_model_info(model_uri)
    finally:
        mlflow.set_tracking_uri(None)
    assert "xgboost" in info.flavors
    assert info.signature is not None and len(info.signature.inputs.inputs) == 30
    assert info.saved_input_example_info is not None
    X = load_dataset("breast_cancer").X
    predictions = np.asarray(loaded.predict(X))
    assert np.array_equal(predictions, asha_sweep.model.model.predict(X.to_numpy(dtype=float)))
    # classes come out as their index; model_classes.json names them
    classes = json.loads(Path(client.download_artifacts(parent.info.run_id, "model_classes.json")).read_text())["classes"]
    assert np.array_equal(np.asarray(classes)[predictions.astype(int)].astype(str), asha_sweep.predict(X).astype(str))


@pytest.mark.parametrize(("sweep_fixture", "name"), [("asha_sweep", SWEEP_ASHA), ("pbt_sweep", SWEEP_PBT)], ids=["xgboost", "sklearn"])
def test_the_refit_model_is_in_the_sweeps_experiment_named_after_the_sweep(sweep_fixture, name, mlflow_server, request):
    result = request.getfixturevalue(sweep_fixture)
    assert result.model_uri and result.model_uri.startswith("models:/m-")
    assert result.to_dict()["model_uri"] == result.model_uri
    assert_model_filed_with_the_sweep(mlflow_server, result.experiment_id, result.parent_run_id, result.model_uri, name)


def test_register_model_creates_a_version_with_the_sweep_lineage(asha_sweep, mlflow_server):
    client = client_for(mlflow_server)
    parent = client.get_run(asha_sweep.parent_run_id)
    name, version = parent.data.tags["raysweep.registered_model"].rsplit("/", 1)
    assert name == REGISTERED
    registered = client.get_model_version(REGISTERED, version)
    assert registered.run_id == asha_sweep.parent_run_id
    assert registered.source == asha_sweep.model_uri
    assert registered.tags["raysweep.sweep"] == SWEEP_ASHA
    assert registered.tags["raysweep.parent_run_id"] == asha_sweep.parent_run_id
    assert registered.tags["raysweep.recipe"] == "xgboost"
    assert registered.tags["raysweep.dataset"] == "breast_cancer"
    assert float(registered.tags["raysweep.test_accuracy"]) == pytest.approx(asha_sweep.test_score, rel=1e-5)
    assert SWEEP_ASHA in registered.description


def test_sklearn_model_round_trips_through_pyfunc(pbt_sweep, mlflow_server):
    import mlflow

    from raysweep.data import load_dataset

    parent = client_for(mlflow_server).get_run(pbt_sweep.parent_run_id)
    assert parent.data.tags["raysweep.model_flavor"] == "sklearn"
    mlflow.set_tracking_uri(mlflow_server)
    try:
        loaded = mlflow.pyfunc.load_model(parent.data.tags["raysweep.model_uri"])
        info = mlflow.models.get_model_info(parent.data.tags["raysweep.model_uri"])
    finally:
        mlflow.set_tracking_uri(None)
    assert "sklearn" in info.flavors and info.signature is not None
    X = load_dataset("breast_cancer").X
    assert np.array_equal(np.asarray(loaded.predict(X)), pbt_sweep.predict(X))


def test_a_sweep_from_python_files_its_model_in_its_store_and_leaves_the_callers_mlflow_alone(ray_local, tmp_path, monkeypatch):
    """scikit-learn flavor on a sqlite store, registered, run by a program that is itself inside an MLflow run."""
    import mlflow
    from mlflow.tracking import fluent
    from threadpoolctl import threadpool_limits

    from raysweep.sweep.run import run_sweep

    callers, sweeps = f"sqlite:///{tmp_path / 'callers.db'}", f"sqlite:///{tmp_path / 'sweeps.db'}"
    # The caller's own MLflow: its store from the environment, its active experiment and run.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", callers)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "")
    monkeypatch.setattr(fluent, "_active_experiment_id", None)  # put back after the test
    experiment_id = mlflow.set_experiment("callers-own").experiment_id
    name = f"mlflow-sqlite-{SESSION}.v1"
    with mlflow.start_run() as callers_run, threadpool_limits(1):
        result = run_sweep(
            "random_forest", "iris", name=name, storage=str(tmp_path / "results"), tracking_uri=sweeps,
            scheduler="fifo", searcher="random", num_samples=2, overrides=["resource.max=20"], register_model=REGISTERED,
        )
        # The caller's settings are as they were.
        assert mlflow.active_run().info.run_id == callers_run.info.run_id
        assert os.environ["MLFLOW_TRACKING_URI"] == callers and mlflow.get_tracking_uri() == callers
        assert fluent._get_experiment_id() == experiment_id
    assert_model_filed_with_the_sweep(sweeps, result.experiment_id, result.parent_run_id, result.model_uri, f"mlflow-sqlite-{SESSION}-v1")
    sweeps_client = client_for(sweeps)
    assert sweeps_client.get_run(result.parent_run_id).data.tags["raysweep.model_flavor"] == "sklearn"
    assert sweeps_client.get_model_version(REGISTERED, "1").source == result.model_uri
    # Nothing of the sweep went to the caller's store.
    callers_client = client_for(callers)
    assert list(callers_client.search_logged_models(experiment_ids=[experiment_id, "0"])) == []
    assert callers_client.get_run(callers_run.info.run_id).outputs.model_outputs == []


# -- PBT ----------------------------------------------------------------------------------------------
def test_pbt_records_every_exploit_its_donor_and_the_hyperparameters_over_time(pbt_sweep, mlflow_server):
    client = client_for(mlflow_server)
    children = trial_runs(client, pbt_sweep)
    assert len(children) == 4
    run_ids = {run.data.tags["raysweep.trial_id"]: run.info.run_id for run in children}
    exploited = [run for run in children if int(run.data.tags.get("raysweep.pbt.exploits", 0)) > 0]
    assert exploited, "PBT with a perturbation after every step exploited nothing"
    for run in exploited:
        tags = run.data.tags
        donor = tags["raysweep.pbt.last_donor"]
        assert donor in run_ids and donor != tags["raysweep.trial_id"]
        assert tags["raysweep.pbt.last_donor_run_id"] == run_ids[donor]
        count = int(tags["raysweep.pbt.exploits"])
        exploits = [json.loads(tags[f"raysweep.pbt.exploit.{i}"]) for i in range(1, count + 1)]
        assert exploits[-1]["donor"] == donor
        # the final config is the last explored one, and the trial ran with it
        final = json.loads(tags["raysweep.final_config"])
        assert final.keys() == exploits[-1]["config"].keys()
        assert all(final[k] == pytest.approx(v) for k, v in exploits[-1]["config"].items() if k != "hidden_layer_sizes")
        rates = history(client, run, "hp/learning_rate_init")
        assert rates[-1][1] == pytest.approx(final["learning_rate_init"])
        assert len({value for _, value in rates}) > 1, "the explored learning rate never shows in hp/learning_rate_init"
        assert history(client, run, "pbt/exploited_trial")
        assert run.info.status == "FINISHED" and tags["raysweep.outcome"] == "completed"
    for run in children:
        assert [step for step, _ in history(client, run, "hp/alpha")][-1] == 30
    exploits = json.loads(Path(client.download_artifacts(pbt_sweep.parent_run_id, "pbt_exploits.json")).read_text())
    assert len(exploits) == sum(int(run.data.tags.get("raysweep.pbt.exploits", 0)) for run in children)
    # The lineage is drawn; the importance is not computed, and the parent run says why.
    parent = client.get_run(pbt_sweep.parent_run_id)
    assert "plots/pbt_lineage.png" in {item.path for item in client.list_artifacts(pbt_sweep.parent_run_id, "plots")}
    assert parent.data.tags["raysweep.importance_skipped"].startswith("PBT members change their hyperparameters")
    assert not [key for key in parent.data.metrics if key.startswith("importance/")]
    assert_no_run_left_running(client, pbt_sweep)


# -- failures and cut-off sweeps ----------------------------------------------------------------------
def test_a_trial_failing_in_training_is_a_failed_run_with_the_error(ray_local, mlflow_server, tmp_path_factory):
    recipe = tmp_path_factory.mktemp("recipe") / "xgb_breaks.yaml"
    recipe.write_text(FAILING_RECIPE)
    result = sweep(tmp_path_factory, mlflow_server, str(recipe), "iris", SWEEP_FAILING)
    assert (result.num_trials, result.num_errors) == (2, 1)
    client = client_for(mlflow_server)
    # One constraint more than iris has features: XGBoost refuses it as it trains (raysweep's check
    # before Ray, on made-up rows, leaves what depends on the data's columns to the trials).
    runs = {run.data.params["monotone_constraints"]: run for run in trial_runs(client, result)}
    failed, completed = runs["(1,1,1,1,1)"], runs["(0,0,0,0)"]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["raysweep.outcome"] == "failed"
    assert "XGBoostError: " in failed.data.tags["raysweep.error"] and "monotone constraint should be less or equal to the number of features" in failed.data.tags["raysweep.error"], failed.data.tags["raysweep.error"]
    assert completed.info.status == "FINISHED"
    assert completed.data.tags["raysweep.outcome"] == "completed"
    assert_no_run_left_running(client, result)


def test_a_sweep_whose_trials_all_fail_ends_every_run_and_still_reports(ray_local, mlflow_server, tmp_path_factory, tmp_path):
    from raysweep.errors import SweepFailed

    # XGBoost checks its parameters at its first fit: every trial fails in training
    with pytest.raises(SweepFailed, match="monotone constraint should be less or equal to the number of features"):
        sweep(
            tmp_path_factory, mlflow_server, "xgboost", "iris", SWEEP_ALL_FAIL, scheduler="fifo", searcher="random",
            num_samples=2, overrides=["resource.max=100", "fixed.monotone_constraints=(1,1,1,1,1)"],
        )
    client = client_for(mlflow_server)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`raysweep.sweep` = '{SWEEP_ALL_FAIL}'")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    trials = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    assert len(trials) == 2
    for run in trials:
        assert run.info.status == "FAILED" and run.data.tags["raysweep.outcome"] == "failed"
        assert "monotone constraint should be less or equal to the number of features" in run.data.tags["raysweep.error"]

    # no leaderboard.csv was written: the report rebuilds the leaderboard from the trial runs
    done = run_cli("report", SWEEP_ALL_FAIL, "--tracking-uri", mlflow_server, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.search(r"trial-0000 +│ nan +│ 0 +│ failed", done.stdout), done.stdout
    # Why it failed, and the counts, as the sweep's own last line said (the report said neither).
    lines = done.stdout.splitlines()
    assert "trials: 2 (0 stopped early, 2 failed), from the trial runs" in lines, done.stdout
    failed = next(line for line in lines if line.startswith("the sweep failed: "))
    assert failed.startswith("the sweep failed: every trial failed (2 of 2); first error: xgboost.core.XGBoostError: ") and "monotone constraint should be less or equal to the number of features" in failed, failed
    first = next(line for line in lines if line.startswith("first failed trial: "))
    assert re.match(r"first failed trial: trial-000[01]: .*monotone constraint should be less or equal to the number of features", first), first
    assert client.get_run(parents[0].info.run_id).data.tags["raysweep.error"] == failed.removeprefix("the sweep failed: ")
    done = run_cli("report", SWEEP_ALL_FAIL, "--json", "--tracking-uri", mlflow_server, cwd=tmp_path, timeout=120)
    outcome = json.loads(done.stdout)
    assert (outcome["status"], outcome["error"], outcome["best_config"]) == ("FAILED", failed.removeprefix("the sweep failed: "), None)
    assert [row["outcome"] for row in outcome["leaderboard"]] == ["failed", "failed"]
    # resume started Ray, ran nothing (Tune runs no failed trial again) and failed the same way: it says so at once.
    storage = next(tmp_path_factory.getbasetemp().glob(f"{SWEEP_ALL_FAIL}*"))
    done = run_cli("resume", SWEEP_ALL_FAIL, "--storage", str(storage), cwd=tmp_path, timeout=120)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"sweep failed: {SWEEP_ALL_FAIL} failed ({failed.removeprefix('the sweep failed: ')}), and Ray Tune runs no failed trial "
        "again: nothing to resume; fix the cause and run the sweep again\n"
    )


def test_a_time_budget_leaves_no_run_running(ray_local, mlflow_server, tmp_path_factory):
    # Two trials of 20,000 epochs cannot finish in 20 s: the budget ends them mid-way. (With 12 s,
    # beside another test worker, a trial's actor once started too late to report a step.)
    result = sweep(
        tmp_path_factory, mlflow_server, "mlp", "digits", SWEEP_BUDGET,
        scheduler="fifo", searcher="random", num_samples=2, time_budget=20,
        overrides=["resource.per_step=100", "resource.max=20000", "space.hidden_layer_sizes.values=[[64]]", "space.batch_size.values=[32]"],
    )
    client = client_for(mlflow_server)
    assert_no_run_left_running(client, result)
    for run in trial_runs(client, result):
        assert run.data.tags["raysweep.outcome"] == "stopped_early"
        assert run.data.tags["raysweep.stop_reason"] == "time_budget"
        assert history(client, run, "val_accuracy")[-1][0] < 20000
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"


def test_mlflow_chatter_is_left_out_of_a_sweep_and_kept_under_verbose(tmp_path, capsys):
    """MLflow creating its sqlite tables and its integer-schema hint: silent in a sweep, shown with --verbose."""
    import warnings

    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from raysweep.sweep.environment import _quiet_libraries

    import numpy as np
    from sklearn.impute import SimpleImputer

    integers = pd.DataFrame({"count": [1, 2, 3]})
    empty_column = np.array([[1.0, np.nan], [2.0, np.nan]])  # scikit-learn's imputer warns at each transform (the dataset notes it once)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _quiet_libraries(verbose=False)
        MlflowClient(f"sqlite:///{tmp_path / 'quiet.db'}").search_experiments()
        infer_signature(integers)
        SimpleImputer(strategy="median").fit(empty_column).transform(empty_column)
        quiet = capsys.readouterr().err, [str(w.message) for w in caught]
        _quiet_libraries(verbose=True)
        MlflowClient(f"sqlite:///{tmp_path / 'verbose.db'}").search_experiments()
        infer_signature(integers)
        SimpleImputer(strategy="median").fit(empty_column).transform(empty_column)
        verbose = capsys.readouterr().err, [str(w.message) for w in caught]
    assert not any("Skipping features without any observed values" in message for message in quiet[1])
    assert any("Skipping features without any observed values" in message for message in verbose[1])
    assert "Creating initial MLflow database tables" not in quiet[0]
    assert not any("Inferred schema contains integer" in message for message in quiet[1])
    assert "INFO mlflow.store.db.utils: Creating initial MLflow database tables" in verbose[0]
    assert any("Inferred schema contains integer" in message for message in verbose[1])


# -- through the CLI, as a user --------------------------------------------------------------------------
def test_unreachable_tracking_server_fails_in_one_line_before_any_trial(tmp_path):
    done = run_cli("run", "xgboost", "--dataset", "iris", "--tracking-uri", "http://127.0.0.1:1", cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "http://127.0.0.1:1" in errors[0] and "does not answer" in errors[0]
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no store, no results folder: nothing ran


def test_ui_without_a_store_says_so_in_one_line_and_creates_none(tmp_path):
    done = run_cli("ui", "--no-browser", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": ""}, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the default store sqlite:///mlflow.db: no MLflow store at")
    assert list(tmp_path.iterdir()) == []


def test_cli_run_json_stays_one_object_with_a_tracking_server(mlflow_server, tmp_path):
    done = run_cli(
        "run", "mlp", "--dataset", "iris", "--json", "--tracking-uri", mlflow_server, "--name", SWEEP_CLI,
        "--scheduler", "fifo", "--searcher", "random", "--num-samples", "2", "--set", "resource.max=10",
        "--storage", str(tmp_path / "results"), cwd=tmp_path, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout)  # MLflow's "View run" lines must not reach stdout
    client = client_for(mlflow_server)
    assert client.get_experiment(outcome["experiment_id"]).name == "raysweep-iris"
    parent = client.get_run(outcome["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == SWEEP_CLI
    children = client.search_runs(
        [outcome["experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{outcome['parent_run_id']}'"
    )
    assert sorted(run.info.run_name for run in children) == ["trial-0000", "trial-0001"]
    assert {run.info.status for run in children} == {"FINISHED"}
    assert not (tmp_path / "mlflow.db").exists()  # it logged to the server, not the default store
    # The writer's lock file goes with it once everything is written.
    assert not (Path(tempfile.gettempdir()) / f"raysweep-writer-{outcome['parent_run_id']}.lock").exists()
    assert_model_filed_with_the_sweep(
        mlflow_server, outcome["experiment_id"], outcome["parent_run_id"], outcome["model_uri"], SWEEP_CLI
    )


def test_report_prints_the_leaderboard_best_config_scores_and_plots(asha_sweep, mlflow_server, tmp_path):
    done = run_cli("report", SWEEP_ASHA, "--tracking-uri", mlflow_server, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"sweep {SWEEP_ASHA}" in out
    best = asha_sweep.leaderboard.iloc[0]
    assert re.search(rf"{best['trial']} +│ {best['val_accuracy']:.4g}", out), out
    assert all(f"trial-{i:04d}" in out for i in range(8))
    assert f"test accuracy of the refit model: {asha_sweep.test_score:.5g}" in out
    assert "best config: " + json.dumps(asha_sweep.best_config) in out
    assert "plots/metric_by_resource.png" in out and "plots/best_so_far.png" in out
    assert f"registered as {REGISTERED}/" in out
    # --json: the keys of run --json that MLflow holds, with the sweep's values; the leaderboard's top rows.
    done = run_cli("report", SWEEP_ASHA, "--json", "--top", "3", "--tracking-uri", mlflow_server, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    outcome, expected = json.loads(done.stdout), asha_sweep.to_dict()
    for key in ("name", "recipe", "dataset", "task", "metric", "mode", "best_config", "best_resource", "best_validation_score",
                "test_score", "num_trials", "num_errors", "num_stopped_early", "experiment_id", "parent_run_id", "model_uri"):
        assert outcome[key] == pytest.approx(expected[key]) if isinstance(expected[key], float) else outcome[key] == expected[key], key
    assert outcome["status"] == "FINISHED" and outcome["error"] is None and outcome["tracking_uri"] == mlflow_server
    rows = outcome["leaderboard"]
    assert [row["trial"] for row in rows] == list(asha_sweep.leaderboard["trial"][:3])
    assert rows[0]["config"] == asha_sweep.best_config and rows[0]["score"] == pytest.approx(asha_sweep.best_validation_score)


def test_report_of_an_unknown_sweep_lists_the_recent_ones(asha_sweep, mlflow_server, tmp_path):
    done = run_cli("report", "no-such-sweep", "--tracking-uri", mlflow_server, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no sweep named 'no-such-sweep'")
    assert SWEEP_ASHA in lines[0]


def test_ui_on_a_tracking_server_prints_the_trials_view_compare_and_sweep_links(asha_sweep, mlflow_server, tmp_path):
    done = run_cli("ui", "--tracking-uri", mlflow_server, "--sweep", SWEEP_ASHA, "--no-browser", "--port", "5999",
                   cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    # The server is there already: a --port given says it is not used (it was ignored without a word).
    assert f"raysweep: --port 5999 is left unused: {mlflow_server} serves the UI already (nothing is started)" in done.stderr
    links = dict(line.split(None, 1) for line in done.stdout.strip().splitlines())
    assert list(links) == ["trials:", "charts:", "compare:", "sweep:", "sweeps:"], done.stdout
    key = f"raysweep-{SWEEP_ASHA}"
    runs_page = f"{mlflow_server}/#/experiments/{asha_sweep.experiment_id}/runs"
    assert links["trials:"] == f"{runs_page}?workflowType=machine_learning&viewStateShareKey={key}"
    assert links["charts:"] == f"{runs_page}?workflowType=machine_learning&viewStateShareKey={key}&compareRunsMode=CHART"
    assert links["sweep:"] == f"{runs_page}/{asha_sweep.parent_run_id}?workflowType=machine_learning"
    assert links["sweeps:"] == f"{runs_page}?workflowType=machine_learning&viewStateShareKey=raysweep-sweeps"
    client = client_for(mlflow_server)
    experiment = client.get_experiment(asha_sweep.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # the shared view: the trial runs only (the UI cannot expand a parent in a shared view),
    # each trial's best validation accuracy first (a trial's score is its best step's), with the
    # metric (each trial's best) and the searched parameters as columns
    view = json.loads(experiment.tags[f"mlflow.sharedViewState.{key}"])
    assert view["searchFilter"] == f"tags.`mlflow.parentRunId` = '{asha_sweep.parent_run_id}'"
    assert (view["orderByKey"], view["orderByAsc"]) == ("metrics.`best_val_accuracy`", False)
    assert "metrics.`best_val_accuracy`" in view["selectedColumns"]
    assert {f"params.`{name}`" for name in asha_sweep.best_config} <= set(view["selectedColumns"])
    # its charts: the learning curves, parallel coordinates of every searched parameter, and the
    # score against the two most important parameters (8 trials: the sweep has importances)
    charts = {chart["type"]: chart for chart in view["compareRunCharts"]}
    assert charts["LINE"]["metricKey"] == "val_accuracy"
    assert sorted(charts["PARALLEL"]["selectedParams"]) == sorted(asha_sweep.best_config)
    assert charts["PARALLEL"]["selectedMetrics"] == ["best_val_accuracy"]
    parent = client.get_run(asha_sweep.parent_run_id)
    ranked = sorted((key for key in parent.data.metrics if key.startswith("importance/")), key=lambda k: -parent.data.metrics[k])
    scatters = [chart for chart in view["compareRunCharts"] if chart["type"] == "SCATTER"]
    assert [chart["xaxis"]["key"] for chart in scatters] == [key.removeprefix("importance/") for key in ranked[:2]]
    assert {chart["yaxis"]["key"] for chart in scatters} == {"best_val_accuracy"}
    # the experiment's sweeps as rows (their own runs, not their trials), best validation score first,
    # with what `raysweep compare` shows as columns
    sweeps = json.loads(experiment.tags["mlflow.sharedViewState.raysweep-sweeps"])
    # a nested validation's fold and final sweeps are reached from its job's run, not listed beside it
    assert sweeps["searchFilter"] == "tags.`raysweep.recipe` LIKE '%' AND tags.`raysweep.nested_job` IS NULL"
    assert (sweeps["orderByKey"], sweeps["orderByAsc"]) == ("metrics.`best_val_accuracy`", False)
    assert sweeps["selectedColumns"][:6] == [
        "tags.`raysweep.recipe`", "tags.`raysweep.scheduler`", "tags.`raysweep.searcher`",
        "metrics.`num_trials`", "metrics.`best_val_accuracy`", "metrics.`test_accuracy`",
    ]
    listed = client.search_runs([asha_sweep.experiment_id], filter_string=sweeps["searchFilter"])
    assert asha_sweep.parent_run_id in {run.info.run_id for run in listed}
    assert not {run.info.run_id for run in trial_runs(client, asha_sweep)} & {run.info.run_id for run in listed}
    # the compare page of every trial, best first
    import urllib.parse

    query = urllib.parse.parse_qs(links["compare:"].split("/#/compare-runs?", 1)[1])
    assert json.loads(query["experiments"][0]) == [asha_sweep.experiment_id]
    compared = json.loads(query["runs"][0])
    accuracy = {run.info.run_id: run.data.metrics["best_val_accuracy"] for run in trial_runs(client, asha_sweep)}
    board = asha_sweep.leaderboard.set_index("trial_id")
    for run in trial_runs(client, asha_sweep):  # each trial run's best is the leaderboard's score
        assert run.data.metrics["best_val_accuracy"] == pytest.approx(board.loc[run.data.tags["raysweep.trial_id"], "val_accuracy"])
    assert sorted(compared) == sorted(accuracy)
    assert [accuracy[run_id] for run_id in compared] == sorted(accuracy.values(), reverse=True)
