"""Parameter importance: fANOVA over synthetic trials, its skips, the leaderboard order, the chart,
and what the parent run of a real sqlite store holds and ``raysweep report`` prints. No Ray."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from conftest import invoke_cli
from fast_support import EXPERIMENT, METRIC, SWEEP, client_for, empty_store, store_uri  # noqa: F401 (fixtures)
from raysweep.tracking import schema
from raysweep.tracking.importance import (
    MIN_TRIALS, Importance, distribution, importance_figure, log_importance, ordered_leaderboard, sweep_importance,
)  # fmt: skip
from raysweep.tracking.store import SweepTracker

#: an XGBoost-like space with every kind of entry: a log range, an integer range, a plain range, a choice
SPACE = {
    "learning_rate": {"type": "loguniform", "low": 0.01, "high": 0.3},
    "max_depth": {"type": "randint", "low": 2, "high": 11},
    "subsample": {"type": "uniform", "low": 0.5, "high": 1.0},
    "booster": {"type": "choice", "values": ["gbtree", "dart"]},
}


def synthetic_trials(count: int, seed: int, matters: str = "max_depth") -> list[tuple[dict, float]]:
    """Random configs whose score depends on ``matters`` alone (plus a little noise)."""
    rng = random.Random(seed)
    trials = []
    for _ in range(count):
        config = {
            "learning_rate": 10 ** rng.uniform(-2, -0.53),
            "max_depth": rng.randrange(2, 11),
            "subsample": rng.uniform(0.5, 1.0),
            "booster": rng.choice(["gbtree", "dart"]),
        }
        signal = {"max_depth": config["max_depth"] / 10, "subsample": config["subsample"], "booster": config["booster"] == "dart"}[matters]
        trials.append((config, 0.8 + 0.1 * float(signal) + rng.gauss(0, 0.002)))
    return trials


@pytest.mark.parametrize("matters", ["max_depth", "subsample", "booster"])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_one_parameter_that_matters_is_the_most_important(matters, seed):
    importance = sweep_importance(synthetic_trials(20, seed, matters), SPACE, seed=0)
    assert importance.skipped is None and importance.trials == 20
    assert importance.ranked()[0] == matters, importance.values
    assert importance.values[matters] > 0.6, importance.values
    assert set(importance.values) == set(SPACE)
    assert sum(importance.values.values()) == pytest.approx(1.0)


def test_an_early_stopped_trial_counts_with_its_last_score_and_unscored_trials_do_not():
    trials = synthetic_trials(MIN_TRIALS - 1, 0)
    assert sweep_importance(trials, SPACE).skipped == f"{MIN_TRIALS - 1} trials reported a score; importance needs at least {MIN_TRIALS}"
    # A trial with no finite score (it reported nothing, or NaN) is left out of the count.
    padded = trials + [({"max_depth": 3}, float("nan")), ({"max_depth": 4}, None)]
    assert sweep_importance(padded, SPACE).skipped.startswith(f"{MIN_TRIALS - 1} trials reported a score")
    # The 8th with a score, early stopped or not, is enough.
    enough = sweep_importance(trials + synthetic_trials(1, 5), SPACE)
    assert enough.skipped is None and enough.trials == MIN_TRIALS


def test_pbt_and_constant_scores_are_skipped_with_the_reason():
    trials = synthetic_trials(12, 0)
    pbt = sweep_importance(trials, SPACE, population=True)
    assert pbt.values == {} and "PBT members change their hyperparameters while they train" in pbt.skipped
    same = sweep_importance([(config, 0.9) for config, _ in trials], SPACE)
    assert same.values == {} and same.skipped == "every trial reported the same score"


def test_values_outside_the_recipe_range_and_list_choices_are_taken():
    """A starting point moved to a bound, a --set narrowed range, a choice of lists: Optuna refuses none of them."""
    space = {"hidden": {"type": "choice", "values": [[32], [64, 32]]}, "alpha": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}
    rng = random.Random(0)
    trials = [({"hidden": rng.choice([[32], [64, 32]]), "alpha": 10 ** rng.uniform(-4, -1)}, rng.random()) for _ in range(10)]
    trials[0][0]["hidden"] = [128]  # a value the recipe does not list
    importance = sweep_importance(trials, space)
    assert importance.skipped is None and set(importance.values) == {"hidden", "alpha"}
    widened = distribution(space["alpha"], [0.5])
    assert widened.high == 0.5 and widened.log
    assert distribution({"type": "randint", "low": 2, "high": 11}, []).high == 10  # Ray's randint excludes high


def test_the_leaderboard_puts_the_important_parameters_first():
    board = pd.DataFrame([{"trial": "trial-0000", METRIC: 0.9, "resource": 60, "outcome": "completed",
                           "config/learning_rate": 0.1, "config/max_depth": 6, "config/subsample": 0.8, "config/booster": "dart"}])
    importance = Importance({"subsample": 0.6, "max_depth": 0.3, "booster": 0.07, "learning_rate": 0.03}, trials=12)
    assert list(ordered_leaderboard(board, importance).columns) == [
        "trial", METRIC, "resource", "outcome", "config/subsample", "config/max_depth", "config/booster", "config/learning_rate",
    ]
    assert list(ordered_leaderboard(board, Importance(skipped="too few")).columns) == list(board.columns)


def test_the_chart_is_titled_labelled_and_has_the_most_important_on_top():
    importance = Importance({"max_depth": 0.8, "subsample": 0.15, "learning_rate": 0.05}, trials=12)
    fig = importance_figure(importance, METRIC, SWEEP)
    ax = fig.axes[0]
    assert ax.get_title() == f"Parameter importance in sweep {SWEEP} (12 trials, each at its last score)"
    assert ax.get_xlabel() == f"share of the variance of {METRIC} (fANOVA; shares sum to 1)"
    assert ax.get_ylabel() == "searched parameter"
    bars = sorted(ax.patches, key=lambda bar: -bar.get_y())  # top first
    assert [label.get_text() for label in sorted(ax.get_yticklabels(), key=lambda t: -t.get_position()[1])] == importance.ranked()
    assert [bar.get_width() for bar in bars] == pytest.approx([0.8, 0.15, 0.05])


def _tracker(uri: str) -> SweepTracker:
    tracker = SweepTracker(
        uri, EXPERIMENT, SWEEP, METRIC, 3, True,
        tags={schema.RECIPE: "xgboost", schema.DATASET: "breast_cancer", schema.METRIC: "accuracy"}, params={"mode": "max"},
    )  # fmt: skip
    tracker.start()
    return tracker


def test_the_parent_run_holds_the_importance_and_report_prints_it(store_uri, tmp_path):
    tracker = _tracker(store_uri)
    importance = sweep_importance(synthetic_trials(16, 0), SPACE)
    log_importance(tracker, importance, METRIC, SWEEP, tmp_path)
    tracker.finish("FINISHED")
    client = client_for(store_uri)
    run = client.get_run(tracker.parent_run_id)
    assert schema.importances(run.data.metrics) == pytest.approx(importance.values)
    assert list(schema.importances(run.data.metrics))[0] == "max_depth"
    assert run.data.tags[schema.IMPORTANCE_TRIALS] == "16"
    assert [a.path for a in client.list_artifacts(tracker.parent_run_id, schema.PLOTS_DIR)] == ["plots/importance.png"]
    shown = invoke_cli("report", SWEEP, "--tracking-uri", store_uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.startswith("parameter importance"))
    assert line.startswith("parameter importance (fANOVA over 16 trials, each at its last score): max_depth 0.")
    assert line.index("max_depth") < line.index("subsample") and "booster" in line and "learning_rate" in line
    # No leaderboard logged (as for a sweep that failed): report names no file that is not there.
    assert "leaderboard CSV: none recorded" in shown.stdout.splitlines(), shown.stdout
    client.log_text(tracker.parent_run_id, "trial,val_accuracy\n", schema.LEADERBOARD_FILE)
    shown = invoke_cli("report", SWEEP, "--tracking-uri", store_uri, cwd=tmp_path)
    path = next(line for line in shown.stdout.splitlines() if line.startswith("leaderboard CSV: ")).removeprefix("leaderboard CSV: ")
    assert path.endswith(schema.LEADERBOARD_FILE) and Path(path).read_text() == "trial,val_accuracy\n"


def test_report_says_the_sweeps_own_rule_stopped_it(store_uri, tmp_path):
    """A sweep --stop-at ended: its summary said so, report did not."""
    tracker = _tracker(store_uri)
    rule = "--stop-at 0.95: trial-0003 reached val_accuracy 0.96"
    client_for(store_uri).set_tag(tracker.parent_run_id, schema.STOPPED_BY, rule)
    tracker.finish("FINISHED")
    shown = invoke_cli("report", SWEEP, "--tracking-uri", store_uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"sweep stopped early: {rule}" in shown.stdout.splitlines(), shown.stdout


def test_a_skipped_importance_leaves_its_reason_on_the_parent_run(store_uri, tmp_path):
    tracker = _tracker(store_uri)
    log_importance(tracker, sweep_importance(synthetic_trials(3, 0), SPACE), METRIC, SWEEP, tmp_path)
    run = client_for(store_uri).get_run(tracker.parent_run_id)
    assert run.data.tags[schema.IMPORTANCE_SKIPPED] == f"3 trials reported a score; importance needs at least {MIN_TRIALS}"
    assert schema.importances(run.data.metrics) == {}
    assert client_for(store_uri).list_artifacts(tracker.parent_run_id, schema.PLOTS_DIR) == []


def test_the_optuna_searcher_says_nothing_of_a_choice_of_lists() -> None:
    # Optuna warns that a choice of lists cannot go to a persistent storage: five warnings, ten lines,
    # on every mlp sweep with --searcher optuna, though its study is in memory.
    import warnings

    from ray import tune

    from raysweep.strategies._optuna import build

    searcher = build("val_accuracy", "max", 0, 2, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert searcher.set_search_properties("val_accuracy", "max", {"hidden_layer_sizes": tune.choice([[64], [128, 64]])})
        config = searcher.suggest("trial-1")
    assert config["hidden_layer_sizes"] in ([64], [128, 64])
    assert not [w for w in caught if "categorical distribution" in str(w.message)], [str(w.message) for w in caught]


def test_an_auto_sweeps_importance_is_the_winning_familys_over_its_own_parameters(tmp_path):
    """Over all of an auto sweep's trials only `family` was left to rank: "family 1.00", every time."""
    from types import SimpleNamespace

    import numpy as np

    from raysweep.best import TrialBest
    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.result import _importance

    plan = plan_sweep("auto", "iris", recipes=["random_forest", "svm"], storage=str(tmp_path))
    rng = np.random.default_rng(0)
    results, bests = [], []
    for index in range(24):
        if index % 3:  # random forests: the score follows max_depth
            params = {"max_depth": int(rng.integers(2, 30)), "min_samples_leaf": int(rng.integers(1, 10)), "max_features": float(rng.uniform(0.2, 1))}
            score = 0.7 + 0.01 * params["max_depth"]
            config = {"model": {"family": "random_forest", "random_forest": params}}
        else:
            config = {"model": {"family": "svm", "svm": {"C": float(rng.uniform(0.1, 10)), "gamma": float(rng.uniform(0.01, 1))}}}
            score = 0.6
        results.append(SimpleNamespace(config=config, metrics={plan.metric_key: score}, error=None))
        bests.append(TrialBest(score, 4, config))
    importance = _importance(results, plan, None, bests)
    assert set(importance.values) == {"max_depth", "min_samples_leaf", "max_features"}
    assert importance.ranked()[0] == "max_depth" and importance.trials == 16
