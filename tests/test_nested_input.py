"""Bad ``--nested-cv`` input: one line naming the flag and the fix, exit code 2, before Ray starts,
nothing written (no MLflow store, no results folder); and the same refusal from the Python API.
Also the outer folds themselves: stratified, seeded, disjoint, never the test split."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from raysweep.cli import main
from raysweep.data import load_dataset
from raysweep.errors import UserError
from raysweep.splits import outer_folds, tuning_pool
from raysweep.sweep.options import plan_sweep

CASES = [
    (
        ["--dataset", "breast_cancer", "--nested-cv", "1"],
        "error: --nested-cv 1: nested validation needs at least 2 outer folds; use --nested-cv 5, or leave it out for one sweep",
    ),
    (
        ["--dataset", "iris", "--nested-cv", "41"],
        "error: --nested-cv 41: the rarest class of iris has 40 row(s) in train+validation, and each of the 41 "
        "stratified outer folds needs one; use --nested-cv 40 or fewer",
    ),
    (
        ["--dataset", "make_classification:n_samples=14", "--nested-cv", "3"],
        "error: --nested-cv 3: make_classification has 11 rows in train+validation, so each outer fold tunes on 7; "
        "the inner train/validation split needs at least 10; use fewer outer folds or more data",
    ),
    (
        ["--dataset", "make_classification:n_samples=40", "--nested-cv", "2", "--cv", "20"],
        "error: --nested-cv 2: make_classification has 32 rows in train+validation, so each outer fold tunes on 16; "
        "the inner cross-validation needs at least 20; use --cv 16 or fewer or more data",
    ),
    (  # 2 outer folds is the fewest: "use fewer folds" was advice that could not be taken
        ["--dataset", "make_classification:n_samples=15", "--nested-cv", "2"],
        "error: --nested-cv 2: make_classification has 12 rows in train+validation, so each outer fold tunes on 6; "
        "the inner train/validation split needs at least 10; use more data",
    ),
]


@pytest.mark.parametrize(
    "args, message", CASES, ids=["one-fold", "more-folds-than-the-rarest-class", "too-few-rows", "too-few-rows-for-inner-cv", "too-few-rows-at-two-folds"]
)
def test_bad_nested_cv_is_one_line_exit_2_and_nothing_written(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = CliRunner().invoke(main, ["run", "random_forest", *args], prog_name="raysweep")
    assert outcome.exit_code == 2
    assert outcome.stderr.strip() == message
    assert outcome.stdout == "" and list(tmp_path.iterdir()) == []


def test_the_api_refuses_the_same_way(tmp_path):
    with pytest.raises(UserError, match=r"^--nested-cv 1: nested validation needs at least 2 outer folds"):
        plan_sweep("random_forest", "iris", nested_cv=1, storage=tmp_path)
    with pytest.raises(UserError, match=r"^--nested-cv 41: the rarest class of iris has 40 row"):
        plan_sweep("random_forest", "iris", nested_cv=41, storage=tmp_path)


def test_the_nested_cv_flag_is_a_setting_only_when_given(tmp_path):
    assert "nested_cv" not in plan_sweep("random_forest", "iris", storage=tmp_path).settings()
    assert plan_sweep("random_forest", "iris", nested_cv=3, storage=tmp_path).settings()["nested_cv"] == 3


def test_outer_folds_cover_the_tuning_pool_once_stratified_and_never_the_test_rows():
    dataset = load_dataset("iris")
    pool, test = tuning_pool(dataset, seed=0, test_size=0.2)
    folds = outer_folds(dataset, seed=0, test_size=0.2, k=4)
    held_out = np.concatenate([held for _, held in folds])
    assert sorted(held_out) == sorted(pool) and not set(held_out) & set(test)
    for inner, held in folds:
        assert not set(inner) & set(held) and not set(inner) & set(test)
        assert sorted(np.concatenate([inner, held])) == sorted(pool)
        counts = dataset.y.iloc[held].value_counts()
        assert counts.max() - counts.min() <= 1  # 40 of each class in the pool: 10 per fold
    again = outer_folds(dataset, seed=0, test_size=0.2, k=4)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    other = outer_folds(dataset, seed=1, test_size=0.2, k=4)
    assert any(set(a[1]) != set(b[1]) for a, b in zip(folds, other))


def test_help_says_the_trial_count_and_budget_are_per_inner_sweep():
    text = CliRunner().invoke(main, ["run", "--help"], prog_name="raysweep", terminal_width=200).output
    assert "--nested-cv K" in text
    assert "with --nested-cv, per inner sweep" in " ".join(text.split())


def resume(name: str, storage) -> object:
    return CliRunner().invoke(main, ["resume", name, "--storage", str(storage)], prog_name="raysweep")


def test_resume_of_a_nested_validation_recorded_without_its_plan_is_refused_in_one_line(tmp_path, monkeypatch):
    from raysweep.sweep import record as sweep_record

    monkeypatch.chdir(tmp_path)
    storage = tmp_path / "results"
    sweep_record.save(str(storage / "job"), {"name": "job", "storage": str(storage), "nested_cv": 3, "parts": ["job-fold1"]})
    sweep_record.save(str(storage / "job-fold1"), {"name": "job-fold1", "storage": str(storage), "nested_job": "job"})
    for name in ("job", "job-fold1"):
        outcome = resume(name, storage)
        assert outcome.exit_code == 2
        assert outcome.stderr.strip() == (
            "error: sweep job is part of a nested validation (--nested-cv 3) started by a raysweep that kept too little "
            "to resume it: start it again with raysweep run"
        )
    sweep_record.save(str(storage / "lost-fold1"), {"name": "lost-fold1", "storage": str(storage), "nested_job": "lost"})
    outcome = resume("lost-fold1", storage)
    assert outcome.exit_code == 2
    assert outcome.stderr.strip() == (
        f"error: sweep lost-fold1 is part of the nested validation lost, whose record is not in {storage}; "
        "resume the job with raysweep resume lost --storage where it ran"
    )


def test_resume_of_a_complete_nested_validation_or_of_one_of_its_sweeps_has_nothing_to_do(tmp_path, monkeypatch):
    from raysweep.sweep import record as sweep_record
    from raysweep.sweep.nested_resume import JOB_DONE

    monkeypatch.chdir(tmp_path)
    storage = tmp_path / "results"
    job = {"name": "job", "storage": str(storage), "nested_cv": 2, "recipe": {"name": "random_forest"}, JOB_DONE: True}
    sweep_record.save(str(storage / "job"), job)
    sweep_record.save(str(storage / "job-final"), {"name": "job-final", "storage": str(storage), "nested_job": "job"})
    for name in ("job", "job-final"):
        outcome = resume(name, storage)
        assert outcome.exit_code == 0
        assert outcome.stderr.strip() == "raysweep: nested validation job is complete; nothing to resume. Its result: raysweep report job"
    assert sorted(path.name for path in storage.iterdir()) == ["job", "job-final"]  # nothing started
