"""Suite 2, search quality at equal wall time: the test score of the refit best model.

Every tool gets the same data split (raysweep's own: 60% train, 20% validation, 20% test for a
given seed), the same time budget and the same two cores. The tuned tools search on train and
score on validation; the winner is refit on train+validation and scored once on test, with
raysweep's own metric code. Alongside, each tool's trajectory (elapsed seconds, best
validation score reported so far) gives the time it took to first reach the untuned default's
validation score.
"""

from __future__ import annotations

import glob
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks._common import Settings, start_ray, warm_mlflow

#: trials a budget-bound sweep may start; the time budget, not this, ends it
UNBOUNDED_TRIALS = 100_000
#: smoke mode caps Ray-based sweeps by trials, not time: on a busy machine a few seconds may not
#: even see the first trial report, and the smoke run must not depend on the machine's load
SMOKE_TRIALS = 3


#: smoke mode also shortens every trial to two resource steps
SMOKE_OVERRIDES = ["resource.max=50"]


def ray_limits(settings: Settings) -> tuple[int, float | None]:
    """(num_samples, time budget) for a Ray-based sweep."""
    return (SMOKE_TRIALS, None) if settings.smoke else (UNBOUNDED_TRIALS, settings.budget)


def recipe_overrides(settings: Settings) -> list[str]:
    return list(SMOKE_OVERRIDES) if settings.smoke else []
#: test and validation shares: raysweep's defaults, used by every tool
TEST_SIZE, VAL_SIZE = 0.2, 0.2


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset the suite tunes on, the metric every tool optimises, and what else is reported."""

    name: str
    source: str  # a file in --data-dir, or a raysweep built-in spec
    target: str | None
    metric: str
    extra_metrics: tuple[str, ...] = ()
    builtin: bool = False

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric, *self.extra_metrics)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("california_housing", "california_housing.csv", "median_house_value", "r2", ("rmse",)),
        DatasetSpec("adult", "adult.csv.gz", "income", "log_loss", ("accuracy",)),
        DatasetSpec("letter", "letter.csv", "Letter", "accuracy"),
        # smoke mode only: small, made on the spot, no files needed
        DatasetSpec("synthetic", "make_regression:n_samples=1500,n_features=8,noise=20", None, "r2", ("rmse",), builtin=True),
    )
}

#: tool name -> how RESULTS.md labels it
TOOL_LABELS = {
    "default": "untuned default",
    "raysweep": "raysweep (recipe defaults)",
    "raysweep_pbt": "raysweep, PBT + random",
    "raysweep_asha_random": "raysweep, ASHA + random",
    "raysweep_gp": "raysweep, recipe scheduler + GP",
    "raysweep_optuna": "raysweep, recipe scheduler + Optuna TPE",
    "optuna": "Optuna TPE + Hyperband pruner",
    "flaml": "FLAML (estimator_list=[xgboost])",
    "halving": "scikit-learn HalvingRandomSearchCV",
    "ray_random": "plain Ray Tune, random search",
}
PEERS = {"optuna": "optuna", "flaml": "flaml"}
#: the XGBoost recipe with raysweep's other model-based searchers in place of its own (hyperopt)
SEARCHER_TOOLS = ("raysweep_gp", "raysweep_optuna")


def cells(settings: Settings) -> list[dict[str, Any]]:
    """Every (dataset, recipe, tool, seed) run of the suite; each runs in its own process."""
    plan: list[tuple[str, str, str]] = []
    if settings.smoke:
        # The other searchers' cells are the recipe's sweep with another searcher, which the test
        # suite runs itself; smoke leaves them out to stay within its time (about 25 s more).
        for tool in ("default", "raysweep", "optuna", "flaml", "halving", "ray_random"):
            plan.append(("synthetic", "xgboost", tool))
    else:
        for dataset in ("california_housing", "adult"):
            for tool in ("default", "raysweep", "optuna", "flaml", "halving", "ray_random", *SEARCHER_TOOLS):
                plan.append((dataset, "xgboost", tool))
        for recipe in ("random_forest", "svm", "xgboost", "mlp"):
            for tool in ("default", "raysweep", "halving"):
                plan.append(("letter", recipe, tool))
        plan.append(("letter", "mlp", "raysweep_pbt"))
        plan.append(("letter", "mlp", "raysweep_asha_random"))
    out = []
    for seed in range(settings.seeds):
        for dataset, recipe, tool in plan:
            identifier = f"{dataset}-{recipe}-{tool}-s{seed}"
            out.append({"suite": "quality", "id": identifier, "dataset": dataset, "recipe": recipe, "tool": tool,
                        "seed": seed, "peer": PEERS.get(tool), "group": f"quality-{identifier}"})
    return out


def timeout(cell: dict[str, Any], settings: Settings) -> float:
    """How long a cell may take before the orchestrator gives up on it."""
    return 4 * settings.budget + 600


# -- data -----------------------------------------------------------------------------------------
@dataclass
class Split:
    """raysweep's split of one dataset for one seed, encoded for one family.

    ``X_train``/``X_val`` are exactly the arrays raysweep's trials see. ``X_pool``/``X_test`` are
    encoded by a preprocessor fitted on train+validation, as raysweep's refit does;
    ``X_test_for_train_encoder`` is the test split encoded like the trial arrays, for a tool
    (FLAML) that refits on train+validation arrays it was given.
    """

    dataset: Any
    prepared: Any
    task: str
    n_classes: int
    y_scale: float
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_test_for_train_encoder: np.ndarray


def load(spec: DatasetSpec, settings: Settings, seed: int) -> Any:
    from raysweep.data import load_dataset

    if spec.builtin:
        return load_dataset(spec.source, seed=seed)
    if not settings.data_dir:
        raise FileNotFoundError(f"{spec.name} needs --data-dir")
    return load_dataset(str(Path(settings.data_dir) / spec.source), target=spec.target)


def _split_rows(dataset: Any, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) row indices and the encoded target, as raysweep.data.prepare makes them.

    raysweep does not expose its row indices, so this repeats its split; :func:`make_split`
    checks the outcome against raysweep's own arrays and refuses to go on if they differ.
    """
    from sklearn.model_selection import train_test_split

    y = dataset.y
    classification = dataset.task == "classification"
    if classification:
        labels = y.to_numpy()
        _, encoded = np.unique(labels.astype(str) if labels.dtype == object else labels, return_inverse=True)
    else:
        encoded = y.to_numpy(dtype=float)

    def split(rows: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        try:
            return train_test_split(rows, test_size=fraction, random_state=seed,
                                    stratify=encoded[rows] if classification else None)
        except ValueError:
            return train_test_split(rows, test_size=fraction, random_state=seed)

    pool, test = split(np.arange(len(encoded)), TEST_SIZE)
    train, val = split(pool, VAL_SIZE / (1 - TEST_SIZE))
    return train, val, test, encoded


def make_split(dataset: Any, family: Any, seed: int) -> Split:
    from raysweep.data import make_preprocessor, prepare

    prepared = prepare(dataset, family, seed=seed, test_size=TEST_SIZE, val_size=VAL_SIZE)
    trial = prepared.trial
    train_rows, _, test_rows, _ = _split_rows(dataset, seed)
    columns = (prepared.numeric_columns, prepared.categorical_columns)
    train_encoder = make_preprocessor(family.encoding, *columns, family.native_missing)
    train_encoder.fit(dataset.X.iloc[train_rows])
    encoded_train = np.asarray(train_encoder.transform(dataset.X.iloc[train_rows]), dtype=np.float64)
    if encoded_train.shape != trial.X_train.shape or not np.allclose(encoded_train, trial.X_train, equal_nan=True):
        raise RuntimeError("raysweep.data.prepare no longer splits rows as benchmarks/quality.py:_split_rows "
                           "repeats it; update _split_rows so every tool keeps raysweep's split")
    pool_encoder = make_preprocessor(family.encoding, *columns, family.native_missing)
    X_pool = np.ascontiguousarray(pool_encoder.fit_transform(prepared.X_pool), dtype=np.float64)

    def scaled(y: np.ndarray) -> np.ndarray:
        if dataset.task == "classification":
            return y
        return (y - prepared.y_center) / prepared.y_scale

    return Split(
        dataset=dataset,
        prepared=prepared,
        task=dataset.task,
        n_classes=trial.n_classes,
        y_scale=prepared.y_scale,
        X_train=trial.X_train,
        y_train=trial.y_train,
        X_val=trial.X_val,
        y_val=trial.y_val,
        X_pool=X_pool,
        y_pool=scaled(prepared.y_pool),
        X_test=np.ascontiguousarray(pool_encoder.transform(prepared.X_test), dtype=np.float64),
        y_test=scaled(prepared.y_test),
        X_test_for_train_encoder=np.ascontiguousarray(train_encoder.transform(dataset.X.iloc[test_rows]), dtype=np.float64),
    )


def test_scores(split: Split, model: Any, metrics: tuple[str, ...], X_test: np.ndarray | None = None) -> dict[str, float]:
    """``metrics`` of an encoded-space model on the test split, with raysweep's metric code."""
    from raysweep.metrics import score

    X = split.X_test if X_test is None else X_test
    return {m: float(score(m, model, X, split.y_test, split.n_classes, split.y_scale)) for m in metrics}


def refit(split: Split, recipe: Any, family: Any, config: dict[str, Any], steps: int, seed: int,
          metrics: tuple[str, ...]) -> dict[str, float]:
    """The config trained on train+validation for ``steps`` resource steps, scored on test."""
    from raysweep.metrics import needs_proba

    model = family.build({**recipe.fixed, **config}, split.task, seed, any(needs_proba(m) for m in metrics))
    for step in range(1, steps + 1):
        model = family.train_step(model, split.X_pool, split.y_pool, step, recipe.resource, split.n_classes, seed)
    return test_scores(split, model, metrics)


class Trajectory:
    """Validation scores as they were reported, with seconds since the tool started (thread-safe)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.points: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state; the lock cannot go along.
        state = self.__dict__.copy()
        state.pop("_lock")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def add(self, value: float, at: float | None = None) -> None:
        if value is None or not math.isfinite(value):
            return
        with self._lock:
            self.points.append((time.perf_counter() - self.started if at is None else at, float(value)))

    def best_so_far(self, mode: str) -> list[list[float]]:
        """The running best, one point per improvement."""
        out: list[list[float]] = []
        for at, value in sorted(self.points):
            if not out or (value > out[-1][1] if mode == "max" else value < out[-1][1]):
                if out and out[-1][0] == round(at, 3):
                    out[-1][1] = value  # one point per instant (Tune's timestamps are whole seconds)
                else:
                    out.append([round(at, 3), value])
        return out


# -- the tools ------------------------------------------------------------------------------------
def run_cell(cell: dict[str, Any], settings: Settings, scratch: Path) -> dict[str, Any]:
    from raysweep.families import get_family
    from raysweep.metrics import direction
    from raysweep.recipes import load_recipe

    spec = DATASETS[cell["dataset"]]
    recipe = load_recipe(cell["recipe"], recipe_overrides(settings))
    family = get_family(recipe.family)
    dataset = load(spec, settings, cell["seed"])
    split = make_split(dataset, family, cell["seed"])
    runner = _TOOLS[cell["tool"]]
    outcome = runner(cell, settings, spec, recipe, family, split, scratch)
    return {
        **cell,
        "label": TOOL_LABELS[cell["tool"]],
        "metric": spec.metric,
        "mode": direction(spec.metric),
        "budget_s": settings.budget,
        "rows": {"train": len(split.y_train), "validation": len(split.y_val), "test": len(split.y_test)},
        **outcome,
    }


def _default(cell: dict[str, Any], settings: Settings, spec: DatasetSpec, recipe: Any, family: Any, split: Split,
             scratch: Path) -> dict[str, Any]:
    """The recipe's model with library defaults (and the recipe's fixed values), full resource."""
    from raysweep.metrics import needs_proba, score

    proba = any(needs_proba(m) for m in spec.metrics)
    started = time.perf_counter()
    model = family.build(dict(recipe.fixed), split.task, cell["seed"], proba)
    for step in range(1, recipe.resource.max_steps + 1):
        model = family.train_step(model, split.X_train, split.y_train, step, recipe.resource, split.n_classes, cell["seed"])
    fit_s = time.perf_counter() - started
    validation = score(spec.metric, model, split.X_val, split.y_val, split.n_classes, split.y_scale)
    return {
        "elapsed_s": fit_s,
        "validation": float(validation),
        "trajectory": [[round(fit_s, 3), float(validation)]],
        "test": refit(split, recipe, family, {}, recipe.resource.max_steps, cell["seed"], spec.metrics),
        "trials": 1,
    }


def _raysweep(scheduler: str | None, searcher: str | None) -> Callable[..., dict[str, Any]]:
    def run(cell: dict[str, Any], settings: Settings, spec: DatasetSpec, recipe: Any, family: Any, split: Split,
            scratch: Path) -> dict[str, Any]:
        from raysweep import run_sweep
        from raysweep.metrics import direction

        start_ray(settings)
        warm_mlflow(settings)
        pbt = scheduler == "pbt"
        trials, budget = ray_limits(settings)
        name = f"quality-{cell['id']}"
        started_epoch = time.time()
        started = time.perf_counter()
        result = run_sweep(
            cell["recipe"],
            split.dataset,
            tracking=True,
            progress=False,
            metric=spec.metric,
            overrides=recipe_overrides(settings),
            scheduler=scheduler,
            searcher=searcher,
            # PBT's population trains to the end side by side; elsewhere the budget ends the sweep.
            num_samples=settings.pbt_population if pbt else trials,
            time_budget=budget,
            max_concurrent=settings.concurrency,
            seed=cell["seed"],
            name=name,
            storage=str(scratch / "ray"),
            tracking_uri=settings.tracking_uri,
            experiment=f"bench-quality-{cell['dataset']}",
        )
        elapsed = time.perf_counter() - started
        reports = trial_reports(Path(result.storage_path))
        trajectory = Trajectory()
        for report in reports:
            # Tune's timestamps are whole seconds (rounded down): never before the start.
            trajectory.add(report.get(f"val_{spec.metric}"), at=max(0.0, report["timestamp"] - started_epoch))
        scores = test_scores(split, result.model.encoded(), spec.metrics, X_test=split.prepared.X_test)
        return {
            "elapsed_s": elapsed,
            "validation": result.best_validation_score,
            "trajectory": trajectory.best_so_far(direction(spec.metric)),
            "test": scores,
            "raysweep_test_score": result.test_score,
            "trials": result.num_trials,
            "stopped_early": result.num_stopped_early,
            "errors": result.num_errors,
            "best_config": result.best_config,
            "best_resource": result.best_resource,
            "resource": {"name": recipe.resource.name, "per_step": recipe.resource.per_step, "max": recipe.resource.max},
            "space": recipe.space,
            "scheduler": scheduler or recipe.scheduler,
            "searcher": searcher or recipe.searcher,
            "training_s": sum(float(r.get("step_time", 0.0)) for r in reports),
        }

    return run


def trial_reports(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every result a sweep's trials reported, from Tune's per-trial result.json files."""
    reports = []
    for path in glob.glob(str(sweep_dir / "*" / "result.json")):
        with open(path) as handle:
            for line in handle:
                line = line.strip()
                if line:
                    try:
                        reports.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue  # a line cut short when the budget ended the trial
    return reports


def _optuna_suggest(trial: Any, name: str, spec: dict[str, Any]) -> Any:
    """One parameter of raysweep's search-space DSL, drawn by Optuna over the same range."""
    kind = spec["type"]
    if kind in ("choice", "grid"):
        index = trial.suggest_categorical(name, [json.dumps(v) for v in spec["values"]])
        return json.loads(index)
    low, high = spec["low"], spec["high"]
    if kind == "uniform":
        return trial.suggest_float(name, low, high)
    if kind == "quniform":
        return trial.suggest_float(name, low, high, step=spec["q"])
    if kind == "loguniform":
        return trial.suggest_float(name, low, high, log=True)
    if kind == "qloguniform":
        return round(trial.suggest_float(name, low, high, log=True) / spec["q"]) * spec["q"]
    if kind == "randint":  # Ray's randint excludes its upper bound, Optuna's includes it
        return trial.suggest_int(name, int(low), int(high) - 1)
    if kind == "qrandint":
        return trial.suggest_int(name, int(low), int(high), step=int(spec["q"]))
    if kind == "lograndint":
        return trial.suggest_int(name, int(low), int(high) - 1, log=True)
    raise ValueError(f"no Optuna mapping for space type {kind!r}")


def _optuna(cell: dict[str, Any], settings: Settings, spec: DatasetSpec, recipe: Any, family: Any, split: Split,
            scratch: Path) -> dict[str, Any]:
    """Optuna's TPE with its Hyperband pruner, over the recipe's space and resource steps."""
    from benchmarks._peers import require
    from raysweep.metrics import direction, needs_proba, score

    optuna = require("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mode = direction(spec.metric)
    proba = needs_proba(spec.metric)
    trajectory = Trajectory()
    max_steps = recipe.resource.max_steps

    def objective(trial: Any) -> float:
        config = {name: _optuna_suggest(trial, name, entry) for name, entry in recipe.space.items()}
        model = family.build({**recipe.fixed, **config}, split.task, cell["seed"], proba)
        value = float("nan")
        for step in range(1, max_steps + 1):
            model = family.train_step(model, split.X_train, split.y_train, step, recipe.resource, split.n_classes, cell["seed"])
            value = score(spec.metric, model, split.X_val, split.y_val, split.n_classes, split.y_scale)
            trajectory.add(value)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        trial.set_user_attr("config", config)
        return value

    study = optuna.create_study(
        direction="maximize" if mode == "max" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=cell["seed"]),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=recipe.grace_period, max_resource=max_steps, reduction_factor=int(recipe.reduction_factor)
        ),
    )
    study.optimize(objective, timeout=settings.budget, n_jobs=settings.concurrency, catch=(ValueError,))
    elapsed = time.perf_counter() - trajectory.started
    best = study.best_trial
    config = best.user_attrs["config"]
    states = [t.state.name for t in study.trials]
    return {
        "elapsed_s": elapsed,
        "validation": float(best.value),
        "trajectory": trajectory.best_so_far(mode),
        "test": refit(split, recipe, family, config, max_steps, cell["seed"], spec.metrics),
        "trials": len(study.trials),
        "stopped_early": states.count("PRUNED"),
        "errors": states.count("FAIL"),
        "best_config": config,
    }


_FLAML_METRICS = {"r2": "r2", "rmse": "rmse", "mae": "mae", "accuracy": "accuracy", "log_loss": "log_loss",
                  "roc_auc": "roc_auc", "f1_macro": "macro_f1"}


def _flaml_score(metric: str, loss: float) -> float:
    """FLAML logs a loss to minimise; turn it back into the metric."""
    return 1.0 - loss if metric in ("r2", "accuracy", "roc_auc", "f1_macro") else loss


def _flaml(cell: dict[str, Any], settings: Settings, spec: DatasetSpec, recipe: Any, family: Any, split: Split,
           scratch: Path) -> dict[str, Any]:
    """FLAML's AutoML, XGBoost only, on the same train/validation arrays; it refits on both itself."""
    from benchmarks._peers import require
    from raysweep.metrics import direction

    automl_module = require("flaml.automl")
    mode = direction(spec.metric)
    log_file = scratch / "flaml.log"
    automl = automl_module.AutoML()
    started = time.perf_counter()
    automl.fit(
        X_train=split.X_train, y_train=split.y_train, X_val=split.X_val, y_val=split.y_val,
        task=split.task, metric=_FLAML_METRICS[spec.metric], estimator_list=["xgboost"],
        time_budget=settings.budget, n_jobs=settings.concurrency, seed=cell["seed"], eval_method="holdout",
        retrain_full=True, log_file_name=str(log_file), verbose=0, mlflow_logging=False,
    )
    elapsed = time.perf_counter() - started
    trajectory = Trajectory()
    records = 0
    if log_file.exists():
        for line in log_file.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "validation_loss" in entry and "wall_clock_time" in entry:
                records += 1
                trajectory.add(_flaml_score(spec.metric, float(entry["validation_loss"])), at=float(entry["wall_clock_time"]))
    model = _FlamlModel(automl, split.n_classes)
    return {
        "elapsed_s": elapsed,
        "validation": _flaml_score(spec.metric, float(automl.best_loss)),
        "trajectory": trajectory.best_so_far(mode),
        "test": test_scores(split, model, spec.metrics, X_test=split.X_test_for_train_encoder),
        "trials": records,
        "best_config": {k: (v.item() if hasattr(v, "item") else v) for k, v in (automl.best_config or {}).items()},
    }


class _FlamlModel:
    """FLAML's fitted AutoML behind the predict/predict_proba that raysweep's metrics call."""

    def __init__(self, automl: Any, n_classes: int) -> None:
        self.automl = automl
        self.classes_ = np.arange(n_classes) if n_classes else None

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.automl.predict(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.automl.predict_proba(X))


def _ray_random(cell: dict[str, Any], settings: Settings, spec: DatasetSpec, recipe: Any, family: Any, split: Split,
                scratch: Path) -> dict[str, Any]:
    """Plain Ray Tune as a user writes it: a function trainable, random search, Tune's defaults."""
    from ray import tune
    from ray.tune import Callback
    from ray.tune.search import BasicVariantGenerator

    from raysweep import space
    from raysweep.metrics import direction, needs_proba, score

    start_ray(settings)
    mode = direction(spec.metric)
    proba = needs_proba(spec.metric)
    max_steps = recipe.resource.max_steps
    fixed, resource, task, n_classes, y_scale, seed = (
        dict(recipe.fixed), recipe.resource, split.task, split.n_classes, split.y_scale, cell["seed"])

    def trainable(config: dict[str, Any], X_train=None, y_train=None, X_val=None, y_val=None) -> None:
        model = family.build({**fixed, **config}, task, seed, proba)
        for step in range(1, max_steps + 1):
            model = family.train_step(model, X_train, y_train, step, resource, n_classes, seed)
        tune.report({"val": score(spec.metric, model, X_val, y_val, n_classes, y_scale)})

    trajectory = Trajectory()

    class Recorder(Callback):
        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            trajectory.add(result.get("val"))

    trials, budget = ray_limits(settings)
    tuner = tune.Tuner(
        tune.with_parameters(trainable, X_train=split.X_train, y_train=split.y_train, X_val=split.X_val, y_val=split.y_val),
        param_space=space.param_space(recipe.space, "random"),
        tune_config=tune.TuneConfig(
            metric="val", mode=mode, num_samples=trials, time_budget_s=budget,
            max_concurrent_trials=settings.concurrency, search_alg=BasicVariantGenerator(random_state=seed),
        ),
        run_config=tune.RunConfig(name=f"quality-{cell['id']}", storage_path=str(scratch / "ray"), verbose=0,
                                  callbacks=[Recorder()]),
    )
    results = tuner.fit()
    elapsed = time.perf_counter() - trajectory.started
    best = results.get_best_result(metric="val", mode=mode, filter_nan_and_inf=True)
    config = dict(best.config)
    return {
        "elapsed_s": elapsed,
        "validation": float(best.metrics["val"]),
        "trajectory": trajectory.best_so_far(mode),
        "test": refit(split, recipe, family, config, max_steps, seed, spec.metrics),
        # Tune lists trials it created but never started when the budget ran out: count those that reported.
        "trials": sum(1 for r in results if r.metrics and "val" in r.metrics),
        "errors": sum(1 for r in results if r.error is not None),
        "best_config": {k: (v.item() if hasattr(v, "item") else v) for k, v in config.items()},
    }


# -- scikit-learn's successive halving ------------------------------------------------------------
#: family name -> the estimator parameters that train it at the recipe's full resource
FULL_RESOURCE: dict[str, Callable[[Any], dict[str, Any]]] = {
    "xgboost": lambda r: {"n_estimators": int(r.max)},
    "random_forest": lambda r: {"n_estimators": int(r.max), "warm_start": False},
    "mlp": lambda r: {"max_iter": int(r.max)},
    "svm": lambda r: {},  # its resource is the share of rows, which halving itself grows
}


class _Quantized:
    def __init__(self, base: Any, q: float) -> None:
        self.base, self.q = base, q

    def rvs(self, random_state: Any = None) -> float:
        return round(float(self.base.rvs(random_state=random_state)) / self.q) * self.q


class _LogInt:
    def __init__(self, low: int, high: int) -> None:
        from scipy import stats

        self.dist = stats.loguniform(low, high)
        self.low, self.high = low, high

    def rvs(self, random_state: Any = None) -> int:
        return int(min(self.high - 1, max(self.low, math.floor(self.dist.rvs(random_state=random_state)))))


def sklearn_distributions(recipe_space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """raysweep's search-space DSL as scikit-learn ``param_distributions`` over the same ranges."""
    from scipy import stats

    out: dict[str, Any] = {}
    for name, spec in recipe_space.items():
        kind = spec["type"]
        if kind in ("choice", "grid"):
            out[name] = [tuple(v) if isinstance(v, list) else v for v in spec["values"]]
            continue
        low, high = spec["low"], spec["high"]
        if kind == "uniform":
            out[name] = stats.uniform(low, high - low)
        elif kind == "quniform":
            out[name] = _Quantized(stats.uniform(low, high - low), spec["q"])
        elif kind == "loguniform":
            out[name] = stats.loguniform(low, high)
        elif kind == "qloguniform":
            out[name] = _Quantized(stats.loguniform(low, high), spec["q"])
        elif kind == "randint":
            out[name] = stats.randint(int(low), int(high))
        elif kind == "qrandint":
            out[name] = list(range(int(low), int(high) + 1, int(spec["q"])))
        elif kind == "lograndint":
            out[name] = _LogInt(int(low), int(high))
        else:
            raise ValueError(f"no scikit-learn mapping for space type {kind!r}")
    return out


def halving_schedule(n_candidates: int, n_max: int, smallest: int, factor: int) -> list[tuple[int, int]]:
    """(candidates, samples) per iteration, as HalvingRandomSearchCV plans it with min_resources='exhaust'."""
    required = 1 + int(math.floor(math.log(n_candidates, factor) + 1e-9))
    r_min = max(smallest, n_max // factor ** (required - 1))
    possible = 1 + int(math.floor(math.log(max(n_max // r_min, 1), factor) + 1e-9))
    return [
        (math.ceil(n_candidates / factor**i), min(r_min * factor**i, n_max))
        for i in range(min(possible, required))
    ]


def halving_candidates(budget: float, fit_time: Callable[[float], float], n_max: int, smallest: int,
                       factor: int, folds: int, n_jobs: int) -> int:
    """The most candidates whose estimated cost (every CV fit plus the refit) fits the budget."""

    def cost(n: int) -> float:
        total = 0.0
        for candidates, samples in halving_schedule(n, n_max, smallest, factor):
            fits = candidates * folds
            total += math.ceil(fits / n_jobs) * fit_time(samples * (folds - 1) / folds)
        return total + fit_time(n_max)

    best = factor
    n = factor
    while n < 50_000:
        if cost(n) <= budget:
            best = n
        n = max(n + 1, int(n * 1.05))
    return best


def _halving(cell: dict[str, Any], settings: Settings, spec: DatasetSpec, recipe: Any, family: Any, split: Split,
             scratch: Path) -> dict[str, Any]:
    """HalvingRandomSearchCV over the pool with 5-fold CV, its candidates sized to the budget.

    It has no time budget of its own. Its candidate count is chosen so that its estimated
    cost, from two timed fits (on a few hundred rows and on a full fold), matches the budget;
    its real time is reported next to its score.
    """
    from sklearn.base import clone
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import HalvingRandomSearchCV

    from raysweep.metrics import needs_proba

    folds, factor = 5, 3
    scoring = {"r2": "r2", "rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error",
               "accuracy": "accuracy", "log_loss": "neg_log_loss", "roc_auc": "roc_auc_ovr",
               "f1_macro": "f1_macro"}[spec.metric]
    estimator = family.build(dict(recipe.fixed), split.task, cell["seed"], needs_proba(spec.metric))
    estimator.set_params(**FULL_RESOURCE[recipe.family](recipe.resource))
    n_max = len(split.y_pool)
    smallest = folds * 2 * (split.n_classes or 1)

    rng = np.random.default_rng(cell["seed"])

    def timed_fit(rows: int) -> float:
        """One CV fit on ``rows`` rows plus scoring its held-out fold, as halving does it."""
        chosen = rng.choice(n_max, size=min(rows, n_max), replace=False)
        if split.n_classes:  # every class present, as halving's stratified subsamples have them
            chosen = np.unique(np.concatenate([chosen, [np.flatnonzero(split.y_pool == c)[0] for c in range(split.n_classes)]]))
        held_out = rng.choice(n_max, size=max(1, len(chosen) // (folds - 1)), replace=False)
        scorer = check_scoring(estimator, scoring=scoring)
        started = time.perf_counter()
        fitted = clone(estimator).fit(split.X_pool[chosen], split.y_pool[chosen])
        scorer(fitted, split.X_pool[held_out], split.y_pool[held_out])
        return time.perf_counter() - started

    small_rows, full_rows = max(smallest, 300), int(n_max * (folds - 1) / folds)
    small_s, full_s = timed_fit(small_rows), timed_fit(full_rows)

    def fit_time(rows: float) -> float:
        share = (rows - small_rows) / max(full_rows - small_rows, 1)
        return max(small_s, small_s + (full_s - small_s) * share)

    candidates = halving_candidates(settings.budget, fit_time, n_max, smallest, factor, folds, settings.concurrency)
    search = HalvingRandomSearchCV(
        estimator, sklearn_distributions(recipe.space), n_candidates=candidates, factor=factor,
        min_resources="exhaust", cv=folds, scoring=scoring, random_state=cell["seed"], n_jobs=settings.concurrency,
        error_score=np.nan,
    )
    started = time.perf_counter()
    search.fit(split.X_pool, split.y_pool)
    elapsed = time.perf_counter() - started
    best_score = float(search.best_score_)
    return {
        "elapsed_s": elapsed,
        "validation": None,  # a cross-validation score, not comparable with the others' validation split
        "cv_score": -best_score if scoring.startswith("neg_") else best_score,
        "trajectory": [],
        "test": test_scores(split, search.best_estimator_, spec.metrics),
        "trials": int(sum(search.n_candidates_)),
        "candidates": candidates,
        "calibration_s": {"small_fit": small_s, "full_fit": full_s, "small_rows": small_rows, "full_rows": full_rows},
        "best_config": {k: (v.item() if hasattr(v, "item") else v) for k, v in search.best_params_.items()},
    }


#: tool name -> how it runs one cell: (cell, settings, dataset spec, recipe, family, split, scratch) -> outcome
_TOOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "default": _default,
    "raysweep": _raysweep(None, None),
    "raysweep_pbt": _raysweep("pbt", "random"),
    "raysweep_asha_random": _raysweep("asha", "random"),
    "raysweep_gp": _raysweep(None, "gp"),
    "raysweep_optuna": _raysweep(None, "optuna"),
    "optuna": _optuna,
    "flaml": _flaml,
    "halving": _halving,
    "ray_random": _ray_random,
}


def summary(record: dict[str, Any]) -> str:
    test = ", ".join(f"{k} {v:.4f}" for k, v in record["test"].items())
    return (f"{record['dataset']:<18} {record['recipe']:<13} {record['tool']:<20} seed {record['seed']}: "
            f"test {test} in {record['elapsed_s']:.1f}s ({record.get('trials', '?')} trials)")
