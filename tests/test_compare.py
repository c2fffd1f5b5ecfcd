"""``raysweep compare``: sweeps side by side, from parent runs written with raysweep's own tracker
into a real sqlite store (no Ray), and one small real sweep whose parent run holds its importance."""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from conftest import in_background, invoke_cli, run_cli, selected_cases
from fast_support import client_for, empty_store  # noqa: F401 (fixtures)
from raysweep.errors import UserError
from raysweep.tracking import schema
from raysweep.tracking.comparison import find_sweeps
from raysweep.tracking.store import SweepTracker

#: (experiment, sweep, recipe, dataset, metric, mode, best validation score, test score)
SWEEPS = [
    ("bc", "xgb-1", "xgboost", "breast_cancer", "accuracy", "max", 0.956, 0.947),
    ("bc", "rf-1", "random_forest", "breast_cancer", "accuracy", "max", 0.974, 0.965),
    ("bc", "svm-1", "svm", "breast_cancer", "accuracy", "max", 0.939, 0.930),
    ("other", "mlp-1", "mlp", "breast_cancer", "accuracy", "max", 0.961, 0.955),
    ("other", "xgb-ll", "xgboost", "breast_cancer", "log_loss", "min", 0.081, 0.090),
    ("other", "xgb-ll2", "xgboost", "breast_cancer", "log_loss", "min", 0.072, 0.095),
    ("reg", "rf-diabetes", "random_forest", "diabetes", "rmse", "min", 55.0, 57.0),
]


def write_sweeps(uri: str, sweeps=SWEEPS) -> None:
    """Each sweep's parent run as a finished sweep leaves it: tags, mode, scores, trial count."""
    for experiment, name, recipe, dataset, metric, mode, best, test in sweeps:
        tags = {schema.RECIPE: recipe, schema.DATASET: dataset, schema.METRIC: metric, schema.SCHEDULER: "asha", schema.SEARCHER: "hyperopt"}
        tracker = SweepTracker(uri, experiment, name, schema.validation_metric(metric), 3, True, tags=tags, params={"mode": mode, "metric": metric})
        tracker.start()
        tracker.log_summary(
            metrics={schema.best_metric(metric): best, schema.test_metric(metric): test, schema.NUM_TRIALS: 12}, params={}, tags={}
        )
        time.sleep(0.01)  # distinct start times: the newest sweep decides compare's default
        tracker.finish("FINISHED")


@pytest.fixture(scope="module")
def written_store(empty_store, tmp_path_factory) -> Path:  # noqa: F811 (the fixture imported above)
    """A store holding SWEEPS, written once for the module; each test reads a copy of its own."""
    database = tmp_path_factory.mktemp("compare-store") / "mlflow.db"
    shutil.copyfile(empty_store, database)
    write_sweeps(f"sqlite:///{database}")
    return database


@pytest.fixture
def sweeps_uri(written_store, tmp_path) -> str:
    """``sqlite:///<tmp_path>/mlflow.db``: this test's copy of a store holding SWEEPS."""
    database = tmp_path / "mlflow.db"
    shutil.copyfile(written_store, database)
    return f"sqlite:///{database}"


@pytest.fixture(scope="module", autouse=True)
def subprocesses(request: pytest.FixtureRequest, tmp_path_factory) -> dict[str, tuple[Future, str]]:
    """This module's ``raysweep`` subprocess, started as the module begins when the session runs its test.

    ``raysweep compare --dataset iris`` in a fresh interpreter, on a copy of the store holding SWEEPS:
    case -> (its future, the store's URI).
    """
    started = {}
    if selected_cases(request, "test_an_unknown_dataset_is_one_line_and_exit_2"):
        folder = tmp_path_factory.mktemp("compare-unknown")
        shutil.copyfile(request.getfixturevalue("written_store"), folder / "mlflow.db")
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        started["unknown dataset"] = (in_background(run_cli, "compare", "--dataset", "iris", "--tracking-uri", uri, cwd=folder), uri)
    return started


def test_compare_lists_an_experiments_sweeps_best_first_and_json_gives_the_same(sweeps_uri, tmp_path):
    shown = invoke_cli("compare", "--experiment", "bc", "--tracking-uri", sweeps_uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if any(f" {name} " in line for name in ("rf-1", "xgb-1", "svm-1"))]
    assert [line.split()[1] for line in rows] == ["rf-1", "xgb-1", "svm-1"], shown.stdout
    assert "random_forest" in rows[0] and "0.974" in rows[0] and "0.965" in rows[0] and " 12 " in rows[0]
    assert shown.stdout.splitlines()[0] == "3 sweeps of experiment bc"
    assert "different metrics" not in shown.stdout
    assert " validation " not in shown.stdout.splitlines()[3] and "note:" not in shown.stdout  # all scored alike: no columns for it
    as_json = invoke_cli("compare", "--experiment", "bc", "--json", "--tracking-uri", sweeps_uri, cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert [row["sweep"] for row in data["sweeps"]] == ["rf-1", "xgb-1", "svm-1"]
    assert [row["recipe"] for row in data["sweeps"]] == ["random_forest", "xgboost", "svm"]
    assert [row["best_validation_score"] for row in data["sweeps"]] == [0.974, 0.956, 0.939]
    assert data["sweeps"][0]["test_score"] == 0.965 and data["sweeps"][0]["trials"] == 12 and data["metrics"] == ["accuracy"]
    assert all(row["wall_time_s"] is not None and row["wall_time_s"] >= 0 for row in data["sweeps"])


def test_a_dataset_gathers_sweeps_of_every_experiment_one_group_per_metric(sweeps_uri, tmp_path):
    shown = invoke_cli("compare", "--dataset", "breast_cancer", "--json", "--tracking-uri", sweeps_uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["dataset"] == "breast_cancer" and data["metrics"] == ["accuracy", "log_loss"]
    # accuracy (4 sweeps, highest first) then log loss (lowest first); the diabetes sweep is not there
    assert [row["sweep"] for row in data["sweeps"]] == ["rf-1", "mlp-1", "xgb-1", "svm-1", "xgb-ll2", "xgb-ll"]
    assert {row["experiment"] for row in data["sweeps"]} == {"bc", "other"}
    table = invoke_cli("compare", "--dataset", "breast_cancer", "--tracking-uri", sweeps_uri, cwd=tmp_path)
    assert "the sweeps score by 2 different metrics (accuracy, log_loss)" in table.stdout
    assert "accuracy: highest best validation score first" in table.stdout and "log_loss: lowest best validation score first" in table.stdout


def test_sweeps_scored_on_other_rows_show_their_validation_and_seed_and_say_so(empty_store, tmp_path):  # noqa: F811
    """A 3-fold cv sweep of seed 0 ranked above a one-split sweep of seed 1 with nothing to show the
    scores were made on other rows (--seed changes the split)."""
    database = tmp_path / "mlflow.db"
    shutil.copyfile(empty_store, database)
    uri = f"sqlite:///{database}"
    for name, cv, seed, best in (("cv-3", "3", 0, 0.97), ("split", "none", 1, 0.95)):
        tags = {schema.RECIPE: "xgboost", schema.DATASET: "diabetes", schema.METRIC: "accuracy", schema.SCHEDULER: "asha", schema.SEARCHER: "random"}
        params = {"mode": "max", "metric": "accuracy", "cv": cv, "seed": seed}
        tracker = SweepTracker(uri, "e", name, "val_accuracy", 3, True, tags=tags, params=params)
        tracker.start()
        tracker.log_summary(metrics={"best_val_accuracy": best, "num_trials": 4}, params={}, tags={})
        tracker.finish("FINISHED")
    shown = invoke_cli("compare", "--experiment", "e", "--tracking-uri", uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[1]: line for line in shown.stdout.splitlines() if " cv-3 " in line or " split " in line}
    assert [cell.strip() for cell in rows["cv-3"].split("│")[-3:-1]] == ["3-fold cv", "0"], shown.stdout
    assert [cell.strip() for cell in rows["split"].split("│")[-3:-1]] == ["split", "1"], shown.stdout
    assert "note: these accuracy sweeps differ in seed or validation: their scores were not made on the same rows" in shown.stdout
    data = json.loads(invoke_cli("compare", "--experiment", "e", "--json", "--tracking-uri", uri, cwd=tmp_path).stdout)
    assert [(row["sweep"], row["cv"], row["seed"]) for row in data["sweeps"]] == [("cv-3", 3, 0), ("split", None, 1)]


def test_an_auto_sweep_shows_the_family_that_won(empty_store, tmp_path):  # noqa: F811
    """An auto sweep's row said only `auto`: which family won was in report alone."""
    database = tmp_path / "mlflow.db"
    shutil.copyfile(empty_store, database)
    uri = f"sqlite:///{database}"
    for name, recipe, best, won in (("auto-1", "auto", 0.97, "xgboost"), ("rf-1", "random_forest", 0.95, None)):
        tags = {schema.RECIPE: recipe, schema.DATASET: "iris", schema.METRIC: "accuracy", schema.SCHEDULER: "asha", schema.SEARCHER: "random"}
        tracker = SweepTracker(uri, "e", name, "val_accuracy", 3, True, tags=tags, params={"mode": "max", "metric": "accuracy"})
        tracker.start()
        tracker.log_summary(metrics={"best_val_accuracy": best, "num_trials": 4},
                            params={schema.best_param("family"): won} if won else {}, tags={})  # fmt: skip
        tracker.finish("FINISHED")
    shown = invoke_cli("compare", "--experiment", "e", "--tracking-uri", uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[1]: line for line in shown.stdout.splitlines() if " auto-1 " in line or " rf-1 " in line}
    assert [cell.strip() for cell in rows["auto-1"].split("│")[2:3]] == ["auto (xgboost)"], shown.stdout
    assert [cell.strip() for cell in rows["rf-1"].split("│")[2:3]] == ["random_forest"], shown.stdout
    data = json.loads(invoke_cli("compare", "--experiment", "e", "--json", "--tracking-uri", uri, cwd=tmp_path).stdout)
    assert [(row["sweep"], row["recipe"], row["family"]) for row in data["sweeps"]] == [("auto-1", "auto", "xgboost"), ("rf-1", "random_forest", None)]


def test_a_sweeps_name_stays_whole_on_its_line(empty_store, tmp_path):  # noqa: F811
    """Long default names were folded over two lines (``random_forest-breast_cancer-20261205`` / ``-080224``),
    in a pipe too: they could not be grepped or copied into ``report``."""
    database = tmp_path / "mlflow.db"
    shutil.copyfile(empty_store, database)
    uri = f"sqlite:///{database}"
    names = [f"random_forest-breast_cancer-20261205-08022{i}" for i in range(2)]
    for i, name in enumerate(names):
        tags = {schema.RECIPE: "random_forest", schema.DATASET: "breast_cancer", schema.METRIC: "accuracy", schema.SCHEDULER: "hyperband",
                schema.SEARCHER: "hyperopt"}
        tracker = SweepTracker(uri, f"raysweep-breast_cancer-experiment-{i}", name, "val_accuracy", 3, True, tags=tags,
                               params={"mode": "max", "metric": "accuracy", "cv": "none" if i else "5", "seed": i})
        tracker.start()
        tracker.log_summary(metrics={"best_val_accuracy": 0.9 + i / 100, "test_accuracy": 0.9, "num_trials": 4}, params={}, tags={})
        tracker.finish("FINISHED")
    shown = invoke_cli("compare", "--dataset", "breast_cancer", "--tracking-uri", uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for name in names:
        assert any(f" {name} " in line for line in shown.stdout.splitlines()), shown.stdout


def test_without_a_scope_compare_shows_the_newest_sweeps_dataset(sweeps_uri):
    rows = find_sweeps(client_for(sweeps_uri), sweeps_uri)
    assert [row.sweep for row in rows] == ["rf-diabetes"]
    assert rows[0].mode == "min" and rows[0].best_validation_score == 55.0


def test_an_interrupted_sweep_shows_its_trials_best_score_so_far_and_ranks_by_it(sweeps_uri, tmp_path):
    tags = {schema.RECIPE: "svm", schema.DATASET: "breast_cancer", schema.METRIC: "accuracy", schema.SCHEDULER: "asha", schema.SEARCHER: "random"}
    tracker = SweepTracker(sweeps_uri, "bc", "svm-cut", schema.validation_metric("accuracy"), 3, True, tags=tags, params={"mode": "max", "metric": "accuracy"})
    parent = tracker.start()
    client = client_for(sweeps_uri)
    experiment_id = client.get_run(parent).info.experiment_id
    for name, best in [("trial-a", 0.951), ("trial-b", 0.962), ("trial-c", None)]:  # trial-c failed before its first score
        child = client.create_run(experiment_id, tags={schema.PARENT_RUN_ID: parent}, run_name=name)
        if best is not None:
            client.log_metric(child.info.run_id, schema.best_metric("accuracy"), best)
        client.set_terminated(child.info.run_id, "KILLED")
    tracker.finish("KILLED")  # Ctrl-C: no summary, so no best score or trial count on the parent
    data = json.loads(invoke_cli("compare", "--experiment", "bc", "--json", "--tracking-uri", sweeps_uri, cwd=tmp_path).stdout)
    assert [row["sweep"] for row in data["sweeps"]] == ["rf-1", "svm-cut", "xgb-1", "svm-1"]
    cut = data["sweeps"][1]
    assert cut["best_validation_score"] == 0.962 and cut["trials"] == 3 and cut["status"] == "KILLED" and cut["test_score"] is None


@pytest.mark.parametrize(
    "scope, message",
    [
        ({"experiment": "nope"}, "--experiment nope: no such experiment in {uri}; experiments there: "),
        ({"dataset": "iris"}, "--dataset iris: no sweep ran on it in {uri}; datasets there: breast_cancer, diabetes"),
        ({"experiment": "bc", "dataset": "iris"}, "--experiment bc with --dataset iris: pass one of them, not both"),
    ],
)
def test_an_unknown_scope_says_what_there_is(sweeps_uri, scope, message):
    with pytest.raises(UserError) as raised:
        find_sweeps(client_for(sweeps_uri), sweeps_uri, **scope)
    assert str(raised.value).startswith(message.format(uri=sweeps_uri))


def test_an_unknown_dataset_is_one_line_and_exit_2(subprocesses):
    started, store_uri = subprocesses["unknown dataset"]
    shown = started.result()
    assert shown.returncode == 2 and shown.stdout == ""
    assert shown.stderr.strip() == f"error: --dataset iris: no sweep ran on it in {store_uri}; datasets there: breast_cancer, diabetes"


def test_a_real_sweep_has_its_importance_and_compare_lists_it(ray_local, tmp_path):
    """A small real sweep (random search, 8 trials): importance metrics and plot on its parent run."""
    from raysweep.sweep.run import run_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_sweep("random_forest", "breast_cancer", scheduler="asha", searcher="random", num_samples=8, seed=0,
                       storage=str(tmp_path / "results"), overrides=["resource.max=60"], tracking_uri=uri)  # fmt: skip
    client = client_for(uri)
    run = client.get_run(result.parent_run_id)
    ranked = schema.importances(run.data.metrics)
    assert set(ranked) == {"max_depth", "max_features", "min_samples_leaf"}
    assert sum(ranked.values()) == pytest.approx(1.0) and run.data.tags[schema.IMPORTANCE_TRIALS] == "8"
    assert list(result.importance.values) == list(ranked)
    plots = {a.path for a in client.list_artifacts(result.parent_run_id, schema.PLOTS_DIR)}
    assert "plots/importance.png" in plots and "plots/pbt_lineage.png" not in plots
    # The leaderboard (the result's and the logged CSV) lists the config columns most important first.
    order = [f"config/{name}" for name in ranked]
    assert [c for c in result.leaderboard.columns if c.startswith("config/")] == order
    board = Path(client.download_artifacts(result.parent_run_id, schema.LEADERBOARD_FILE, str(tmp_path)))
    assert [c for c in board.read_text().splitlines()[0].split(",") if c.startswith("config/")] == order
    rows = find_sweeps(client, uri, dataset="breast_cancer")
    assert [(row.sweep, row.recipe, row.trials, row.best_validation_score) for row in rows] == [
        (result.name, "random_forest", 8, pytest.approx(result.best_validation_score))
    ]
    # Its wall time spans the sweep from its start, as the summary's does (not only from Ray being up).
    assert rows[0].wall_time_s >= round(result.elapsed_s, 1) - 0.1, (rows[0].wall_time_s, result.elapsed_s)
