"""The recipe schema: what a recipe may say, checked key by key with one-line errors.

A recipe is data, not code. It is read with ``yaml.safe_load``, every key is checked here, and
unknown keys are rejected with the list of allowed ones. Nothing in this module imports Ray,
MLflow or scikit-learn, so listing and validating recipes stays fast.
"""

from __future__ import annotations

import copy
import decimal
import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from raysweep.errors import UserError
from raysweep.metrics import METRICS
from raysweep.families._resource import Resource
from raysweep.strategies.registry import SCHEDULERS, SEARCHERS, known_as

TASKS = ("classification", "regression")

#: search-space type -> the keys it requires (besides ``type``).
SPACE_TYPES: dict[str, tuple[str, ...]] = {
    "uniform": ("low", "high"),
    "quniform": ("low", "high", "q"),
    "loguniform": ("low", "high"),
    "qloguniform": ("low", "high", "q"),
    "randint": ("low", "high"),
    "qrandint": ("low", "high", "q"),
    "lograndint": ("low", "high"),
    "choice": ("values",),
    "grid": ("values",),
}
_NUMERIC_TYPES = {t for t, keys in SPACE_TYPES.items() if "low" in keys}
_INT_TYPES = {"randint", "qrandint", "lograndint"}
_LOG_TYPES = {"loguniform", "qloguniform", "lograndint"}
#: the integers Ray Tune can draw (NumPy's int64)
_INT64 = (-(2**63), 2**63 - 1)
#: what a recipe's name may hold: it names sweeps and MLflow experiments, and is one word on the command line
_NAME = re.compile(r"[\w-]+(\.[\w-]+)*")

_TOP_KEYS = (
    "name",
    "description",
    "family",
    "tasks",
    "metric",
    "resource",
    "scheduler",
    "searcher",
    "num_samples",
    "max_concurrent",
    "early_stopping",
    "fixed",
    "space",
    "points_to_evaluate",
    "pbt",
)
_REQUIRED_TOP = ("family", "tasks", "metric", "resource", "space")


class _KeyProblem(UserError):
    """A schema rule broken at one key path, kept apart so that a ``--set`` behind it can be named."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        super().__init__(f"{source}: {path}: {problem}" if path else f"{source}: {problem}")
        self.path = path
        self.problem = problem


def _fail(source: str, path: str, message: str) -> UserError:
    return _KeyProblem(source, path, message)


def _related(key: str, path: str) -> bool:
    """Whether setting ``key`` sets ``path``, a part of it, or a mapping that holds it."""
    return key == path or key.startswith(f"{path}.") or path.startswith(f"{key}.")


def _where(source: str, overridden: dict[str, str], paths: tuple[str, ...]) -> str:
    """Who gave the value at ``paths``: the ``--set`` flags behind it, else the recipe file."""
    named = " ".join(f"--set {text}" for key, text in overridden.items() if any(_related(key, p) for p in paths))
    if not named:
        return f"{source}: {paths[0]}" if len(paths) == 1 and paths[0] else source
    return f"{named}: {paths[0]}" if len(paths) == 1 and paths[0] not in overridden else named


def _suggest(word: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer too large for a float
        return False


#: a number in scientific notation that YAML 1.1 (``yaml.safe_load``) leaves a string: ``1e-5`` (no dot),
#: ``1.0e5`` (no sign in the exponent)
_SCIENTIFIC = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


def _as_number(value: Any) -> Any:
    """``value``, or the number it spells when it is a string in scientific notation (``'1e-5'``).

    A recipe author who writes ``1e-5`` means a number; YAML 1.1 reads it as a string. A whole number
    (``1e1``, ``2E3``) is an int, so that integer parameters take it.
    """
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        number = float(value)
        if math.isfinite(number):
            exact = decimal.Decimal(value.strip())
            return int(exact) if exact == exact.to_integral_value() else number
    return value


def _read_numbers(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with numbers in scientific notation read as numbers where a recipe holds numbers or model values:
    the trial counts, the resource, early stopping's and PBT's steps, fixed values, space and mutation entries (bounds, ``q``, grid points, values)
    and starting points. Anything not shaped as the schema wants is left for the checks to name."""
    data = copy.deepcopy(data)

    def numbers_in(mapping: Any, keys: tuple[str, ...] | None = None) -> None:
        if isinstance(mapping, dict):
            for key in list(mapping):
                if keys is None or key in keys:
                    mapping[key] = _as_number(mapping[key])

    def entries(specs: Any) -> None:
        if not isinstance(specs, dict):
            return
        for spec in specs.values():
            numbers_in(spec, ("low", "high", "q"))
            if isinstance(spec, dict):
                for key in ("grid", "values"):
                    if isinstance(spec.get(key), list):
                        spec[key] = [_as_number(item) for item in spec[key]]

    numbers_in(data, ("num_samples", "max_concurrent"))
    numbers_in(data.get("resource"), ("per_step", "max"))
    numbers_in(data.get("early_stopping"), ("grace_period", "reduction_factor"))
    numbers_in(data.get("fixed"))
    entries(data.get("space"))
    if isinstance(data.get("pbt"), dict):
        numbers_in(data["pbt"], ("perturbation_interval",))
        entries(data["pbt"].get("mutations"))
    if isinstance(data.get("points_to_evaluate"), list):
        for point in data["points_to_evaluate"]:
            numbers_in(point)
    return data


def _check_keys(source: str, path: str, mapping: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(mapping, dict):
        raise _fail(source, path, f"must be a mapping, got {type(mapping).__name__} {mapping!r}")
    for key in mapping:
        if not isinstance(key, str) or key not in allowed:
            allowed_text = ", ".join(allowed)
            raise _fail(
                source,
                f"{path}.{key}" if path else str(key),
                f"unknown key{_suggest(str(key), allowed)}; allowed keys: {allowed_text}",
            )
    for key in required:
        if key not in mapping:
            raise _fail(source, f"{path}.{key}" if path else key, "is required but missing; add it")
    return mapping


@dataclass
class Recipe:
    """A validated recipe. Build one with :func:`load_recipe`."""

    name: str
    family: str
    tasks: tuple[str, ...]
    metric: dict[str, str]
    resource: Resource
    space: dict[str, dict[str, Any]]
    scheduler: str = "asha"
    searcher: str = "random"
    num_samples: int = 20
    max_concurrent: int | None = None
    description: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)
    grace_period: int = 1
    reduction_factor: float = 3.0
    perturbation_interval: int = 2
    mutations: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: configs the searcher tries first (random and hyperopt; grid search tries its grid)
    points_to_evaluate: list[dict[str, Any]] = field(default_factory=list)
    #: what validation changed, for the user to see (a starting point moved into a narrowed range)
    notes: list[str] = field(default_factory=list)
    source: str = "<recipe>"
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    #: key path -> the ``--set KEY=VALUE`` text that gave it
    overridden: dict[str, str] = field(default_factory=dict)

    def where(self, *paths: str) -> str:
        """What an error about the keys at ``paths`` names: the ``--set`` that gave them, or the file and key.

        With no paths, or several, only the flags or the file are named.
        """
        return _where(self.source, self.overridden, paths or ("",))

    def to_yaml(self) -> str:
        """The resolved recipe (after ``--set`` overrides) as YAML."""
        return yaml.safe_dump(self.raw, sort_keys=False)

    @property
    def content_hash(self) -> str:
        """A short hash of the resolved recipe content, stable across key order."""
        text = json.dumps(self.raw, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def default_metric(self, task: str) -> str:
        return self.metric[task]


def highest(spec: dict[str, Any]) -> float:
    """The largest value a numeric space entry can take: Ray's randint and lograndint exclude ``high``."""
    return spec["high"] - 1 if spec["type"] in ("randint", "lograndint") else spec["high"]


def _grid_index(bound: float, q: float, inwards: Any) -> int:
    """``bound``'s index among the multiples of ``q``, rounded inwards (``math.ceil`` for a lower bound), as Ray Tune does."""
    scaled = bound / q
    nearest = round(scaled)
    return nearest if math.isclose(scaled, nearest) else inwards(scaled)


def quantized_bounds(spec: dict[str, Any]) -> tuple[float, float]:
    """The smallest and the largest multiple of ``q`` within a quantized entry's bounds, as Ray Tune draws them
    (the lower one is larger than the upper one when there is none)."""
    q = spec["q"]
    low, high = _grid_index(spec["low"], q, math.ceil) * q, _grid_index(spec["high"], q, math.floor) * q
    if spec["type"] in _INT_TYPES:
        return int(low), int(high)
    return round(low, 12), round(high, 12)


def _check_space_entry(source: str, path: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise _fail(
            source,
            path,
            f"must be a mapping such as {{type: uniform, low: 0.1, high: 1.0}}, got {spec!r}; "
            "put constant parameters under 'fixed'",
        )
    kind = spec.get("type")
    if kind is None:
        raise _fail(source, f"{path}.type", f"is required; one of {', '.join(SPACE_TYPES)}")
    if not isinstance(kind, str) or kind not in SPACE_TYPES:
        raise _fail(
            source, f"{path}.type", f"unknown type {kind!r}{_suggest(str(kind), tuple(SPACE_TYPES))}; use one of {', '.join(SPACE_TYPES)}"
        )
    required = SPACE_TYPES[kind]
    allowed = ("type", *required) + (("grid",) if kind in _NUMERIC_TYPES else ())
    _check_keys(source, path, spec, allowed, required)
    if "values" in required:
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise _fail(source, f"{path}.values", f"must be a non-empty list, got {values!r}; list at least one value")
        return spec
    low, high = spec["low"], spec["high"]
    for key in ("low", "high") + (("q",) if "q" in spec else ()):
        value = spec[key]
        if not _is_number(value):
            raise _fail(source, f"{path}.{key}", f"must be a number, got {value!r}")
        if kind in _INT_TYPES and not float(value).is_integer():
            raise _fail(source, f"{path}.{key}", f"must be a whole number for {kind}, got {value!r}")
        if kind in _INT_TYPES and not _INT64[0] <= value <= _INT64[1]:
            raise _fail(source, f"{path}.{key}", f"must fit in a 64-bit integer for {kind}, got {value!r}; "
                        f"use a bound between {_INT64[0]} and {_INT64[1]}")
    if not low < high:
        raise _fail(source, path, f"low < high must hold, but got (low={low}, high={high}); swap or widen the bounds")
    if kind in _LOG_TYPES and low <= 0:
        raise _fail(
            source, f"{path}.low", f"must be > 0 for the log-scale type {kind}, got {low}; use a positive lower bound"
        )
    if "q" in spec and spec["q"] <= 0:
        raise _fail(source, f"{path}.q", f"must be > 0, got {spec['q']}")
    if "q" in spec:
        try:
            lowest, largest = quantized_bounds(spec)
        except (OverflowError, ValueError):  # a q so small that low / q is infinite
            raise _fail(source, f"{path}.q", f"{spec['q']} is too small for the bounds (low={low}, high={high}); use a larger q") from None
        if lowest > largest:
            raise _fail(source, f"{path}.q", f"no multiple of {spec['q']} lies between low={low} and high={high}, so there is "
                        "no value to draw; use a smaller q, or bounds that hold a multiple of it")
    if "grid" in spec:
        points = spec["grid"]
        if not isinstance(points, list) or not points or not all(_is_number(p) for p in points):
            raise _fail(source, f"{path}.grid", f"must be a non-empty list of numbers, got {points!r}")
        for point in points:
            if (kind in _INT_TYPES or isinstance(point, int)) and not _INT64[0] <= point <= _INT64[1]:
                raise _fail(source, f"{path}.grid", f"{point!r} does not fit in a 64-bit integer; "
                            f"use grid points between {_INT64[0]} and {_INT64[1]}")

    return spec


def _share_of_rows(family: str) -> bool:
    """Whether ``family`` trains along a share of the training rows (its resource is a fraction, at most 1)."""
    from raysweep.families import get_family

    try:
        return not get_family(family).integer_resource
    except Exception:  # a family registered from outside raysweep that does not load: its own checks will say so
        return False


def _nice(value: float) -> str:
    return f"{round(value, 10):g}"


def _check_resource_steps(source: str, family: str, per_step: float, maximum: float) -> None:
    """``resource.max`` is whole steps of ``resource.per_step`` (a trial trains to the nearest whole number of steps),
    and a share of the training rows is at most 1."""
    if maximum > 1 and _share_of_rows(family):
        raise _fail(source, "resource.max", f"{maximum} is above 1.0, but {family} trains on a share of the training rows "
                    "(1.0 is all of them); use at most 1.0")
    steps = maximum / per_step
    if not math.isfinite(steps):
        raise _fail(source, "resource.max", f"{maximum} is too many steps of resource.per_step {per_step} to count; "
                    "use a larger resource.per_step or a smaller resource.max")
    if math.isclose(steps, round(steps), rel_tol=1e-9, abs_tol=1e-9):
        return
    below, above = math.floor(steps) * per_step, math.ceil(steps) * per_step
    if above > 1 + 1e-9 and _share_of_rows(family):
        dividing = " or ".join([_nice(1 / n) for n in range(2, 101) if 1 / n <= per_step][:2])
        fix = f"resource.max {_nice(below)}, or a resource.per_step that divides 1.0 ({dividing or '0.01'})"
    else:
        fix = f"{_nice(below)} or {_nice(above)}"
    raise _fail(source, "resource.max", f"{maximum} is not a multiple of resource.per_step {per_step}, so trials would "
                f"train to {_nice(round(steps) * per_step)}; use {fix}")


def _check_point(source: str, path: str, point: Any, space: dict[str, dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    """One starting point: a value for every searched parameter, moved inside its range if need be."""
    if isinstance(point, dict):
        for key in point:
            if isinstance(key, str) and key not in space:
                # A name the point and the space spell differently: either may be the misspelt one.
                close = difflib.get_close_matches(key, list(space), n=1)
                if close and close[0] not in point:  # else the point names it twice: the unknown key goes
                    raise _fail(source, f"{path}.{key}", f"is not in space, which names {close[0]!r} instead: correct whichever of "
                                "the two is misspelt; a starting point names the parameters in space")
    _check_keys(source, path, point, tuple(space))
    missing = [name for name in space if name not in point]
    if missing:
        raise _fail(source, path, f"gives no value for {', '.join(missing)}; a starting point names every parameter in space")
    for name, value in point.items():
        spec = space[name]
        where = f"{path}.{name}"
        if "values" in spec:
            if isinstance(value, (list, dict)):
                # Ray Tune reads a list or mapping in a config as nested keys, not as one value.
                raise _fail(source, where, f"{value!r}: a starting point can only name a plain value (a number or a "
                            "string), not a list or mapping; leave this point out, or search the parameter with plain values")
            if value not in spec["values"]:
                raise _fail(source, where, f"{value!r} is not one of space.{name}.values {spec['values']!r}; pick one of them")
            continue
        if not _is_number(value):
            raise _fail(source, where, f"must be a number, got {value!r}")
        if spec["type"] in _INT_TYPES and not float(value).is_integer():
            raise _fail(source, where, f"must be a whole number for {spec['type']}, got {value!r}")
        inside = min(max(value, spec["low"]), highest(spec))
        if inside != value:
            # A narrowed range (``--set space.NAME.high=...``) moves a starting point, not the other way round.
            notes.append(
                f"{where}: {value} lies outside space.{name} [low={spec['low']}, high={spec['high']}]; starting from {inside}"
            )
            point[name] = inside
    return point


def _check_names(source: str, path: str, mapping: dict) -> None:
    """A model's parameters are named by words: YAML reads ``5:`` as a number and ``yes:`` as true."""
    for key in mapping:
        if not isinstance(key, str):
            raise _fail(source, f"{path}.{key}", f"a parameter's name must be a word, got the {type(key).__name__} {key!r} (YAML "
                        "reads an unquoted number, or yes, no, on, off, as one); correct it, or quote it")


def validate_recipe_data(data: Any, source: str, default_name: str = "recipe") -> Recipe:
    """Check raw recipe data against the schema and build a :class:`Recipe`.

    Raises :class:`UserError` naming the first key that breaks a rule.
    """
    if data is None:
        raise _fail(source, "", "the file is empty; a recipe needs at least: " + ", ".join(_REQUIRED_TOP))
    if not isinstance(data, dict):
        raise _fail(source, "", f"a recipe must be a YAML mapping of keys, got a {type(data).__name__}")
    _check_keys(source, "", data, _TOP_KEYS, _REQUIRED_TOP)
    data = _read_numbers(data)
    name = data.get("name")
    if name is not None and (not isinstance(name, (str, int)) or isinstance(name, bool) or not _NAME.fullmatch(str(name))):
        word = re.sub(r"[^\w-]+", "_", name).strip("_") if isinstance(name, str) else ""
        raise _fail(source, "name", f"{name!r}: a sweep's default name and folder start with it and its MLflow runs are found by it, so it must be one word "
                    f"of letters, digits, '-', '_' and '.'; rename it{f', e.g. {word}' if word else ''}")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise _fail(source, "description", f"must be text, got {description!r}; quote it")

    from raysweep.families import family_names

    family = data["family"]
    families = family_names()
    if family not in families:
        raise _fail(source, "family", f"unknown family {family!r}{_suggest(str(family), families)}; use one of {', '.join(families)}")

    tasks = data["tasks"]
    if isinstance(tasks, str):
        tasks = [tasks]
    if not isinstance(tasks, list) or not tasks or any(t not in TASKS for t in tasks):
        raise _fail(source, "tasks", f"must be a non-empty list drawn from {list(TASKS)}, got {data['tasks']!r}")
    if len(set(tasks)) < len(tasks):
        raise _fail(source, "tasks", f"names a task twice: {data['tasks']!r}; name each once")

    metric = data["metric"]
    if isinstance(metric, str):
        metric = {t: metric for t in tasks}
    if isinstance(metric, dict):  # a task's metric the recipe does not run (--set tasks=classification narrowed it) goes unused
        metric = {task: name for task, name in metric.items() if task in tasks or task not in TASKS}
    _check_keys(source, "metric", metric, tuple(tasks))
    for task in tasks:
        if task not in metric:
            raise _fail(source, f"metric.{task}", f"is missing; name the default metric for {task}")
        name = metric[task]
        if not isinstance(name, str) or name not in METRICS:
            raise _fail(source, f"metric.{task}", f"unknown metric {name!r}{_suggest(str(name), tuple(METRICS))}; use one of {', '.join(METRICS)}")
        if METRICS[name][0] != task:
            fitting = [m for m, (t, _) in METRICS.items() if t == task]
            raise _fail(source, f"metric.{task}", f"{name!r} is a {METRICS[name][0]} metric; for {task} use one of {', '.join(fitting)}")

    res = _check_keys(source, "resource", data["resource"], ("name", "per_step", "max"), ("name", "per_step", "max"))
    for key in ("per_step", "max"):
        if not _is_number(res[key]) or res[key] <= 0:
            raise _fail(source, f"resource.{key}", f"must be a positive number, got {res[key]!r}")
    if res["max"] < res["per_step"]:
        raise _fail(source, "resource.max", f"must be >= resource.per_step ({res['per_step']}), got {res['max']}")
    _check_resource_steps(source, family, res["per_step"], res["max"])
    if not isinstance(res["name"], str) or not res["name"].strip():
        raise _fail(source, "resource.name", f"must be the resource's name as text (trees, boosting_rounds, epochs), got {res['name']!r}")
    resource = Resource(str(res["name"]), res["per_step"], res["max"])

    for key, options in (("scheduler", tuple(SCHEDULERS)), ("searcher", tuple(SEARCHERS))):
        if key in data and (data[key].lower() if isinstance(data[key], str) else data[key]) not in options:
            value = data[key]
            hint = known_as(key, value) or _suggest(str(value).lower(), options)
            raise _fail(source, key, f"unknown {key} {value!r}{hint}; use one of {', '.join(options)}")
        if key in data:
            data[key] = data[key].lower()  # names are taken in any case, as on the command line (--scheduler PBT)
    for key in ("num_samples", "max_concurrent"):
        if key in data and data[key] is not None:
            value = data[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _fail(source, key, f"must be a whole number >= 1, got {value!r}")

    early = _check_keys(source, "early_stopping", data.get("early_stopping") or {}, ("grace_period", "reduction_factor"))
    grace = early.get("grace_period", 1)
    if not isinstance(grace, int) or isinstance(grace, bool) or grace < 1:
        raise _fail(source, "early_stopping.grace_period", f"must be a whole number of steps >= 1, got {grace!r}")
    reduction = early.get("reduction_factor", 3)
    if not _is_number(reduction) or reduction <= 1:
        raise _fail(source, "early_stopping.reduction_factor", f"must be a number > 1, got {reduction!r}")

    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise _fail(source, "fixed", f"must be a mapping of parameter: value, got {fixed!r}")
    _check_names(source, "fixed", fixed)

    space = data["space"]
    if not isinstance(space, dict) or not space:
        raise _fail(source, "space", "must be a non-empty mapping of parameter: {type: ..., ...}")
    _check_names(source, "space", space)
    for param, spec in space.items():
        _check_space_entry(source, f"space.{param}", spec)
        if param in fixed:
            raise _fail(source, f"fixed.{param}", "is also in space; a parameter is either searched or fixed, not both")

    notes: list[str] = []
    points = copy.deepcopy(data.get("points_to_evaluate") or [])
    if not isinstance(points, list):
        raise _fail(source, "points_to_evaluate", f"must be a list of {{parameter: value}} mappings, got {points!r}")
    for index, point in enumerate(points):
        _check_point(source, f"points_to_evaluate.{index}", point, space, notes)

    pbt = _check_keys(source, "pbt", data.get("pbt") or {}, ("perturbation_interval", "mutations"))
    interval = pbt.get("perturbation_interval", 2)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        raise _fail(source, "pbt.perturbation_interval", f"must be a whole number of steps >= 1, got {interval!r}")
    mutations = pbt.get("mutations") or {}
    if not isinstance(mutations, dict):
        raise _fail(source, "pbt.mutations", f"must be a mapping of parameter: {{type: ...}}, got {mutations!r}")
    _check_names(source, "pbt.mutations", mutations)
    for param, spec in mutations.items():
        if param not in space:
            raise _fail(
                source, f"pbt.mutations.{param}", f"is not in space; PBT mutates searched parameters only: {', '.join(space)}"
            )
        _check_space_entry(source, f"pbt.mutations.{param}", spec)
        if spec["type"] == "grid":
            raise _fail(source, f"pbt.mutations.{param}.type", "grid cannot be mutated; use choice")

    return Recipe(
        name=str(data.get("name") or default_name),
        description=str(data.get("description") or ""),
        family=family,
        tasks=tuple(tasks),
        metric=dict(metric),
        resource=resource,
        space=copy.deepcopy(space),
        scheduler=data.get("scheduler", "asha"),
        searcher=data.get("searcher", "random"),
        num_samples=data.get("num_samples", 20),
        max_concurrent=data.get("max_concurrent"),
        fixed=dict(fixed),
        grace_period=grace,
        reduction_factor=float(reduction),
        perturbation_interval=interval,
        mutations=copy.deepcopy(mutations),
        points_to_evaluate=points,
        notes=notes,
        source=source,
        # What is really tried: a starting point moved into a narrowed range, as moved.
        raw={**copy.deepcopy(data), **({"points_to_evaluate": copy.deepcopy(points)} if points else {})},
    )
