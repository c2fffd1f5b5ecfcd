"""A sweep's options, checked before anything starts, and the plan that holds them.

:class:`SweepOptions` is the one place a sweep's options live: resolved (defaults filled in from
the recipe, the tracking URI chosen once), frozen, and saved as it is (``dataclasses.asdict``) in
the sweep record that ``raysweep resume`` rebuilds the sweep from. :func:`plan_sweep` raises
every user error before Ray starts; :func:`check_recipe` holds the checks that need no data,
shared with ``raysweep validate``.
"""

from __future__ import annotations

import math

import difflib
import os
import inspect
import numbers
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from raysweep import _cache, space
from raysweep.data import Dataset, dataset_from_frame, load_dataset
from raysweep.errors import UserError
from raysweep.families import Family, get_family
from raysweep.metrics import METRICS, check_stop_at, direction
from raysweep.recipes import TASKS, Recipe, load_recipe
from raysweep.recipes import schema as recipe_schema
from raysweep.splits import check_outer_folds
from raysweep.strategies import registry as strategies
from raysweep.sweep.gpus import check_gpus_per_trial, family_note
from raysweep.sweep import auto
from raysweep.sweep.auto import AutoPlan
from raysweep.sweep.record import is_uri
from raysweep.tracking import schema
from raysweep.tracking.store import resolve_tracking_uri

#: the largest seed NumPy's and scikit-learn's random generators take (``--seed``)
MAX_SEED = 2**32 - 1

#: seconds between a running trial's checkpoints, unless --checkpoint-every says otherwise
DEFAULT_CHECKPOINT_EVERY = 10.0


@dataclass(frozen=True)
class SweepOptions:
    """Every option of a sweep, checked and resolved: what the sweep record saves and resume reads back."""

    task: str
    metric: str
    scheduler: str
    searcher: str
    num_samples: int
    name: str
    storage: str
    experiment: str
    #: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the embedded sqlite store: chosen once
    tracking_uri: str
    target: str | None = None
    time_budget: float | None = None
    max_concurrent: int | None = None
    cv: int | None = None
    seed: int = 0
    address: str | None = None
    max_failures: int = 0
    checkpoint_every: float = DEFAULT_CHECKPOINT_EVERY
    test_size: float = 0.2
    val_size: float = 0.2
    register_model: str | None = None
    #: the searcher learns from the trials of earlier sweeps like this one before its first trial
    warm_start: bool = False
    #: trials start until the time budget is spent (a time budget and no trial count were given):
    #: ``num_samples`` is then no limit
    fill_time_budget: bool = False
    #: end the sweep once a trial's validation score reaches this, in the metric's direction
    stop_at: float | None = None
    #: end the sweep once this many finished trials in a row did not improve the best score
    patience: int | None = None
    #: each trial's share of a GPU (a fraction in (0, 1]) or whole GPUs; None: CPU only
    gpus_per_trial: float | None = None
    #: ``raysweep run auto --recipes``: the competing recipes as given (None: every prebuilt one)
    recipes: tuple[str, ...] | None = None
    #: nested validation: this many outer folds, each tuned by an inner sweep of its own
    nested_cv: int | None = None

    @property
    def tune_num_samples(self) -> int:
        """Tune's ``num_samples``: -1 (no end but the time budget) when trials fill the budget."""
        return -1 if self.fill_time_budget else self.num_samples

    def trials_rule(self, exhaustive: bool, grid: int = 1) -> str:
        """How many trials the sweep runs, for its header: ``12 trials or 60 s, whichever comes first``.
        ``grid``: the configs each sample runs: with a searcher that is ``exhaustive`` (grid search), the
        whole grid's; else those of the space's ``type: grid`` entries (Tune's grid search under any searcher)."""
        if self.fill_time_budget:
            return f"up to {self.time_budget:g} s, trials until the budget is spent"
        if exhaustive:
            passes = "1 pass" if self.num_samples == 1 else f"{self.num_samples} passes"
            count = f"{self.num_samples * grid} trials ({passes} over a grid of {grid} configs)"
        elif grid > 1:
            count = f"{self.num_samples * grid} trials ({self.num_samples} samples x {grid} grid points)"
        else:
            count = f"{self.num_samples} trials"
        return f"{count} or {self.time_budget:g} s, whichever comes first" if self.time_budget else count

    @property
    def mode(self) -> str:
        """``"max"`` or ``"min"``: the metric's direction."""
        return direction(self.metric)

    @property
    def metric_key(self) -> str:
        """The validation metric each trial reports: ``val_<metric>``."""
        return schema.validation_metric(self.metric)


@dataclass(frozen=True)
class SweepPlan:
    """A fully checked sweep, ready to run: every user error has been raised by now.

    Its options read as its own attributes (``plan.metric`` is ``plan.options.metric``).
    """

    recipe: Recipe
    family: Family
    dataset: Dataset
    options: SweepOptions
    #: how the dataset was named (a built-in name or a path), for resuming; None for an object
    dataset_spec: str | None = None
    #: ``raysweep run auto``: the competing recipes and their common resource scale
    auto: AutoPlan | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "options":  # not set yet (unpickling): no options to look into
            raise AttributeError(name)
        return getattr(self.options, name)

    @property
    def notes(self) -> list[str]:
        """Lines the sweep says at its start about its options (a family asked for GPUs it cannot use)."""
        families = [member.family for member in self.auto.members] if self.auto is not None else self.family
        note = family_note(families, self.options.gpus_per_trial)
        notes = [note] if note else []
        grace = grace_note(self.recipe, self.options.scheduler) if self.auto is None else None
        return notes + ([grace] if grace else [])

    def said_at_start(self) -> list[str]:
        """What a sweep says before it starts (the command line, and ``run_sweep(progress=True)``):
        what reading the recipe and the data changed or noticed, then the notes on its options."""
        read = [(self.recipe.source, note) for note in self.recipe.notes] + [(self.dataset.name, note) for note in self.dataset.notes]
        return [f"{where}: {note}" for where, note in read] + [f"note: {note}" for note in self.notes]

    def settings(self) -> dict[str, Any]:
        """The sweep's settings, as logged to MLflow."""
        options = self.options
        # The rules that end a sweep early are params only when given.
        given = (("stop_at", options.stop_at), ("patience", options.patience), ("gpus_per_trial", options.gpus_per_trial),
                 ("nested_cv", options.nested_cv))
        rules = {key: value for key, value in given if value is not None}
        if self.auto is not None:
            rules["recipes"] = ",".join(member.name for member in self.auto.members)
        return rules | {
            "recipe": self.recipe.name,
            "family": self.recipe.family,
            "dataset": self.dataset.name,
            "task": options.task,
            "metric": options.metric,
            "mode": options.mode,
            "scheduler": options.scheduler,
            "searcher": options.searcher,
            "num_samples": "until the time budget" if options.fill_time_budget else options.num_samples,
            "max_concurrent": options.max_concurrent or "auto",
            "time_budget_s": options.time_budget or "none",
            "cv": options.cv or "none",
            "seed": options.seed,
            "resource": self.recipe.resource.name,
            "resource_per_step": self.recipe.resource.per_step,
            "resource_max": self.recipe.resource.max,
            "test_size": options.test_size,
            "val_size": options.val_size,
            "max_failures": options.max_failures,
            "checkpoint_every_s": options.checkpoint_every,
        }


def _did_you_mean(word: str, options: list[str]) -> str:
    """`` (did you mean 'roc_auc'?)`` for a near miss or a part of one option, else nothing."""
    close = difflib.get_close_matches(word, options, n=1) or [o for o in options if word in o][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_family_params(recipe: Recipe, family: Family, task: str) -> None:
    """Every searched, fixed or mutated parameter must be one the family's model takes."""
    valid = family.valid_params(task)
    for section, names in (("fixed", recipe.fixed), ("space", recipe.space)):
        for param in names:
            if param in family.reserved:
                raise UserError(f"{recipe.where(f'{section}.{param}')}: raysweep sets {param} itself (it is the resource, the seed or the parallelism); remove it")
            if param not in valid:
                close = difflib.get_close_matches(param, sorted(valid), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"see {family.estimator_class(task).__name__}'s parameters"
                raise UserError(f"{recipe.where(f'{section}.{param}')}: not a parameter of {family.estimator_class(task).__name__}; {hint}")
    if family.integer_resource and not float(recipe.resource.per_step).is_integer():
        raise UserError(f"{recipe.where('resource.per_step')}: {recipe.family} grows in whole {recipe.resource.name}, got {recipe.resource.per_step}")
    # Let scikit-learn's own parameter constraints speak for the fixed values and for every value the space can
    # give each parameter (each choice, each grid point, the ends of each range). One model per round of values,
    # a value of each parameter in it: a parameter's constraints do not depend on the others', so a model that
    # passes clears every value in it. Once a round fails, each value is checked on its own, in the recipe's
    # order, the other parameters at the fixed values or the model's defaults, and the first rejected is named.
    def build(params: dict[str, Any]) -> None:
        model = family.build({**recipe.fixed, **params}, task, 0, False)
        _validate_model_params(model)
        family.check_model(model, task)

    values: dict[str, list[tuple[str, Any, str, str]]] = {}
    for section, specs in (("space", recipe.space), ("pbt.mutations", recipe.mutations)):
        for param, spec in specs.items():
            known = {repr((type(value), value)) for _, value, _, _ in values.get(param, [])}
            values.setdefault(param, []).extend(check for check in _values_to_check(f"{section}.{param}", spec)
                                                if repr((type(check[1]), check[1])) not in known)
    for round_ in range(max((len(checks) for checks in values.values()), default=0) or 1):
        this_round = {param: checks[round_][1] for param, checks in values.items() if round_ < len(checks)}
        try:
            build(this_round)
        except (ValueError, TypeError) as exc:
            _blame(recipe, family, task, build, values)
            # Every value passes on its own: a rule of the family's across parameters.
            names = ", ".join(f"{param}={value!r}" for param, value in this_round.items())
            raise UserError(f"{recipe.where('fixed', 'space')}: the model rejects these values together ({names}: "
                            f"{_first_line(exc)}); fix the fixed values or the space") from None


def _blame(recipe: Recipe, family: Family, task: str, build: Any, values: dict[str, list[tuple[str, Any, str, str]]]) -> None:
    """Raise the one-line error for the fixed values, else for the first value of the space the model rejects."""
    try:
        build({})
    except (ValueError, TypeError) as exc:
        where = recipe.where(*(f"fixed.{name}" for name in recipe.fixed)) if recipe.fixed else recipe.where("fixed", "space")
        raise UserError(f"{where}: the model rejects these parameters ({_first_line(exc)}); fix the fixed values") from None
    estimator = family.estimator_class(task).__name__
    for param, checks in values.items():
        for path, value, shown, fix in checks:
            try:
                build({param: value})
            except (ValueError, TypeError) as exc:
                where = recipe.where(path)
                if path.endswith(".type"):  # a value drawn between the ends: the entry's type, low and high give it
                    if not where.startswith("--set "):  # a --set of its low or high is behind it, not the file
                        where = recipe.where(path.removesuffix(".type"))
                    if _takes_a_float(build, param, checks):  # floats are taken, not these: the range is too wide
                        fix = f"narrow the range to the values the model takes, or {fix} for whole numbers"
                raise UserError(f"{where}: {shown} is rejected by {estimator} ({_first_line(exc)}); {fix}") from None


def _takes_a_float(build: Any, param: str, checks: list[tuple[str, Any, str, str]]) -> bool:
    """Whether the model takes a float for ``param``: one of the range's ends, as a float."""
    for _, value, _, _ in checks[:2]:  # the lowest and highest values the range draws
        try:
            build({param: float(value)})
        except (ValueError, TypeError, OverflowError):
            continue
        return True
    return False


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _values_to_check(path: str, spec: dict[str, Any]) -> list[tuple[str, Any, str, str]]:
    """The values the space entry at ``path`` can give its parameter that could break the model's constraints, each
    as (the key path that gives it, the value, how the error shows it, the fix): every choice and grid point, and the
    lowest and highest value a range draws (a parameter's constraints are ranges, so its ends stand for the middle;
    ``high`` itself for a continuous range: grid search tries it, and draws come as close as they like)."""
    checks: list[tuple[str, Any, str, str]] = []
    seen: set[str] = set()

    def add(key: str, value: Any, shown: str, fix: str) -> None:
        if repr((type(value), value)) not in seen:
            seen.add(repr((type(value), value)))
            checks.append((f"{path}.{key}" if key else path, value, shown, fix))

    if "values" in spec:
        for value in spec["values"]:
            add("values", value, repr(value), "fix or remove it")
        return checks
    lowest, largest = space.drawn_range(spec)
    for key, value, word, fix in (("low", lowest, "lowest", "raise low"), ("high", largest, "highest", "lower high")):
        given = spec[key]
        shown = repr(value) if value == given else f"{value!r}, the {word} value the range draws,"
        add(key, value, shown, fix)
    if spec["type"] in _INTEGER_TYPE:
        # A continuous range draws floats between its ends (18.5 in [4, 33]): ends written as whole numbers pass a
        # parameter that takes ints only, and every trial that draws a float fails. Before the grid's points, which
        # are floats too: their fix ("narrow the range") would not help.
        middle = space.grid_points({key: value for key, value in spec.items() if key != "grid"})
        inside = float(middle[len(middle) // 2])
        add("type", inside, f"{inside!r}, a value {spec['type']} draws,", f"use type: {_INTEGER_TYPE[spec['type']]}")
    for value in space.grid_points(spec):  # what grid search tries: explicit points, or the ends and the middle
        add("grid" if "grid" in spec else "", value, repr(value), "fix or remove it" if "grid" in spec else "narrow the range")
    return checks


#: the integer type that draws what a continuous type draws, for a parameter that takes ints only
_INTEGER_TYPE = {"uniform": "randint", "quniform": "qrandint", "loguniform": "lograndint", "qloguniform": "lograndint"}


def _validate_model_params(model: Any) -> None:
    """Run scikit-learn's own parameter checks on an unfitted model (a ValueError names the bad one).

    Private API: scikit-learn checks parameters only inside ``fit``; ``_validate_params`` is the
    check itself, without data. Checked on scikit-learn 1.9. A model without it (XGBoost's) is
    left to its first fit. The MLP's layer sizes are checked here as its ``fit`` does (their
    constraint is only "array-like": ``[0, 8]`` passes ``_validate_params`` and fails in training).
    """
    if hasattr(model, "_parameter_constraints") and hasattr(model, "_validate_params"):
        model._validate_params()
    if type(model).__module__.startswith("sklearn.neural_network"):
        sizes = model.hidden_layer_sizes
        layers = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
        if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0 for n in layers):
            raise ValueError(f"hidden_layer_sizes must be whole numbers > 0, got {layers}")


def check_recipe(
    recipe: Recipe, *, scheduler: str | None = None, searcher: str | None = None, tasks: tuple[str, ...] | None = None
) -> Family:
    """Every check of a sweep that needs no data; raises :class:`UserError` on the first problem.

    ``scheduler`` and ``searcher`` are the flags (None: the recipe's own); ``tasks`` defaults to
    every task of the recipe. ``raysweep validate`` and :func:`plan_sweep` both refuse through it.
    """
    family = get_family(recipe.family)
    strategies.check(recipe, scheduler, searcher, family.supports_pbt)
    for task in tasks or recipe.tasks:
        passed = _passed_key(recipe, family, task)
        if passed is None or not _cache.remembered(passed):
            check_family_params(recipe, family, task)
            if passed is not None:
                _cache.remember(passed)
    return family


def _passed_key(recipe: Recipe, family: Family, task: str) -> str | None:
    """The name under which :func:`check_family_params` remembers a pass (see :mod:`raysweep._cache`),
    or None for a family from outside raysweep (its code is not stamped: it is checked every time)."""
    kind = type(family)
    if not kind.__module__.startswith("raysweep.families."):
        return None
    parts = {"family": f"{kind.__module__}:{kind.__qualname__}", "task": task, "fixed": recipe.fixed,
             "space": recipe.space, "mutations": recipe.mutations, "per_step": recipe.resource.per_step}
    code = (inspect.getfile(kind), inspect.getfile(Family), __file__, inspect.getfile(space), inspect.getfile(recipe_schema))
    try:
        return _cache.key("recipe-check", parts, code)
    except (OSError, TypeError, ValueError):
        return None


def grace_note(recipe: Recipe, scheduler: str) -> str | None:
    """ASHA's first rung is at the grace period: at a trial's last step or beyond it, no trial is stopped early."""
    steps, grace = recipe.resource.max_steps, recipe.grace_period
    if scheduler != "asha" or grace < steps:
        return None
    return f"early_stopping.grace_period {grace} is not below the {steps} steps a trial has, so asha stops no trial early; lower it (or raise resource.max)"


def _whole(value: Any, flag: str) -> int | None:
    """``value`` as an int when it is a whole number (a NumPy integer too); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(f"{flag} {value!r}: must be a whole number")
    return int(value)


def _real(value: Any, flag: str) -> float | None:
    """``value`` when it is a number (int, float, a NumPy number); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"{flag} {value!r}: must be a number")
    return value if isinstance(value, (int, float)) else float(value)


def _check_storage(folder: str) -> None:
    """A local ``--storage`` that Ray could not write its state in is a :class:`UserError`, before Ray starts."""
    import os

    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"--storage {folder}: {existing} is a file, not a folder; pass a folder for Ray's state of the sweep")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--storage {folder}: cannot write in {existing}; pass a folder you can write in")
    # Permissions alone do not tell (root may write anywhere, but not in /proc or a read-only mount): a folder made and removed does.
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".raysweep-", dir=existing))
    except OSError as exc:
        raise UserError(f"--storage {folder}: cannot make a folder in {existing} ({exc.strerror}); pass a folder you can write in") from None


#: the URI schemes of the filesystems pyarrow opens, which Ray Tune keeps a sweep's state in
_STORAGE_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")


def _check_storage_uri(uri: str) -> None:
    """A ``--storage`` URI of a filesystem Ray cannot open is a :class:`UserError`, before Ray starts."""
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in _STORAGE_SCHEMES:
        raise UserError(
            f"--storage {uri}: Ray keeps a sweep's state on {', '.join(f'{s}://' for s in _STORAGE_SCHEMES)} or a local "
            f"folder, not on {scheme}://; pass one of those"
        )


def plan_sweep(
    recipe: str | Path | Recipe | AutoPlan,
    dataset: str | Dataset,
    *,
    target: str | None = None,
    task: str | None = None,
    metric: str | None = None,
    scheduler: str | None = None,
    searcher: str | None = None,
    num_samples: int | None = None,
    time_budget: float | None = None,
    max_concurrent: int | None = None,
    cv: int | None = None,
    seed: int = 0,
    name: str | None = None,
    storage: str | Path | None = None,
    overrides: list[str] | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    max_failures: int = 0,
    checkpoint_every: float | None = None,
    test_size: float = 0.2,
    val_size: float = 0.2,
    register_model: str | None = None,
    fill_time_budget: bool | None = None,
    warm_start: bool = False,
    stop_at: float | None = None,
    patience: int | None = None,
    gpus_per_trial: float | None = None,
    recipes: str | list[str] | tuple[str, ...] | None = None,
    nested_cv: int | None = None,
) -> SweepPlan:
    """Check a sweep's inputs without starting anything; raises :class:`UserError` on the first problem.

    With a ``time_budget`` and no ``num_samples``, trials start until the budget is spent (a grid
    searcher still makes one pass); ``fill_time_budget`` (as a saved sweep record has it) keeps a
    rule resolved before. ``warm_start`` needs a searcher that learns from earlier trials.
    ``recipe="auto"`` runs the ``recipes`` (names or files; None: every prebuilt one that fits
    the task) side by side in one sweep (:mod:`raysweep.sweep.auto`).
    """
    # Choices are names, not spellings: --scheduler PBT is pbt.
    task, metric, scheduler, searcher = (value.lower() if isinstance(value, str) else value for value in (task, metric, scheduler, searcher))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        # NumPy's and scikit-learn's generators take these: another seed failed after Ray started.
        raise UserError(f"--seed {seed}: a seed is a whole number from 0 to {MAX_SEED}")
    # From Python: a text option given another type is one line, not an AttributeError deep inside (or after Ray started).
    for value, flag in ((name, "--name"), (experiment, "--experiment"), (register_model, "--register-model"),
                        (tracking_uri, "--tracking-uri"), (address, "--address"), (target, "--target")):
        if value is not None and not isinstance(value, str):
            raise UserError(f"{flag} {value!r}: must be text (a str), got {type(value).__name__}")
    if storage is not None and not isinstance(storage, (str, os.PathLike)):
        raise UserError(f"--storage {storage!r}: must be a folder's path or a URI, got {type(storage).__name__}")
    if experiment is not None and not experiment.strip():
        raise UserError(f"--experiment {experiment!r}: an experiment's name may not be blank; pass one, or leave --experiment out for raysweep-DATASET")
    if isinstance(overrides, str):  # one override, as --set takes it
        overrides = [overrides]
    if overrides is not None and not all(isinstance(item, str) for item in overrides):
        raise UserError(f"overrides {overrides!r}: must be a list of KEY.PATH=VALUE texts, e.g. ['space.max_depth.high=12']")
    if isinstance(dataset, os.PathLike):
        dataset = os.fspath(dataset)
    elif not isinstance(dataset, (str, Dataset)):  # a DataFrame, or an (X, y) pair
        dataset = dataset_from_frame(dataset, target=target, task=task)
    auto_plan = None
    dataset_spec = dataset if isinstance(dataset, str) else None
    if isinstance(recipe, AutoPlan):  # resume: the members as the sweep record holds them
        auto_plan, recipe = recipe, recipe.recipe
    elif auto.is_auto(recipe):
        auto_plan, dataset = _plan_auto(recipes, dataset, target, task, seed, scheduler, searcher, overrides, warm_start)
        recipe = auto_plan.recipe
    elif recipes is not None:
        raise UserError(f"--recipes applies to `raysweep run auto` only; drop it, or run auto instead of {recipe}")
    elif isinstance(recipe, Recipe):
        if overrides:
            raise UserError("overrides apply to a recipe name or file; pass the path instead of a Recipe object")
    else:
        recipe = load_recipe(recipe, overrides)
    # From Python a NumPy integer is as good as an int; a string or a fraction is one line, not a TypeError deep inside.
    num_samples, cv, max_concurrent, patience, nested_cv, max_failures = (
        _whole(value, flag) for value, flag in (
            (num_samples, "--num-samples"), (cv, "--cv"), (max_concurrent, "--max-concurrent"), (patience, "--patience"),
            (nested_cv, "--nested-cv"), (max_failures, "--max-failures"),
        )
    )  # fmt: skip
    time_budget, checkpoint_every, test_size, val_size = (
        _real(value, flag) for value, flag in (
            (time_budget, "--time-budget"), (checkpoint_every, "--checkpoint-every"), (test_size, "test_size"), (val_size, "val_size"),
        )
    )  # fmt: skip
    if num_samples is not None and num_samples < 1:
        raise UserError(f"--num-samples {num_samples}: must be a whole number >= 1")
    if cv is not None and cv < 2:
        raise UserError(f"--cv {cv}: cross-validation needs at least 2 folds; use --cv 5, or leave --cv out for one validation split")
    if max_concurrent is not None and max_concurrent < 1:
        raise UserError(f"--max-concurrent {max_concurrent}: must be >= 1")
    if time_budget is not None and not 0 < time_budget < math.inf:
        raise UserError(f"--time-budget {time_budget}: must be a finite positive number of seconds, e.g. --time-budget 600")
    if patience is not None and patience < 1:
        raise UserError(f"--patience {patience}: must be a whole number of finished trials >= 1, e.g. --patience 10")
    gpus_per_trial = check_gpus_per_trial(gpus_per_trial)
    if nested_cv is not None and nested_cv < 2:
        raise UserError(f"--nested-cv {nested_cv}: nested validation needs at least 2 outer folds; use --nested-cv 5, or leave it out for one sweep")
    if nested_cv is not None and auto_plan is not None:
        raise UserError("--nested-cv: nested validation of an auto sweep is not supported yet; run it with one recipe, or leave out --nested-cv")
    max_failures = max_failures or 0  # None: the default, no retry
    if max_failures < 0:
        raise UserError(f"--max-failures {max_failures}: must be >= 0")
    if checkpoint_every is None:
        checkpoint_every = DEFAULT_CHECKPOINT_EVERY
    if not checkpoint_every >= 0:  # also refuses NaN
        raise UserError(f"--checkpoint-every {checkpoint_every}: must be a number of seconds >= 0 (0 checkpoints after every step)")
    if not (0 < test_size < 0.9 and 0 < val_size < 0.9 and test_size + val_size < 0.95):
        raise UserError(f"test_size={test_size}, val_size={val_size}: each must be in (0, 0.9) and together below 0.95")
    if task is not None and task not in TASKS:
        raise UserError(f"--task {task}: unknown task; use one of {', '.join(TASKS)}")
    if task is not None and task not in recipe.tasks:
        raise UserError(f"--task {task}: recipe {recipe.name} supports {', '.join(recipe.tasks)}")
    if isinstance(dataset, str):
        dataset = load_dataset(dataset, target=target, task=task, seed=seed)
    chosen_task = task or dataset.task
    if chosen_task not in recipe.tasks:
        raise UserError(f"{recipe.source}: recipe {recipe.name} supports {', '.join(recipe.tasks)}, but {dataset.name} is a {chosen_task} dataset; pick another recipe or --task")
    metric = metric or recipe.default_metric(chosen_task)
    if metric not in METRICS:
        fitting = [m for m, (t, _) in METRICS.items() if t == chosen_task]
        raise UserError(f"--metric {metric}: unknown metric{_did_you_mean(metric, fitting)}; use one of {', '.join(fitting)}")
    if METRICS[metric][0] != chosen_task:
        fitting = ", ".join(m for m, (t, _) in METRICS.items() if t == chosen_task)
        inferred = task is None and any(note.startswith("task inferred") for note in dataset.notes)
        raise UserError(
            f"--metric {metric}: a {METRICS[metric][0]} metric, but the task is {chosen_task}"
            + (f" (inferred from the target {dataset.y.name!r})" if inferred else "")
            + f"; use one of {fitting}" + (f", or --task {METRICS[metric][0]}" if inferred else "")
        )
    if stop_at is not None:
        check_stop_at(stop_at, metric)
    family = auto.AutoFamily() if auto_plan else check_recipe(recipe, scheduler=scheduler, searcher=searcher, tasks=(chosen_task,))
    scheduler = scheduler or recipe.scheduler
    searcher = searcher or recipe.searcher
    if warm_start:
        strategies.check_warm_start(searcher, scheduler)
    if cv is not None:
        rows = int(len(dataset.y) * (1 - test_size))
        if rows < cv:
            raise UserError(f"--cv {cv}: only {rows} rows remain for tuning after the test split; use fewer folds")
    if nested_cv is not None:
        check_outer_folds(nested_cv, dataset, seed=seed, test_size=test_size, cv=cv)
    elif metric == "roc_auc":
        _check_every_class_scored(dataset, metric, seed=seed, test_size=test_size, val_size=val_size, cv=cv)
    exhaustive = strategies.get_searcher(searcher).exhaustive
    if fill_time_budget is None:
        fill_time_budget = num_samples is None and time_budget is not None and not exhaustive
    if num_samples is None:
        num_samples = 1 if exhaustive else recipe.num_samples
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if name is not None and not name.strip():
        raise UserError(f"--name {name!r}: a sweep's name may not be blank; pass one, or leave --name out for RECIPE-DATASET-TIMESTAMP")
    # The Model Registry refuses these only when the refit model is registered, after the whole sweep.
    if register_model is not None and (not register_model.strip() or "/" in register_model or ":" in register_model):
        raise UserError(
            f"--register-model {register_model!r}: the MLflow Model Registry takes no blank name and none with '/' or ':'; "
            "pass a name such as breast-cancer-xgboost"
        )
    name = name or f"{recipe.name}-{dataset.name}-{stamp}"
    if "/" in name or name.startswith("."):
        raise UserError(f"--name {name}: a sweep name may not contain '/' or start with '.'")
    storage_path = str(storage) if is_uri(storage) else str(Path(storage or "raysweep_results").expanduser().resolve())
    if not is_uri(storage_path):
        _check_storage(storage_path)
    else:
        _check_storage_uri(storage_path)
    options = SweepOptions(
        task=chosen_task,
        metric=metric,
        scheduler=scheduler,
        searcher=searcher,
        num_samples=num_samples,
        name=name,
        storage=storage_path,
        experiment=experiment or schema.default_experiment(dataset.name),
        tracking_uri=resolve_tracking_uri(tracking_uri),
        target=target,
        time_budget=time_budget,
        max_concurrent=max_concurrent or recipe.max_concurrent,
        cv=cv,
        seed=seed,
        address=address,
        max_failures=max_failures,
        checkpoint_every=checkpoint_every,
        test_size=test_size,
        val_size=val_size,
        register_model=register_model,
        fill_time_budget=bool(fill_time_budget and time_budget),
        warm_start=bool(warm_start),
        stop_at=None if stop_at is None else float(stop_at),
        patience=patience,
        gpus_per_trial=gpus_per_trial,
        recipes=None if auto_plan is None or recipes is None else tuple(auto.member_names(recipes)),
        nested_cv=nested_cv,
    )
    return SweepPlan(recipe=recipe, family=family, dataset=dataset, options=options, dataset_spec=dataset_spec, auto=auto_plan)


def _check_every_class_scored(dataset: Dataset, metric: str, *, seed: int, test_size: float, val_size: float, cv: int | None) -> None:
    """``roc_auc`` needs a row of each class in every split it scores: checked on the splits the
    sweep will make, before Ray starts (the sweep checks them again once its data is encoded)."""
    import numpy as np

    from raysweep.errors import plain
    from raysweep.metrics import check_every_class_scored
    from raysweep.splits import encoded_target, scored_rows, tuning_pool

    classes, y = encoded_target(dataset)
    if classes is None:
        return
    pool, test = tuning_pool(dataset, seed, test_size)
    _, val, folds = scored_rows(y, classes, pool, seed, test_size, val_size, cv)
    scored = [y[pool][held_out] for _, held_out in folds] if folds else [y[val]]
    check_every_class_scored(metric, scored, classes, cv=cv, pool=y[pool])
    missing = sorted(set(range(len(classes))) - set(np.unique(y[test]).tolist()))
    if missing:  # the refit model's test score would be NaN, and the sweep said nothing of it
        shown = ", ".join(repr(plain(classes[i])) for i in missing[:3])
        rows = min(int(np.sum(y == i)) for i in missing)
        raise UserError(
            f"--metric roc_auc: the test split has no row of class {shown} ({rows} row{'' if rows == 1 else 's'} in all, too few "
            "to score it in the validation and the test split), and roc_auc is undefined without one; use another --metric "
            "(log_loss, accuracy, f1_macro), drop or merge that class, or add rows of it"
        )


def _plan_auto(
    recipes: Any, dataset: str | Dataset, target: str | None, task: str | None, seed: int,
    scheduler: str | None, searcher: str | None, overrides: list[str] | None, warm_start: bool,
) -> tuple[AutoPlan, Dataset]:
    """The members of an auto sweep, checked, and its dataset (the task picks the members)."""
    if overrides:
        raise UserError("--set: auto runs several recipes, so an override has no one recipe to apply to; copy a recipe, change it and list its file in --recipes")
    if warm_start:
        raise UserError("--warm-start: an auto sweep's searcher cannot start from earlier sweeps' trials yet; leave out --warm-start")
    auto.check_strategies(scheduler, searcher)
    names = auto.member_names(recipes)
    if task is not None and task not in TASKS:
        raise UserError(f"--task {task}: unknown task; use one of {', '.join(TASKS)}")
    if isinstance(dataset, str):
        dataset = load_dataset(dataset, target=target, task=task, seed=seed)
    chosen = task or dataset.task
    members, left_out = auto.load_members(names if recipes is not None else None, chosen, scheduler, searcher)
    families = [check_recipe(r, scheduler=scheduler, searcher=None, tasks=(chosen,)) for r in members]
    plan = auto.auto_recipe(members, chosen, families)
    if recipes is not None and left_out:  # listed by the user, so said: the sweep runs without them
        plan.recipe.notes.append(
            f"left out of this {chosen} sweep, for {'they do' if len(left_out) > 1 else 'it does'} not support {chosen}: "
            + ", ".join(f"{r.name} ({'/'.join(r.tasks)})" for r in left_out)
        )
    return plan, dataset
