"""The PBT lineage plot on synthetic members and exploit records, as raysweep's PBT notes them. No Ray."""

from __future__ import annotations

from raysweep.tracking.lineage import PLOT_FILE, lineage_figure, member_series, write_lineage_plot

A, B, C = "9cf93_00000", "9cf93_00001", "9cf93_00002"
PER_STEP = 25


def rows(trial_iterations: list[tuple[int, float, int]]) -> list[dict]:
    """Tune results as ``metrics_dataframe`` rows: (training iteration, learning rate, max_depth)."""
    return [
        {"training_iteration": it, "resource": it * PER_STEP, "hp/learning_rate": lr, "config/learning_rate": lr, "config/max_depth": depth}
        for it, lr, depth in trial_iterations
    ]


def population():
    """Three members; A takes over B's checkpoint at iteration 2, C takes over A's at iteration 3 (after A's exploit)."""
    series = {
        A: member_series(rows([(1, 0.3, 6), (2, 0.3, 6), (3, 0.08, 4), (4, 0.08, 4)]), ["learning_rate", "max_depth"]),
        B: member_series(rows([(1, 0.1, 4), (2, 0.1, 4), (3, 0.1, 4), (4, 0.1, 4)]), ["learning_rate", "max_depth"]),
        C: member_series(rows([(1, 0.01, 9), (2, 0.01, 9), (3, 0.01, 9), (4, 0.096, 4)]), ["learning_rate", "max_depth"]),
    }
    exploits = [
        (A, B, 2, {"learning_rate": 0.08, "max_depth": 4}),
        (C, A, 3, {"learning_rate": 0.096, "max_depth": 4}),
    ]
    return series, exploits


def test_member_series_reads_the_live_value_else_the_config():
    points = member_series(
        [{"training_iteration": 1, "resource": 25, "hp/learning_rate": 0.2, "config/learning_rate": 0.3, "config/max_depth": 5},
         {"training_iteration": 2, "config/learning_rate": 0.1, "config/max_depth": float("nan")}],
        ["learning_rate", "max_depth"],
    )  # fmt: skip
    assert points == [(1, 25.0, {"learning_rate": 0.2, "max_depth": 5.0}), (2, 2.0, {"learning_rate": 0.1})]


def test_every_exploit_is_drawn_from_the_donor_to_the_member():
    series, exploits = population()
    fig, jumps = lineage_figure(series, exploits, ["learning_rate", "max_depth"], "boosting_rounds", "sweep-1", log_scale=["learning_rate"])
    assert jumps == [(A, B, 2), (C, A, 3)]
    top, bottom = fig.axes
    # One arrow per exploit in each panel: from the donor's point to the member's first result after it.
    arrows = [(a.xyann, a.xy) for a in top.texts if a.arrow_patch is not None]
    assert sorted(arrows) == sorted([((50.0, 0.1), (75.0, 0.08)), ((75.0, 0.08), (100.0, 0.096))])
    labels = sorted(a.get_text() for a in top.texts if a.get_text())
    assert labels == ["0\u21901", "2\u21900"]
    # A member's line breaks where it took over: A is two lines, B one, C two.
    lines = [line for line in top.get_lines() if len(line.get_xdata())]
    assert len(lines) == 5
    assert [text.get_text() for text in top.get_legend().get_texts()] == ["trial-0000", "trial-0001", "trial-0002"]
    assert top.get_yscale() == "log" and bottom.get_yscale() == "linear"
    assert (top.get_ylabel(), bottom.get_ylabel(), bottom.get_xlabel()) == ("learning_rate", "max_depth", "boosting_rounds")
    assert fig._suptitle.get_text().startswith("PBT lineage of sweep sweep-1: each member's hyperparameters by boosting_rounds")


def test_an_exploit_whose_next_result_never_came_is_not_drawn(tmp_path):
    series, exploits = population()
    exploits.append((B, C, 4, {"learning_rate": 0.12, "max_depth": 4}))  # B ended before reporting again
    _, jumps = lineage_figure(series, exploits, ["learning_rate"], "boosting_rounds", "sweep-1")
    assert jumps == [(A, B, 2), (C, A, 3)]
    path = write_lineage_plot(series, exploits, ["learning_rate"], "boosting_rounds", "sweep-1", tmp_path)
    assert path == tmp_path / PLOT_FILE and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
