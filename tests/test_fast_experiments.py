"""Sweeps of one dataset share one experiment, ``raysweep-<dataset>``; stores from before, with one
experiment per recipe and dataset (``raysweep-xgboost-iris``), are still read under the new name.
Parent runs written with raysweep's own tracker into a real sqlite store (no Ray)."""

from __future__ import annotations

import time

import pytest

from conftest import invoke_cli
from fast_support import client_for, empty_store, store_uri  # noqa: F401 (fixtures)
from raysweep.errors import UserError
from raysweep.tracking import schema
from raysweep.tracking.comparison import find_sweeps
from raysweep.tracking.queries import named_experiments, target_sweep
from raysweep.tracking.store import SweepTracker

#: (experiment, sweep, recipe, dataset, best validation accuracy)
OLD_AND_NEW = [
    ("raysweep-xgboost-iris", "xgb-old", "xgboost", "iris", 0.93),
    ("raysweep-random_forest-iris", "rf-old", "random_forest", "iris", 0.95),
    ("raysweep-iris", "mlp-new", "mlp", "iris", 0.97),
    # not iris sweeps, though the names look alike: a wine sweep a user filed under an iris-like
    # name, and another dataset whose name ends like it
    ("raysweep-svm-iris", "svm-wine", "svm", "wine", 0.99),
    ("raysweep-xgboost-big-iris", "xgb-big", "xgboost", "big-iris", 0.90),
]


def write_sweeps(uri: str, sweeps: list[tuple[str, str, str, str, float]]) -> None:
    for experiment, name, recipe, dataset, best in sweeps:
        tags = {schema.RECIPE: recipe, schema.DATASET: dataset, schema.METRIC: "accuracy"}
        tracker = SweepTracker(uri, experiment, name, "val_accuracy", 3, True, tags=tags, params={"mode": "max", "metric": "accuracy"})
        tracker.start()
        tracker.log_summary(metrics={schema.best_metric("accuracy"): best, schema.NUM_TRIALS: 4}, params={}, tags={})
        time.sleep(0.01)  # distinct start times: the newest sweep is the default
        tracker.finish("FINISHED")


def test_the_default_experiment_is_the_datasets_and_the_old_one_the_recipes_and_datasets():
    assert schema.default_experiment("breast_cancer") == "raysweep-breast_cancer"
    assert schema.legacy_experiment("xgboost", "breast_cancer") == "raysweep-xgboost-breast_cancer"


def test_a_datasets_experiment_takes_in_the_old_per_recipe_experiments_of_that_dataset(store_uri):
    write_sweeps(store_uri, OLD_AND_NEW)
    client = client_for(store_uri)
    named = named_experiments(client, store_uri, "raysweep-iris")
    assert sorted(named.values()) == ["raysweep-iris", "raysweep-random_forest-iris", "raysweep-xgboost-iris"]
    # best first, across the new experiment and the old ones; no wine or big-iris sweep
    rows = find_sweeps(client, store_uri, experiment="raysweep-iris")
    assert [(row.sweep, row.experiment) for row in rows] == [
        ("mlp-new", "raysweep-iris"), ("rf-old", "raysweep-random_forest-iris"), ("xgb-old", "raysweep-xgboost-iris"),
    ]
    # an old name is still an experiment of its own
    assert [row.sweep for row in find_sweeps(client, store_uri, experiment="raysweep-xgboost-iris")] == ["xgb-old"]


def test_a_store_with_only_old_experiments_answers_to_the_datasets_name(store_uri, tmp_path):
    write_sweeps(store_uri, OLD_AND_NEW[:2])
    client = client_for(store_uri)
    assert client.get_experiment_by_name("raysweep-iris") is None
    experiment_id, newest = target_sweep(client, store_uri, "raysweep-iris", None)
    assert newest.data.tags[schema.SWEEP] == "rf-old" and experiment_id == newest.info.experiment_id
    shown = invoke_cli("compare", "--experiment", "raysweep-iris", "--json", "--tracking-uri", store_uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert '"rf-old"' in shown.stdout and '"xgb-old"' in shown.stdout


def test_an_unknown_experiment_is_still_an_error_naming_those_there_are(store_uri):
    write_sweeps(store_uri, OLD_AND_NEW[:1])
    with pytest.raises(UserError, match=r"^--experiment raysweep-wine: no such experiment in .*; experiments there: .*raysweep-xgboost-iris"):
        named_experiments(client_for(store_uri), store_uri, "raysweep-wine")
