"""``raysweep run auto --gpus-per-trial``: the note names the member families that cannot use a GPU,
and the CPU-fallback warning counts each GPU family over its own trials. Synthetic trial results, no Ray."""

from __future__ import annotations

from types import SimpleNamespace

from raysweep.families import get_family
from raysweep.sweep.gpus import fallback_warnings
from raysweep.sweep.options import plan_sweep
from raysweep.tracking import schema


def test_the_note_names_the_member_families_that_train_on_the_cpu_only(tmp_path) -> None:
    plan = plan_sweep("auto", "iris", recipes="random_forest,xgboost,svm", gpus_per_trial=0.5, storage=str(tmp_path))
    assert plan.notes == ["--gpus-per-trial 0.5: random_forest, svm train on the CPU only; their trials hold their GPU share without using it"]
    one = plan_sweep("auto", "iris", recipes="xgboost,mlp", gpus_per_trial=1, storage=str(tmp_path))
    assert one.notes == ["--gpus-per-trial 1: mlp trains on the CPU only; its trials hold their GPU share without using it"]
    assert plan_sweep("auto", "iris", recipes="xgboost", gpus_per_trial=1, storage=str(tmp_path)).notes == []
    assert plan_sweep("auto", "iris", recipes="random_forest,svm", storage=str(tmp_path)).notes == [], "no GPUs asked for"


def trial(family: str, device: str | None) -> SimpleNamespace:
    return SimpleNamespace(config={"model": {"family": family, family: {}}}, metrics={schema.DEVICE_RESULT: device} if device else {})


def test_the_fallback_warning_counts_the_gpu_familys_own_trials_whichever_family_won() -> None:
    members = {name: get_family(name) for name in ("random_forest", "xgboost")}
    results = [trial("xgboost", "cpu"), trial("xgboost", "cuda:0"), trial("xgboost", "cpu"), trial("random_forest", None), trial("random_forest", None)]
    expected = [
        "2 of 3 xgboost trials asked for a GPU (--gpus-per-trial 0.5) but xgboost trained them on the CPU: "
        "no GPU was visible to them (see the raysweep.device tag of each trial run)"
    ]
    # The sweep's family at the summary is the winner's: random_forest here, xgboost's trials are still counted.
    assert fallback_warnings(0.5, get_family("random_forest"), results, members) == expected
    assert fallback_warnings(0.5, get_family("xgboost"), results, members) == expected
    assert fallback_warnings(0.5, get_family("xgboost"), [trial("xgboost", "cuda:0"), trial("random_forest", None)], members) == []
    assert fallback_warnings(None, get_family("xgboost"), results, members) == []
