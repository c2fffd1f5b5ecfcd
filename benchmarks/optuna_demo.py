"""The README's demo written by hand with Optuna: what a user who skips raysweep would run.

    python benchmarks/optuna_demo.py

The same search as ``raysweep run xgboost --dataset breast_cancer --num-samples 12``: the prebuilt
XGBoost recipe's space and starting point, 50-round steps up to 300 rounds with Optuna's
Hyperband pruner (its smallest resource 2 steps, the recipe's first ASHA rung; reduction factor 3), two trials at a time (threads, one XGBoost thread each), the best config refit
on train + validation and scored on a held-out test split (60/20/20, stratified). No tracking,
no plots, no saved model: the bare search. Prints one JSON line with its scores and trials.
"""

from __future__ import annotations

import json
import time

STARTED = time.perf_counter()

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import xgboost as xgb  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

STEP, MAX_ROUNDS, TRIALS, SEED = 50, 300, 12, 0
DEFAULTS = {"learning_rate": 0.3, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 1.0}


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = load_breast_cancer(return_X_y=True)
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=SEED)
    X_train, X_val, y_train, y_val = train_test_split(X_pool, y_pool, test_size=0.25, stratify=y_pool, random_state=SEED)

    def params(trial: optuna.Trial) -> dict:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 10),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 0.001, 10.0, log=True),
        }

    def objective(trial: optuna.Trial) -> float:
        config = params(trial)
        booster, best = None, 0.0
        for rounds in range(STEP, MAX_ROUNDS + 1, STEP):
            model = xgb.XGBClassifier(n_estimators=STEP, tree_method="hist", n_jobs=1, random_state=SEED, **config)
            model.fit(X_train, y_train, xgb_model=booster, verbose=False)
            booster = model.get_booster()
            score = accuracy_score(y_val, model.predict(X_val))
            best = max(best, score)
            trial.report(score, rounds // STEP)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return best

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=SEED),
        pruner=optuna.pruners.HyperbandPruner(min_resource=2, max_resource=MAX_ROUNDS // STEP, reduction_factor=3),
    )
    study.enqueue_trial(DEFAULTS)
    study.optimize(objective, n_trials=TRIALS, n_jobs=2)
    best = study.best_trial
    refit = xgb.XGBClassifier(n_estimators=MAX_ROUNDS, tree_method="hist", n_jobs=2, random_state=SEED, **best.params)
    refit.fit(X_pool, y_pool, verbose=False)
    test = accuracy_score(y_test, refit.predict(X_test))
    print(json.dumps({"best_validation_accuracy": best.value, "test_accuracy": float(test), "trials": len(study.trials),
                      "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
                      "seconds_in_process": time.perf_counter() - STARTED, "rows": int(np.size(y))}))


if __name__ == "__main__":
    main()
