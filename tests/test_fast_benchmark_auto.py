"""The auto benchmark's verdict line, from synthetic records (the report's arithmetic, no runs)."""

from __future__ import annotations

from benchmarks.auto import goal_line


def _rows(scores: dict[str, list[float]], mode: str = "max") -> list[dict]:
    return [{"tool": tool, "seed": seed, "test": value, "mode": mode} for tool, values in scores.items() for seed, value in enumerate(values)]


def test_auto_within_the_spread_of_the_best_single_recipe_meets_the_goal():
    line = goal_line(_rows({"auto": [0.970, 0.974, 0.972], "single_svm": [0.975, 0.971, 0.976],
                            "single_xgboost": [0.965, 0.964, 0.966], "flaml_default": [0.966, 0.967, 0.965]}))
    assert line == ("Goal: `auto` 0.9720 against the best single recipe, svm, 0.9750: behind by 0.0030, noise ± 0.0025, missed; "
                    "against FLAML 0.9660: ahead, met.")
    line = goal_line(_rows({"auto": [0.970, 0.976, 0.973], "single_svm": [0.975, 0.971, 0.976], "flaml_default": [0.98] * 3}))
    assert "behind by 0.0020, noise ± 0.0030, met; against FLAML 0.9800: not ahead, missed." in line


def test_a_metric_to_minimise_and_one_seed():
    line = goal_line(_rows({"auto": [0.2800, 0.2830], "single_xgboost": [0.2821, 0.2822], "single_mlp": [0.31, 0.30]}, mode="min"))
    assert "best single recipe, xgboost, 0.2822: ahead by 0.0007, noise ± 0.0015, met." in line
    line = goal_line(_rows({"auto": [0.9758], "single_svm": [0.9755]}))
    assert line.endswith("(ahead by 0.0003; one seed, no spread to judge noise by: not judged).")
    assert "not judged, a row is missing" in goal_line(_rows({"single_svm": [0.97]}))
