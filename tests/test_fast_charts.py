"""The chart setup of a sweep's shared view, on synthetic parameters and importances. No Ray, no MLflow."""

from __future__ import annotations

import json

from raysweep.tracking.charts import SWEEP_SECTION, scatter_params, sweep_charts

SEARCHED = ["colsample_bytree", "learning_rate", "max_depth", "subsample"]


def test_the_charts_are_learning_curves_parallel_coordinates_and_two_scatters_in_the_sweep_section():
    view = sweep_charts("val_accuracy", "best_val_accuracy", SEARCHED, {"max_depth": 0.7, "subsample": 0.2, "learning_rate": 0.1})
    charts, sections = view["compareRunCharts"], view["compareRunSections"]
    assert [chart["type"] for chart in charts] == ["LINE", "PARALLEL", "SCATTER", "SCATTER"]
    curves, parallel, *scatters = charts
    # every trial's validation metric by step
    assert (curves["metricKey"], curves["selectedMetricKeys"], curves["xAxisKey"]) == ("val_accuracy", ["val_accuracy"], "step")
    # every searched parameter and the trial's best score
    assert parallel["selectedParams"] == SEARCHED and parallel["selectedMetrics"] == ["best_val_accuracy"]
    # the score against the two most important parameters
    assert [(s["xaxis"], s["yaxis"]) for s in scatters] == [
        ({"key": "max_depth", "type": "PARAM"}, {"key": "best_val_accuracy", "type": "METRIC"}),
        ({"key": "subsample", "type": "PARAM"}, {"key": "best_val_accuracy", "type": "METRIC"}),
    ]
    # all in the sweep's section, listed first and kept first (the UI appends its own sections)
    assert sections[0]["name"] == SWEEP_SECTION and view["isAccordionReordered"] is True
    assert {chart["metricSectionId"] for chart in charts} == {sections[0]["uuid"]}
    assert len({chart["uuid"] for chart in charts}) == len(charts)
    assert not any(chart["isGenerated"] or chart["deleted"] for chart in charts)
    json.dumps(view)  # stored as JSON in an experiment tag


def test_scatters_fall_back_to_the_first_searched_parameters_without_importance():
    assert scatter_params(SEARCHED, {}) == ["colsample_bytree", "learning_rate"]


def test_scatters_skip_importances_of_parameters_that_were_not_searched_and_fill_up():
    assert scatter_params(SEARCHED, {"resource": 0.9, "subsample": 0.5}) == ["subsample", "colsample_bytree"]


def test_a_sweep_of_one_parameter_gets_one_scatter():
    view = sweep_charts("val_rmse", "best_val_rmse", ["alpha"], {})
    assert [chart["type"] for chart in view["compareRunCharts"]] == ["LINE", "PARALLEL", "SCATTER"]
