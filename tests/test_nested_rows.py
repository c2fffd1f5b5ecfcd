"""Which rows each sweep of a nested validation sees, through the data its trials and its refit get:
a fold's inner sweep trains and validates only on the other folds' rows, is scored on its own
held-out fold, and no sweep of the job ever sees the test split except the final sweep's score.

Each row carries its index as a feature, so the encoded arrays say which rows they hold."""

from __future__ import annotations

import numpy as np
import pytest

from raysweep.data import Dataset, load_dataset, prepare
from raysweep.splits import tuning_pool
from raysweep.sweep.nested import plan_parts
from raysweep.sweep.options import plan_sweep


def with_row_ids(name: str) -> Dataset:
    dataset = load_dataset(name)
    X = dataset.X.copy()
    X["row_id"] = np.arange(len(X), dtype=float)
    return Dataset(name=name, X=X, y=dataset.y, task=dataset.task)


def ids(column: int, array: np.ndarray) -> set[int]:
    return set(array[:, column].astype(int)) if len(array) else set()


@pytest.mark.parametrize("cv", [None, 3], ids=["inner-split", "inner-cv"])
def test_each_fold_tunes_on_the_other_folds_only_and_is_scored_on_its_own(cv, tmp_path):
    dataset = with_row_ids("breast_cancer")
    plan = plan_sweep("random_forest", dataset, nested_cv=3, cv=cv, seed=4, storage=str(tmp_path))
    pool, test = (set(rows.tolist()) for rows in tuning_pool(dataset, plan.seed, plan.test_size))
    parts = plan_parts(plan, None)
    assert [part_plan.name for part_plan, _ in parts] == [f"{plan.name}-fold{i}" for i in (1, 2, 3)] + [f"{plan.name}-final"]
    held_out_by_fold = []
    for part_plan, part in parts:
        # The data as the sweep's run prepares it (raysweep.sweep.run.run_planned).
        prepared = prepare(
            part_plan.dataset, part_plan.family, seed=part_plan.seed, test_size=part_plan.test_size, val_size=part_plan.val_size,
            cv=part_plan.cv, rows=part.rows,
        )  # fmt: skip
        column = prepared.numeric_columns.index("row_id")
        trial = prepared.trial
        train, val = ids(column, trial.X_train), ids(column, trial.X_val)
        scored_on = set(prepared.X_test["row_id"].astype(int))
        refit_on = set(prepared.X_pool["row_id"].astype(int))
        assert not train & val and (train | val) == refit_on
        if cv is not None:  # the inner cross-validation's folds cut the same rows
            assert val == set() and all(not set(tr) & set(va) and len(tr) + len(va) == len(train) for tr, va in trial.folds)
        if part.rows is None:  # the final sweep: all of train+validation, scored on the test split
            assert refit_on == pool and scored_on == test
            continue
        held_out_by_fold.append(scored_on)
        # A fold's sweep: tunes and refits on the other folds; its held-out fold and the test split are in neither.
        assert refit_on | scored_on == pool and not refit_on & scored_on
        assert not (train | val | scored_on) & test
    # The held-out folds cut the pool: each row is held out by exactly one fold.
    assert len(held_out_by_fold) == 3 and set().union(*held_out_by_fold) == pool
    assert sum(len(held) for held in held_out_by_fold) == len(pool)
