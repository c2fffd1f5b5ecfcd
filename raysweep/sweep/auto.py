"""``raysweep run auto``: several recipes' model families compete in one sweep.

The search space is conditional: one ``model`` choice whose values are per-family dicts, each
holding ``family`` (the recipe's name) and, under that name, the recipe's own space; a trial's
config is ``{"model": {"family": "xgboost", "xgboost": {"max_depth": 6, ...}}}``. (HyperOpt
labels a parameter by its path alone, so two families' ``max_depth`` need paths of their own.) Ray Tune's random search and
HyperOpt take such a nested choice as it is; Optuna takes it as a define-by-run function
(:class:`OptunaSpace`), for its distributions hold plain values only.

Early stopping compares the families on one scale: the share of each recipe's own
``resource.max``. The sweep has :func:`common_steps` steps (the fewest steps of any member
recipe), and common step ``k`` of ``S`` trains a family to its own step ``ceil(k * n / S)`` of
``n``: at least ``k / S`` of its resource. ASHA and HyperBand then put every family's rungs at the
same steps, one scheduler per family (:func:`family_of` names a trial's, for
:class:`raysweep.strategies._per_group.PerGroupScheduler`). Nothing here imports Ray.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import Any

from raysweep.errors import UserError
from raysweep.families import Family
from raysweep.families._resource import Resource
from raysweep.recipes import Recipe, bundled_recipe_names, load_recipe, quantized_bounds
from raysweep.strategies import registry as strategies

#: the recipe name that means "every member recipe competes"
AUTO = "auto"
#: the config key of the family choice, and the key of the family's name inside each choice
MODEL_KEY = "model"
FAMILY_KEY = "family"
#: the common resource: the share of each member recipe's ``resource.max``
RESOURCE_NAME = "resource_fraction"


def is_auto(recipe: Any) -> bool:
    return isinstance(recipe, str) and recipe.lower() == AUTO


@dataclass(frozen=True)
class Member:
    """One competing recipe and the family that trains it."""

    recipe: Recipe
    family: Family

    @property
    def name(self) -> str:
        return self.recipe.name


@dataclass(frozen=True)
class AutoPlan:
    """The members of an ``auto`` sweep and the common scale of their resources."""

    members: tuple[Member, ...]
    steps: int
    recipe: Recipe = field(repr=False)

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)


@dataclass(frozen=True)
class AutoSpec:
    """What an auto trial needs besides its config: the common steps, each member's own
    ``TrialSpec`` (its family, resource and fixed values) and the key of its encoded data."""

    steps: int
    members: dict[str, Any]
    #: member name -> the key of its trial data (families that encode alike share it)
    data_keys: dict[str, str]


def member_names(recipes: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``--recipes a,b`` (or a list) as names; None: every prebuilt recipe."""
    if recipes is None:
        return bundled_recipe_names()
    if isinstance(recipes, str):
        recipes = recipes.split(",")
    names = [str(name).strip() for name in recipes if str(name).strip()]
    if not names:
        raise UserError(f"--recipes {','.join(recipes)!r}: name at least one recipe, e.g. --recipes xgboost,random_forest")
    return names


def load_members(
    recipes: str | list[str] | tuple[str, ...] | None, task: str, scheduler: str | None, searcher: str | None
) -> tuple[list[Recipe], list[Recipe]]:
    """The member recipes that fit ``task``, each checked, and those that do not (left out); raises
    :class:`UserError` for a name that is no recipe, two recipes of one name, or none fitting the task."""
    explicit = recipes is not None
    loaded: list[Recipe] = []
    for name in member_names(recipes):
        try:
            recipe = load_recipe(name)
        except UserError as exc:
            raise UserError(f"--recipes: {exc}") from None
        grid = [param for param, spec in recipe.space.items() if spec["type"] == "grid"]
        if grid:
            # A grid is walked by grid search, which auto refuses; another searcher would keep its first value.
            raise UserError(
                f"--recipes: recipe {recipe.name!r} has space.{grid[0]} of type grid, which auto cannot search; make it a choice with the same values"
            )
        if any(r.name == recipe.name for r in loaded):
            raise UserError(f"--recipes: recipe {recipe.name!r} is listed twice (or two files share its name); each family needs a name of its own")
        loaded.append(recipe)
    fitting = [r for r in loaded if task in r.tasks]
    if not fitting:
        listed = ", ".join(f"{r.name} ({'/'.join(r.tasks)})" for r in loaded)
        raise UserError(f"{'--recipes' if explicit else 'auto'}: no recipe fits a {task} task ({listed}); list a recipe that supports {task}")
    check_strategies(scheduler, searcher)
    return fitting, [r for r in loaded if task not in r.tasks]


def check_strategies(scheduler: str | None, searcher: str | None) -> None:
    """Refuse a scheduler or searcher that cannot run families side by side, saying why."""
    if scheduler and strategies.get_scheduler(scheduler).population:
        raise UserError(
            f"--scheduler {scheduler}: auto's trials belong to different families with different hyperparameters, "
            "so PBT members cannot copy each other; use --scheduler asha, hyperband or fifo"
        )
    if searcher and not strategies.get_searcher(searcher).conditional:
        able = [name for name, s in strategies.SEARCHERS.items() if s.conditional]
        raise UserError(f"--searcher {searcher}: cannot search auto's family choice with per-family sub-spaces; use --searcher {', '.join(able)}")


def common_steps(recipes: list[Recipe]) -> int:
    """How many steps an auto trial takes: the fewest of any member (no family's steps are split)."""
    return min(r.resource.max_steps for r in recipes)


def family_step(step: int, steps: int, family_steps: int) -> int:
    """The family's own step at common step ``step`` of ``steps``: at least the same share of its resource."""
    return min(family_steps, math.ceil(step * family_steps / steps - 1e-9))


def auto_recipe(recipes: list[Recipe], task: str, families: list[Family]) -> AutoPlan:
    """The sweep-wide recipe of an auto sweep: its resource is the common scale, its space the family choice."""
    steps = common_steps(recipes)
    names = [r.name for r in recipes]
    metrics = {t: recipes[0].metric[t] for t in recipes[0].tasks if t == task}
    raw = {"name": AUTO, "family": AUTO, "recipes": {r.name: r.raw for r in recipes}}
    recipe = Recipe(
        name=AUTO,
        family=AUTO,
        tasks=(task,),
        metric=metrics,
        resource=Resource(RESOURCE_NAME, 1.0 / steps, 1.0),
        space={FAMILY_KEY: {"type": "choice", "values": names}},
        scheduler="asha",
        searcher="hyperopt",
        num_samples=max(r.num_samples for r in recipes),
        description="Every member recipe's family in one sweep",
        # Rungs at 1/S, 3/S, 9/S of every family's resource.
        grace_period=1,
        reduction_factor=3.0,
        source=AUTO,
        raw=raw,
    )
    members = tuple(Member(r, f) for r, f in zip(recipes, families))
    return AutoPlan(members=members, steps=steps, recipe=recipe)


def to_record(auto: AutoPlan) -> dict[str, Any]:
    """What the sweep record keeps to rebuild the plan on resume: each member recipe as resolved
    (its source and content) and the common scale."""
    members = [{"name": m.name, "source": m.recipe.source, "recipe": m.recipe.raw} for m in auto.members]
    return {"members": members, "steps": auto.steps}


def is_auto_record(record: dict[str, Any]) -> bool:
    """Whether a sweep record is an auto sweep's."""
    return (record.get("recipe") or {}).get("family") == AUTO


def from_record(record: dict[str, Any]) -> AutoPlan:
    """The auto plan a sweep record holds: its member recipes as they were, on the same common scale.

    Raises :class:`UserError` for a record that lacks them (written before resume took auto sweeps).
    """
    from raysweep.families import get_family
    from raysweep.recipes import validate_recipe_data

    saved = record.get("auto")
    if not saved:
        raise UserError(
            f"sweep {record['name']} is an auto sweep whose record predates resuming auto sweeps; start it again with raysweep run auto "
            f"(its trials so far are in MLflow; raysweep sync {shlex.quote(record['name'])} writes any that are missing)"
        )
    recipes = [validate_recipe_data(m["recipe"], m["source"], m["name"]) for m in saved["members"]]
    plan = auto_recipe(recipes, record["options"]["task"], [get_family(r.family) for r in recipes])
    if plan.steps != saved["steps"]:  # the scale is derived from the members: a changed rule would mix two scales
        raise UserError(f"sweep {record['name']}: its members now make {plan.steps} common steps, not {saved['steps']}; start a new sweep")
    return plan


def starting_points(auto: AutoPlan, searcher: str) -> list[dict[str, Any]]:
    """Every member recipe's ``points_to_evaluate`` (members in order), in the terms ``searcher`` takes them:
    a config of the conditional space (random search); HyperOpt's labels, a choice by its index (Ray's
    own conversion matches a choice by value, and a choice of sub-spaces has none); Optuna's flat
    names (:class:`OptunaSpace`). None for a searcher that takes no starting points."""
    if strategies.get_searcher(searcher).exhaustive:
        return []
    points = []
    for index, member in enumerate(auto.members):
        for point in member.recipe.points_to_evaluate:
            if searcher == "optuna":
                points.append({FAMILY_KEY: member.name, **{f"{member.name}.{k}": _optuna_value(member.recipe.space[k], v) for k, v in point.items()}})
            elif searcher in HYPEROPT_SEARCHERS:
                labelled = {f"{MODEL_KEY}/{member.name}/{k}": _choice_index(member.recipe.space[k], v) for k, v in point.items()}
                points.append({MODEL_KEY: index, **labelled})
            else:
                points.append({MODEL_KEY: {FAMILY_KEY: member.name, member.name: dict(point)}})
    return points


#: the searchers built on Ray's ``HyperOptSearch`` (their starting points go by HyperOpt's labels)
HYPEROPT_SEARCHERS = ("hyperopt", "anneal")


def _choice_index(spec: dict[str, Any], value: Any) -> Any:
    """A starting point's value as HyperOpt holds it: a choice by its index, a number as it is."""
    return list(spec["values"]).index(value) if spec["type"] in ("choice", "grid") else value


def _optuna_value(spec: dict[str, Any], value: Any) -> Any:
    """A starting point's value as :class:`OptunaSpace` suggests it: a choice of lists by its index."""
    if spec["type"] in ("choice", "grid") and not _plain_values(spec["values"]):
        return list(spec["values"]).index(value)
    return value


def searcher(auto: AutoPlan, name: str, metric: str, mode: str, seed: int, max_concurrent: int) -> Any:
    """The search algorithm ``name`` over the family choice, trying every member's starting points first."""
    points = starting_points(auto, name)
    if name == "optuna":
        from raysweep.strategies._optuna import build_conditional

        return build_conditional(metric, mode, seed, max_concurrent, OptunaSpace(auto), points)
    if name in HYPEROPT_SEARCHERS:
        from raysweep.strategies._hyperopt import build_conditional as hyperopt_search

        return hyperopt_search(seed, max_concurrent, points, anneal=name == "anneal")
    from raysweep.strategies._random import build_conditional as random_search

    return random_search(seed, max_concurrent, points)


def param_space(auto: AutoPlan, searcher: str) -> dict[str, Any]:
    """The conditional Ray Tune space: ``{"model": tune.choice([{"family": name, name: space}, ...])}``.

    Optuna gets its space from :class:`OptunaSpace` instead, so its ``param_space`` is empty.
    """
    from ray import tune

    from raysweep import space

    if searcher == "optuna":
        return {}
    choices = []
    for member in auto.members:
        domains = space.param_space(member.recipe.space, searcher, member.recipe.source)
        choices.append({FAMILY_KEY: member.name, member.name: domains})
    return {MODEL_KEY: tune.choice(choices)}


class OptunaSpace:
    """Optuna's define-by-run function for the family choice: each family's parameters are named
    ``<family>.<name>``, so two families' ``max_depth`` keep their own distributions. (A class,
    not a closure: Tune pickles the searcher with its space.)"""

    def __init__(self, auto: AutoPlan) -> None:
        self.entries = {m.name: dict(m.recipe.space) for m in auto.members}

    def __call__(self, trial: Any) -> dict[str, Any]:
        name = trial.suggest_categorical(FAMILY_KEY, list(self.entries))
        for param, spec in self.entries[name].items():
            _suggest(trial, f"{name}.{param}", spec)
        return {}

    def config(self, params: dict[str, Any]) -> dict[str, Any]:
        """Optuna's flat suggestion as the nested config every searcher gives."""
        name = params[FAMILY_KEY]
        prefix = f"{name}."
        model: dict[str, Any] = {}
        for key, value in params.items():
            if key.startswith(prefix):
                param = key[len(prefix):]
                spec = self.entries[name][param]
                if spec["type"] in ("choice", "grid") and not _plain_values(spec["values"]):
                    value = spec["values"][value]
                model[param] = value
        return {MODEL_KEY: {FAMILY_KEY: name, name: model}}


def _plain_values(values: list[Any]) -> bool:
    """Whether Optuna can hold these choices as they are (else it holds their indices)."""
    return all(v is None or isinstance(v, (bool, int, float, str)) for v in values)


def _suggest(trial: Any, name: str, spec: dict[str, Any]) -> Any:
    kind = spec["type"]
    if kind in ("choice", "grid"):
        values = list(spec["values"])
        # Optuna's categories are plain values; a list (an MLP's layer sizes) goes by its index.
        if _plain_values(values):
            return trial.suggest_categorical(name, values)
        return trial.suggest_categorical(name, list(range(len(values))))
    low, high = spec["low"], spec["high"]
    if "q" in spec:  # multiples of q, as the other searchers draw them (space.to_domain); Optuna counts steps from low
        low, high = quantized_bounds(spec)
    log = kind.startswith("log") or kind.startswith("qlog")
    if "int" in kind:
        high = high - 1 if kind in ("randint", "lograndint") else high
        return trial.suggest_int(name, int(low), int(high), step=int(spec.get("q", 1)), log=log)
    return trial.suggest_float(name, low, high, step=spec.get("q"), log=log and "q" not in spec)


def split(config: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """``(family, its params)`` of an auto trial's config; ``(None, config)`` for any other sweep's."""
    model = config.get(MODEL_KEY) if isinstance(config, dict) else None
    if not isinstance(model, dict) or FAMILY_KEY not in model:
        return None, dict(config)
    name = str(model[FAMILY_KEY])
    return name, dict(model.get(name) or {})


def family_of(config: dict[str, Any]) -> str:
    """The family an auto trial's config belongs to (``""`` for any other sweep's)."""
    return split(config)[0] or ""


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config as it is reported: an auto trial's as ``{"family": name, **its params}``, others unchanged."""
    family, params = split(config)
    return params if family is None else {FAMILY_KEY: family, **params}


class AutoFamily(Family):
    """The sweep-wide stand-in of an auto sweep: its resource is the common (fractional) scale."""

    name = AUTO
    integer_resource = False
    supports_pbt = False


def optuna_searcher(auto: AutoPlan, metric: str, mode: str, seed: int, max_concurrent: int) -> Any:
    """Optuna's TPE over the family choice, define-by-run, trying the members' starting points first."""
    return searcher(auto, "optuna", metric, mode, seed, max_concurrent)


def trial_inputs(plan: Any, spec: Any) -> dict[str, Any]:
    """What every auto trial gets (``tune.with_parameters``): the trial data, encoded once per kind
    of family (tree models and dense models see different columns), and each member's spec."""
    from dataclasses import replace

    from raysweep.data import prepare

    data, keys, members = {}, {}, {}
    for member in plan.auto.members:
        family = member.family
        key = f"{family.encoding}-{family.native_missing}-{family.scale_target}"
        if key not in data:
            data[key] = prepare(plan.dataset, family, seed=plan.seed, test_size=plan.test_size, val_size=plan.val_size, cv=plan.cv).trial
        keys[member.name] = key
        members[member.name] = replace(spec, family=family, resource=member.recipe.resource, fixed=dict(member.recipe.fixed), mutable=())
    return {"data": data, "spec": AutoSpec(steps=plan.auto.steps, members=members, data_keys=keys)}
