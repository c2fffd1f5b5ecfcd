"""Fast tests of the drawing process: charts drawn beside the sweep's end, and the fallbacks."""

from __future__ import annotations

from pathlib import Path

from raysweep.tracking.drawing import Drawer, drawn, start_drawer
from raysweep.tracking.importance import Importance


def _history(trials: int = 30) -> dict[str, list[tuple[float, float, float]]]:
    return {f"t{i:05d}": [(10.0 * step, 0.5 + 0.01 * i - 0.02 * step, float(step)) for step in range(1, 4)] for i in range(trials)}


def test_the_process_draws_the_plots_and_the_importance_into_the_folder(tmp_path: Path) -> None:
    drawer = start_drawer()
    assert drawer is not None
    try:
        plots = drawer.draw("plots", _history(), "val_rmse", "min", "boosting_rounds", tmp_path)
        chart = drawer.draw("importance", Importance(values={"max_depth": 0.7, "eta": 0.3}, trials=30), "val_rmse", "s", tmp_path)
        paths, chart_path = drawn(plots), drawn(chart)
    finally:
        drawer.close()
    assert sorted(p.name for p in paths) == ["best_so_far.png", "metric_by_resource.png"]
    assert chart_path == tmp_path / "importance.png"
    for path in (*paths, chart_path):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert drawer.process.wait(10) == 0  # it ends when its input closes


def test_a_failed_job_or_a_dead_process_answers_none_and_never_blocks(tmp_path: Path) -> None:
    drawer = Drawer()
    try:
        # A job that fails in the process (no such folder) is None; the next job still works.
        failed = drawer.draw("plots", _history(3), "val_rmse", "min", "steps", tmp_path / "missing" / "folder")
        fine = drawer.draw("plots", _history(3), "val_rmse", "min", "steps", tmp_path)
        assert drawn(failed) is None
        assert len(drawn(fine)) == 2
        drawer.process.kill()
        drawer.process.wait()
        # Killed: a job handed over now is None at once, and so is one that cannot be pickled.
        assert drawn(drawer.draw("plots", _history(3), "val_rmse", "min", "steps", tmp_path), timeout=10) is None
    finally:
        drawer.close()
    assert drawn(None) is None
    unpicklable = Drawer()
    try:
        assert drawn(unpicklable.draw("plots", lambda: None), timeout=10) is None
    finally:
        unpicklable.close()


def test_a_chart_slower_than_the_wait_is_none(tmp_path: Path) -> None:
    drawer = Drawer()
    try:
        slow = drawer.draw("plots", _history(3000), "val_rmse", "min", "steps", tmp_path)
        assert drawn(slow, timeout=0.001) is None
    finally:
        drawer.close()
