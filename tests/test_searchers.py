"""The searchers gp, optuna and anneal.

Fast tests drive each searcher through Ray Tune's ``Searcher`` calls (``suggest``,
``on_trial_complete``) on the ``param_space`` raysweep hands Ray, without starting Ray; the
end-to-end tests run a small real sweep with each.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from raysweep import space as dsl
from raysweep.recipes import highest
from raysweep.strategies import registry
from raysweep.strategies._gp import GPSearch

MIXED = {
    "depth": {"type": "randint", "low": 2, "high": 6},
    "leaf": {"type": "lograndint", "low": 1, "high": 33},
    "trees": {"type": "qrandint", "low": 10, "high": 50, "q": 10},
    "rate": {"type": "loguniform", "low": 1e-4, "high": 1.0},
    "frac": {"type": "uniform", "low": 0.1, "high": 1.0},
    "step": {"type": "quniform", "low": 0.0, "high": 1.0, "q": 0.25},
    "scale": {"type": "qloguniform", "low": 0.01, "high": 1.0, "q": 0.01},
    "layers": {"type": "choice", "values": [[64], [64, 64], [128, 64]]},
    "kind": {"type": "choice", "values": ["a", "b", "c"]},
}


def gp(space: dict[str, dict[str, Any]], seed: int = 0, mode: str = "min", **options: Any) -> GPSearch:
    searcher = GPSearch(seed=seed, **options)
    assert searcher.set_search_properties("score", mode, dsl.param_space(space, "gp"))
    return searcher


def objective(config: dict[str, Any]) -> float:
    """A smooth function of every MIXED parameter, least at depth 4, rate 1e-2, frac 0.3, kind 'b'."""
    value = (config["depth"] - 4) ** 2 + (math.log10(config["rate"]) + 2) ** 2 + 10 * (config["frac"] - 0.3) ** 2
    return value + (0.0 if config["kind"] == "b" else 1.0) + 0.01 * config.get("leaf", 0) + 0.1 * len(config.get("layers", ()))


def run(searcher: Any, function, trials: int, concurrent: int = 1) -> list[dict[str, Any]]:
    """Suggest and complete ``trials`` trials, ``concurrent`` at a time (the oldest ends first)."""
    configs, in_flight, made = [], [], 0
    while len(configs) < trials:
        while len(in_flight) < concurrent and made < trials:
            in_flight.append((f"t{made}", searcher.suggest(f"t{made}")))
            made += 1
        trial_id, config = in_flight.pop(0)
        configs.append(config)
        searcher.on_trial_complete(trial_id, {"score": function(config), "training_iteration": 1})
    return configs


def within(config: dict[str, Any], space: dict[str, dict[str, Any]]) -> bool:
    for name, spec in space.items():
        value = config[name]
        if spec["type"] == "choice":
            if not any(value == v and type(value) is type(v) for v in spec["values"]):
                return False
            continue
        if not spec["low"] <= value <= highest(spec):
            return False
        if "int" in spec["type"] and type(value) is not int:
            return False
        if "q" in spec and not math.isclose(value / spec["q"], round(value / spec["q"]), abs_tol=1e-9):
            return False
    return True


# -- the GP searcher's own logic -------------------------------------------------------------------
def test_gp_values_are_of_their_type_and_inside_the_space():
    searcher = gp(MIXED)
    configs = run(searcher, objective, 40, concurrent=2)
    assert all(within(c, MIXED) for c in configs), [c for c in configs if not within(c, MIXED)]
    # The ends of the integer ranges are reachable, and lists come back as the recipe's lists.
    wide = gp(MIXED, seed=1, n_initial=200)
    sampled = [wide.suggest(f"t{i}") for i in range(200)]
    assert {c["depth"] for c in sampled} == {2, 3, 4, 5}
    assert {c["trees"] for c in sampled} == {10, 20, 30, 40, 50}
    assert {c["step"] for c in sampled} == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert {tuple(c["layers"]) for c in sampled} == {(64,), (64, 64), (128, 64)}
    assert min(c["leaf"] for c in sampled) == 1 and max(c["leaf"] for c in sampled) == 32
    assert all(within(c, MIXED) for c in sampled)


def test_gp_searches_log_ranges_in_log_space():
    space = {"rate": {"type": "loguniform", "low": 1e-4, "high": 1.0}}
    searcher = gp(space, n_initial=200)
    assert searcher.space_.encode({"rate": 1e-2})[0] == pytest.approx(0.5)
    rates = np.array([searcher.suggest(f"t{i}")["rate"] for i in range(200)])
    # Each decade gets about a quarter of the initial design, not 90% for the top one.
    per_decade = np.histogram(np.log10(rates), bins=[-4, -3, -2, -1, 0])[0]
    assert per_decade.min() >= 35, per_decade


@pytest.mark.parametrize("concurrent", [1, 4])
def test_gp_models_after_its_initial_design(concurrent):
    """On a smooth function the GP finds the minimum far sooner than chance, trials in flight or not."""
    space = {"x": {"type": "uniform", "low": 0.0, "high": 1.0}, "y": {"type": "uniform", "low": 0.0, "high": 1.0}}

    def bowl(config: dict[str, Any]) -> float:
        return (config["x"] - 0.3) ** 2 + (config["y"] - 0.7) ** 2

    searcher = gp(space)
    configs = run(searcher, bowl, 20, concurrent=concurrent)
    assert searcher.proposer_.n_initial == 5
    # 15 random points of the square come within 1e-4 of the minimum with probability 0.5%.
    assert min(bowl(c) for c in configs[5:]) < 1e-4


def test_gp_gives_concurrent_trials_distinct_points():
    searcher = gp(MIXED)
    run(searcher, objective, 12)
    assert searcher.proposer_.asked_ > searcher.proposer_.n_initial  # past the initial design
    pending = [searcher.suggest(f"p{i}") for i in range(4)]
    assert len({repr(sorted(c.items())) for c in pending}) == 4, pending
    assert len(searcher.proposer_.pending_) == 4


def test_gp_never_hands_out_a_pending_config_twice_on_a_small_discrete_space():
    space = {"a": {"type": "randint", "low": 0, "high": 3}, "b": {"type": "choice", "values": ["x", "y"]}}
    searcher = gp(space, n_initial=2)
    run(searcher, lambda c: c["a"] + (c["b"] == "y"), 2)
    pending = [searcher.suggest(f"p{i}") for i in range(4)]
    assert len({(c["a"], c["b"]) for c in pending}) == 4, pending


def test_gp_is_reproducible_with_a_seed():
    first = run(gp(MIXED, seed=7), objective, 16, concurrent=2)
    again = run(gp(MIXED, seed=7), objective, 16, concurrent=2)
    other = run(gp(MIXED, seed=8), objective, 16, concurrent=2)
    assert first == again
    assert first != other


def test_gp_tries_the_starting_points_first_and_learns_from_them():
    start = [{"x": 0.25, "kind": "b"}, {"x": 0.75, "kind": "a"}]
    space = {"x": {"type": "uniform", "low": 0.0, "high": 1.0}, "kind": {"type": "choice", "values": ["a", "b"]}}
    searcher = gp(space, points_to_evaluate=start)
    assert [searcher.suggest("s0"), searcher.suggest("s1")] == start
    searcher.on_trial_complete("s0", {"score": 1.0})
    searcher.on_trial_complete("s1", {"score": 2.0})
    assert searcher.proposer_.y_ == [1.0, 2.0]
    assert searcher.space_.decode(searcher.proposer_.X_[0]) == start[0]


def test_gp_learns_an_early_stopped_trial_at_its_last_result_and_nothing_from_a_failed_one():
    """Under ASHA/HyperBand, Ray completes a stopped trial with its last (lower-resource) result."""
    space = {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}
    searcher = gp(space, mode="max")
    for trial_id in ("stopped", "failed", "removed", "full"):
        searcher.suggest(trial_id)
    searcher.on_trial_complete("stopped", {"score": 0.61, "training_iteration": 1})  # stopped at rung 1 of 3
    searcher.on_trial_complete("failed", None, error=True)
    searcher.on_trial_complete("removed")  # a pending trial Tune dropped: no result at all
    searcher.on_trial_complete("full", {"score": 0.93, "training_iteration": 3})
    # Maximising: the GP minimises the negated metric.
    assert searcher.proposer_.y_ == [-0.61, -0.93]
    assert searcher.proposer_.pending_ == {}


def test_gp_checkpoint_restores_the_same_next_suggestion(tmp_path: Path):
    searcher = gp(MIXED, seed=3)
    run(searcher, objective, 8)
    searcher.save(str(tmp_path / "gp.pkl"))
    expected = searcher.suggest("next")
    restored = GPSearch()
    restored.restore(str(tmp_path / "gp.pkl"))
    assert restored.suggest("next") == expected


def test_gp_refuses_a_domain_it_cannot_model():
    from ray import tune

    searcher = GPSearch(seed=0)
    with pytest.raises(ValueError, match="x: the GP searcher cannot model Float with Normal"):
        searcher.set_search_properties("score", "min", {"x": tune.randn()})


def test_gp_takes_evaluated_points_as_observations():
    space = {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}
    searcher = GPSearch(seed=0)
    assert searcher.add_evaluated_points([({"x": 0.2}, 0.5)]) == 0  # kept until the space is known
    searcher.set_search_properties("score", "max", dsl.param_space(space, "gp"))
    assert searcher.add_evaluated_points([({"x": 0.4}, 0.7), ({"y": 1.0}, 0.9)]) == 1
    assert searcher.proposer_.y_ == [-0.5, -0.7]


def test_gp_models_every_dimension_of_an_early_history():
    """Ten points of a 6-D function that moves along every axis: no length-scale is fitted as "irrelevant"."""
    space = {f"x{i}": {"type": "uniform", "low": 0.0, "high": 1.0} for i in range(6)}

    def waves(config: dict[str, Any]) -> float:
        return sum(math.sin(6 * config[f"x{i}"] + i) for i in range(6))

    searcher = gp(space, seed=1)
    run(searcher, waves, 11)  # the 11th suggestion fits the kernel on the first ten points
    scales = searcher.proposer_.kernel_.k1.k2.length_scale
    # Maximum likelihood alone puts some of these at the bound of 100 on ten points.
    assert np.all(scales < 5), scales


# -- optuna and anneal, as raysweep builds them ----------------------------------------------------
@pytest.mark.parametrize("name", ["optuna", "anneal", "gp"])
def test_searcher_tries_starting_points_then_stays_in_the_space_reproducibly(name):
    space = {k: MIXED[k] for k in ("depth", "rate", "frac", "kind")}
    start = [{"depth": 4, "rate": 0.01, "frac": 0.5, "kind": "c"}]

    def configs(seed: int) -> list[dict[str, Any]]:
        searcher = registry.build_searcher(name, "score", "min", seed, 2, start)
        searcher.set_search_properties("score", "min", dsl.param_space(space, name))
        return run(searcher, objective, 14, concurrent=2)

    first = configs(0)
    assert first[0] == start[0]
    assert all(within(c, space) for c in first), first
    assert configs(0) == first
    assert configs(1) != first


def test_anneal_proposes_by_annealing():
    import hyperopt

    searcher = registry.build_searcher("anneal", "score", "min", 0, 2).searcher
    assert searcher.algo is hyperopt.anneal.suggest


def test_hyperopt_models_after_ten_trials():
    """A recipe's default sweep is 20 trials: TPE models its second half (Ray's default would not model at all)."""
    space = {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}
    searcher = registry.build_searcher("hyperopt", "score", "min", 0, 1)
    searcher.set_search_properties("score", "min", dsl.param_space(space, "hyperopt"))
    configs = run(searcher, lambda c: c["x"], 20)
    # Three of ten uniform draws fall below 0.05 with probability 1.2%.
    assert sum(c["x"] < 0.05 for c in configs[10:]) >= 3, [round(c["x"], 3) for c in configs]


def test_hyperopt_tpe_does_not_count_a_running_trial_as_a_loss():
    import hyperopt

    from raysweep.strategies._hyperopt import finished_only

    seen = []
    suggest = finished_only(lambda new_ids, domain, trials, seed: seen.append([d["tid"] for d in trials.trials]))
    trials = hyperopt.Trials()
    miscs = [{"tid": t, "cmd": None, "idxs": {}, "vals": {}} for t in range(3)]
    docs = trials.new_trial_docs([0, 1, 2], [None] * 3, [{"status": "new"}] * 3, miscs)
    docs[0]["state"], docs[0]["result"] = hyperopt.JOB_STATE_DONE, {"status": "ok", "loss": 1.0}
    docs[1]["state"] = hyperopt.JOB_STATE_ERROR
    trials.insert_trial_docs(docs)
    trials.refresh()
    suggest([3], None, trials, 0)
    assert seen == [[0]]  # the running trial 2 (and the failed one, which Trials itself hides) left out
    assert [d["tid"] for d in trials.trials] == [0, 2]  # the searcher's own history is untouched
    # ... and it is what the searchers raysweep builds call: --searcher hyperopt and auto's TPE
    from raysweep.strategies._hyperopt import build, build_conditional

    for searcher in (build("score", "min", 0, 2, None).searcher, build_conditional(0, 2, None).searcher):
        assert searcher.algo.__qualname__ == "finished_only.<locals>.suggest"
        assert searcher.algo.__closure__[0].cell_contents.keywords["n_startup_jobs"] == 10


def test_optuna_samples_with_multivariate_tpe_and_a_constant_liar():
    searcher = registry.build_searcher("optuna", "score", "min", 5, 2).searcher
    searcher.set_search_properties("score", "min", dsl.param_space({"x": MIXED["frac"]}, "optuna"))
    sampler = searcher._ot_study.sampler
    assert type(sampler).__name__ == "TPESampler"
    assert sampler._multivariate and sampler._constant_liar


def test_optuna_says_nothing_of_a_step_a_resumed_trial_reports_again():
    """A trial resumed from its checkpoint reports its last saved step again: Optuna's
    "The reported value is ignored because this `step=1` is already reported" reached the resumed
    sweep's stderr."""
    import warnings

    searcher = registry.build_searcher("optuna", "score", "min", 5, 2).searcher
    searcher.set_search_properties("score", "min", dsl.param_space({"x": MIXED["frac"]}, "optuna"))
    assert searcher.suggest("t1") is not None
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        searcher.on_trial_result("t1", {"score": 0.5, "training_iteration": 1})
        searcher.on_trial_result("t1", {"score": 0.5, "training_iteration": 1})  # again, after a resume
    assert [str(warning.message) for warning in said] == []
    assert searcher._ot_trials["t1"].storage.get_trial(searcher._ot_trials["t1"]._trial_id).intermediate_values == {1: 0.5}


def test_qrandint_draws_multiples_of_q_under_every_searcher():
    """qrandint 1..9 by 2 is 2, 4, 6, 8 (the README: multiples of q within the bounds), as Ray's own
    sampler draws it; Optuna counted its steps from the lower bound and drew 5, 7, 9."""
    import optuna
    from ray.tune.search.hyperopt import HyperOptSearch
    from ray.tune.search.optuna import OptunaSearch

    from raysweep.sweep.auto import _suggest

    spec = {"type": "qrandint", "low": 1, "high": 9, "q": 2}
    domain = dsl.to_domain(spec)
    assert {int(domain.sample()) for _ in range(200)} == {2, 4, 6, 8}
    assert OptunaSearch.convert_search_space({"x": domain})["x"] == optuna.distributions.IntDistribution(2, 8, step=2)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    assert {_suggest(study.ask(), "x", spec) for _ in range(60)} == {2, 4, 6, 8}  # an auto sweep's TPE
    from hyperopt.pyll.stochastic import sample

    hyperopt_space = HyperOptSearch.convert_search_space({"x": domain})
    assert {int(sample(hyperopt_space)["x"]) for _ in range(200)} <= {2, 4, 6, 8}


@pytest.mark.parametrize(
    ("spec", "drawn"),
    [({"type": "quniform", "low": 0.25, "high": 1.0, "q": 0.1}, {0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}),
     ({"type": "qloguniform", "low": 0.2, "high": 1.0, "q": 0.5}, {0.5, 1.0})],
    ids=["quniform", "qloguniform"],
)  # fmt: skip
def test_float_q_types_with_bounds_off_the_grid_of_q_draw_its_multiples_under_every_searcher(spec, drawn):
    """Bounds that are not multiples of q passed validate, then Ray refused them after its start
    ("lower variable bound 0.25 is not divisible by quantization factor 0.1"), a traceback."""
    import optuna
    from hyperopt.pyll.stochastic import sample
    from ray.tune.search.hyperopt import HyperOptSearch

    from raysweep.sweep.auto import _suggest

    domain = dsl.to_domain(spec)
    assert {round(domain.sample(), 9) for _ in range(400)} == drawn
    hyperopt_space = HyperOptSearch.convert_search_space({"x": domain})
    assert {round(sample(hyperopt_space)["x"], 9) for _ in range(200)} <= drawn
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    assert {round(_suggest(study.ask(), "x", spec), 9) for _ in range(200)} <= drawn  # an auto sweep's TPE


def test_optuna_draws_qloguniform_on_the_grid_of_q():
    """Ray's OptunaSearch drops q on a log scale (a warning, hidden): it drew 0.000196567 for
    qloguniform 1e-4..1e-2 by 1e-4, which no other searcher draws, and warm start then took every
    such trial for one outside the space."""
    spec = {"type": "qloguniform", "low": 0.0001, "high": 0.01, "q": 0.0001}
    searcher = registry.build_searcher("optuna", "score", "min", 3, 1).searcher
    searcher.set_search_properties("score", "min", dsl.param_space({"x": spec}, "optuna"))
    drawn = []
    for index in range(30):
        config = searcher.suggest(f"t{index}")
        drawn.append(config["x"])
        searcher.on_trial_complete(f"t{index}", {"score": abs(math.log(config["x"]) + 6)})
    assert all(dsl.contains({"x": spec}, {"x": value}) for value in drawn), drawn
    assert all(math.isclose(value / 0.0001, round(value / 0.0001)) and 0.0001 <= value <= 0.01 for value in drawn), drawn
    assert len(set(drawn)) > 10 and min(drawn) < 0.001 < max(drawn)  # still spread on the log scale


def test_optunas_study_is_made_without_its_info_line_and_its_verbosity_is_put_back(capfd):
    import optuna

    from raysweep.families import get_family
    from raysweep.recipes import load_recipe
    from raysweep.sweep import auto

    optuna.logging.set_verbosity(optuna.logging.INFO)  # Optuna's default
    searcher = registry.build_searcher("optuna", "score", "min", 5, 2).searcher
    assert searcher.set_search_properties("score", "min", dsl.param_space({"x": MIXED["frac"]}, "optuna"))
    recipes = [load_recipe(name) for name in ("random_forest", "svm")]
    plan = auto.auto_recipe(recipes, "classification", [get_family(r.family) for r in recipes])
    conditional = auto.searcher(plan, "optuna", "score", "min", 5, 2).searcher
    assert searcher._ot_study is not None and conditional._ot_study is not None
    assert "A new study created" not in capfd.readouterr().err
    assert optuna.logging.get_verbosity() == optuna.logging.INFO


# -- real sweeps ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gp", "optuna", "anneal", "hyperopt"])
def test_a_sweep_with_each_searcher(name, ray_local, tmp_path):
    from mlflow.tracking import MlflowClient

    from raysweep.recipes import load_recipe
    from raysweep.sweep.run import run_sweep

    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_sweep(
        "random_forest", "iris", searcher=name, scheduler="asha", num_samples=8, max_concurrent=2, seed=0,
        overrides=["resource.max=60"], storage=str(tmp_path / "results"), tracking_uri=tracking_uri,
    )
    assert result.num_trials == 8 and result.num_errors == 0
    space = load_recipe("random_forest").space
    configs = [
        {k: int(row[f"config/{k}"]) if space[k]["type"].endswith("randint") else float(row[f"config/{k}"]) for k in space}
        for row in result.leaderboard.to_dict("records")
    ]
    assert len(configs) == 8
    assert all(within(config, space) for config in configs), configs
    # The recipe's starting point (scikit-learn's defaults) is among the trials.
    assert {"max_depth": 32, "min_samples_leaf": 1, "max_features": 0.25} in configs
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([result.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    assert len(runs) == 8 and {run.info.status for run in runs} == {"FINISHED"}
    assert client.get_run(result.parent_run_id).data.params.get("searcher") == name
