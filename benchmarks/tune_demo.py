"""The README's demo written by hand with Ray Tune: what a Ray Tune user who skips raysweep would run.

    python benchmarks/tune_demo.py            # the bare search
    python benchmarks/tune_demo.py --mlflow   # and every trial in MLflow through Ray's MLflowLoggerCallback

The same search as ``raysweep run xgboost --dataset breast_cancer --num-samples 12`` and
``benchmarks/optuna_demo.py``: the prebuilt XGBoost recipe's space and starting point, 50-round
steps up to 300 rounds stopped early by ASHA (its first rung at 100 rounds, reduction factor 3),
HyperOpt's TPE (Ray Tune's ``HyperOptSearch``, seeded, the starting point first, 10 random
configs before it models, as the recipe's searcher; unlike raysweep's, it also models trials
still running), two trials at a time on an embedded local
Ray (one CPU and one XGBoost thread each, actors reused), the best config refit on train +
validation and scored on a held-out test split (60/20/20, stratified). With ``--mlflow``, Ray's
``MLflowLoggerCallback`` logs each trial as a run in ``sqlite:///mlflow.db`` in the working
directory (no parent run, no model, no plots). Prints one JSON line with its scores and trials.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()

import numpy as np  # noqa: E402
import ray  # noqa: E402
import xgboost as xgb  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402
from ray.tune.search import ConcurrencyLimiter  # noqa: E402
from ray.tune.search.hyperopt import HyperOptSearch  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

STEP, MAX_ROUNDS, TRIALS, SEED = 50, 300, 12, 0
#: the recipe's early stopping: the first rung after 2 steps, reduction factor 3
GRACE_STEPS, REDUCTION, INITIAL_POINTS = 2, 3, 10
DEFAULTS = {"learning_rate": 0.3, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 1.0}


def trainable(config: dict, data: tuple) -> None:
    X_train, y_train, X_val, y_val = data
    booster = None
    for rounds in range(STEP, MAX_ROUNDS + 1, STEP):
        model = xgb.XGBClassifier(n_estimators=STEP, tree_method="hist", n_jobs=1, random_state=SEED, **config)
        model.fit(X_train, y_train, xgb_model=booster, verbose=False)
        booster = model.get_booster()
        tune.report({"val_accuracy": float(accuracy_score(y_val, model.predict(X_val))), "rounds": rounds})


def recipe_space() -> dict:
    """The prebuilt XGBoost recipe's space in Ray Tune's terms."""
    return {
        "learning_rate": tune.loguniform(0.01, 0.3),
        "max_depth": tune.randint(2, 11),
        "min_child_weight": tune.loguniform(0.5, 20.0),
        "subsample": tune.uniform(0.5, 1.0),
        "colsample_bytree": tune.uniform(0.4, 1.0),
        "reg_lambda": tune.loguniform(0.001, 10.0),
    }


def main(argv: list[str]) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=SEED)
    X_train, X_val, y_train, y_val = train_test_split(X_pool, y_pool, test_size=0.25, stratify=y_pool, random_state=SEED)

    ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    space = recipe_space()
    first_result: list[float] = []

    class FirstResult(tune.Callback):
        """When the first trial result reached Tune's loop, from the script's first line."""

        def on_trial_result(self, iteration: int, trials: list, trial: object, result: dict, **info: object) -> None:
            if not first_result:
                first_result.append(time.perf_counter() - STARTED)

    callbacks: list = [FirstResult()]
    if "--mlflow" in argv:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(MLflowLoggerCallback(tracking_uri="sqlite:///mlflow.db", experiment_name="tune-demo", save_artifact=False))
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, data=(X_train, y_train, X_val, y_val)), {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="val_accuracy", mode="max", num_samples=TRIALS, reuse_actors=True,
            search_alg=ConcurrencyLimiter(HyperOptSearch(points_to_evaluate=[DEFAULTS], random_state_seed=SEED,
                                                       n_initial_points=INITIAL_POINTS), max_concurrent=2),
            scheduler=ASHAScheduler(time_attr="rounds", max_t=MAX_ROUNDS, grace_period=GRACE_STEPS * STEP, reduction_factor=REDUCTION),
        ),
        run_config=tune.RunConfig(name="tune-demo", storage_path=str(Path.cwd() / "ray_results"),
                                  verbose=0, callbacks=callbacks),
    )  # fmt: skip
    results = tuner.fit()
    best = results.get_best_result(scope="all")
    config = best.config
    refit = xgb.XGBClassifier(n_estimators=MAX_ROUNDS, tree_method="hist", n_jobs=2, random_state=SEED, **config)
    refit.fit(X_pool, y_pool, verbose=False)
    test = accuracy_score(y_test, refit.predict(X_test))
    stopped = sum(1 for r in results if r.metrics.get("rounds", MAX_ROUNDS) < MAX_ROUNDS)
    # the best score of any step, as the Optuna script reports it (best.metrics is the trial's last result)
    best_validation = float(best.metrics_dataframe["val_accuracy"].max())
    print(json.dumps({"best_validation_accuracy": best_validation, "test_accuracy": float(test),
                      "trials": len(results), "stopped_early": stopped, "mlflow": "--mlflow" in argv,
                      "seconds_in_process": time.perf_counter() - STARTED, "rows": int(np.size(y)),
                      "first_result_s": first_result[0] if first_result else None}))  # fmt: skip
    ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
