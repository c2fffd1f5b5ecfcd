"""``raysweep run auto``: several recipes' families compete in one sweep.

Fast: the common resource scale, the conditional space under each searcher that takes it (the
searchers' own suggestions, no Ray started), and the bad input refused through the CLI. End to
end (real Ray, a sqlite MLflow store, breast_cancer): one sweep of random_forest and xgboost.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from raysweep import space
from raysweep.cli import main
from raysweep.errors import UserError
from raysweep.families import get_family
from raysweep.recipes import bundled_recipe_names, load_recipe
from raysweep.sweep import auto
from raysweep.sweep.options import plan_sweep
from raysweep.tracking import schema


def auto_plan(names: list[str], task: str = "classification") -> auto.AutoPlan:
    recipes = [load_recipe(name) for name in names]
    return auto.auto_recipe(recipes, task, [get_family(r.family) for r in recipes])


def check_config(plan: auto.AutoPlan, config: dict) -> str:
    """The family of a suggested config; its params lie in that family's own space."""
    family, params = auto.split(config)
    assert family in [m.name for m in plan.members]
    member_space = plan.member(family).recipe.space
    assert set(params) == set(member_space), "only the family's own parameters"
    # HyperOpt gives an MLP's layer sizes as a tuple, as in a sweep of the mlp recipe alone.
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
    assert space.contains(member_space, plain), (family, params)
    return family


# -- the common resource scale --------------------------------------------------------------------------
def test_every_family_has_the_same_steps_and_reaches_at_least_the_same_share_of_its_resource():
    recipes = [load_recipe(name) for name in bundled_recipe_names()]
    steps = auto.common_steps(recipes)
    # xgboost's 6 steps of 50 rounds are the coarsest: no family's own step is split.
    assert steps == 6 == load_recipe("xgboost").resource.max_steps
    for recipe in recipes:
        own = recipe.resource.max_steps
        trained = [auto.family_step(k, steps, own) for k in range(1, steps + 1)]
        assert trained == sorted(trained) and trained[-1] == own, recipe.name
        for k, step in enumerate(trained, 1):
            # At common step k the family has at least k/S of its resource, and less than one of its own steps more.
            assert k / steps <= step / own < k / steps + 1 / own + 1e-9, (recipe.name, k, step)
    assert [auto.family_step(k, 6, 10) for k in range(1, 7)] == [2, 4, 5, 7, 9, 10]  # random_forest: 40..200 trees
    assert [auto.family_step(k, 6, 12) for k in range(1, 7)] == [2, 4, 6, 8, 10, 12]  # mlp: 10..60 epochs


def test_the_auto_recipe_reports_the_share_of_the_resource_and_stops_at_its_rungs():
    plan = auto_plan(["random_forest", "xgboost", "mlp"])
    assert plan.steps == 6
    resource = plan.recipe.resource
    assert (resource.name, resource.max_steps, resource.at(3), resource.at(6)) == ("resource_fraction", 6, 0.5, 1.0)
    assert plan.recipe.space == {"family": {"type": "choice", "values": ["random_forest", "xgboost", "mlp"]}}


# -- the conditional space ------------------------------------------------------------------------------
def test_random_search_samples_each_family_with_its_own_space():
    from ray.tune.search.variant_generator import generate_variants

    plan = auto_plan(["random_forest", "xgboost", "mlp"])
    param_space = auto.param_space(plan, "random")
    families = [check_config(plan, config) for _, config in (next(generate_variants(param_space)) for _ in range(40))]
    assert set(families) == {"random_forest", "xgboost", "mlp"}


@pytest.mark.parametrize("searcher", ["hyperopt", "anneal"])
def test_hyperopt_searches_the_family_choice_with_its_sub_spaces(searcher):
    from raysweep.strategies import registry

    plan = auto_plan(["random_forest", "xgboost", "mlp"])
    algorithm = registry.build_searcher(searcher, "val_accuracy", "max", 0, 4, None)
    assert algorithm.set_search_properties("val_accuracy", "max", auto.param_space(plan, searcher))
    families = []
    for index in range(30):
        config = algorithm.suggest(str(index))
        families.append(check_config(plan, config))
        algorithm.on_trial_complete(str(index), {"val_accuracy": 0.9 if families[-1] == "xgboost" else 0.5})
    assert set(families) == {"random_forest", "xgboost", "mlp"}


def test_optuna_takes_the_family_choice_define_by_run_and_learns_which_family_wins(tmp_path):
    plan = auto_plan(["random_forest", "xgboost", "mlp"])
    algorithm = auto.optuna_searcher(plan, "val_accuracy", "max", 0, 1)
    assert auto.param_space(plan, "optuna") == {}, "the space is the define-by-run function"
    families = []
    for index in range(40):
        config = algorithm.suggest(str(index))
        families.append(check_config(plan, config))
        algorithm.on_trial_complete(str(index), {"val_accuracy": 0.95 if families[-1] == "xgboost" else 0.6})
    assert set(families[:20]) == {"random_forest", "xgboost", "mlp"}
    # TPE spends more of the later trials on the family that scores best.
    assert families[20:].count("xgboost") > families[:20].count("xgboost")
    algorithm.save(str(tmp_path / "searcher.pkl"))  # Tune saves its searcher's state as the sweep goes
    # (check_config saw an MLP's layer sizes, lists Optuna holds by index, come back as the recipe's values.)


def test_a_config_flattens_to_its_family_and_params():
    config = {"model": {"family": "xgboost", "xgboost": {"max_depth": 3}}}
    assert auto.split(config) == ("xgboost", {"max_depth": 3})
    assert auto.flat_config(config) == {"family": "xgboost", "max_depth": 3}
    assert auto.flat_config({"max_depth": 3}) == {"max_depth": 3}, "another sweep's config is unchanged"


# -- bad input ------------------------------------------------------------------------------------------
REGRESSION_ONLY = """\
name: forest_regression_only
family: random_forest
tasks: [regression]
metric: {regression: rmse}
resource: {name: trees, per_step: 20, max: 100}
space:
  max_depth: {type: randint, low: 2, high: 12}
"""


BAD = [
    (["--searcher", "grid"], "error: --searcher grid: cannot search auto's family choice with per-family sub-spaces; use --searcher random, hyperopt, optuna, anneal"),
    (["--searcher", "gp"], "error: --searcher gp: cannot search auto's family choice with per-family sub-spaces; use --searcher random, hyperopt, optuna, anneal"),
    (["--scheduler", "pbt"], "error: --scheduler pbt: auto's trials belong to different families with different hyperparameters, so PBT members cannot copy each other; use --scheduler asha, hyperband or fifo"),
    (["--recipes", "xgboost,randm_forest"], "error: --recipes: unknown recipe 'randm_forest' (did you mean 'random_forest'?); prebuilt recipes: mlp, random_forest, svm, xgboost (or pass a path to a YAML file)"),
    (["--recipes", "xgboost,xgboost"], "error: --recipes: recipe 'xgboost' is listed twice (or two files share its name); each family needs a name of its own"),
    (["--warm-start"], "error: --warm-start: an auto sweep's searcher cannot start from earlier sweeps' trials yet; leave out --warm-start"),
    (["--set", "num_samples=3"], "error: --set: auto runs several recipes, so an override has no one recipe to apply to; copy a recipe, change it and list its file in --recipes"),
]


@pytest.mark.parametrize(("flags", "line"), BAD, ids=[" ".join(flags) for flags, _ in BAD])
def test_bad_input_is_one_line_and_exit_2_before_anything_starts(flags, line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = CliRunner().invoke(main, ["run", "auto", "--dataset", "breast_cancer", *flags], prog_name="raysweep")
    assert (outcome.exit_code, outcome.stderr, outcome.stdout) == (2, line + "\n", "")
    assert list(tmp_path.iterdir()) == [], "no MLflow store, no Ray results"


def test_no_recipe_fitting_the_task_is_refused(tmp_path, monkeypatch):
    recipe = tmp_path / "forest_regression_only.yaml"
    recipe.write_text(REGRESSION_ONLY)
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    outcome = CliRunner().invoke(main, ["run", "auto", "--dataset", "breast_cancer", "--recipes", str(recipe)], prog_name="raysweep")
    assert outcome.exit_code == 2 and outcome.stdout == ""
    assert outcome.stderr == (
        "error: --recipes: no recipe fits a classification task (forest_regression_only (regression)); "
        "list a recipe that supports classification\n"
    )
    assert list((tmp_path / "run").iterdir()) == []


def test_a_listed_recipe_that_does_not_fit_the_task_is_left_out_with_a_note(tmp_path):
    """--recipes forest_regression_only.yaml,svm on a classification dataset ran svm alone, without a word."""
    recipe = tmp_path / "forest_regression_only.yaml"
    recipe.write_text(REGRESSION_ONLY)
    plan = plan_sweep("auto", "breast_cancer", recipes=[str(recipe), "svm"], storage=str(tmp_path))
    assert [m.name for m in plan.auto.members] == ["svm"]
    assert plan.recipe.notes == ["left out of this classification sweep, for it does not support classification: forest_regression_only (regression)"]
    assert plan_sweep("auto", "breast_cancer", storage=str(tmp_path)).recipe.notes == []


def test_the_api_refuses_the_same_way_and_recipes_belong_to_auto(tmp_path):
    with pytest.raises(UserError, match=r"^--searcher gp: cannot search auto's family choice"):
        plan_sweep("auto", "breast_cancer", searcher="gp", storage=str(tmp_path))
    with pytest.raises(UserError, match=r"^--recipes applies to `raysweep run auto` only"):
        plan_sweep("xgboost", "breast_cancer", recipes=["xgboost"], storage=str(tmp_path))
    plan = plan_sweep("auto", "breast_cancer", storage=str(tmp_path))
    assert [m.name for m in plan.auto.members] == bundled_recipe_names(), "auto alone: every prebuilt recipe that fits"
    assert plan.name.startswith("auto-breast_cancer-") and plan.settings()["recipes"] == ",".join(bundled_recipe_names())


# -- end to end -----------------------------------------------------------------------------------------
def test_an_auto_sweep_tags_each_trial_with_its_family_and_refits_the_winner_in_its_flavor(ray_local, tmp_path):
    from mlflow.tracking import MlflowClient

    from raysweep import run_sweep

    families = ["random_forest", "xgboost"]
    result = run_sweep("auto", "breast_cancer", recipes=families, searcher="random", num_samples=4, seed=0, max_concurrent=2,
                       tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", storage=str(tmp_path / "results"))  # fmt: skip
    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id], filter_string=f"tags.`{schema.SWEEP}` = '{result.name}'")
    trials = [r for r in runs if r.info.run_id != result.parent_run_id]
    assert len(trials) == result.num_trials == 4
    tagged = [r.data.tags.get(schema.FAMILY) for r in trials]
    assert set(tagged) == set(families), "every trial run names its family, and both families got trials"
    for run in trials:
        own = set(load_recipe(run.data.tags[schema.FAMILY]).space)
        assert set(run.data.params) == own, "a trial's params are its family's own"
    # The leaderboard, the result and its JSON say the same.
    assert sorted(result.leaderboard["family"]) == sorted(tagged)
    assert set(result.families) == set(families)
    assert sum(f["trials"] for f in result.families.values()) == 4
    assert {name: f["trials"] for name, f in result.families.items()} == {name: tagged.count(name) for name in families}
    winner = result.best_config["family"]
    assert result.families[winner]["best"] == result.best_validation_score == max(f["best"] for f in result.families.values())
    assert set(result.best_config) == {"family", *load_recipe(winner).space}
    assert json.loads(json.dumps(result.to_dict(), default=str))["families"] == result.families
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags[schema.FAMILY] == "auto" and parent.data.params[schema.best_param("family")] == winner
    assert parent.data.tags[schema.MODEL_FLAVOR] == ("xgboost" if winner == "xgboost" else "sklearn")
    assert 0.85 < result.test_score <= 1
    # The shared runs view of the sweep has the family as a column, and both families' params.
    from raysweep.tracking.views import publish_sweep_view

    key = publish_sweep_view(client, parent)
    view = json.loads(client.get_experiment(result.experiment_id).tags[schema.SHARED_VIEW_PREFIX + key])
    assert f"tags.`{schema.FAMILY}`" in view["selectedColumns"]
    own = {name for family in families for name in load_recipe(family).space}
    assert {c for c in view["selectedColumns"] if c.startswith("params.")} == {f"params.`{name}`" for name in own}
    # Each trial's resource is a share of its family's own: the last step is 1.0 for both.
    completed = result.leaderboard[result.leaderboard["outcome"] == "completed"]
    assert ((completed["steps"] == 6)).all()
    from io import StringIO

    from rich.console import Console

    import raysweep.cli.summary as summary

    out = StringIO()
    summary._print_summary(result, Console(file=out, width=200))
    lines = out.getvalue().splitlines()
    for name in families:
        f = result.families[name]
        trials = f"{f['trials']} trial{'s' * (f['trials'] != 1)}"
        assert f"family {name}: {trials}, best validation accuracy {f['best']:.5g}" in lines
    # `raysweep sync` reads the auto sweep's record (its common scale, not one recipe's) and finds
    # nothing missing; the record holds what `raysweep resume` rebuilds the sweep from (tests/test_auto_resume.py).
    from raysweep.errors import NothingToResume
    from raysweep.sweep import record as sweep_record
    from raysweep.sweep.run import find_resumable
    from raysweep.tracking.sync import sync_sweep

    synced = sync_sweep(result.name, storage=str(tmp_path / "results"))
    assert (synced.trials, synced.runs_created, synced.metrics_written) == (4, 0, 0)
    with pytest.raises(NothingToResume, match="is complete; nothing to resume"):
        find_resumable(result.name, str(tmp_path / "results"))
    _, record = sweep_record.find(result.name, str(tmp_path / "results"))
    rebuilt = auto.from_record(record)
    assert ([m.name for m in rebuilt.members], rebuilt.steps) == (families, 6)
