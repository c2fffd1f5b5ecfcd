"""The sweep's two plots, drawn from a synthetic trial history. No Ray, no MLflow."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from raysweep.tracking.outcome import write_plots  # noqa: E402
from raysweep.tracking.schema import trial_name  # noqa: E402


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures write_plots draws, kept open to be looked at."""
    kept: list = []
    monkeypatch.setattr(plt, "close", kept.append)
    return kept


def test_every_point_of_every_trial_is_drawn_and_the_best_five_are_named(tmp_path: Path, figures: list) -> None:
    # 300 trials: trial i reaches i/1000 at its last step, after 1 to 3 steps of 25 trees
    history = {f"{i:05x}": [(25.0 * s, i / 1000 - (3 - s) / 10, float(i)) for s in range(1, 2 + i % 3)] for i in range(300)}
    paths = write_plots(history, "val_accuracy", "max", "n_estimators", tmp_path)

    assert [p.name for p in paths] == ["metric_by_resource.png", "best_so_far.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    by_resource = figures[0].axes[0]
    drawn = {tuple(xy) for collection in by_resource.collections for xy in collection.get_offsets()}
    drawn |= {xy for line in by_resource.get_lines() for xy in zip(line.get_xdata(), line.get_ydata())}
    assert drawn >= {(x, y) for points in history.values() for x, y, _ in points}
    legend = [text.get_text() for text in by_resource.get_legend().get_texts()]
    # only every third trial gets to its third step, where it scores i/1000: 299, 296, ... are the best
    assert legend[:5] == [f"{trial_name(f'{i:05x}')}: {i / 1000:.5g}" for i in (299, 296, 293, 290, 287)], legend
    assert legend[-1] == "best step: val_accuracy 0.299 at n_estimators 75"
    assert by_resource.get_legend().get_title().get_text() == "best 5 of 300 trials"


def test_the_named_trials_have_colours_of_their_own_and_the_rest_share_one(tmp_path: Path, figures: list) -> None:
    """Colours went by turn through matplotlib's 10: trial-0002 and trial-0012, both named, were the same green."""
    from matplotlib.colors import to_hex

    history = {f"{i:05x}": [(10.0, i / 100, float(i)), (20.0, i / 100 + 0.01, float(i) + 1)] for i in range(16)}
    history = dict(sorted(history.items(), key=lambda item: (int(item[0], 16) % 10, item[0])))  # the best ten apart in turn
    write_plots(history, "val_accuracy", "max", "trees", tmp_path)
    by_resource = figures[0].axes[0]
    legend = by_resource.get_legend()
    named = [to_hex(handle.get_color()) for handle in legend.legend_handles[:5]]
    assert len(set(named)) == 5, named
    others = {to_hex(color) for collection in by_resource.collections for color in collection.get_edgecolor()}
    others |= {to_hex(color) for collection in by_resource.collections for color in collection.get_facecolor()}
    assert others == {"#9e9e9e"} and not others & set(named), others


def test_a_model_that_could_not_be_logged_is_among_the_results_warnings(caplog) -> None:
    """It was a log line only: a program (run_sweep, --json) was not told the refit model is not in MLflow."""
    from raysweep.tracking.outcome import _best_effort

    def refuse(*_args):
        raise TypeError("Object of type Timedelta is not JSON serializable\nwhile logging the signature")

    said: list[str] = []
    assert _best_effort("log the refit model", refuse, 1, said=said) is None
    assert said == ["could not log the refit model in MLflow: Object of type Timedelta is not JSON serializable"]
    assert caplog.records == []  # said once, in the result's warnings (its summary prints them)
    assert _best_effort("log the PBT exploits", refuse) is None
    assert [record.getMessage() for record in caplog.records] == [
        "raysweep: could not log the PBT exploits in MLflow: Object of type Timedelta is not JSON serializable\nwhile logging the signature"
    ]


def test_registering_the_model_leaves_out_mlflows_own_lines(capsys) -> None:
    """run_sweep(register_model=...) printed "Successfully registered model 'x'." and "Created version '1' ..."
    (MLflow's eprint) with progress off, and the command line printed them beside its own phase lines."""
    from mlflow.utils.logging_utils import eprint

    from raysweep.tracking.outcome import _mlflow_quiet

    with _mlflow_quiet():
        eprint("Successfully registered model 'x'.")
    assert capsys.readouterr().err == ""
    eprint("said after")  # MLflow's stream is on again
    assert capsys.readouterr().err == "said after\n"


def test_columns_mlflows_signature_cannot_pass_leave_the_model_without_one() -> None:
    """A category, nullable boolean or time-zone-aware column: the signature inferred from the training frame refused
    that very frame at pyfunc's predict ("Can not safely convert category to <U0")."""
    import pandas as pd

    from raysweep.tracking.outcome import schema_holds

    plain = pd.DataFrame({"size": [1.0, 2.0], "colour": ["r", "g"], "flag": [True, False], "when": pd.to_datetime(["2026-01-01", "2026-01-02"])})
    assert schema_holds(plain)
    for column in (pd.Categorical(["r", "g"]), pd.array([True, None], dtype="boolean"),
                   pd.date_range("2026-01-01", periods=2, tz="UTC")):
        assert not schema_holds(plain.assign(other=column))
