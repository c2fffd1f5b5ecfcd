"""The chart setup of a sweep's shared view in MLflow's UI: learning curves, parallel coordinates, scatters.

MLflow 3.17's runs page keeps its charts in its view state as ``compareRunCharts`` (one card per
chart, of type ``LINE``, ``PARALLEL``, ``SCATTER``, ...) and ``compareRunSections`` (the
collapsible sections the cards sit in); a shared view carries both. The UI then adds a card of
its own for every metric that has none, in the section named after the metric's prefix
("Model metrics" for names without a ``/``); with ``isAccordionReordered`` it keeps the order
of the sections given here and appends new ones.
"""

from __future__ import annotations

from typing import Any

#: the section of the sweep's own charts, shown first
SWEEP_SECTION = "Sweep"
#: the UI's own sections (MLflow 3.17's names), after the sweep's
MODEL_METRICS_SECTION = "Model metrics"
SYSTEM_METRICS_SECTION = "System metrics"
#: how many parameters get a scatter chart of the score against them
SCATTER_PARAMS = 2
#: the sweep's section lays its four charts out two by two (the UI's default is three a row,
#: which leaves a parallel-coordinates chart of many parameters too narrow to read)
SECTION_COLUMNS = 2
SECTION_CARD_HEIGHT = 420


def learning_curves_title(metric_key: str) -> str:
    return f"Learning curves: {metric_key} by step"


def parallel_title(best_key: str) -> str:
    return f"Searched parameters and {best_key}"


def scatter_title(best_key: str, param: str) -> str:
    return f"{best_key} against {param}"


def scatter_params(searched: list[str], importance: dict[str, float]) -> list[str]:
    """The parameters to plot the score against: the most important searched ones, else the first searched."""
    ranked = [name for name in importance if name in searched]
    ranked += [name for name in searched if name not in ranked]
    return ranked[:SCATTER_PARAMS]


def _card(uuid: str, kind: str, title: str, section: str, **fields: Any) -> dict[str, Any]:
    # The fields every card has (MLflow's RunsChartsCardConfig); isGenerated False marks a card
    # as the view's own, which the UI never replaces.
    return {
        "uuid": uuid, "type": kind, "displayName": title, "metricSectionId": section,
        "deleted": False, "isGenerated": False, "runsCountToCompare": 100, **fields,
    }


def sweep_charts(metric_key: str, best_key: str, searched: list[str], importance: dict[str, float]) -> dict[str, Any]:
    """The view-state keys (``compareRunCharts``, ``compareRunSections``, ...) of a sweep's charts.

    ``metric_key`` is the validation metric the trials report by step (``val_accuracy``),
    ``best_key`` each trial's best of it (``best_val_accuracy``), ``searched`` the searched
    parameters, ``importance`` their importances, most important first (may be empty).
    """
    section = "raysweep-sweep-section"
    charts = [
        _card(
            "raysweep-learning-curves", "LINE", learning_curves_title(metric_key), section,
            metricKey=metric_key, selectedMetricKeys=[metric_key], xAxisKey="step", selectedXAxisMetricKey="",
            xAxisScaleType="linear", scaleType="linear", lineSmoothness=0, range={}, yAxisKey="metric",
            yAxisExpressions=[], ignoreOutliers=False, useGlobalXaxisKey=False, useGlobalLineSmoothing=False,
        ),
        _card(
            "raysweep-parallel", "PARALLEL", parallel_title(best_key), section,
            selectedParams=list(searched), selectedMetrics=[best_key], showAllRuns=False,
        ),
    ]
    for name in scatter_params(searched, importance):
        charts.append(_card(
            f"raysweep-scatter-{name}", "SCATTER", scatter_title(best_key, name), section,
            xaxis={"key": name, "type": "PARAM"}, yaxis={"key": best_key, "type": "METRIC"},
        ))
    sections = [
        {
            "uuid": section, "name": SWEEP_SECTION, "display": True, "isReordered": True, "deleted": False,
            "isGenerated": False, "columns": SECTION_COLUMNS, "cardHeight": SECTION_CARD_HEIGHT,
        },
        {"uuid": "raysweep-model-metrics", "name": MODEL_METRICS_SECTION, "display": True, "isReordered": False},
        {"uuid": "raysweep-system-metrics", "name": SYSTEM_METRICS_SECTION, "display": False, "isReordered": False},
    ]
    return {"compareRunCharts": charts, "compareRunSections": sections, "isAccordionReordered": True}
