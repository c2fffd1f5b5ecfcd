"""The leaderboard a finished sweep and ``raysweep report`` print: one line per trial, the
trial's name never cut; in a terminal it keeps to the width, elsewhere nothing is cut or wrapped."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from raysweep.cli.summary import print_leaderboard

DETAIL = "asha: rung 1 (100 boosting_rounds): val_accuracy 0.9474 below the cutoff 0.9561"
CONFIG = {"min_child_weight": 0.7862, "max_depth": 3, "colsample_bytree": 0.7639, "learning_rate": 0.06061,
          "subsample": 0.8373, "reg_lambda": 0.0152}  # fmt: skip


def board(rows: int = 4) -> pd.DataFrame:
    return pd.DataFrame([
        {"trial": f"trial-4895efc{i}", "val_accuracy": 0.9737 - i / 100, "resource": 200 if i == 0 else 100,
         "outcome": "completed" if i == 0 else "stopped_early", "stop_detail": "" if i == 0 else DETAIL,
         **{f"config/{key}": value for key, value in CONFIG.items()}}
        for i in range(rows)
    ])  # fmt: skip


def printed(width: int, terminal: bool, table: pd.DataFrame | None = None) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None, highlight=False)
    print_leaderboard(console, board() if table is None else table, "val_accuracy", top=10, total=12)
    return out.getvalue()


def row_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("width", [100, 120, 160])
def test_in_a_terminal_the_table_keeps_to_the_width_and_names_what_it_left_out(width: int) -> None:
    text = printed(width, terminal=True)
    assert max(len(line) for line in text.splitlines()) <= width
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    shown = [key for key in CONFIG if f" {key} " in header]
    left_out = [key for key in CONFIG if key not in shown]
    assert shown == list(CONFIG)[: len(shown)]  # the first (most important) parameters stay
    assert left_out, "this board does not fit in these widths"
    caption = " ".join(text[text.index("not shown for want of width:") :].split())
    assert caption == f"not shown for want of width: {', '.join(left_out)}"
    # Each trial's first line holds its whole name, score, resource, outcome and shown config ...
    firsts = [line for line in row_lines(text) if "trial-4895efc" in line]
    assert [line.split("│")[1].strip() for line in firsts] == [f"trial-4895efc{i}" for i in range(4)]
    for line in firsts:
        cells = [cell.strip() for cell in line.split("│")[2:-1]]
        assert cells[2] in ("completed", "stopped_early") and "…" not in line
        assert cells[3 : 3 + len(shown)] == [f"{CONFIG[key]:.4g}" for key in shown]
    # ... and the stop reason wraps within its column, whole.
    details = [line.split("│")[-2].strip() for line in row_lines(text)]
    assert " ".join(" ".join(details).split()) == " ".join([DETAIL] * 3)


def test_outside_a_terminal_each_trial_is_one_whole_line() -> None:
    text = printed(160, terminal=False)
    lines = row_lines(text)
    assert len(lines) == 4 and "not shown" not in text and "…" not in text
    for i, line in enumerate(lines):
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        assert cells[0] == f"trial-4895efc{i}"
        assert cells[4:10] == [f"{value:.4g}" for value in CONFIG.values()]
        assert cells[10] == ("" if i == 0 else DETAIL)


def test_a_board_without_stopped_trials_has_no_stop_column_and_fits_whole_when_it_can() -> None:
    table = board().assign(stop_detail="", outcome="completed")
    text = printed(200, terminal=True, table=table)
    assert "stop_detail" not in text and "not shown" not in text
    assert len(row_lines(text)) == 4


def test_a_parameter_a_trial_does_not_have_is_blank_and_a_failed_score_says_nan() -> None:
    # An auto sweep's board: each family's parameters, empty for the other family's trials.
    table = pd.DataFrame([
        {"trial": "trial-0000", "family": "xgboost", "val_accuracy": 0.96, "resource": 1.0, "outcome": "completed",
         "config/max_depth": 3.0, "config/C": float("nan")},
        {"trial": "trial-0001", "family": "svm", "val_accuracy": float("nan"), "resource": 0.0, "outcome": "failed",
         "config/max_depth": float("nan"), "config/C": 2.5},
    ])  # fmt: skip
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in row_lines(printed(160, terminal=False, table=table))]
    assert rows == [["trial-0000", "xgboost", "0.96", "1", "completed", "3", ""], ["trial-0001", "svm", "nan", "0", "failed", "", "2.5"]]


def test_a_board_rebuilt_from_the_trial_runs_shows_their_parameters_as_numbers_like_the_csv(tmp_path) -> None:
    # A sweep that failed or was stopped has no leaderboard.csv: report rebuilds the board from
    # the trial runs, whose parameters MLflow holds as text.
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from raysweep.tracking import schema
    from raysweep.tracking.queries import leaderboard_from_trials

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment("raysweep-iris")
    sweep = client.create_run(experiment_id, run_name="s", tags={schema.SWEEP: "s", schema.RECIPE: "xgboost", schema.METRIC: "accuracy"})
    client.log_batch(sweep.info.run_id, params=[Param("mode", "max")])
    for i, (rate, depth) in enumerate([("0.06061234523", "3"), ("0.123456789", "10")]):
        trial = client.create_run(experiment_id, run_name=f"trial-000{i}", tags={schema.PARENT_RUN_ID: sweep.info.run_id})
        client.log_batch(
            trial.info.run_id, metrics=[Metric("val_accuracy", 0.9 + i / 100, 0, 20)],
            params=[Param("learning_rate", rate), Param("max_depth", depth), Param("booster", "gbtree")],
        )  # fmt: skip
    # trial-0000 was cut off by the sweep's stop (Ctrl-C, or `raysweep sync` after a killed driver)
    cut_off = client.search_runs([experiment_id], "attributes.run_name = 'trial-0000'")[0].info.run_id
    client.set_tag(cut_off, schema.OUTCOME, schema.OUTCOME_STOPPED)
    client.set_tag(cut_off, schema.STOP_REASON, schema.REASON_INTERRUPTED)
    rebuilt = leaderboard_from_trials(client, client.get_run(sweep.info.run_id))
    assert list(rebuilt["outcome"]) == ["running", "interrupted"]  # not "stopped_early" with no detail
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in row_lines(printed(160, terminal=False, table=rebuilt))]
    assert [row[0] for row in rows] == ["trial-0001", "trial-0000"]
    assert [row[4:] for row in rows] == [["0.1235", "10", "gbtree"], ["0.06061", "3", "gbtree"]], rows


@pytest.mark.parametrize("width", [40, 50, 60, 70, 80])
def test_a_narrow_terminal_keeps_the_trial_score_resource_and_outcome_whole(width: int) -> None:
    """Under 80 columns the first four columns with rules and the stop reasons' narrowest were
    wider than the terminal: Rich cut every line (the outcome, the title, the caption naming what
    was left out). At 80 the stop reasons still wrap beside them."""
    text = printed(width, terminal=True)
    lines = text.splitlines()
    firsts = [line for line in lines if "trial-4895efc" in line]
    assert len(firsts) == 4, text
    for i, line in enumerate(firsts):
        assert line.replace("│", " ").split()[:4] == [f"trial-4895efc{i}", f"{0.9737 - i / 100:.4g}", "200" if i == 0 else "100",
                                    "completed" if i == 0 else "stopped_early"], text  # fmt: skip
    assert "leaderboard (top 4 of 12)" in text
    caption = " ".join(text[text.index("not shown for want of width:") :].split())
    left_out = caption.removeprefix("not shown for want of width: ").split(", ")
    header = next(line for line in lines if "val_accuracy" in line)
    assert all(name not in header for name in left_out) and "…" not in text
    assert ("stop_detail" in header) == (width >= 80) and ("stop_detail" in left_out) == (width < 80)
    if width >= 50:  # wide enough for the four columns: nothing runs past the edge
        assert max(len(line) for line in lines) <= width, text


def test_a_board_rebuilt_from_an_auto_sweeps_trial_runs_names_each_trials_family(tmp_path) -> None:
    """An interrupted `run auto` sweep's report mixed every family's parameters with nothing
    saying which trial was which family."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from raysweep.tracking import schema
    from raysweep.tracking.queries import leaderboard_from_trials

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment("raysweep-iris")
    sweep = client.create_run(experiment_id, run_name="a", tags={schema.SWEEP: "a", schema.RECIPE: "auto", schema.METRIC: "accuracy"})
    client.log_batch(sweep.info.run_id, params=[Param("mode", "max")])
    for i, (family, param) in enumerate([("xgboost", Param("max_depth", "3")), ("mlp", Param("alpha", "0.001"))]):
        trial = client.create_run(experiment_id, run_name=f"trial-000{i}", tags={schema.PARENT_RUN_ID: sweep.info.run_id, schema.FAMILY: family})
        client.log_batch(trial.info.run_id, metrics=[Metric("val_accuracy", 0.9 + i / 100, 0, 1)], params=[param])
    rebuilt = leaderboard_from_trials(client, client.get_run(sweep.info.run_id))
    text = printed(160, terminal=False, table=rebuilt)
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.split("┃")[1:4]] == ["trial", "family", "val_accuracy"], text
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in row_lines(text)]
    assert [row[:2] for row in rows] == [["trial-0001", "mlp"], ["trial-0000", "xgboost"]], rows


def test_report_of_an_auto_sweep_gives_each_familys_trials_and_best_as_its_summary_did(tmp_path) -> None:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from conftest import invoke_cli
    from raysweep.tracking import schema

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("raysweep-iris")
    sweep = client.create_run(experiment_id, run_name="a", tags={schema.SWEEP: "a", schema.RECIPE: "auto", schema.METRIC: "accuracy"})
    client.log_batch(sweep.info.run_id, params=[Param("mode", "max")])
    for i, (family, score) in enumerate([("xgboost", 0.9), ("mlp", 0.95), ("xgboost", 0.93)]):
        trial = client.create_run(experiment_id, run_name=f"trial-000{i}", tags={schema.PARENT_RUN_ID: sweep.info.run_id, schema.FAMILY: family})
        client.log_batch(trial.info.run_id, metrics=[Metric("val_accuracy", score, 0, 1)], params=[Param("alpha", "0.1")])
    shown = invoke_cli("report", "a", "--tracking-uri", uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    families = [line for line in lines if line.startswith("family ")]
    assert families == ["family mlp: 1 trial, best validation accuracy 0.95", "family xgboost: 2 trials, best validation accuracy 0.93"]
    # A sweep left RUNNING (its command killed) said only that it did not finish: now also how to go on.
    assert "the sweep did not finish (RUNNING): the leaderboard is rebuilt from its trial runs" in lines
    assert "if its command is no longer running, continue it with: raysweep resume a (--storage where it ran, if not ./raysweep_results)" in lines
    # --json: one object, what MLflow lacks (an unfinished sweep's counts, scores, model) as null,
    # the leaderboard's rows best first, each with its family and config.
    shown = invoke_cli("report", "a", "--json", "--top", "2", "--tracking-uri", uri, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    import json

    outcome = json.loads(shown.stdout)
    assert (outcome["name"], outcome["status"], outcome["metric"], outcome["mode"]) == ("a", "RUNNING", "accuracy", "max")
    assert outcome["best_validation_score"] is None and outcome["num_trials"] is None and outcome["model_uri"] is None
    assert outcome["experiment"] == "raysweep-iris" and outcome["parent_run_id"] == sweep.info.run_id
    assert [(row["trial"], row["family"], row["score"], row["config"]) for row in outcome["leaderboard"]] == [
        ("trial-0001", "mlp", 0.95, {"alpha": 0.1}), ("trial-0002", "xgboost", 0.93, {"alpha": 0.1}),
    ]
    # each family's trials and best, as run --json has them (report --json left them out)
    assert outcome["families"] == {"mlp": {"trials": 1, "best": 0.95}, "xgboost": {"trials": 2, "best": 0.93}}

