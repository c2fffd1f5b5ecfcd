"""An auto sweep's scheduler: Ray's ASHA per family, so a trial is stopped for trailing its own family.

Real Ray Tune schedulers (raysweep's ASHA as the registry builds it), driven with results as Tune
hands them; no Ray started.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ray.tune.schedulers import TrialScheduler

from raysweep.families import get_family
from raysweep.recipes import load_recipe
from raysweep.strategies.registry import build_scheduler
from raysweep.strategies._per_group import PerGroupScheduler
from raysweep.sweep.auto import auto_recipe, family_of

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def _asha(notes: dict[str, str] | None = None):
    recipes = [load_recipe(name) for name in ("random_forest", "svm")]
    plan = auto_recipe(recipes, "classification", [get_family(r.family) for r in recipes])
    return build_scheduler("asha", plan.recipe, "val_accuracy", "max", plan.steps, 0, [], notes)


def _trial(trial_id: str, family: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config={"model": {"family": family, family: {"C": 1.0}}})


def _first_rung(scheduler: TrialScheduler, results: list[tuple[SimpleNamespace, float]]) -> list[str]:
    """Each trial added, then its first result (step 1 of 6, the lowest rung), in order: the actions."""
    scheduler.set_search_properties("val_accuracy", "max")
    for trial, _ in results:
        scheduler.on_trial_add(None, trial)
    return [scheduler.on_trial_result(None, trial, {"training_iteration": 1, "val_accuracy": score}) for trial, score in results]


# A forest at a sixth of its trees beats an SVM at a sixth of its rows, though the SVM wins at the top.
FORESTS = [(_trial("f1", "random_forest"), 0.94), (_trial("f2", "random_forest"), 0.95)]
SVMS = [(_trial(f"s{i}", "svm"), score) for i, score in enumerate([0.88, 0.86, 0.87, 0.90, 0.85, 0.89], start=1)]


def test_one_asha_for_every_family_stops_each_svm_at_the_first_rung():
    # What the per-family scheduler is for: across families, every SVM trails the forests.
    assert _first_rung(_asha(), FORESTS + SVMS)[2:] == [STOP] * 6


def test_per_family_asha_compares_each_trial_with_its_own_family_only():
    scheduler = PerGroupScheduler(_asha, family_of)
    assert _first_rung(scheduler, FORESTS + SVMS[:3]) == [
        CONTINUE, CONTINUE,  # the forests, each at or above those before it
        CONTINUE,  # s1: the first SVM, whatever the forests scored
        STOP,      # s2: below s1
        STOP,      # s3: below the cutoff of s1 and s2
    ]
    assert sorted(scheduler.groups) == ["random_forest", "svm"]
    assert all(group.metric == "val_accuracy" for group in scheduler.groups.values())


def test_a_familys_first_trial_at_a_rung_is_judged_against_every_family_then_against_its_own():
    # As an auto sweep under ASHA has it (quorum 1).
    stops: dict[str, str] = {}
    scheduler = PerGroupScheduler(_asha, family_of, quorum=1, stops=stops)
    actions = _first_rung(scheduler, FORESTS + SVMS)
    assert actions == [
        CONTINUE, CONTINUE,
        STOP,      # s1 (0.88): no SVM before it at the rung, and below the forests
        STOP,      # s2 (0.86): below s1
        STOP,      # s3 (0.87): below the SVMs' cutoff
        CONTINUE,  # s4 (0.90): above every SVM before it, though below every forest
        STOP,      # s5 (0.85)
        CONTINUE,  # s6 (0.89): in its family's top third (0.88, 0.86, 0.87, 0.90, 0.85)
    ]
    # A stop's note names the cutoff that decided it: every family's at s1, the SVMs' after.
    assert set(stops) == {"s1", "s2", "s3", "s5"}
    assert "val_accuracy 0.88 below the cutoff 0.9467" in stops["s1"]
    assert "val_accuracy 0.86 below the cutoff 0.88" in stops["s2"]


def test_with_a_larger_quorum_more_of_a_familys_first_trials_are_judged_against_every_family():
    scheduler = PerGroupScheduler(_asha, family_of, quorum=3)
    assert _first_rung(scheduler, FORESTS + SVMS)[2:] == [STOP, STOP, STOP, CONTINUE, STOP, CONTINUE]
    assert _first_rung(PerGroupScheduler(_asha, family_of, quorum=5), FORESTS + SVMS)[2:] == [STOP] * 5 + [CONTINUE]


def test_an_auto_sweep_gets_a_scheduler_per_family_and_other_sweeps_rays_own():
    from raysweep.sweep.run import _scheduler

    recipes = [load_recipe(name) for name in ("random_forest", "svm")]
    auto = auto_recipe(recipes, "classification", [get_family(r.family) for r in recipes])

    def plan(scheduler: str, is_auto: bool) -> SimpleNamespace:
        recipe = auto.recipe if is_auto else recipes[0]
        return SimpleNamespace(auto=auto if is_auto else None, scheduler=scheduler, recipe=recipe, metric_key="val_accuracy",
                               mode="max", seed=0)

    asha = _scheduler(plan("asha", True), 6, [], {})
    assert isinstance(asha, PerGroupScheduler) and asha._quorum == 1
    hyperband = _scheduler(plan("hyperband", True), 6, [], {})
    assert isinstance(hyperband, PerGroupScheduler) and hyperband._quorum == 0  # HyperBand halves whole brackets
    assert not isinstance(_scheduler(plan("fifo", True), 6, [], {}), PerGroupScheduler)
    assert not isinstance(_scheduler(plan("asha", False), 10, [], {}), PerGroupScheduler)


def test_a_group_made_after_the_search_properties_gets_them_and_they_are_set_once():
    scheduler = PerGroupScheduler(_asha, family_of, quorum=3)
    assert scheduler.set_search_properties("val_rmse", "min")
    assert not scheduler.set_search_properties("val_mae", "min")  # as Tune's own schedulers refuse a second metric
    scheduler.on_trial_add(None, _trial("x1", "xgboost"))
    group = scheduler.groups["xgboost"]
    assert (group.metric, group._mode) == ("val_rmse", "min")
    assert scheduler.metric == "val_rmse"


@pytest.mark.parametrize(
    ("value", "cutoff", "mode", "detail"),
    [
        (0.91, 0.94, "max", "val_accuracy 0.91 below the cutoff 0.94"),
        (0.96491, 0.96493, "max", "val_accuracy 0.96491 below the cutoff 0.96493"),  # 0.9649 below 0.9649 at four digits
        (0.9649, 0.9649, "max", "val_accuracy 0.9649 equal to the cutoff, and the trials kept were ranked before it"),
        (12.5, 11.0, "min", "val_accuracy 12.5 above the cutoff 11"),
    ],
)
def test_a_stop_detail_never_reads_as_a_score_below_itself(value, cutoff, mode, detail):
    """HyperBand keeps a fixed number of trials: a trial tied with the cutoff was said to be "0.9649
    below the cutoff 0.9649"."""
    from raysweep.strategies._base import stop_detail

    assert stop_detail("hyperband", "bracket 2", "val_accuracy", value, cutoff, mode) == f"hyperband: bracket 2: {detail}"
