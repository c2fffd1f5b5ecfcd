"""``raysweep run auto`` tries each member recipe's ``points_to_evaluate`` first, under every searcher
that takes starting points: the searchers' own suggestions, no Ray started."""

from __future__ import annotations

import pytest

from raysweep.families import get_family
from raysweep.recipes import load_recipe, validate_recipe_data
from raysweep.strategies import registry
from raysweep.sweep import auto

#: an MLP recipe whose starting point picks one of a choice's values (HyperOpt holds it by index)
MLP_WITH_POINT = {
    "name": "mlp_start", "family": "mlp", "tasks": ["classification"], "metric": {"classification": "accuracy"},
    "resource": {"name": "epochs", "per_step": 10, "max": 60},
    "space": {"alpha": {"type": "loguniform", "low": 1e-5, "high": 1e-1},
              "batch_size": {"type": "choice", "values": [32, 64, 128]}},
    "points_to_evaluate": [{"alpha": 0.001, "batch_size": 64}],
}  # fmt: skip


def plan_of(recipes: list) -> auto.AutoPlan:
    return auto.auto_recipe(recipes, "classification", [get_family(r.family) for r in recipes])


def members_points(plan: auto.AutoPlan) -> list[dict]:
    """What the first trials should be: each member's points, members in order, as the trainable takes them."""
    return [{"model": {"family": m.name, m.name: p}} for m in plan.members for p in m.recipe.points_to_evaluate]


CONDITIONAL = [name for name, strategy in registry.SEARCHERS.items() if strategy.conditional]


@pytest.mark.parametrize("searcher", CONDITIONAL)
def test_the_first_suggestions_of_an_auto_sweep_are_the_members_starting_points(searcher):
    plan = plan_of([load_recipe("random_forest"), load_recipe("svm"), load_recipe("xgboost")])
    expected = members_points(plan)
    # The bundled random_forest and xgboost recipes start from their library's defaults; svm has no point.
    assert [p["model"]["family"] for p in expected] == ["random_forest", "xgboost"]
    algorithm = auto.searcher(plan, searcher, "val_accuracy", "max", 0, 1)
    # As Tune does (Optuna has its define-by-run space already, and keeps it).
    algorithm.set_search_properties("val_accuracy", "max", auto.param_space(plan, searcher))
    suggested = []
    for index in range(len(expected) + 3):
        suggested.append(algorithm.suggest(str(index)))
        algorithm.on_trial_complete(str(index), {"val_accuracy": 0.9})
    assert suggested[: len(expected)] == expected
    assert all(config not in expected for config in suggested[len(expected):]), "then the searcher's own suggestions"


@pytest.mark.parametrize("searcher", CONDITIONAL)
def test_a_starting_point_that_picks_a_choice_comes_back_as_the_recipe_value(searcher):
    plan = plan_of([load_recipe("xgboost"), validate_recipe_data(MLP_WITH_POINT, "mlp_start.yaml")])
    algorithm = auto.searcher(plan, searcher, "val_accuracy", "max", 0, 1)
    algorithm.set_search_properties("val_accuracy", "max", auto.param_space(plan, searcher))
    first = []
    for index in range(2):
        first.append(algorithm.suggest(str(index)))
        algorithm.on_trial_complete(str(index), {"val_accuracy": 0.9})
    assert first == members_points(plan)
    assert first[1] == {"model": {"family": "mlp_start", "mlp_start": {"alpha": 0.001, "batch_size": 64}}}
