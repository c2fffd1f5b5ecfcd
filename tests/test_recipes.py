"""Recipes: the bundled ones, the schema, ``--set`` overrides, the search-space DSL, and a fuzz
of the loader (anything YAML can hold gives a Recipe or a UserError, never a crash)."""

from __future__ import annotations

import copy
import os
import json
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raysweep import space
from raysweep.errors import UserError
from raysweep.families import get_family
from raysweep.recipes import (
    METRICS,
    SPACE_TYPES,
    Resource,
    apply_overrides,
    bundled_recipe_names,
    bundled_recipes_dir,
    load_recipe,
    validate_recipe_data,
)
from raysweep.recipes.files import read_recipe_file
from raysweep.sweep.options import check_family_params, check_recipe

BUNDLED = ["mlp", "random_forest", "svm", "xgboost"]


def raw_recipe(name: str) -> dict:
    """The bundled recipe file's data, a copy of its own (the fuzz mutates it; parsing it anew per example took most of the fuzz's time)."""
    if name not in _RAW:
        _RAW[name] = yaml.safe_load((bundled_recipes_dir() / f"{name}.yaml").read_text())
    return copy.deepcopy(_RAW[name])


_RAW: dict[str, dict] = {}


# -- the bundled recipes ---------------------------------------------------------------------------
def test_four_recipes_are_bundled():
    assert bundled_recipe_names() == BUNDLED


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_recipe_is_valid_for_both_tasks(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    assert recipe.family == name
    assert set(recipe.tasks) == {"classification", "regression"}
    assert all(METRICS[metric][0] == task for task, metric in recipe.metric.items())
    family = get_family(recipe.family)
    for task in recipe.tasks:
        check_family_params(recipe, family, task)  # raises UserError on a parameter the model lacks
    assert recipe.resource.max_steps >= 4, "a recipe needs several steps for early stopping to act on"
    assert set(recipe.mutations) <= set(recipe.space)
    if family.supports_pbt:
        assert recipe.mutations, f"{name} supports PBT but mutates nothing"


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_recipe_space_builds_for_every_searcher(name):
    from ray.tune.search.sample import Domain

    recipe = load_recipe(name)
    random_space = space.param_space(recipe.space, "random", recipe.source)
    assert set(random_space) == set(recipe.space)
    assert all(isinstance(domain, Domain) for domain in random_space.values())
    grid_space = space.param_space(recipe.space, "grid", recipe.source)
    assert all(set(value) == {"grid_search"} for value in grid_space.values())
    assert space.grid_size(recipe.space) == math.prod(len(v["grid_search"]) for v in grid_space.values())


@pytest.mark.parametrize("name", BUNDLED)
def test_resolved_yaml_round_trips(name):
    # svm's resource is a share of the rows, at most 1.0
    recipe = load_recipe(name, ["num_samples=5", f"resource.max={0.5 if name == 'svm' else 100}"])
    again = validate_recipe_data(yaml.safe_load(recipe.to_yaml()), recipe.source, name)
    assert again.raw == recipe.raw
    assert again.space == recipe.space
    assert again.resource == recipe.resource
    assert again.content_hash == recipe.content_hash


def test_content_hash_ignores_key_order_but_not_content():
    data = raw_recipe("xgboost")
    reordered = dict(reversed(list(data.items())))
    assert validate_recipe_data(reordered, "a.yaml").content_hash == validate_recipe_data(data, "b.yaml").content_hash
    changed = copy.deepcopy(data)
    changed["space"]["max_depth"]["high"] = 12
    assert validate_recipe_data(changed, "c.yaml").content_hash != validate_recipe_data(data, "b.yaml").content_hash


def test_recipe_defaults_when_optional_keys_are_left_out():
    recipe = validate_recipe_data(
        {
            "family": "random_forest",
            "tasks": "regression",
            "metric": "mae",
            "resource": {"name": "trees", "per_step": 10, "max": 50},
            "space": {"max_depth": {"type": "randint", "low": 2, "high": 9}},
        },
        "mine.yaml",
        "mine",
    )
    assert recipe.name == "mine"
    assert recipe.tasks == ("regression",)
    assert recipe.metric == {"regression": "mae"}
    assert (recipe.scheduler, recipe.searcher, recipe.num_samples) == ("asha", "random", 20)
    assert (recipe.grace_period, recipe.reduction_factor, recipe.perturbation_interval) == (1, 3.0, 2)
    assert recipe.fixed == {} and recipe.mutations == {}


def test_a_folder_given_as_the_recipe_says_so(tmp_path):
    """It said "no such recipe file" of a path that exists."""
    (tmp_path / "mine.yaml").mkdir()
    for given in (str(tmp_path), str(tmp_path / "mine.yaml")):
        with pytest.raises(UserError) as info:
            load_recipe(given)
        assert str(info.value) == f"{given}: a folder, not a recipe file; pass the path of a YAML file in it"
    # A folder named as a prebuilt recipe does not hide it.
    (tmp_path / "xgboost").mkdir()
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert load_recipe("xgboost").name == "xgboost"
        with pytest.raises(UserError, match="a folder, not a recipe file"):
            load_recipe("./xgboost")
    finally:
        os.chdir(here)


def test_recipe_file_path_and_name_both_load(tmp_path):
    path = tmp_path / "tiny.yml"
    path.write_text((bundled_recipes_dir() / "svm.yaml").read_text().replace("name: svm", "name: tiny_svm"))
    by_path = load_recipe(str(path))
    assert by_path.name == "tiny_svm"
    assert by_path.source == str(path)
    assert by_path.space == load_recipe("svm").space


def test_yaml_merge_keys_read_as_safe_load_reads_them_and_a_key_given_twice_is_still_refused(tmp_path):
    """`<<: *anchor` was "malformed YAML ... could not determine a constructor for the tag merge"."""
    text = """\
family: random_forest
tasks: [regression]
metric: mae
resource: {name: trees, per_step: 10, max: 30}
scheduler: pbt
space:
  max_features: &features {type: uniform, low: 0.2, high: 1.0}
pbt:
  mutations:
    max_features: {<<: *features, high: 0.9}
"""
    path = tmp_path / "merged.yaml"
    path.write_text(text)
    recipe = load_recipe(str(path))
    assert recipe.mutations == yaml.safe_load(text)["pbt"]["mutations"] == {"max_features": {"type": "uniform", "low": 0.2, "high": 0.9}}
    path.write_text(text.replace("{<<: *features, high: 0.9}", "{<<: *features, high: 0.9, high: 0.8}"))
    with pytest.raises(UserError, match="key 'high' is given twice"):
        load_recipe(str(path))
    # A merge of a mapping that merges one itself, nested deeper than the mapping merging it:
    # SafeLoader flattens it in place first, and it then held the inherited key beside its own.
    chained = "base: &b {x: 1, y: 1}\ndefaults:\n  inner: &b2 {<<: *b, y: 2}\nc: {<<: *b2, y: 3}\n"
    path.write_text(chained)
    assert read_recipe_file(path) == yaml.safe_load(chained) == {"base": {"x": 1, "y": 1}, "defaults": {"inner": {"x": 1, "y": 2}},
                                                                  "c": {"x": 1, "y": 3}}


def test_a_prebuilt_name_is_taken_in_any_case():
    """`run AUTO` ran, `run XGBOOST` was an unknown recipe (scheduler and searcher names are taken in any case)."""
    assert load_recipe("XGBoost").name == load_recipe("xgboost").name == "xgboost"
    assert load_recipe("XGBOOST").space == load_recipe("xgboost").space


# -- resources ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "per_step, maximum, steps, at_two",
    [(20, 200, 10, 40), (25, 300, 12, 50), (0.1, 1.0, 10, 0.2), (5, 60, 12, 10), (7, 10, 1, 14)],
)
def test_resource_steps(per_step, maximum, steps, at_two):
    resource = Resource("r", per_step, maximum)
    assert resource.max_steps == steps
    assert resource.at(2) == at_two
    assert resource.at(resource.max_steps) == pytest.approx(maximum, rel=0.5)


# -- --set overrides ------------------------------------------------------------------------------------
def test_overrides_parse_values_as_yaml():
    recipe = load_recipe(
        "xgboost",
        [
            "space.max_depth.high=12",
            "space.learning_rate.low=0.02",
            "resource.max=100",
            "searcher=random",
            "pbt.perturbation_interval=1",
            "fixed.max_bin=64",  # a new fixed parameter is allowed
            "space.max_depth.grid=[3, 5]",
        ],
    )
    assert recipe.space["max_depth"] == {"type": "randint", "low": 2, "high": 12, "grid": [3, 5]}
    assert recipe.space["learning_rate"]["low"] == 0.02
    assert recipe.resource.max == 100 and recipe.resource.max_steps == 2
    assert recipe.searcher == "random"
    assert recipe.perturbation_interval == 1
    assert recipe.fixed == {"tree_method": "hist", "max_bin": 64}
    assert load_recipe("xgboost").space["max_depth"]["high"] == 11, "overrides must not touch the recipe file"


def test_override_adds_fixed_to_a_recipe_without_fixed():
    assert "fixed" not in raw_recipe("random_forest")
    recipe = load_recipe("random_forest", ["fixed.criterion=entropy"])
    assert recipe.fixed == {"criterion": "entropy"}
    check_family_params(recipe, get_family("random_forest"), "classification")


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("space.nope.high=3", "has no key space.nope"),
        ("space.max_depht.high=3", "did you mean 'max_depth'?"),
        ("spaec.max_depth.high=3", "has no key spaec"),
        ("nonsense", "expected KEY.PATH=VALUE"),
        ("=3", "the key is empty"),
        ("name.first=3", "name in"),
        ("space.max_depth.high=-1", "low < high must hold"),
        ("space.max_depth.type=gaussian", "unknown type 'gaussian'"),
        ("resource.per_step=0", "--set resource.per_step=0: must be a positive number"),
    ],
)
def test_bad_override_names_the_key(override, fragment):
    with pytest.raises(UserError) as info:
        load_recipe("xgboost", [override])
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["space.max_depth.high=abc"], "--set space.max_depth.high=abc: must be a number, got 'abc'"),
        (["space.max_depth.high=2"], "--set space.max_depth.high=2: space.max_depth: low < high must hold, but got (low=2, high=2); swap or widen the bounds"),
        (["space.max_depth.low=9", "space.max_depth.high=3"],
         "--set space.max_depth.low=9 --set space.max_depth.high=3: space.max_depth: low < high must hold, but got (low=9, high=3); swap or widen the bounds"),
        (["space.max_depth={type: randint, low: 2}"], "--set space.max_depth={type: randint, low: 2}: space.max_depth.high: is required but missing; add it"),
        (["space.max_depth.type=choice"], "--set space.max_depth.type=choice: space.max_depth.low: unknown key; allowed keys: type, values"),
        (["num_samples=0"], "--set num_samples=0: must be a whole number >= 1, got 0"),
        (["spaec.max_depth.high=3"], "--set spaec.max_depth.high=3: recipe xgboost has no key spaec (did you mean 'space'?)"),
    ],
)
def test_an_error_a_set_caused_names_the_set_not_the_recipe_file(overrides, message):
    with pytest.raises(UserError) as info:
        load_recipe("xgboost", overrides)
    assert str(info.value).startswith(message)
    assert "xgboost.yaml" not in str(info.value)


def test_an_error_in_the_file_still_names_the_file(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text((bundled_recipes_dir() / "xgboost.yaml").read_text().replace("num_samples: 20", "num_samples: 0"))
    with pytest.raises(UserError, match=r"^\S*mine\.yaml: num_samples: must be a whole number >= 1, got 0$"):
        load_recipe(mine, ["space.max_depth.high=12"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["scheduler=pbt"], "--set scheduler=pbt: the svm family carries no training state"),
        (["fixed.kernel=nope"], "--set fixed.kernel=nope: the model rejects these parameters"),
        (["searcher=grid", "space.C.high=50"], "--set space.C.high=50: space.C: grid points [100.0] lie outside [low=0.01, high=50]"),
        # high itself, which randint never draws, and points off the grid of q
        (["searcher=grid", "space.C.grid=[0.1, 50]", "space.C.high=50", "space.gamma={type: randint, low: 1, high: 5, grid: [1, 5]}"],
         "--set space.gamma={type: randint, low: 1, high: 5, grid: [1, 5]}: grid points [5] lie outside [low=1, high=5) "
         "(randint leaves out high)"),
        (["searcher=grid", "space.C={type: quniform, low: 0.5, high: 10, q: 0.5, grid: [1, 1.25]}"],
         "--set space.C={type: quniform, low: 0.5, high: 10, q: 0.5, grid: [1, 1.25]}: grid points [1.25] are not multiples "
         "of q=0.5, the only values quniform draws"),
    ],
)
def test_check_recipe_refuses_what_a_sweep_would(overrides, message):
    recipe = load_recipe("svm", overrides)
    with pytest.raises(UserError) as info:
        check_recipe(recipe)
    assert str(info.value).startswith(message)
    # The flag a sweep was given wins over the recipe's choice, and is what the error names.
    check_recipe(load_recipe("svm"), scheduler="asha")
    with pytest.raises(UserError, match=r"^--scheduler pbt: the svm family"):
        check_recipe(load_recipe("svm"), scheduler="pbt")


def test_recipe_name_must_make_a_sweep_name():
    data = raw_recipe("svm")
    for name in ("a/b", ".hidden", ["x"], "my recipe", "v1."):
        with pytest.raises(UserError, match=r"^my\.yaml: name: .*must be one word of letters, digits, '-', '_' and '\.'; rename it"):
            validate_recipe_data({**data, "name": name}, "my.yaml")
    for name in ("my-svm_2", 2024, "Über", "v1.2"):
        assert validate_recipe_data({**data, "name": name}, "my.yaml").name == str(name)


@pytest.mark.parametrize(
    "name, message",
    [
        # `raysweep report my recipe-...` would be two words on the command line
        ("my recipe", "my.yaml: name: 'my recipe': a sweep's default name and folder start with it and its MLflow runs are found by it, so it must be one word "
                      "of letters, digits, '-', '_' and '.'; rename it, e.g. my_recipe"),
        ("a/b", "my.yaml: name: 'a/b': a sweep's default name and folder start with it and its MLflow runs are found by it, so it must be one word "
                "of letters, digits, '-', '_' and '.'; rename it, e.g. a_b"),
        (["x"], "my.yaml: name: ['x']: a sweep's default name and folder start with it and its MLflow runs are found by it, so it must be one word "
                "of letters, digits, '-', '_' and '.'; rename it"),
    ],
)
def test_a_recipe_name_that_is_not_one_word_is_refused_in_one_line(name, message):
    with pytest.raises(UserError) as info:
        validate_recipe_data({**raw_recipe("svm"), "name": name}, "my.yaml")
    assert str(info.value) == message
    with pytest.raises(UserError) as info:
        load_recipe("svm", ["name=my recipe"])
    assert str(info.value) == ("--set name=my recipe: 'my recipe': a sweep's default name and folder start with it and its MLflow runs are found by it, so it "
                               "must be one word of letters, digits, '-', '_' and '.'; rename it, e.g. my_recipe")


def test_scheduler_and_searcher_names_are_taken_in_any_case(tmp_path):
    mine = tmp_path / "mine.yaml"
    data = {**raw_recipe("random_forest"), "name": "mine", "scheduler": "ASHA", "searcher": "HyperOpt"}
    mine.write_text(yaml.safe_dump(data))
    recipe = load_recipe(mine)
    assert (recipe.scheduler, recipe.searcher) == ("asha", "hyperopt")
    assert (recipe.raw["scheduler"], recipe.raw["searcher"]) == ("asha", "hyperopt")
    check_recipe(recipe)
    recipe = load_recipe("random_forest", ["searcher=GP", "scheduler=HyperBand"])
    assert (recipe.scheduler, recipe.searcher) == ("hyperband", "gp")
    check_recipe(recipe)
    with pytest.raises(UserError) as info:
        load_recipe("random_forest", ["searcher=Bohb"])
    assert str(info.value) == "--set searcher=Bohb: unknown searcher 'Bohb'; use one of random, grid, hyperopt, gp, optuna, anneal"
    with pytest.raises(UserError) as info:
        validate_recipe_data({**data, "scheduler": "ASHAA"}, "my.yaml")
    assert str(info.value) == "my.yaml: scheduler: unknown scheduler 'ASHAA' (did you mean 'asha'?); use one of fifo, asha, hyperband, pbt"


def test_apply_overrides_leaves_its_input_alone():
    data = raw_recipe("svm")
    before = copy.deepcopy(data)
    changed = apply_overrides(data, ["space.C.high=5"], "svm.yaml")
    assert data == before
    assert changed["space"]["C"]["high"] == 5


# -- starting points ------------------------------------------------------------------------------------------------
XGBOOST_DEFAULTS = {"learning_rate": 0.3, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0,
                    "colsample_bytree": 1.0, "reg_lambda": 1.0}


def test_tree_recipes_start_from_the_library_defaults():
    from xgboost import XGBClassifier

    booster = json.loads(XGBClassifier(n_estimators=1).fit([[0.0], [1.0]], [0, 1]).get_booster().save_config())
    train = booster["learner"]["gradient_booster"]["tree_train_param"]
    library = {name: float(train[{"learning_rate": "eta"}.get(name, name)]) for name in XGBOOST_DEFAULTS}
    assert library == pytest.approx(XGBOOST_DEFAULTS)
    assert load_recipe("xgboost").points_to_evaluate == [XGBOOST_DEFAULTS]
    # scikit-learn grows trees out, to one-sample leaves, with sqrt(n_features) features per split:
    # 4 of letter's 16 features.
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier().get_params()
    assert (forest["max_depth"], forest["min_samples_leaf"], forest["max_features"]) == (None, 1, "sqrt")
    assert load_recipe("random_forest").points_to_evaluate == [{"max_depth": 32, "min_samples_leaf": 1, "max_features": 0.25}]
    assert load_recipe("svm").points_to_evaluate == [] and load_recipe("mlp").points_to_evaluate == []


def test_a_narrowed_range_moves_the_starting_point_and_says_so():
    recipe = load_recipe("random_forest", ["space.max_depth.high=12", "space.max_features.low=0.5"])
    assert recipe.points_to_evaluate == [{"max_depth": 11, "min_samples_leaf": 1, "max_features": 0.5}]
    assert recipe.notes == [
        "points_to_evaluate.0.max_depth: 32 lies outside space.max_depth [low=4, high=12]; starting from 11",
        "points_to_evaluate.0.max_features: 0.25 lies outside space.max_features [low=0.5, high=1.0]; starting from 0.5",
    ]
    assert yaml.safe_load(recipe.to_yaml())["points_to_evaluate"] == recipe.points_to_evaluate
    assert load_recipe("random_forest").points_to_evaluate[0]["max_depth"] == 32, "the recipe itself is untouched"
    assert load_recipe("random_forest").notes == []


def test_starting_points_can_be_set_or_dropped_from_the_command_line():
    assert load_recipe("xgboost", ["points_to_evaluate=[]"]).points_to_evaluate == []
    # svm.yaml has no points_to_evaluate; an optional top-level key may still be set.
    recipe = load_recipe("svm", ["points_to_evaluate=[{C: 1.0, gamma: 0.1}, {C: 10, gamma: 0.01}]"])
    assert recipe.points_to_evaluate == [{"C": 1.0, "gamma": 0.1}, {"C": 10, "gamma": 0.01}]


@pytest.mark.parametrize(
    "recipe, points, fragment",
    [
        ("xgboost", {"learning_rate": 0.3}, "points_to_evaluate: must be a list of {parameter: value} mappings"),
        ("xgboost", [{"learning_rate": 0.3}], "points_to_evaluate.0: gives no value for max_depth, min_child_weight, "
                                              "subsample, colsample_bytree, reg_lambda; a starting point names every parameter"),
        ("xgboost", [{**XGBOOST_DEFAULTS, "gamma": 0.0}], "points_to_evaluate.0.gamma: unknown key; allowed keys: learning_rate"),
        ("xgboost", [XGBOOST_DEFAULTS, {**XGBOOST_DEFAULTS, "max_depth": "six"}], "points_to_evaluate.1.max_depth: must be a number, got 'six'"),
        ("xgboost", [{**XGBOOST_DEFAULTS, "max_depth": 6.5}], "points_to_evaluate.0.max_depth: must be a whole number for randint, got 6.5"),
        ("xgboost", ["defaults"], "points_to_evaluate.0: must be a mapping, got str 'defaults'"),
        ("mlp", [{"batch_size": 100, "hidden_layer_sizes": [64], "alpha": 1e-4, "learning_rate_init": 1e-3}],
         "points_to_evaluate.0.batch_size: 100 is not one of space.batch_size.values [32, 64, 128, 256]; pick one of them"),
        ("mlp", [{"hidden_layer_sizes": [64], "alpha": 1e-4, "learning_rate_init": 1e-3, "batch_size": 64}],
         "points_to_evaluate.0.hidden_layer_sizes: [64]: a starting point can only name a plain value"),
    ],
)
def test_bad_starting_point_names_the_key(recipe, points, fragment):
    data = mutate(recipe, "points_to_evaluate", points)
    with pytest.raises(UserError) as info:
        validate_recipe_data(data, "my.yaml")
    message = str(info.value)
    assert message.startswith("my.yaml: ") and fragment in message, message
    assert "\n" not in message


def test_a_misspelt_space_name_is_not_blamed_on_the_starting_point():
    """The point was told to take the space's typo: "points_to_evaluate.0.max_depth: unknown key
    (did you mean 'max_dpth'?)"."""
    data = raw_recipe("xgboost")
    data["space"]["max_dpth"] = data["space"].pop("max_depth")
    with pytest.raises(UserError) as info:
        validate_recipe_data(data, "my.yaml")
    assert str(info.value) == (
        "my.yaml: points_to_evaluate.0.max_depth: is not in space, which names 'max_dpth' instead: correct whichever of "
        "the two is misspelt; a starting point names the parameters in space"
    )


@pytest.mark.parametrize("section", ["space", "fixed", "pbt.mutations"])
@pytest.mark.parametrize("key", [5, True], ids=["number", "yes"])
def test_a_parameter_name_yaml_reads_as_a_number_or_a_boolean_is_one_line(section, key):
    """``5:`` or ``yes:`` under space or fixed: validate and run raised a TypeError from difflib."""
    data = raw_recipe("xgboost")
    data.pop("points_to_evaluate", None)
    node = data
    for part in section.split("."):
        node = node.setdefault(part, {})
    node[key] = {"type": "uniform", "low": 0.1, "high": 0.2} if section != "fixed" else 1
    with pytest.raises(UserError) as info:
        validate_recipe_data(data, "my.yaml")
    assert str(info.value) == (
        f"my.yaml: {section}.{key}: a parameter's name must be a word, got the {type(key).__name__} {key!r} (YAML reads an "
        "unquoted number, or yes, no, on, off, as one); correct it, or quote it"
    )


# -- the schema, rule by rule -------------------------------------------------------------------------------
def mutate(name: str, path: str, value, delete: bool = False) -> dict:
    data = raw_recipe(name)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    "name, path, value, fragment",
    [
        ("xgboost", "colour", "blue", "colour: unknown key; allowed keys: name, description, family"),
        ("xgboost", "sapce", {}, "sapce: unknown key (did you mean 'space'?)"),
        ("xgboost", "space", _DELETE, "space: is required but missing"),
        ("xgboost", "family", "lightgbm", "family: unknown family 'lightgbm'; use one of random_forest, svm, xgboost, mlp"),
        ("xgboost", "tasks", ["classification", "ranking"], "tasks: must be a non-empty list"),
        ("xgboost", "tasks", [], "tasks: must be a non-empty list"),
        ("xgboost", "metric.regression", "accuracy", "metric.regression: 'accuracy' is a classification metric"),
        ("xgboost", "metric.regression", "rsme", "metric.regression: unknown metric 'rsme' (did you mean 'rmse'?)"),
        ("xgboost", "metric.regression", _DELETE, "metric.regression: is missing"),
        ("xgboost", "resource.per_step", -1, "resource.per_step: must be a positive number, got -1"),
        ("xgboost", "resource.max", 10, "resource.max: must be >= resource.per_step (50), got 10"),
        ("xgboost", "resource.unit", "trees", "resource.unit: unknown key"),
        ("xgboost", "resource.name", None, "resource.name: must be the resource's name as text (trees, boosting_rounds, epochs), got None"),
        ("xgboost", "resource.name", ["a"], "resource.name: must be the resource's name as text"),
        ("xgboost", "description", ["a", "b"], "description: must be text, got ['a', 'b']; quote it"),
        ("xgboost", "tasks", ["classification", "classification"], "tasks: names a task twice"),
        ("xgboost", "scheduler", "median", "scheduler: unknown scheduler 'median'"),
        ("xgboost", "searcher", "bohb", "searcher: unknown searcher 'bohb'"),
        ("xgboost", "num_samples", 0, "num_samples: must be a whole number >= 1, got 0"),
        ("xgboost", "num_samples", "ten", "num_samples: must be a whole number >= 1, got 'ten'"),
        ("xgboost", "num_samples", True, "num_samples: must be a whole number >= 1, got True"),
        ("xgboost", "max_concurrent", 1.5, "max_concurrent: must be a whole number >= 1"),
        ("xgboost", "early_stopping.grace_period", 0, "early_stopping.grace_period: must be a whole number of steps >= 1"),
        ("xgboost", "early_stopping.reduction_factor", 1, "early_stopping.reduction_factor: must be a number > 1"),
        ("xgboost", "fixed", ["hist"], "fixed: must be a mapping"),
        ("xgboost", "fixed.max_depth", 3, "fixed.max_depth: is also in space"),
        ("xgboost", "space", {}, "space: must be a non-empty mapping"),
        ("xgboost", "space.max_depth", 6, "space.max_depth: must be a mapping such as {type: uniform"),
        ("xgboost", "space.max_depth.type", _DELETE, "space.max_depth.type: is required"),
        ("xgboost", "space.max_depth.type", "unifrom", "space.max_depth.type: unknown type 'unifrom' (did you mean 'uniform'?)"),
        ("xgboost", "space.max_depth.low", "two", "space.max_depth.low: must be a number, got 'two'"),
        ("xgboost", "space.max_depth.low", 2.5, "space.max_depth.low: must be a whole number for randint, got 2.5"),
        ("xgboost", "space.max_depth.high", _DELETE, "space.max_depth.high: is required but missing"),
        ("xgboost", "space.max_depth.low", 11, "space.max_depth: low < high must hold, but got (low=11, high=11)"),
        ("xgboost", "space.learning_rate.low", 0, "space.learning_rate.low: must be > 0 for the log-scale type loguniform, got 0"),
        ("xgboost", "space.learning_rate.low", -0.1, "space.learning_rate.low: must be > 0"),
        ("xgboost", "space.learning_rate.grid", [], "space.learning_rate.grid: must be a non-empty list of numbers"),
        ("xgboost", "space.learning_rate.step", 0.1, "space.learning_rate.step: unknown key"),
        ("xgboost", "space.learning_rate.low", float("nan"), "space.learning_rate.low: must be a number, got nan"),
        ("mlp", "space.batch_size.values", [], "space.batch_size.values: must be a non-empty list, got []"),
        ("mlp", "space.batch_size.values", 32, "space.batch_size.values: must be a non-empty list, got 32"),
        ("mlp", "space.batch_size.low", 1, "space.batch_size.low: unknown key"),
        ("xgboost", "pbt.perturbation_interval", 0, "pbt.perturbation_interval: must be a whole number of steps >= 1"),
        ("xgboost", "pbt.mutations.gamma", {"type": "uniform", "low": 0, "high": 1}, "pbt.mutations.gamma: is not in space"),
        ("xgboost", "pbt.mutations.learning_rate", {"type": "grid", "values": [0.1]}, "pbt.mutations.learning_rate.type: grid cannot be mutated"),
        ("xgboost", "pbt.mutations.learning_rate", {"type": "loguniform", "low": 0, "high": 1}, "pbt.mutations.learning_rate.low: must be > 0"),
        ("xgboost", "space.max_depth", {"type": "qrandint", "low": 2, "high": 10, "q": 20},
         "my.yaml: space.max_depth.q: no multiple of 20 lies between low=2 and high=10, so there is no value to draw; "
         "use a smaller q, or bounds that hold a multiple of it"),
        ("xgboost", "space.subsample", {"type": "quniform", "low": 0.55, "high": 0.95, "q": 0.5},
         "my.yaml: space.subsample.q: no multiple of 0.5 lies between low=0.55 and high=0.95"),
        ("xgboost", "pbt.mutations.learning_rate", {"type": "qloguniform", "low": 0.01, "high": 0.3, "q": 0.5},
         "my.yaml: pbt.mutations.learning_rate.q: no multiple of 0.5 lies between low=0.01 and high=0.3"),
        ("xgboost", "resource.max", 70,
         "my.yaml: resource.max: 70 is not a multiple of resource.per_step 50, so trials would train to 50; use 50 or 100"),
        ("mlp", "resource.max", 62, "my.yaml: resource.max: 62 is not a multiple of resource.per_step 5, so trials would train to 60; use 60 or 65"),
        ("svm", "resource.max", 0.95,
         "my.yaml: resource.max: 0.95 is not a multiple of resource.per_step 0.1, so trials would train to 0.9; use 0.9 or 1"),
        ("svm", "resource.max", 1.2, "my.yaml: resource.max: 1.2 is above 1.0, but svm trains on a share of the training rows (1.0 is all of them); use at most 1.0"),
        ("svm", "resource.max", "2e0", "my.yaml: resource.max: 2 is above 1.0, but svm trains on a share of the training rows"),
    ],
)
def test_schema_rule_names_the_key(name, path, value, fragment):
    data = mutate(name, path, None, delete=True) if value is _DELETE else mutate(name, path, value)
    with pytest.raises(UserError) as info:
        validate_recipe_data(data, "my.yaml")
    message = str(info.value)
    assert message.startswith("my.yaml: ")
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "data, fragment",
    [
        (None, "the file is empty"),
        ([1, 2], "a recipe must be a YAML mapping of keys, got a list"),
        ("family: xgboost", "a recipe must be a YAML mapping of keys, got a str"),
        ({1: 2}, "1: unknown key"),
    ],
)
def test_recipe_that_is_not_a_mapping(data, fragment):
    with pytest.raises(UserError) as info:
        validate_recipe_data(data, "my.yaml")
    assert fragment in str(info.value)


def test_family_parameter_checks():
    family = get_family("random_forest")
    bad_name = load_recipe("random_forest", ["space.max_depth.type=randint", "fixed.max_dept=3"])
    with pytest.raises(UserError, match=r"^--set fixed\.max_dept=3: not a parameter of RandomForestClassifier; did you mean 'max_depth'\?"):
        check_family_params(bad_name, family, "classification")
    reserved = load_recipe("random_forest", ["fixed.n_estimators=3"])
    with pytest.raises(UserError, match=r"^--set fixed\.n_estimators=3: raysweep sets n_estimators itself"):
        check_family_params(reserved, family, "classification")
    rejected = load_recipe("random_forest", ["fixed.criterion=gini_impurity"])
    with pytest.raises(UserError, match=r"^--set fixed\.criterion=gini_impurity: the model rejects these parameters \(.*criterion"):
        check_family_params(rejected, family, "classification")
    whole = load_recipe("xgboost", ["resource.per_step=2.5"])
    with pytest.raises(UserError, match=r"^--set resource\.per_step=2\.5: xgboost grows in whole boosting_rounds, got 2\.5"):
        check_family_params(whole, get_family("xgboost"), "regression")
    with pytest.raises(UserError, match=r"unknown model family 'catboost'; use one of random_forest, svm, xgboost, mlp"):
        get_family("catboost")


@pytest.mark.parametrize(
    "recipe, overrides, message",
    [
        # every choice, not only the first
        ("random_forest", ["space.max_depth={type: choice, values: [4, 8, -1]}"],
         "--set space.max_depth={type: choice, values: [4, 8, -1]}: space.max_depth.values: -1 is rejected by RandomForestClassifier (The 'max_depth' "
         "parameter of RandomForestClassifier must be an int in the range [1, inf) or None. Got -1 instead.); fix or remove it"),
        ("mlp", ["space.hidden_layer_sizes.values=[[16],[0,8],32]"],
         "--set space.hidden_layer_sizes.values=[[16],[0,8],32]: [0, 8] is rejected by MLPClassifier (hidden_layer_sizes must be "
         "whole numbers > 0, got [0, 8]); fix or remove it"),
        ("mlp", ["space.batch_size.values=[32, 64, 0]"],
         "--set space.batch_size.values=[32, 64, 0]: 0 is rejected by MLPClassifier (The 'batch_size' parameter of MLPClassifier"),
        # every grid point
        ("svm", ["space.C.grid=[0.1, 1.0, -10.0]"],
         "--set space.C.grid=[0.1, 1.0, -10.0]: -10.0 is rejected by SVC (The 'C' parameter of SVC must be a float in the range "
         "(0.0, inf]. Got -10.0 instead.); fix or remove it"),
        # both ends of a range: high, and the largest value an integer range draws
        ("random_forest", ["space.max_features.high=3.0"],
         "--set space.max_features.high=3.0: 3.0 is rejected by RandomForestClassifier (The 'max_features' parameter of "
         "RandomForestClassifier must be an int in the range [1, inf), a float in the range (0.0, 1.0]"),
        ("random_forest", ["space.min_samples_leaf={type: uniform, low: 0.1, high: 1.0}"],
         "--set space.min_samples_leaf={type: uniform, low: 0.1, high: 1.0}: space.min_samples_leaf.high: 1.0 is rejected by RandomForestClassifier "
         "(The 'min_samples_leaf' parameter of RandomForestClassifier must be an int in the range [1, inf) or a float in the range "
         "(0.0, 1.0). Got 1.0 instead.); lower high"),
        ("random_forest", ["space.max_depth={type: qrandint, low: 0, high: 33, q: 4}"],
         "--set space.max_depth={type: qrandint, low: 0, high: 33, q: 4}: space.max_depth.low: 0 is rejected by RandomForestClassifier"),
        ("random_forest", ["space.max_depth={type: qrandint, low: -3, high: 33, q: 4}"],
         "--set space.max_depth={type: qrandint, low: -3, high: 33, q: 4}: space.max_depth.low: 0, the lowest value the range draws, is rejected by "
         "RandomForestClassifier"),
        # a PBT mutation's range is a range of the space too
        ("random_forest", ["pbt.mutations.max_features.high=2.0"],
         "--set pbt.mutations.max_features.high=2.0: 2.0 is rejected by RandomForestClassifier (The 'max_features' parameter"),
    ],
)
def test_every_value_the_space_can_give_is_checked(recipe, overrides, message):
    loaded = load_recipe(recipe, overrides + ["points_to_evaluate=[]"])
    with pytest.raises(UserError) as info:
        check_family_params(loaded, get_family(loaded.family), "classification")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["space.max_depth.type=uniform"],
         "--set space.max_depth.type=uniform: 18.5, a value uniform draws, is rejected by RandomForestClassifier (The 'max_depth' "
         "parameter of RandomForestClassifier must be an int in the range [1, inf) or None. Got 18.5 instead.); use type: randint"),
        (["space.max_depth.type=loguniform"],
         "--set space.max_depth.type=loguniform: 11.4891, a value loguniform draws, is rejected by RandomForestClassifier (The "
         "'max_depth' parameter of RandomForestClassifier must be an int in the range [1, inf) or None. Got 11.4891 instead.); "
         "use type: lograndint"),
        (["space.max_depth={type: quniform, low: 4, high: 33, q: 1}"],
         "--set space.max_depth={type: quniform, low: 4, high: 33, q: 1}: space.max_depth.type: 18.0, a value quniform draws, is "
         "rejected by RandomForestClassifier (The 'max_depth' parameter of RandomForestClassifier must be an int in the range "
         "[1, inf) or None. Got 18.0 instead.); use type: qrandint"),
        # Ends the grid's floats hit first (2.0): their fix was "narrow the range", which cannot help.
        (["space.max_depth={type: uniform, low: 2, high: 10}"],
         "--set space.max_depth={type: uniform, low: 2, high: 10}: space.max_depth.type: 6.0, a value uniform draws, is rejected by "
         "RandomForestClassifier (The 'max_depth' parameter of RandomForestClassifier must be an int in the range [1, inf) or None. "
         "Got 6.0 instead.); use type: randint"),
    ],
)
def test_a_float_range_on_an_integer_parameter_is_refused(overrides, message):
    """The ends of [4, 33] are whole numbers, so the model's own check passed them; Ray Tune draws floats between them."""
    recipe = load_recipe("random_forest", overrides)
    with pytest.raises(UserError) as info:
        check_recipe(recipe)
    assert str(info.value) == message


def test_a_range_too_wide_for_a_parameter_that_takes_floats_names_its_set_and_the_range():
    """max_features takes floats up to 1: the error named the recipe file (not the --set that widened the range) and
    told to use type: randint."""
    with pytest.raises(UserError) as info:
        check_recipe(load_recipe("random_forest", ["space.max_features.high=2"]))
    message = str(info.value)
    assert message.startswith(
        "--set space.max_features.high=2: space.max_features: 1.05, a value uniform draws, is rejected by RandomForestClassifier "
        "(The 'max_features' parameter of RandomForestClassifier must be an int in the range [1, inf), a float in the range (0.0, 1.0]"
    ), message
    assert message.endswith("Got 1.05 instead.); narrow the range to the values the model takes, or use type: randint for whole numbers"), message


def test_every_value_is_checked_with_the_others_at_valid_values(tmp_path):
    """Two bad values, each the only bad one of its parameter: the first named is the first in the recipe, and the
    error is about it alone."""
    mine = tmp_path / "two.yaml"
    mine.write_text("family: random_forest\ntasks: [classification]\nmetric: accuracy\nresource: {name: trees, per_step: 10, max: 30}\n"
                    "space:\n  criterion: {type: choice, values: [gini, entropy, log_los]}\n"
                    "  max_features: {type: uniform, low: 0.5, high: 3.0}\n")
    with pytest.raises(UserError) as info:
        check_recipe(load_recipe(mine))
    assert str(info.value).startswith(f"{mine}: space.criterion.values: 'log_los' is rejected by RandomForestClassifier (")
    assert "max_features" not in str(info.value)
    mine.write_text(mine.read_text().replace("log_los", "log_loss"))
    with pytest.raises(UserError, match=r": space\.max_features\.high: 3\.0 is rejected by RandomForestClassifier \(.*; lower high$"):
        check_recipe(load_recipe(mine))
    mine.write_text(mine.read_text().replace("high: 3.0", "high: 1.0"))
    check_recipe(load_recipe(mine))


@pytest.mark.parametrize(
    "text, path, value",
    [
        ("space:\n  alpha: {type: loguniform, low: 1e-5, high: 1e-2, grid: [1e-4, 1.0e-3]}\n", ("space", "alpha"),
         {"type": "loguniform", "low": 1e-5, "high": 1e-2, "grid": [1e-4, 1e-3]}),
        ("space:\n  alpha: {type: choice, values: [1e-5, 1.0e+2]}\n", ("space", "alpha"), {"type": "choice", "values": [1e-5, 100.0]}),
        ("fixed: {tol: 1e-4, solver: adam}\nspace:\n  alpha: {type: uniform, low: 0, high: 1}\n", ("fixed",), {"tol": 1e-4, "solver": "adam"}),
        ("space:\n  alpha: {type: quniform, low: 0, high: 1, q: 5E-2}\n", ("space", "alpha", "q"), 0.05),
        ("space:\n  alpha: {type: uniform, low: 0, high: 1}\npoints_to_evaluate: [{alpha: 5e-1}]\n", ("points_to_evaluate",), [{"alpha": 0.5}]),
    ],
)
def test_numbers_in_scientific_notation_are_numbers(tmp_path, text, path, value):
    """YAML 1.1 reads 1e-5 (no dot) and 1.0e5 (no exponent sign) as strings; a recipe author means numbers."""
    mine = tmp_path / "sci.yaml"
    mine.write_text("family: mlp\ntasks: [classification]\nmetric: accuracy\nresource: {name: epochs, per_step: 5e0, max: 1e1}\n" + text)
    recipe = load_recipe(mine)
    node = yaml.safe_load(recipe.to_yaml())
    for part in path:
        node = node[part]
    assert node == value
    assert (recipe.resource.per_step, recipe.resource.max) == (5.0, 10.0)
    check_recipe(recipe)


def test_numbers_in_scientific_notation_from_the_command_line():
    recipe = load_recipe("mlp", ["space.alpha.low=1e-7", "space.alpha.grid=[1e-5, 1e-3]", "fixed.tol=1e-4", "resource.max=6e1"])
    assert recipe.space["alpha"]["low"] == 1e-7 and recipe.space["alpha"]["grid"] == [1e-5, 1e-3]
    assert recipe.fixed["tol"] == 1e-4 and recipe.resource.max == 60.0
    check_recipe(recipe)
    # Still not numbers: words, and what overflows a float.
    with pytest.raises(UserError, match=r"^--set space\.alpha\.low=1e400: must be a number, got '1e400'$"):
        load_recipe("mlp", ["space.alpha.low=1e400"])
    assert load_recipe("mlp", ["fixed.activation=relu"]).fixed["activation"] == "relu"


def test_whole_numbers_in_scientific_notation_are_ints(tmp_path):
    """1e1 spells the number 10: an integer parameter takes it, as it takes 10."""
    recipe = load_recipe("random_forest", ["fixed.max_leaf_nodes=1e1", "space.max_depth.high=4E1", "space.max_features.low=1e-1"])
    assert recipe.fixed == {"max_leaf_nodes": 10} and type(recipe.fixed["max_leaf_nodes"]) is int
    assert recipe.space["max_depth"]["high"] == 40 and type(recipe.space["max_depth"]["high"]) is int
    assert recipe.space["max_features"]["low"] == 0.1
    check_recipe(recipe)
    mine = tmp_path / "sci.yaml"
    mine.write_text("family: random_forest\ntasks: [classification]\nmetric: accuracy\nresource: {name: trees, per_step: 2e1, max: 2E2}\n"
                    "fixed: {max_leaf_nodes: 2E3, min_impurity_decrease: 1e-5, min_samples_split: 1.5e1}\n"
                    "space:\n  max_depth: {type: randint, low: 2e0, high: 1e1, grid: [4e0, 8e0]}\n")
    recipe = load_recipe(mine)
    assert recipe.fixed == {"max_leaf_nodes": 2000, "min_impurity_decrease": 1e-5, "min_samples_split": 15}
    assert [type(v) for v in recipe.fixed.values()] == [int, float, int]
    assert recipe.space["max_depth"] == {"type": "randint", "low": 2, "high": 10, "grid": [4, 8]}
    assert (recipe.resource.per_step, recipe.resource.max) == (20, 200)
    check_recipe(recipe)
    assert validate_recipe_data({**raw_recipe("svm"), "fixed": {"tol": "1e23"}}, "my.yaml").fixed["tol"] == 10**23
    # The whole numbers of the recipe's own keys too (num_samples: 1e1 was "must be a whole number").
    counts = {**raw_recipe("random_forest"), "num_samples": "1e1", "max_concurrent": "2e0",
              "early_stopping": {"grace_period": "1e0", "reduction_factor": 3}, "pbt": {"perturbation_interval": "2e0"}}  # fmt: skip
    recipe = validate_recipe_data(counts, "my.yaml")
    assert (recipe.num_samples, recipe.max_concurrent, recipe.grace_period, recipe.perturbation_interval) == (10, 2, 1, 2)
    assert all(type(v) is int for v in (recipe.num_samples, recipe.max_concurrent, recipe.grace_period, recipe.perturbation_interval))


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("space.max_depth", {"type": "randint", "low": 2, "high": 100000000000000000000000},
         "my.yaml: space.max_depth.high: must fit in a 64-bit integer for randint, got 100000000000000000000000; "
         "use a bound between -9223372036854775808 and 9223372036854775807"),
        ("space.max_depth", {"type": "qrandint", "low": -2**63 - 1, "high": 8, "q": 2},
         "my.yaml: space.max_depth.low: must fit in a 64-bit integer for qrandint, got -9223372036854775809; "
         "use a bound between -9223372036854775808 and 9223372036854775807"),
        ("space.min_samples_leaf", {"type": "lograndint", "low": 1, "high": "1e30"},
         "my.yaml: space.min_samples_leaf.high: must fit in a 64-bit integer for lograndint, got 1000000000000000000000000000000; "
         "use a bound between -9223372036854775808 and 9223372036854775807"),
        ("space.max_depth", {"type": "randint", "low": 2, "high": 8, "grid": [4, 2**63]},
         "my.yaml: space.max_depth.grid: 9223372036854775808 does not fit in a 64-bit integer; "
         "use grid points between -9223372036854775808 and 9223372036854775807"),
        ("pbt.mutations.min_samples_leaf", {"type": "randint", "low": 1, "high": 1e20},
         "my.yaml: pbt.mutations.min_samples_leaf.high: must fit in a 64-bit integer for randint, got 1e+20; "
         "use a bound between -9223372036854775808 and 9223372036854775807"),
    ],
)
def test_integer_bounds_must_fit_in_64_bits(path, value, message):
    """Ray Tune draws integers with NumPy's int64: a larger bound passed every check and crashed the sweep after Ray started."""
    with pytest.raises(UserError) as info:
        validate_recipe_data(mutate("random_forest", path, value), "my.yaml")
    assert str(info.value) == message
    largest = mutate("random_forest", "space.max_depth", {"type": "randint", "low": -2**63, "high": 2**63 - 1})
    assert validate_recipe_data(largest, "my.yaml").space["max_depth"]["high"] == 2**63 - 1


# -- the search-space DSL ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, domain_class, sampler",
    [
        ({"type": "uniform", "low": 0.1, "high": 1.0}, "Float", "Uniform"),
        ({"type": "quniform", "low": 0, "high": 1, "q": 0.25}, "Float", "Quantized"),
        ({"type": "loguniform", "low": 1e-4, "high": 1.0}, "Float", "LogUniform"),
        ({"type": "qloguniform", "low": 1, "high": 100, "q": 1}, "Float", "Quantized"),
        ({"type": "randint", "low": 2, "high": 9}, "Integer", "Uniform"),
        ({"type": "qrandint", "low": 2, "high": 10, "q": 2}, "Integer", "Quantized"),
        ({"type": "lograndint", "low": 1, "high": 33}, "Integer", "LogUniform"),
        ({"type": "choice", "values": [[64], [64, 64]]}, "Categorical", "Uniform"),
    ],
)
def test_every_space_type_maps_to_its_tune_domain(spec, domain_class, sampler):
    domain = space.to_domain(spec)
    assert type(domain).__name__ == domain_class
    assert type(domain.get_sampler()).__name__.lstrip("_") == sampler
    samples = domain.sample(size=200, random_state=0)
    if "values" in spec:
        assert all(s in spec["values"] for s in samples)
        return
    high_inclusive = spec["high"] - 1 if spec["type"] in ("randint", "lograndint") else spec["high"]
    assert min(samples) >= spec["low"] and max(samples) <= high_inclusive
    if domain_class == "Integer":
        assert all(float(s).is_integer() for s in samples)
    if "q" in spec:
        assert all(abs(s / spec["q"] - round(s / spec["q"])) < 1e-9 for s in samples)


def test_space_types_are_closed():
    assert set(SPACE_TYPES) == {"uniform", "quniform", "loguniform", "qloguniform", "randint", "qrandint", "lograndint", "choice", "grid"}
    assert space.param_space({"x": {"type": "grid", "values": [1, 2]}}, "random") == {"x": {"grid_search": [1, 2]}}


@pytest.mark.parametrize(
    "spec, points",
    [
        ({"type": "grid", "values": ["a", "b"]}, ["a", "b"]),
        ({"type": "choice", "values": [32, 64, 128]}, [32, 64, 128]),
        ({"type": "uniform", "low": 0.1, "high": 1.0, "grid": [0.2, 0.5]}, [0.2, 0.5]),
        ({"type": "uniform", "low": 0.0, "high": 1.0}, [0.0, 0.5, 1.0]),
        ({"type": "loguniform", "low": 1e-4, "high": 1.0}, [1e-4, 0.01, 1.0]),
        ({"type": "randint", "low": 2, "high": 11}, [2, 6, 10]),  # the upper bound is exclusive
        ({"type": "randint", "low": 1, "high": 2}, [1]),
        ({"type": "lograndint", "low": 1, "high": 101}, [1, 10, 100]),
        ({"type": "qrandint", "low": 0, "high": 10, "q": 5}, [0, 5, 10]),
        ({"type": "quniform", "low": 0.0, "high": 1.0, "q": 0.3}, [0.0, 0.6, 0.9]),
        # multiples of q within the bounds, as Ray Tune draws them
        ({"type": "qrandint", "low": 3, "high": 10, "q": 5}, [5, 10]),
        ({"type": "quniform", "low": 0.1, "high": 1.0, "q": 0.25}, [0.25, 0.5, 1.0]),
    ],
)
def test_grid_points(spec, points):
    assert space.grid_points(spec) == pytest.approx(points)


def test_grid_size_is_the_product_of_the_points():
    recipe = load_recipe("svm")
    assert space.grid_size(recipe.space) == 4 * 4
    assert space.grid_size(load_recipe("random_forest").space) == 27


def test_hyperopt_refuses_a_grid_parameter():
    with pytest.raises(UserError, match=r"space\.depth\.type: grid cannot be searched by hyperopt; use type: choice"):
        space.param_space({"depth": {"type": "grid", "values": [1, 2]}}, "hyperopt", "mine.yaml")


def test_pbt_mutations_are_lists_for_choices_and_domains_for_ranges():
    recipe = load_recipe("mlp")
    mutations = space.mutations({**recipe.mutations, "batch_size": {"type": "choice", "values": [32, 64]}})
    assert mutations["batch_size"] == [32, 64]
    assert type(mutations["alpha"]).__name__ == "Float"


# -- fuzzing the loader --------------------------------------------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: YAML reads 400-digit integers as Python ints
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["uniform", "loguniform", "randint", "choice", "grid", "xgboost", "mlp", "classification",
                     "regression", "accuracy", "rmse", "asha", "pbt", "hyperopt", "low", "high", "values", "type"]),
)
yamlish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.sampled_from(
            ["family", "tasks", "metric", "resource", "space", "type", "low", "high", "values", "grid", "q", "fixed",
             "pbt", "mutations", "name", "per_step", "max", "points_to_evaluate"])), children, max_size=5),
    ),
    max_leaves=20,
)


def _paths(node, prefix=()):
    """Every key path in a nested recipe (dicts and list items)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


@st.composite
def mutated_recipes(draw):
    data = raw_recipe(draw(st.sampled_from(BUNDLED)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "insert"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "insert" and isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(yamlish)
        else:
            parent[path[-1]] = draw(yamlish)
    return data


def _check_outcome(data):
    try:
        recipe = validate_recipe_data(data, "fuzz.yaml")
    except UserError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml"), message
        return
    # Whatever the schema accepts must be usable: steps, a Tune space, grid points.
    assert recipe.resource.max_steps >= 1
    assert recipe.to_yaml()
    for spec in recipe.space.values():
        assert space.grid_points(spec)
    for searcher in ("random", "grid"):
        space.param_space(recipe.space, searcher, recipe.source)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yamlish)
def test_fuzz_any_yaml_value_gives_a_recipe_or_a_user_error(data):
    _check_outcome(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_recipes())
def test_fuzz_mutated_recipe_gives_a_recipe_or_a_user_error(data):
    _check_outcome(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_fuzz_recipe_file_text(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        load_recipe(str(path))
    except UserError as exc:
        assert str(exc).startswith(str(path))


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(BUNDLED),
    st.lists(st.one_of(st.sampled_from(["space", "fixed", "pbt", "mutations", "resource", "max", "max_depth", "alpha",
                                        "low", "high", "type", "values", "grid", "metric", "tasks", "0"]),
                       st.text(max_size=6)), max_size=4),
    st.one_of(st.text(max_size=20), st.sampled_from(["[]", "{}", "null", "-1", "1e400", "[1, 2]", "{type: choice}", "0.5"])),
)
def test_fuzz_set_overrides(name, parts, value):
    try:
        recipe = load_recipe(name, [".".join(parts) + "=" + value])
    except UserError as exc:
        # Either the override itself is wrong, or the recipe it makes breaks a rule of the schema.
        assert str(exc).startswith(("--set ", str(bundled_recipes_dir()))), str(exc)
        return
    assert recipe.family == name


@pytest.mark.parametrize(
    ("overrides", "flags", "message"),
    [
        ([], {"searcher": "bayesopt"}, "--searcher bayesopt: unknown searcher (for bayesopt use gp); use one of"),
        (["searcher=BayesOpt"], {}, "--set searcher=BayesOpt: unknown searcher 'BayesOpt' (for BayesOpt use gp); use one of"),
        ([], {"searcher": "tpe"}, "--searcher tpe: unknown searcher (for tpe use optuna or hyperopt); use one of"),
        ([], {"scheduler": "successive-halving"}, "--scheduler successive-halving: unknown scheduler (for successive-halving use asha)"),
        (["scheduler=shha"], {}, "--set scheduler=shha: unknown scheduler 'shha' (did you mean 'asha'?)"),
    ],
)
def test_a_strategy_named_as_other_tools_name_it_says_raysweeps_name(overrides, flags, message):
    """`--set searcher=bayesopt` suggested hyperopt (by spelling); `--searcher bayesopt` nothing."""
    with pytest.raises(UserError) as info:
        check_recipe(load_recipe("xgboost", overrides), **flags)
    assert str(info.value).startswith(message), str(info.value)


def test_set_gives_a_recipe_the_early_stopping_or_pbt_settings_it_left_out(tmp_path):
    """--set early_stopping.grace_period=2 on a recipe without early_stopping said: no key early_stopping (did you
    mean 'early_stopping'?)."""
    mine = tmp_path / "plain.yaml"
    mine.write_text("family: random_forest\ntasks: [classification]\nmetric: accuracy\nresource: {name: trees, per_step: 10, max: 30}\n"
                    "space:\n  max_depth: {type: randint, low: 2, high: 8}\n")
    recipe = load_recipe(mine, ["early_stopping.grace_period=2", "pbt.perturbation_interval=2"])
    assert recipe.raw["early_stopping"] == {"grace_period": 2} and recipe.raw["pbt"]["perturbation_interval"] == 2
    with pytest.raises(UserError, match=r"unknown key \(did you mean 'grace_period'\?\)"):
        load_recipe(mine, ["early_stopping.grace_perio=2"])


def test_a_recipe_name_that_is_a_file_here_without_its_suffix_names_the_file(tmp_path, monkeypatch):
    """validate my_mlp suggested the prebuilt 'mlp', not ./my_mlp.yaml beside it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_mlp.yaml").write_text("name: my_mlp\n")
    with pytest.raises(UserError) as info:
        load_recipe("my_mlp")
    assert str(info.value).startswith("unknown recipe 'my_mlp' (did you mean the file my_mlp.yaml?); prebuilt recipes: ")


def test_narrowing_a_recipes_tasks_leaves_the_other_tasks_metric_unused():
    """--set tasks=classification on a recipe of both tasks was refused (metric.regression: unknown key), with a fix
    --set cannot make (removing a key)."""
    recipe = load_recipe("xgboost", ["tasks=[classification]"])
    assert tuple(recipe.tasks) == ("classification",) and recipe.metric == {"classification": "accuracy"}
    with pytest.raises(UserError, match=r"metric.regresion: unknown key \(did you mean 'regression'\?\)"):
        load_recipe("xgboost", ["metric={classification: accuracy, regresion: rmse}"])
