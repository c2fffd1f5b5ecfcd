"""Real sweeps on the session's Ray through the Python API: every recipe under every strategy,
early stopping, PBT, actor reuse, reproducibility, grid search, time budgets, cross-validation,
and the refit model's test score."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from fast_support import empty_store, store_uri  # noqa: F401 (fixtures)
from raysweep import space
from raysweep.strategies import _pbt, registry as strategies
from raysweep.data import load_dataset, prepare
from raysweep.families import get_family
from raysweep.metrics import score
from raysweep.recipes import load_recipe
from raysweep.sweep.run import run_sweep

#: overrides that keep every recipe to a few quick steps
SHORT = {
    "random_forest": ["resource.max=60"],  # 3 steps of 20 trees
    "xgboost": ["resource.per_step=25", "resource.max=75"],  # 3 steps of 25 rounds
    "mlp": ["resource.max=20"],  # 4 steps of 5 epochs
    "svm": ["resource.per_step=0.25"],  # 4 steps of a quarter of the rows
}
CLASSIFICATION = {"fifo": "breast_cancer", "hyperband": "iris"}
REGRESSION = {"asha": "diabetes", "pbt": "diabetes"}


def sweep(tmp_path: Path, recipe: str, dataset: str, **options: Any):
    options.setdefault("seed", 0)
    options.setdefault("tracking", False)
    return run_sweep(recipe, dataset, storage=str(tmp_path / "results"), **options)


# -- helpers that read what a user can read after a sweep ----------------------------------------------
def trial_histories(result) -> dict[str, list[dict[str, Any]]]:
    """Every trial's reported results, in order, from Ray's result.json files."""
    histories: dict[str, list[dict[str, Any]]] = {}
    for path in Path(result.storage_path).glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            histories[rows[0]["trial_id"]] = rows
    return histories


def configs_in_start_order(result) -> list[dict[str, Any]]:
    """Trial configs in the order Tune created the trials (the index in each trial's folder name)."""
    ordered = []
    for path in Path(result.storage_path).glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        index = int(path.parent.name.split(rows[0]["trial_id"] + "_", 1)[1].split("_", 1)[0])
        ordered.append((index, rows[0]["config"]))
    return [config for _, config in sorted(ordered, key=lambda item: item[0])]


def recompute_test_score(result, dataset: str, seed: int = 0, family: str | None = None, **load_options: Any) -> float:
    """The refit model's test score computed from scratch: the same split, scikit-learn's metric.

    ``family`` defaults to the recipe's name (a bundled recipe is named after its family).
    """
    data = load_dataset(dataset, seed=seed, **load_options)
    prepared = prepare(data, get_family(family or result.recipe), seed=seed)
    X_test, y_test = prepared.X_test, prepared.y_test
    metric = result.metric
    if result.task == "classification":
        labels = prepared.classes[y_test]
        if metric == "accuracy":
            return float(np.mean(result.model.predict(X_test) == labels))
        if metric == "f1_macro":
            return float(skm.f1_score(labels, result.model.predict(X_test), average="macro"))
        proba = result.model.predict_proba(X_test)
        if metric == "roc_auc":
            return float(skm.roc_auc_score(y_test, proba[:, 1]) if proba.shape[1] == 2 else skm.roc_auc_score(y_test, proba, multi_class="ovr"))
        return float(skm.log_loss(y_test, proba, labels=np.arange(len(prepared.classes))))
    predicted = result.model.predict(X_test)
    if metric == "rmse":
        return float(np.sqrt(np.mean((predicted - y_test) ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(predicted - y_test)))
    return float(skm.r2_score(y_test, predicted))


def check_result(result, recipe_name: str, num_samples: int, overrides: list[str]) -> None:
    """What every finished sweep must hold, whatever the strategy."""
    recipe = load_recipe(recipe_name, overrides)
    board = result.leaderboard
    key = f"val_{result.metric}"
    assert result.num_trials == num_samples
    assert len(board) == num_samples
    assert result.num_errors == 0, result.errors
    assert board[key].map(math.isfinite).all(), board
    assert math.isfinite(result.best_validation_score) and math.isfinite(result.test_score)
    best = board[key].max() if result.mode == "max" else board[key].min()
    assert result.best_validation_score == pytest.approx(best, abs=1e-12)
    assert set(result.best_config) == set(recipe.space)
    assert board["steps"].between(1, recipe.resource.max_steps).all()
    assert set(board["outcome"]) <= {"completed", "stopped_early"}
    assert (board["outcome"] == "completed").sum() >= 1, "at least one trial runs to the end"
    completed = board[board["outcome"] == "completed"]
    assert (completed["steps"] == recipe.resource.max_steps).all()
    assert result.num_stopped_early == (board["outcome"] == "stopped_early").sum()


# -- 1. every recipe under every strategy -----------------------------------------------------------------
MATRIX = [
    (recipe, scheduler, searcher)
    for recipe in ("random_forest", "xgboost", "mlp", "svm")
    for scheduler, searcher in (("fifo", "random"), ("asha", "hyperopt"), ("hyperband", "random"), ("pbt", "random"))
    if not (recipe == "svm" and scheduler == "pbt")
]


@pytest.mark.parametrize("recipe, scheduler, searcher", MATRIX, ids=["-".join(case) for case in MATRIX])
def test_recipe_under_strategy(ray_local, tmp_path, recipe, scheduler, searcher):
    dataset = CLASSIFICATION.get(scheduler) or REGRESSION[scheduler]
    overrides = SHORT[recipe] + (["pbt.perturbation_interval=1"] if scheduler == "pbt" else [])
    result = sweep(tmp_path, recipe, dataset, scheduler=scheduler, searcher=searcher, num_samples=3, overrides=overrides)
    check_result(result, recipe, 3, overrides)
    assert result.recipe == recipe and result.dataset == dataset
    if scheduler == "fifo":
        assert (result.leaderboard["outcome"] == "completed").all()
    if dataset == "breast_cancer":
        assert result.task == "classification" and result.metric == "accuracy"
        assert 0.85 < result.test_score <= 1.0
        assert list(result.classes) == [0, 1]
    elif dataset == "iris":
        assert 0.8 < result.test_score <= 1.0
        assert list(result.classes) == [0, 1, 2]
    else:
        target_std = float(np.std(load_dataset("diabetes").y))
        assert result.task == "regression" and result.metric == "rmse" and result.classes is None
        assert 20 < result.test_score < 0.9 * target_std, "the tuned model must beat predicting the mean"
    # 8. the reported test score is the refit model's score on the held-out rows
    assert recompute_test_score(result, dataset) == pytest.approx(result.test_score, abs=1e-9)
    if recipe == "svm":  # its resource is a share of the rows: the refit takes all of train+validation
        pool = len(prepare(load_dataset(dataset), get_family("svm"), seed=0).y_pool)
        assert result.model.model.shape_fit_[0] == pool, (result.best_config, result.leaderboard.head(1))


# -- 2. ASHA stops trials early -------------------------------------------------------------------------------
def test_asha_stops_weak_trials_at_its_rungs(ray_local, tmp_path):
    overrides = ["resource.max=120"]  # 6 steps; with grace 1 and reduction 3 the rungs are at steps 1 and 3
    result = sweep(tmp_path, "random_forest", "breast_cancer", scheduler="asha", searcher="random", metric="log_loss",
                   num_samples=10, overrides=overrides)
    check_result(result, "random_forest", 10, overrides)
    board = result.leaderboard
    stopped = board[board["outcome"] == "stopped_early"]
    assert len(stopped) >= 3, board[["steps", "outcome", "val_log_loss"]]
    assert set(stopped["steps"]) <= {1, 3}
    # A trial's resource is the one at its best step: at most what it ran (20 trees a step).
    assert (board["resource"] <= board["steps"] * 20).all() and set(board["resource"]) <= {20, 40, 60, 80, 100, 120}
    assert result.num_stopped_early == len(stopped)
    assert (board["steps"] == 6).sum() >= 1
    # Each trial's history stops where the leaderboard says it did.
    histories = trial_histories(result)
    for _, row in board.iterrows():
        assert len(histories[row["trial_id"]]) == row["steps"]


# -- 3. PBT changes hyperparameters mid-run, and the live model uses them -----------------------------------
PBT_CASES = [("xgboost", "breast_cancer", ["resource.per_step=25", "resource.max=150"]), ("mlp", "breast_cancer", ["resource.max=30"])]


@pytest.mark.parametrize("recipe_name, dataset, overrides", PBT_CASES, ids=[c[0] for c in PBT_CASES])
def test_pbt_mutation_reaches_the_live_model(ray_local, tmp_path, recipe_name, dataset, overrides):
    from mlflow.tracking import MlflowClient

    overrides = overrides + ["pbt.perturbation_interval=1"]
    recipe = load_recipe(recipe_name, overrides)
    mutated = list(recipe.mutations)
    changed: list[tuple[str, str, float, float]] = []
    for seed in (0, 1):  # PBT decides from live results; a second seed if the first never exploited
        tracking_uri = f"sqlite:///{tmp_path}/mlflow-{seed}.db"
        result = sweep(tmp_path, recipe_name, dataset, scheduler="pbt", searcher="random", num_samples=4, seed=seed,
                       overrides=overrides, tracking=True, tracking_uri=tracking_uri)
        check_result(result, recipe_name, 4, overrides)
        histories = trial_histories(result)
        for trial_id, rows in histories.items():
            for row in rows:
                # What the model trains with is what the trial's config says, after every exploit.
                for name in mutated:
                    assert row[f"hp/{name}"] == pytest.approx(row["config"][name], rel=1e-9), (trial_id, row["training_iteration"])
                    spec = recipe.mutations[name]
                    assert spec["low"] <= row[f"hp/{name}"] <= spec["high"], "explored values stay inside the recipe's range"
            for before, after in itertools.pairwise(rows):
                for name in mutated:
                    if after[f"hp/{name}"] != pytest.approx(before[f"hp/{name}"], rel=1e-9):
                        changed.append((trial_id, name, before[f"hp/{name}"], after[f"hp/{name}"]))
        if changed:
            break
    assert changed, "no trial had a hyperparameter changed by PBT"
    board = result.leaderboard.set_index("trial_id")
    key = f"val_{result.metric}"
    for trial_id, name, _, _ in changed:
        # The config the leaderboard reports for a trial is the one its model trained with at the
        # trial's best step (the first to reach its best score).
        rows = histories[trial_id]
        best_value = (max if result.mode == "max" else min)(row[key] for row in rows)
        at_best = next(row for row in rows if row[key] == best_value)
        assert board.loc[trial_id, key] == pytest.approx(best_value, rel=1e-12)
        assert board.loc[trial_id, f"config/{name}"] == pytest.approx(at_best[f"hp/{name}"], rel=1e-9)
    # MLflow's history of the trial shows the change too.
    trial_id, name, old, new = changed[0]
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([result.experiment_id], filter_string=f"tags.`raysweep.trial_id` = '{trial_id}'")
    assert len(runs) == 1 and runs[0].data.tags["mlflow.parentRunId"] == result.parent_run_id
    values = [m.value for m in client.get_metric_history(runs[0].info.run_id, f"hp/{name}")]
    assert any(v == pytest.approx(old, rel=1e-9) for v in values) and any(v == pytest.approx(new, rel=1e-9) for v in values)


def test_pbt_explore_stays_inside_the_recipe_bounds():
    """Ray multiplies a range by 0.8 or 1.2 without looking at its bounds; raysweep clips."""
    from ray.tune.schedulers.pbt import _explore

    recipe = load_recipe("random_forest")
    scheduler = strategies.build_scheduler("pbt", recipe, "val_accuracy", "max", 10, 0, [])
    random.seed(0)
    for config in ({"max_depth": 8, "max_features": 1.0, "min_samples_leaf": 1},
                   {"max_depth": 8, "max_features": 0.1, "min_samples_leaf": 32}):
        for _ in range(200):
            explored, _ = _explore(config, scheduler._hyperparam_mutations, 0.25, (1.2, 0.8), scheduler._custom_explore_fn)
            assert 0.1 <= explored["max_features"] <= 1.0 and isinstance(explored["max_features"], float)
            assert 1 <= explored["min_samples_leaf"] <= 32 and isinstance(explored["min_samples_leaf"], int)
            assert explored["max_depth"] == 8
    assert _pbt.clip_to_bounds({"x": (0, 1)}, {"x": 1.2, "y": 5}) == {"x": 1.0, "y": 5}


# -- 4. reused actors carry nothing over; 9. grid search runs the grid --------------------------------------------
GRID = ["resource.max=40", "space.max_depth.grid=[4, 12]", "space.min_samples_leaf.grid=[1, 8]", "space.max_features.grid=[0.3, 1.0]"]


@pytest.fixture(scope="module")
def rf_grid(ray_local, tmp_path_factory):
    folder = tmp_path_factory.mktemp("grid")
    result = sweep(folder, "random_forest", "make_classification:n_samples=300", scheduler="fifo", searcher="grid",
                   metric="log_loss", max_concurrent=2, overrides=GRID)
    return result


def test_grid_search_runs_every_point_once(rf_grid):
    recipe = load_recipe("random_forest", GRID)
    points = {name: space.grid_points(spec) for name, spec in recipe.space.items()}
    expected = {tuple(combo) for combo in itertools.product(*points.values())}
    assert rf_grid.num_trials == space.grid_size(recipe.space) == len(expected) == 8
    seen = {tuple(row[f"config/{name}"] for name in points) for _, row in rf_grid.leaderboard.iterrows()}
    assert seen == expected
    check_result(rf_grid, "random_forest", 8, GRID)


def test_reused_actor_scores_like_a_fresh_model(rf_grid):
    histories = trial_histories(rf_grid)
    assert len(histories) == 8
    trials_per_process = Counter(rows[0]["pid"] for rows in histories.values())
    assert max(trials_per_process.values()) >= 2, f"no actor was reused: {trials_per_process}"
    # Train each config from nothing, in this process, on the same split and seed.
    recipe = load_recipe("random_forest", GRID)
    family = get_family("random_forest")
    trial = prepare(load_dataset("make_classification:n_samples=300", seed=0), family, seed=0).trial
    for trial_id, rows in histories.items():
        model = family.build(rows[0]["config"], "classification", 0, True)
        for row in rows:
            step = row["training_iteration"]
            model = family.train_step(model, trial.X_train, trial.y_train, step, recipe.resource, trial.n_classes, 0)
            fresh = score("log_loss", model, trial.X_val, trial.y_val, trial.n_classes)
            assert row["val_log_loss"] == pytest.approx(fresh, abs=1e-12), (trial_id, step, row["pid"])


# -- 6. the same seed gives the same configs, after the recipe's starting point -----------------------------------------------------------------------
@pytest.mark.parametrize("searcher, max_concurrent", [("random", None), ("hyperopt", 1)])
def test_seed_reproduces_the_configs(ray_local, tmp_path, searcher, max_concurrent):
    def configs(seed: int, run: str):
        result = sweep(tmp_path / run, "xgboost", "iris", scheduler="fifo", searcher=searcher, num_samples=4, seed=seed,
                       max_concurrent=max_concurrent, overrides=["resource.per_step=25", "resource.max=25"])
        assert result.num_trials == 4
        return configs_in_start_order(result), result

    first, result_a = configs(7, "a")
    again, result_b = configs(7, "b")
    other, _ = configs(8, "c")
    assert len(first) == 4
    assert first == again
    assert result_a.best_config == result_b.best_config and result_a.test_score == result_b.test_score
    # Every seed starts from the recipe's points_to_evaluate (XGBoost's defaults), then samples.
    start = load_recipe("xgboost").points_to_evaluate
    assert start == [{"learning_rate": 0.3, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0,
                      "colsample_bytree": 1.0, "reg_lambda": 1.0}]
    assert first[:1] == other[:1] == start
    assert all(a != b for a, b in zip(first[1:], other[1:])), "another seed must give other configs"


# -- 9. time budget, cross-validation ----------------------------------------------------------------------------
def test_time_budget_stops_the_sweep(ray_local, tmp_path):
    budget = 10
    result = sweep(tmp_path, "random_forest", "breast_cancer", scheduler="fifo", searcher="random", num_samples=500,
                   time_budget=budget, max_concurrent=2)
    assert result.elapsed_s < budget + 30
    assert result.num_trials < 500
    assert math.isfinite(result.best_validation_score) and 0.85 < result.test_score <= 1.0


def test_cross_validation_scores_the_mean_of_the_folds(ray_local, tmp_path):
    overrides = ["resource.max=40"]
    result = sweep(tmp_path, "random_forest", "breast_cancer", scheduler="fifo", searcher="random", num_samples=2, cv=3,
                   overrides=overrides)
    check_result(result, "random_forest", 2, overrides)
    recipe = load_recipe("random_forest", overrides)
    family = get_family("random_forest")
    prepared = prepare(load_dataset("breast_cancer"), family, seed=0, cv=3)
    assert len(prepared.trial.folds) == 3 and prepared.trial.X_val.size == 0
    fold_scores = []
    for X_fit, y_fit, X_score, y_score in prepared.trial.splits():
        model = family.build(result.best_config, "classification", 0, False)
        # the best config at its best step (raysweep.best): as many steps as it had trained then
        for step in range(1, round(result.best_resource / recipe.resource.per_step) + 1):
            model = family.train_step(model, X_fit, y_fit, step, recipe.resource, 2, 0)
        fold_scores.append(score("accuracy", model, X_score, y_score, 2))
    assert result.best_validation_score == pytest.approx(np.mean(fold_scores), abs=1e-12)
    assert result.warnings == []  # every fold stratified
    assert recompute_test_score(result, "breast_cancer") == pytest.approx(result.test_score, abs=1e-9)


def test_a_split_drawn_unstratified_is_one_of_the_results_warnings(ray_local, tmp_path):
    """A class of one row: the test split is drawn at random. It was a log line only (printed
    even with progress off), not in ``result.warnings`` nor ``--json``."""
    import pandas as pd

    data = load_dataset("breast_cancer")
    frame = data.X.head(120).assign(label=np.where(data.y.head(120).to_numpy() == 1, "benign", "malignant"))
    frame.loc[7, "label"] = "rare"
    result = run_sweep("random_forest", frame, target="label", storage=str(tmp_path / "results"), seed=0, tracking=False,
                       scheduler="fifo", searcher="random", num_samples=1, overrides=["resource.max=20"])
    assert isinstance(frame, pd.DataFrame) and result.num_trials == 1
    assert result.warnings == [
        "the test split is drawn at random, not stratified: class 'rare' has only 1 row (stratifying needs 2 of each class); "
        "drop or merge that class to stratify it"
    ]
    assert result.to_dict()["warnings"] == result.warnings


# -- 8. the refit model, scored with probabilities -------------------------------------------------------------------
def test_refit_model_test_score_with_probabilities(ray_local, tmp_path):
    result = sweep(tmp_path, "xgboost", "breast_cancer", scheduler="fifo", searcher="random", num_samples=2,
                   metric="roc_auc", seed=3, overrides=["resource.per_step=25", "resource.max=50"])
    assert result.metric == "roc_auc" and result.mode == "max"
    assert 0.9 < result.test_score <= 1.0
    assert recompute_test_score(result, "breast_cancer", seed=3) == pytest.approx(result.test_score, abs=1e-9)
    data = load_dataset("breast_cancer")
    assert set(np.unique(result.predict(data.X.head(50)))) <= {0, 1}


# -- checkpoints: every step on request, otherwise at most every checkpoint_every seconds ----------------------------
def test_checkpoint_every_sets_how_often_a_running_trial_is_checkpointed(ray_local, tmp_path):
    overrides = ["resource.max=80"]  # 4 steps of 20 trees, a fraction of a second each

    def checkpoints(every: float | None) -> dict[str, tuple[list[int], str | None, int]]:
        """Per trial: the steps checkpointed, Tune's latest checkpoint, and checkpoint folders left."""
        from ray.tune import ExperimentAnalysis

        options = {} if every is None else {"checkpoint_every": every}
        result = sweep(tmp_path / str(every), "random_forest", "breast_cancer", scheduler="fifo", searcher="random",
                       num_samples=2, max_concurrent=2, overrides=overrides, **options)
        check_result(result, "random_forest", 2, overrides)
        latest = {Path(trial.path).name: trial.checkpoint for trial in ExperimentAnalysis(result.storage_path).trials}
        found = {}
        for path in Path(result.storage_path).glob("*/result.json"):
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            checkpoint = latest[path.parent.name]
            found[path.parent.name] = ([row["training_iteration"] for row in rows if row.get("should_checkpoint")],
                                       None if checkpoint is None else Path(checkpoint.path).name,
                                       len(list(path.parent.glob("checkpoint_*"))))
        return found

    # After every unfinished step (steps 1-3): Tune's latest is its third checkpoint. A completed
    # trial is never restored, so its checkpoints are deleted when it completes.
    every_step = checkpoints(0)
    assert len(every_step) == 2 and all(v == ([1, 2, 3], "checkpoint_000002", 0) for v in every_step.values()), every_step
    # The default, 10 s, is longer than these trials: none is checkpointed, and none is needed.
    by_default = checkpoints(None)
    assert len(by_default) == 2 and all(v == ([], None, 0) for v in by_default.values()), by_default


# -- "best" is the best step: the live line, the result, the leaderboard, MLflow and the refit agree --------------------
def test_best_step_is_the_best_score_at_any_step_with_the_config_then():
    import pandas as pd
    from ray.tune import Result

    from raysweep.best import sweep_best, trial_best
    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.result import _leaderboard, _trial_bests

    config = {"learning_rate": 0.5, "max_depth": 9}
    # Peaks at its 2nd step, then declines: its last score is the worst of the sweep's last scores.
    peaked = [{"training_iteration": i, "val_accuracy": v, "config/learning_rate": 0.5, "config/max_depth": 9}
              for i, v in enumerate([0.80, 0.95, 0.90, 0.85], start=1)]
    # PBT changed this trial's learning rate after step 1; its best (a tie, the first one kept) is at step 2.
    steady = [{"training_iteration": 1, "val_accuracy": 0.86, "config/learning_rate": 0.1, "config/max_depth": 3},
              {"training_iteration": 2, "val_accuracy": 0.91, "config/learning_rate": 0.2, "config/max_depth": 3},
              {"training_iteration": 3, "val_accuracy": 0.91, "config/learning_rate": 0.3, "config/max_depth": 3}]
    assert trial_best(peaked, "val_accuracy", "max", config).steps == 2
    best = trial_best(steady, "val_accuracy", "max", {"learning_rate": 0.3, "max_depth": 3})
    assert (best.value, best.steps, best.config) == (0.91, 2, {"learning_rate": 0.2, "max_depth": 3})
    # Lower is better for rmse; non-finite scores never count; a trial with none has no best.
    rmse = [{"training_iteration": 1, "val_rmse": 3.0}, {"training_iteration": 2, "val_rmse": float("nan")},
            {"training_iteration": 3, "val_rmse": 2.5}, {"training_iteration": 4, "val_rmse": 2.7}]
    assert trial_best(rmse, "val_rmse", "min", {}).steps == 3
    assert trial_best([{"training_iteration": 1, "val_rmse": float("inf")}], "val_rmse", "min", {}) is None
    # Tune's own nested results carry the config as a dict.
    nested = [{"training_iteration": 1, "val_rmse": 1.0, "config": {"max_depth": 4}}]
    assert trial_best(nested, "val_rmse", "min", {"max_depth": 8}).config == {"max_depth": 4}
    assert sweep_best([None, trial_best(steady, "val_accuracy", "max", {}), trial_best(peaked, "val_accuracy", "max", config)], "max") == 2

    # The leaderboard ranks trials by their best step and shows the resource at it.
    plan = plan_sweep("xgboost", "breast_cancer", overrides=["resource.per_step=10", "resource.max=40"])
    results = [
        Result(metrics={**rows[-1], "trial_id": trial_id, "done": True, "config": {k[7:]: v for k, v in rows[-1].items() if k.startswith("config/")}},
               checkpoint=None, error=None, path="", metrics_dataframe=pd.DataFrame(rows))
        for trial_id, rows in (("a_00000", steady), ("a_00001", peaked))
    ]
    board = _leaderboard(results, plan, _trial_bests(results, plan))
    assert board["trial_id"].tolist() == ["a_00001", "a_00000"]
    assert board["val_accuracy"].tolist() == [0.95, 0.91]
    assert board["resource"].tolist() == [20, 20] and board["steps"].tolist() == [4, 3]
    assert board.loc[1, "config/learning_rate"] == 0.2
    # The table's other columns do not matter; a NaN score at a step is skipped, as in the rows above.
    rows = [{**row, "time_this_iter_s": 0.1, "date": "2026-12-01"} for row in rmse]
    [result] = [Result(metrics=rows[-1], checkpoint=None, error=None, path="", metrics_dataframe=pd.DataFrame(rows))]
    rmse_plan = plan_sweep("xgboost", "diabetes", overrides=["resource.per_step=10", "resource.max=40"])
    [best] = _trial_bests([result], rmse_plan)
    assert (best.value, best.steps) == (2.5, 3)


def test_best_means_the_best_step_everywhere(ray_local, tmp_path, mlflow_server, capsys):
    """A sweep whose best score comes before its trial's last step: every "best" is that score."""
    from mlflow.tracking import MlflowClient

    from raysweep.tracking.queries import leaderboard_from_trials

    from conftest import run_cli

    # Deep trees at a high learning rate on a small, noisy regression: validation rmse bottoms out
    # early and rises again.
    overrides = ["resource.per_step=5", "resource.max=40", "space.learning_rate={type: uniform, low: 0.3, high: 0.6}",
                 "space.max_depth={type: randint, low: 8, high: 11}", "space.min_child_weight={type: uniform, low: 0.5, high: 1}"]
    result = sweep(tmp_path, "xgboost", "make_regression:n_samples=300,noise=100", scheduler="fifo", searcher="random",
                   num_samples=3, overrides=overrides, tracking=True, tracking_uri=mlflow_server, progress=True,
                   name="best-step", experiment="best-step")
    client = MlflowClient(mlflow_server)
    trials = client.search_runs([result.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    histories = {run.info.run_name: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_rmse"))
                 for run in trials}
    assert len(histories) == 3 and all(len(h) == 8 for h in histories.values()), histories
    best_value, best_resource = min((value, step) for history in histories.values() for step, value in history)
    # The premise: the best score is not a last step's, and it beats every trial's last score.
    assert best_resource < 40 and best_value < min(history[-1][1] for history in histories.values()), histories

    assert result.best_validation_score == pytest.approx(best_value, abs=1e-9)
    assert result.best_resource == best_resource
    # The refit trained the best config for the best step's boosting rounds.
    assert result.model.model.get_booster().num_boosted_rounds() == best_resource
    # The live progress line's last "best".
    live = [line for line in capsys.readouterr().err.splitlines() if "best val_rmse" in line][-1]
    assert f"best val_rmse {result.best_validation_score:.5g} |" in live, live
    # The leaderboard, in the result, in MLflow, and rebuilt from the trial runs.
    assert result.leaderboard["val_rmse"].iloc[0] == pytest.approx(best_value, abs=1e-9)
    assert result.leaderboard["resource"].iloc[0] == best_resource
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["best_val_rmse"] == pytest.approx(best_value, abs=1e-9)
    assert parent.data.params["best.resource"] == str(best_resource)
    rebuilt = leaderboard_from_trials(client, parent)
    assert rebuilt["val_rmse"].iloc[0] == pytest.approx(best_value, abs=1e-9) and rebuilt["resource"].iloc[0] == best_resource
    report = run_cli("report", "best-step", "--tracking-uri", mlflow_server, cwd=tmp_path, timeout=120)
    assert report.returncode == 0, report.stderr
    assert f"best validation rmse: {best_value:.5g} (at resource {best_resource})" in report.stdout, report.stdout
    top = next(line for line in report.stdout.splitlines() if "trial-" in line)
    assert f"{best_value:.4g}" in top and f" {best_resource} " in top, report.stdout


def test_a_sweep_that_fails_after_its_parent_run_opened_ends_it_failed(ray_local, tmp_path, monkeypatch, store_uri):  # noqa: F811
    """Anything raised between the parent run's start and the trials (building Ray Tune's search
    space, its Tuner, the parent's first artifact) left the run RUNNING for good."""
    from mlflow.tracking import MlflowClient

    from raysweep.tracking.store import SweepTracker

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the search space could not be built")

    def unwritable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the artifact store could not be written")

    monkeypatch.setattr(space, "param_space", broken)
    with pytest.raises(RuntimeError, match="could not be built"):
        run_sweep("random_forest", "iris", num_samples=1, name="broken", tracking_uri=store_uri, storage=str(tmp_path / "results"))
    monkeypatch.undo()
    # The parent's first artifact (the recipe), written right after the run opened.
    monkeypatch.setattr(SweepTracker, "log_text", unwritable)
    with pytest.raises(RuntimeError, match="could not be written"):
        run_sweep("random_forest", "iris", num_samples=1, name="unwritable", tracking_uri=store_uri, storage=str(tmp_path / "results"))
    client = MlflowClient(store_uri)
    experiment = client.get_experiment_by_name("raysweep-iris")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted((run.info.run_name, run.info.status) for run in runs) == [("broken", "FAILED"), ("unwritable", "FAILED")]


def test_ctrl_c_before_the_trials_leaves_no_sweep_in_mlflow(ray_local, tmp_path, monkeypatch, store_uri):  # noqa: F811
    """Ctrl-C (or SIGTERM) after the parent run opened, before Ray Tune saved anything: the command said
    "nothing to resume; run it again", yet a KILLED sweep of no trials stayed in report and compare."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(space, "param_space", interrupted)  # built after the parent's first artifacts, before Tune's Tuner
    with pytest.raises(KeyboardInterrupt):
        run_sweep("random_forest", "iris", num_samples=1, name="stopped early", tracking_uri=store_uri, storage=str(tmp_path / "results"))
    client = MlflowClient(store_uri)
    experiment = client.get_experiment_by_name("raysweep-iris")
    assert client.search_runs([experiment.experiment_id]) == []
    deleted = client.search_runs([experiment.experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [(run.info.run_name, run.info.status) for run in deleted] == [("stopped early", "KILLED")]  # mlflow runs restore brings it back


def test_a_sweep_run_from_python_leaves_the_callers_environment_as_it_was(ray_local, tmp_path, monkeypatch, store_uri):  # noqa: F811
    """After one run_sweep a plain Ray Tune run in the same process wrote no result files
    (TUNE_DISABLE_AUTO_CALLBACK_LOGGERS), child processes showed no warnings (PYTHONWARNINGS) and
    the caller's own MLflow calls retried once instead of MLflow's default."""
    import logging
    import os
    import warnings

    from raysweep.sweep.environment import SWEEP_VARIABLES

    for name in SWEEP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")  # the caller's own choice stays
    filters, level, draws = list(warnings.filters), logging.getLogger("alembic").level, random.getstate()
    run_sweep("random_forest", "iris", num_samples=2, tracking_uri=store_uri, storage=str(tmp_path / "results"),
              scheduler="pbt", searcher="random", overrides=["resource.max=20"])  # PBT seeds Python's random module
    assert random.getstate() == draws
    assert {name: os.environ.get(name) for name in SWEEP_VARIABLES} == {
        name: "120" if name == "MLFLOW_HTTP_REQUEST_TIMEOUT" else None for name in SWEEP_VARIABLES
    }
    assert warnings.filters == filters and logging.getLogger("alembic").level == level
    assert not logging.getLogger("ray.tune.tune").filters  # Tune's own lines, quietened for the sweep only


def test_an_address_of_another_cluster_in_a_process_already_on_ray_is_refused(ray_local, tmp_path):
    """After ray.init (or an earlier sweep) run_sweep(address=...) ran on the local Ray without a word,
    and recorded the address it was given for resume."""
    from raysweep.errors import UserError

    connected = ray_local.get_runtime_context().gcs_address
    with pytest.raises(UserError) as raised:
        run_sweep("random_forest", "iris", num_samples=1, address="127.0.0.1:1", tracking=False, storage=str(tmp_path / "results"))
    assert str(raised.value) == (
        f"--address 127.0.0.1:1: this process is connected to the Ray at {connected} already (ray.init, or an earlier "
        "sweep's local Ray); call ray.shutdown() first to sweep on that cluster, or leave the address out to sweep on this one"
    )
    assert not (tmp_path / "results").exists()
    port = connected.rpartition(":")[2]  # the same port on another machine (6379 is every head's)
    with pytest.raises(UserError, match=rf"^--address 10\.0\.0\.5:{port}: this process is connected to the Ray at "):
        run_sweep("random_forest", "iris", num_samples=1, address=f"10.0.0.5:{port}", tracking=False, storage=str(tmp_path / "results"))


def test_ctrl_c_while_the_writer_ends_a_logged_sweep_keeps_its_result_and_names_sync(ray_local, tmp_path, monkeypatch, store_uri):  # noqa: F811
    """Ctrl-C during "waiting for the MLflow writer", the outcome logged already: the command said
    the sweep was interrupted (exit 130, no summary) and resume then said it was complete."""
    from mlflow.tracking import MlflowClient

    from raysweep.errors import TrackingIncomplete
    from raysweep.tracking.store import SweepTracker

    finish = SweepTracker.finish

    def cut(self: SweepTracker, status: str = "FINISHED") -> Any:
        if status == "FINISHED":
            raise KeyboardInterrupt  # as Ctrl-C lands while the writer's last writes are awaited
        return finish(self, status)

    monkeypatch.setattr(SweepTracker, "finish", cut)
    with pytest.raises(TrackingIncomplete, match=r"interrupted while the MLflow writer wrote its last results; .*raysweep sync cut ") as caught:
        run_sweep("random_forest", "iris", num_samples=2, name="cut", tracking_uri=store_uri, storage=str(tmp_path / "results"))
    result = caught.value.result
    assert result.num_trials == 2 and result.test_score > 0.5
    parent = MlflowClient(store_uri).get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["test_accuracy"] == pytest.approx(result.test_score)
