"""``--warm-start``: finding earlier sweeps' trials in MLflow and handing them to the searcher.

The fast tests write synthetic sweeps into a real MLflow sqlite store (parent and trial runs
tagged as raysweep tags them) and query it without Ray; the searchers are driven through Ray
Tune's ``Searcher`` calls without starting Ray. The end-to-end test runs real sweeps.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import run_cli
from fast_support import empty_store, store_uri  # noqa: F401 (fixtures)
from raysweep import space as dsl
from raysweep.cli.main import main
from raysweep.errors import UserError
from raysweep.recipes import load_recipe
from raysweep.strategies import registry
from raysweep.sweep.options import plan_sweep
from raysweep.sweep.warm_start import find_warm_start
from raysweep.tracking import schema
from raysweep.tracking.earlier import earlier_trials

SPACE = {
    "depth": {"type": "randint", "low": 2, "high": 9},
    "rate": {"type": "loguniform", "low": 1e-3, "high": 1.0},
    "kind": {"type": "choice", "values": ["gini", "entropy"]},
}
FINGERPRINT = "f00d"
MAX_STEPS = 5


def write_sweep(
    client: Any, experiment: str, name: str, trials: list[dict[str, Any]], *, recipe: str = "forest",
    fingerprint: str = FINGERPRINT, metric: str = "accuracy", space: dict | None = None, parent_tags: dict | None = None,
) -> str:
    """A finished sweep as raysweep logs it: a parent run, and a trial run per entry of ``trials``.

    A trial entry holds ``config``, ``scores`` (one per step) and optionally ``errored``,
    ``done``, ``tags`` (extra run tags) and ``final_config`` (False: no final-config tag).
    """
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    tags = {
        schema.SWEEP: name, schema.RECIPE: recipe, schema.DATASET_FINGERPRINT: fingerprint,
        schema.METRIC: metric, schema.SPACE_HASH: dsl.space_hash(space or SPACE), **(parent_tags or {}),
    }  # fmt: skip
    parent = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    for index, trial in enumerate(trials):
        trial_id = f"abc_{index:05d}"
        run = client.create_run(
            experiment_id, run_name=schema.trial_name(trial_id), tags={**schema.new_trial_run_tags(parent, name, trial_id), **trial.get("tags", {})}
        ).info.run_id
        for key, value in trial["config"].items():
            client.log_param(run, key, value if isinstance(value, str) else json.dumps(value))
        for step, value in enumerate(trial["scores"], start=1):
            result = {schema.validation_metric(metric): value, "training_iteration": step}
            if trial.get("best_so_far"):  # the trial's best so far, as a trial reports it
                result[schema.best_metric(metric)] = max(trial["scores"][:step])
            _, metrics = schema.result_metrics(result, False)
            for key, number in metrics:
                client.log_metric(run, key, number, step=step)
        ended = schema.trial_outcome(
            steps=len(trial["scores"]), max_steps=MAX_STEPS, errored=trial.get("errored", False), done=trial.get("done", True)
        )
        if trial.get("final_config", True):
            client.set_tag(run, schema.FINAL_CONFIG, json.dumps(trial["config"]))
        client.set_tag(run, schema.OUTCOME, ended.outcome)
        if not trial.get("running"):
            client.set_terminated(run, status=ended.status)
    client.set_terminated(parent, status="FINISHED")
    return parent


def trial(depth: int, rate: float, kind: str, *scores: float, **extra: Any) -> dict[str, Any]:
    return {"config": {"depth": depth, "rate": rate, "kind": kind}, "scores": list(scores), **extra}


@pytest.fixture
def client(store_uri):  # noqa: F811 (the fixture imported above)
    from mlflow.tracking import MlflowClient

    return MlflowClient(store_uri)


def query(client: Any, **overrides: Any):
    options = {"recipe": "forest", "dataset_fingerprint": FINGERPRINT, "metric": "accuracy", "space": SPACE, "mode": "max"}
    return earlier_trials(client, **{**options, **overrides})


# -- finding earlier trials ------------------------------------------------------------------------
def test_finds_scored_trials_of_matching_sweeps_across_experiments_best_first(client):
    write_sweep(client, "first", "sweep-a", [
        trial(3, 0.01, "gini", 0.80, 0.90),  # completed early-stopped at step 2: its last score counts
        trial(4, 0.1, "entropy", 0.7, 0.8, 0.85, 0.9, 0.95),  # completed
        trial(5, 0.2, "gini", 0.5, errored=True),  # failed
        trial(6, 0.3, "gini", 0.6, done=False),  # cut off by an interruption (KILLED)
        trial(7, 0.4, "gini", 0.99, running=True),  # still running
    ])  # fmt: skip
    write_sweep(client, "elsewhere", "sweep-b", [trial(2, 0.5, "entropy", 0.6, 0.7, 0.8, 0.85, 0.92)])
    found = query(client)
    assert found.points == [
        ({"depth": 4, "rate": 0.1, "kind": "entropy"}, 0.95),
        ({"depth": 2, "rate": 0.5, "kind": "entropy"}, 0.92),
        ({"depth": 3, "rate": 0.01, "kind": "gini"}, 0.90),
    ]
    assert found.sweeps == ["sweep-a", "sweep-b"] and found.outside_space == 0
    # A metric to minimise puts the least first.
    assert [value for _, value in query(client, mode="min").points] == [0.90, 0.92, 0.95]


@pytest.mark.parametrize(
    "difference",
    [
        {"recipe": "other-recipe"},
        {"fingerprint": "other-data"},
        {"metric": "roc_auc"},
        {"space": {**SPACE, "depth": {"type": "randint", "low": 2, "high": 12}}},
        {"parent_tags": {schema.NESTED_FOLD: "2"}},
        {"parent_tags": {schema.SCHEDULER: "pbt"}},
    ],
    ids=["recipe", "dataset", "metric", "space", "nested-fold sweep", "pbt sweep"],
)
def test_sweeps_that_differ_are_not_taken(client, difference):
    write_sweep(client, "exp", "different", [trial(3, 0.01, "gini", 0.8, 0.9, 0.9, 0.9, 0.97)], **difference)
    write_sweep(client, "exp", "same", [trial(4, 0.02, "gini", 0.8, 0.9, 0.9, 0.9, 0.91)])
    found = query(client)
    assert found.sweeps == ["same"] and [value for _, value in found.points] == [0.91]


def test_nested_fold_trials_and_configs_outside_the_space_are_left_out_with_a_count(client):
    write_sweep(client, "exp", "sweep-a", [
        trial(3, 0.01, "gini", 0.91),
        trial(4, 0.02, "gini", 0.99, tags={schema.NESTED_FOLD: "0"}),
        trial(9, 0.02, "gini", 0.98),  # randint high is exclusive: 9 is outside
        trial(3, 5.0, "gini", 0.97),  # above the range
        trial(3, 0.05, "log_loss", 0.96),  # not one of the choices
    ])  # fmt: skip
    found = query(client)
    assert found.points == [({"depth": 3, "rate": 0.01, "kind": "gini"}, 0.91)]
    assert found.outside_space == 3


def test_earlier_trials_rank_by_their_best_score_and_give_the_searcher_their_last(client):
    """A trial past its best (0.99 at step 1, 0.80 at its end) ranked below one whose last score
    was 0.90: warm start's "best 3" were not the leaderboard's."""
    write_sweep(client, "exp", "sweep-a", [
        trial(4, 0.1, "gini", 0.99, 0.80, best_so_far=True, done=True),
        trial(3, 0.01, "gini", 0.90, best_so_far=True),
    ])  # fmt: skip
    found = query(client)
    assert found.points == [({"depth": 4, "rate": 0.1, "kind": "gini"}, 0.80), ({"depth": 3, "rate": 0.01, "kind": "gini"}, 0.90)]


@pytest.mark.parametrize("name", ["hyperopt", "anneal"])
def test_the_best_few_are_distinct_configs(name):
    """Seeded sweeps run the same config again: hyperopt's 3 starting points were that config 3 times."""
    same = {"depth": 4, "rate": 0.1, "kind": "gini"}
    earlier = [(same, 0.95), (dict(same), 0.95), ({"depth": 3, "rate": 0.01, "kind": "gini"}, 0.9), (dict(same), 0.94),
               ({"depth": 5, "rate": 0.2, "kind": "entropy"}, 0.8)]  # fmt: skip
    assert registry.warm_start_points(name, earlier) == [earlier[0], earlier[2], earlier[4]]


def test_a_trial_without_its_final_config_is_read_from_its_params(client):
    write_sweep(client, "exp", "old", [trial(5, 0.25, "entropy", 0.93, final_config=False)])
    (config, value), = query(client).points
    assert config == {"depth": 5, "rate": 0.25, "kind": "entropy"} and type(config["depth"]) is int
    assert value == 0.93


def test_an_empty_store_has_no_earlier_trials(client):
    found = query(client)
    assert found.points == [] and found.sweeps == [] and found.outside_space == 0


@pytest.mark.parametrize(
    "config, inside",
    [
        ({"depth": 2, "rate": 1.0, "kind": "gini"}, True),
        ({"depth": 8.0, "rate": 1e-3, "kind": "entropy"}, True),
        ({"depth": 9, "rate": 0.5, "kind": "gini"}, False),
        ({"depth": 3.5, "rate": 0.5, "kind": "gini"}, False),
        ({"depth": 3, "rate": 0.0005, "kind": "gini"}, False),
        ({"depth": 3, "rate": 0.5, "kind": "Gini"}, False),
        ({"depth": 3, "rate": "0.5", "kind": "gini"}, False),
        ({"depth": 3, "kind": "gini"}, False),
    ],
)
def test_space_contains(config, inside):
    assert dsl.contains(SPACE, config) is inside


def test_the_space_hash_follows_the_space_not_its_key_order():
    reordered = {name: dict(reversed(list(spec.items()))) for name, spec in reversed(list(SPACE.items()))}
    assert dsl.space_hash(reordered) == dsl.space_hash(SPACE)
    assert dsl.space_hash({**SPACE, "rate": {"type": "loguniform", "low": 1e-4, "high": 1.0}}) != dsl.space_hash(SPACE)


# -- what the searchers take -------------------------------------------------------------------------
EARLIER = [({"depth": 8 - i, "rate": 0.1 * (i + 1), "kind": "gini"}, 0.9 - 0.01 * i) for i in range(6)]
RECIPE_POINT = {"depth": 2, "rate": 0.5, "kind": "entropy"}


def test_optuna_learns_every_earlier_trial_and_still_tries_the_recipe_points_first():
    searcher = registry.build_searcher("optuna", "score", "max", 0, 1, [RECIPE_POINT], evaluated=registry.warm_start_points("optuna", EARLIER)).searcher
    assert searcher.set_search_properties("score", "max", dsl.param_space(SPACE, "optuna"))
    study = searcher._ot_study
    completed = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.value for t in completed) == sorted(v for _, v in EARLIER)
    assert searcher.suggest("t0") == RECIPE_POINT


def test_gp_registers_every_earlier_trial_as_an_observation():
    searcher = registry.build_searcher("gp", "score", "max", 0, 1, [RECIPE_POINT], evaluated=registry.warm_start_points("gp", EARLIER)).searcher
    assert searcher.set_search_properties("score", "max", dsl.param_space(SPACE, "gp"))
    assert sorted(searcher.proposer_.y_) == sorted(-v for _, v in EARLIER)
    assert searcher.suggest("t0") == RECIPE_POINT


@pytest.mark.parametrize("name", ["hyperopt", "anneal"])
def test_hyperopt_and_anneal_try_the_best_few_after_the_recipe_points(name):
    taken = registry.warm_start_points(name, EARLIER)
    assert taken == EARLIER[: registry.WARM_STARTING_POINTS]
    searcher = registry.build_searcher(name, "score", "max", 0, 1, [RECIPE_POINT], evaluated=taken).searcher
    assert searcher.set_search_properties("score", "max", dsl.param_space(SPACE, name))
    suggested = [searcher.suggest(f"t{i}") for i in range(1 + len(taken))]
    assert suggested == [RECIPE_POINT] + [config for config, _ in taken]


@pytest.mark.parametrize("name", ["hyperopt", "anneal"])
def test_hyperopt_and_anneal_leave_out_configs_with_a_list_value(name):
    # Ray's HyperOptSearch refuses a starting point whose choice is a list (an MLP's layer sizes).
    layered = [({"hidden_layer_sizes": [64, 64], "alpha": 0.1}, 0.99), ({"hidden_layer_sizes": 32, "alpha": 0.2}, 0.9)]
    assert registry.warm_start_points(name, layered) == [layered[1]]
    assert registry.warm_start_points("optuna", layered) == layered, "a searcher taking observations keeps them"


def test_every_learning_searcher_says_how_it_takes_a_warm_start():
    for name, strategy in registry.SEARCHERS.items():
        assert bool(strategy.warm_start) == strategy.learns, name
        assert strategy.warm_start in ("", registry.OBSERVATIONS, registry.STARTING_POINTS)


# -- the plan, the record and the message -----------------------------------------------------------
def test_warm_start_survives_the_sweep_record(tmp_path):
    plan = plan_sweep("random_forest", "iris", searcher="optuna", warm_start=True, storage=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/m.db")
    options = asdict(plan.options)
    assert options["warm_start"] is True
    again = plan_sweep(load_recipe("random_forest"), "iris", **options)
    assert again.options == plan.options
    # A record written before the option existed resumes cold.
    del options["warm_start"]
    assert plan_sweep(load_recipe("random_forest"), "iris", **options).warm_start is False


def test_no_store_yet_means_no_earlier_sweep_and_a_cold_run(tmp_path):
    plan = plan_sweep("random_forest", "iris", searcher="optuna", warm_start=True, storage=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/none.db")
    warm = find_warm_start(plan)
    assert warm.trials == 0 and warm.sweeps == []
    line = warm.message(plan)
    assert "\n" not in line and "no earlier sweep of recipe random_forest" in line and line.endswith("running cold")
    assert not (tmp_path / "none.db").exists()


# -- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("searcher", ["random", "grid"])
def test_api_refuses_warm_start_with_a_searcher_that_does_not_learn(searcher, tmp_path):
    with pytest.raises(UserError, match=rf"^--warm-start: the {searcher} searcher does not learn from earlier trials; use --searcher hyperopt, gp, optuna or anneal, or leave out --warm-start$"):
        plan_sweep("random_forest", "iris", searcher=searcher, warm_start=True, storage=tmp_path)


@pytest.mark.parametrize("searcher", ["random", "grid"])
def test_cli_refuses_warm_start_with_random_or_grid_in_one_line(searcher, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = CliRunner().invoke(main, ["run", "random_forest", "--dataset", "iris", "--searcher", searcher, "--warm-start"], prog_name="raysweep")
    assert outcome.exit_code == 2
    assert outcome.stderr.strip() == (
        f"error: --warm-start: the {searcher} searcher does not learn from earlier trials; "
        "use --searcher hyperopt, gp, optuna or anneal, or leave out --warm-start"
    )
    assert outcome.stdout == "" and list(tmp_path.iterdir()) == []


def test_warm_start_under_pbt_is_refused_in_one_line(tmp_path):
    with pytest.raises(UserError) as raised:
        plan_sweep("xgboost", "iris", scheduler="pbt", searcher="random", warm_start=True, storage=tmp_path)
    assert str(raised.value) == (
        "--warm-start: pbt changes its members' hyperparameters as they train, so no searcher learns from "
        "earlier trials; use --scheduler asha with --searcher optuna or gp, or leave out --warm-start"
    )


def test_cli_subprocess_refuses_the_recipes_own_random_searcher(tmp_path):
    (tmp_path / "r.yaml").write_text(load_recipe("random_forest").to_yaml().replace("searcher: hyperopt", "searcher: random"))
    done = run_cli("run", "r.yaml", "--dataset", "iris", "--warm-start", cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "--warm-start: the random searcher" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "mlflow.db").exists() and not (tmp_path / "raysweep_results").exists()


def test_gp_with_enough_earlier_trials_models_from_its_first_own_suggestion():
    earlier = [({"depth": 2 + i % 7, "rate": 0.001 * 2**i, "kind": ("gini", "entropy")[i % 2]}, 0.8 + 0.01 * i) for i in range(8)]
    warm = registry.build_searcher("gp", "score", "max", 0, 1, evaluated=earlier).searcher
    cold = registry.build_searcher("gp", "score", "max", 0, 1).searcher
    for searcher in (warm, cold):
        assert searcher.set_search_properties("score", "max", dsl.param_space(SPACE, "gp"))
    assert len(earlier) >= warm.proposer_.n_initial
    # Cold, the first suggestion is the initial design's; warm, the model's (no design point).
    assert cold.proposer_.propose().tolist() == cold.proposer_.design_[0].tolist()
    proposed = warm.proposer_.propose()
    assert not any(proposed.tolist() == row.tolist() for row in warm.proposer_.design_)


# -- end to end ----------------------------------------------------------------------------------------
def trials_to_reach(result: Any, target: float) -> int:
    """How many trials, in the order the searcher made them, the sweep ran until one scored
    ``target`` or better (one more than it ran if none did)."""
    from pathlib import Path

    # Ray names a trial's folder SweepTrainable_<trial id>_<its number in the sweep>_<config>_<date>.
    number = {folder.name.split("_")[1]: int(folder.name.split("_")[2]) for folder in Path(result.storage_path).glob("SweepTrainable_*")}
    scores = sorted((number[row["trial_id"]], row[f"val_{result.metric}"]) for row in result.leaderboard.to_dict("records"))
    reached = [n for n, score in scores if (score >= target if result.mode == "max" else score <= target)]
    return min(reached) if reached else len(scores) + 1


def test_a_warm_started_gp_reaches_the_earlier_best_in_fewer_trials(ray_local, tmp_path, empty_store):  # noqa: F811
    """Median over 3 seeds (5 do not fit the e2e time budget; see the README's measured figures).

    Per seed, the earlier sweep is itself the cold sweep with that seed: a second cold sweep with
    the same seed and one trial at a time makes the same trials (its searcher, split and models are
    seeded), so it reaches the earlier best at the same trial.
    """
    import shutil

    from mlflow.tracking import MlflowClient

    from raysweep.sweep.run import run_sweep

    common = dict(
        searcher="gp", scheduler="fifo", metric="log_loss", num_samples=10, max_concurrent=1,
        overrides=["resource.max=40"], storage=str(tmp_path / "results"),
    )  # fmt: skip
    warm_trials, cold_trials = [], []
    for seed in range(3):
        database = tmp_path / f"mlflow-{seed}.db"
        shutil.copyfile(empty_store, database)
        uri = f"sqlite:///{database}"
        earlier = run_sweep("random_forest", "breast_cancer", seed=seed, tracking_uri=uri, name=f"earlier-{seed}", **common)
        tracked = seed == 0  # one warm sweep logs to MLflow: its parent run says where it started from
        warm = run_sweep(
            "random_forest", "breast_cancer", seed=seed, tracking_uri=uri, tracking=tracked, warm_start=True, name=f"warm-{seed}", **common
        )  # fmt: skip
        assert warm.warm_start_from == [f"earlier-{seed}"] and warm.warm_start_trials == 10
        assert earlier.warm_start_trials is None
        if tracked:
            parent = MlflowClient(uri).get_run(warm.parent_run_id).data
            assert parent.tags[schema.WARM_START_FROM] == "earlier-0" and parent.params[schema.WARM_START_TRIALS] == "10"
            assert {k: warm.to_dict()[k] for k in ("warm_start_from", "warm_start_trials")} == {"warm_start_from": ["earlier-0"], "warm_start_trials": 10}
        target = earlier.best_validation_score
        warm_trials.append(trials_to_reach(warm, target))
        cold_trials.append(trials_to_reach(earlier, target))
    assert statistics.median(warm_trials) < statistics.median(cold_trials), (warm_trials, cold_trials)
