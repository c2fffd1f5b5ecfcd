"""What an XGBoost trial's steps cost: rebuilding the training matrix every step against keeping it.

``python -m benchmarks.xgboost_steps [--data-dir DIR] [--repeats N]`` trains the XGBoost recipe's
default config on letter (the raysweep split: 60% of the rows, 26 classes) in 6 steps of 50
rounds, the way a trial does, three ways, alternating so that others' load on a shared machine
falls on all alike, and in CPU seconds of this process (``time.process_time``, one XGBoost thread):

- ``rebuilt``: each step a new scikit-learn ``fit`` continuing the booster, which builds the
  quantile matrix of the same rows again (raysweep before the matrix was kept);
- ``kept, new actor``: raysweep's ``train_step``, the matrix built at the first step and reused;
- ``kept, reused actor``: a later trial on the same actor, which finds the matrix already built;
- ``one fit``: one ``fit`` of all 300 rounds, the floor.

It prints the median of each and what it means for trials per 120 s on two cores.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from benchmarks._common import DEFAULT_DATA_DIR

STEPS, ROUNDS = 6, 50
PARAMS = {"tree_method": "hist", "learning_rate": 0.3, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 1.0}


def _rebuilding_step(model: Any, X: Any, y: Any, step: int, rounds: int) -> Any:
    """One step as raysweep took it before: a new wrapper's ``fit`` continuing the booster."""
    previous = model.get_booster() if step > 1 else None
    params = {k: v for k, v in model.get_params().items() if k != "n_estimators"}
    grown = type(model)(**params, n_estimators=rounds)
    grown.fit(X, y, xgb_model=previous, verbose=False)
    return grown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="where letter.csv is")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from raysweep.data import load_dataset, prepare
    from raysweep.families import get_family
    from raysweep.families._resource import Resource
    from raysweep.metrics import score

    family = get_family("xgboost")
    path = Path(args.data_dir) / "letter.csv"
    data = prepare(load_dataset(str(path), target="Letter"), family, seed=0).trial
    X, y, n = data.X_train, data.y_train, data.n_classes
    resource = Resource("boosting_rounds", ROUNDS, ROUNDS * STEPS)
    print(f"{path.name}: {len(y)} training rows, {X.shape[1]} features, {n} classes; {STEPS} steps of {ROUNDS} rounds")

    def rebuilt() -> Any:
        model = family.build(PARAMS, data.task, 0, True)
        for step in range(1, STEPS + 1):
            model = _rebuilding_step(model, X, y, step, ROUNDS)
        return model

    def kept(actor: Any) -> Callable[[], Any]:
        def trial() -> Any:
            model = actor.build(PARAMS, data.task, 0, True)
            for step in range(1, STEPS + 1):
                model = actor.train_step(model, X, y, step, resource, n, 0)
            return model

        return trial

    def kept_new_actor() -> Any:
        return kept(get_family("xgboost"))()

    reused = get_family("xgboost")
    kept(reused)()  # the actor's first trial built the matrix

    def one_fit() -> Any:
        return family.estimator_class(data.task)(n_estimators=ROUNDS * STEPS, random_state=0, n_jobs=1, **PARAMS).fit(X, y)

    ways = {"rebuilt": rebuilt, "kept, new actor": kept_new_actor, "kept, reused actor": kept(reused), "one fit": one_fit}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    scores: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, way in ways.items():
            started = time.process_time()
            model = way()
            seconds[name].append(time.process_time() - started)
            scores[name] = score("accuracy", model, data.X_val, data.y_val, n)
    floor = statistics.median(seconds["one fit"])
    print(f"{'':20} {'CPU s (median)':>15} {'x one fit':>10} {'trials/120 s, 2 cores':>22} {'val accuracy':>13}")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:20} {median:15.2f} {median / floor:10.2f} {2 * 120 / median:22.1f} {scores[name]:13.4f}")


if __name__ == "__main__":
    main()
