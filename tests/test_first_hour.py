"""What a person meets in a first hour with raysweep, as the exact text they read: errors that
list every column, suggest the metric meant, take any capitals and name where a value came from;
the time budget's rule; ``report`` without a name; a short ``print(result)``; and (end to end) a
trial stopped early saying which rung stopped it.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import run_cli
from fast_support import empty_store, store_uri  # noqa: F401 (fixtures)
from raysweep.cli import main
from raysweep.space import grid_size
from raysweep.sweep.options import plan_sweep


def cli(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(main, list(args), prog_name="raysweep")
    return outcome.exit_code, outcome.stderr.strip()


def test_missing_target_lists_every_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    names = [f"c{i}" for i in range(17)] + ["price"]
    pd.DataFrame([[i + j for j in range(18)] for i in range(20)], columns=names).to_csv("d.csv", index=False)
    code, err = cli("run", "random_forest", "--dataset", "d.csv")
    assert (code, err) == (2, f"error: d.csv: which column is the target? pass --target COLUMN (columns: {', '.join(names)})")


def test_missing_target_says_how_many_more(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    names = [f"c{i}" for i in range(35)]
    pd.DataFrame([list(range(35))] * 5, columns=names).to_csv("d.csv", index=False)
    code, err = cli("run", "random_forest", "--dataset", "d.csv")
    shown = ", ".join(names[:30])
    assert (code, err) == (2, f"error: d.csv: which column is the target? pass --target COLUMN (columns: {shown} and 5 more)")


def test_metric_near_miss_gets_a_suggestion() -> None:
    assert cli("run", "random_forest", "--dataset", "iris", "--metric", "auc") == (
        2, "error: --metric auc: unknown metric (did you mean 'roc_auc'?); use one of accuracy, roc_auc, log_loss, f1_macro",
    )  # fmt: skip


def test_choices_take_any_capitals() -> None:
    assert cli("run", "svm", "--dataset", "iris", "--scheduler", "PBT") == (
        2, "error: --scheduler pbt: the svm family carries no training state from one step to the next, so PBT has "
        "nothing to exploit; use --scheduler asha or hyperband",
    )  # fmt: skip
    plan = plan_sweep("random_forest", "iris", scheduler="HyperBand", searcher="Random", task="Classification", metric="ROC_AUC")
    assert (plan.scheduler, plan.searcher, plan.task, plan.metric) == ("hyperband", "random", "classification", "roc_auc")


def test_strategy_error_names_where_each_value_came_from() -> None:
    assert cli("run", "xgboost", "--dataset", "iris", "--set", "scheduler=pbt") == (
        2, "error: --set scheduler=pbt with searcher hyperopt (from xgboost.yaml): PBT explores by mutating its own "
        "population and Ray Tune refuses a search algorithm beside it; use --searcher random (or grid)",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "fills", "rule"),
    [
        ({"time_budget": 60}, True, "up to 60 s, trials until the budget is spent"),
        ({"time_budget": 60, "num_samples": 12}, False, "12 trials or 60 s, whichever comes first"),
        ({"num_samples": 12}, False, "12 trials"),
        ({"time_budget": 60, "searcher": "grid"}, False, "27 trials (1 pass over a grid of 27 configs) or 60 s, whichever comes first"),
        ({"num_samples": 2, "searcher": "grid"}, False, "54 trials (2 passes over a grid of 27 configs)"),
    ],
)
def test_time_budget_rule(options: dict, fills: bool, rule: str) -> None:
    plan = plan_sweep("random_forest", "iris", **options)
    exhaustive = plan.searcher == "grid"
    assert (plan.fill_time_budget, plan.options.trials_rule(exhaustive, grid_size(plan.recipe.space) if exhaustive else 1)) == (fills, rule)
    assert plan.tune_num_samples == (-1 if fills else plan.num_samples)
    # `raysweep resume` rebuilds the plan from the saved options: the rule stays.
    again = plan_sweep("random_forest", "iris", **{k: v for k, v in asdict(plan.options).items()})
    assert again.options == plan.options


def test_report_without_a_sweep_in_the_store(tmp_path: Path, store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.chdir(tmp_path)
    uri = store_uri  # an empty store at tmp_path/mlflow.db
    assert cli("report", "--tracking-uri", uri) == (
        2, f"error: no sweep in {uri} yet: run one with `raysweep run`, or pass the --tracking-uri a sweep logged to",
    )  # fmt: skip
    assert cli("report", "a-sweep", "--latest", "--tracking-uri", uri) == (
        2, "error: --latest with sweep a-sweep: pass a sweep's name or --latest, not both",
    )  # fmt: skip


def test_result_repr_is_short() -> None:
    from raysweep.sweep.result import SweepResult

    board = pd.DataFrame({"trial": [f"trial-{i:04d}" for i in range(500)], "val_accuracy": [0.9] * 500})
    result = SweepResult(
        name="rf-iris-1", recipe="random_forest", dataset="iris", task="classification", metric="accuracy", mode="max",
        best_config={"max_depth": 5}, best_resource=60, best_validation_score=0.958333, test_score=0.933333,
        num_trials=12, num_errors=0, num_stopped_early=3, leaderboard=board, model=object(), classes=None, storage_path="/x",
    )  # fmt: skip
    assert repr(result) == (
        "<SweepResult rf-iris-1: best val_accuracy 0.95833 of 12 trials (3 stopped early, 0 failed), "
        "test accuracy 0.93333, best config {'max_depth': 5}>"
    )


def test_plot_legend_names_the_best_trials() -> None:
    from raysweep.tracking.outcome import top_trials

    history = {f"t_0000{i}": [(20.0, 0.5 + i / 100, 0.0), (40.0, 0.6 + i / 100, 1.0)] for i in range(8)}
    assert list(top_trials(history, "max", 5)) == ["t_00007", "t_00006", "t_00005", "t_00004", "t_00003"]
    assert list(top_trials(history, "min", 2)) == ["t_00000", "t_00001"]


@pytest.mark.e2e
def test_time_budget_fills_and_asha_says_why(tmp_path: Path) -> None:
    """A time budget with no trial count keeps starting trials past the recipe's count; each trial
    ASHA stopped says at which rung, and the cutoff it missed, in MLflow, the leaderboard and report."""
    done = run_cli(
        "run", "random_forest", "--dataset", "breast_cancer", "--metric", "log_loss", "--scheduler", "asha",
        "--searcher", "random", "--set", "num_samples=3", "--time-budget", "25", "--max-concurrent", "2", "--json",
        cwd=tmp_path, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("raysweep: random_forest on breast_cancer (classification, 569 rows), asha + random, "
            "up to 25 s, trials until the budget is spent, metric log_loss (min)") in " ".join(done.stderr.split())
    import json

    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["num_trials"] > 3, done.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(summary["parent_run_id"])
    trials = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=1000)
    assert len(trials) == summary["num_trials"]
    stopped = [r for r in trials if r.data.tags.get("raysweep.stop_reason") == "scheduler"]
    assert stopped, "ASHA stopped no trial"
    pattern = re.compile(r"asha: rung \d+ \(\d+ trees\): val_log_loss [\d.e-]+ above the cutoff [\d.e-]+")
    for run in stopped:
        assert pattern.fullmatch(run.data.tags.get("raysweep.stop_detail", "")), run.data.tags
    report = run_cli("report", cwd=tmp_path, timeout=120)
    assert report.returncode == 0, report.stderr
    assert f"sweep {summary['name']} (FINISHED)" in report.stdout
    assert "stop_detail" in report.stdout and "asha: rung" in report.stdout


def test_the_header_counts_the_trials_a_type_grid_entry_multiplies() -> None:
    # Two samples of a random search over a space with a 2-point `type: grid` entry run 4 trials (the
    # progress line's "of 4"); the header said "2 trials".
    from raysweep.space import grid_entries_size

    plan = plan_sweep("random_forest", "iris", num_samples=2, searcher="random",
                      overrides=["space.min_samples_leaf={type: grid, values: [1, 5]}"])  # fmt: skip
    assert plan.options.trials_rule(False, grid_entries_size(plan.recipe.space)) == "4 trials (2 samples x 2 grid points)"
    assert plan.options.trials_rule(False, 1) == "2 trials"


def test_the_summarys_commands_paste_into_a_shell(capsys) -> None:
    """`in a terminal: raysweep report my sweep ü ...` failed pasted: Got unexpected extra arguments (sweep ü)."""
    import shlex

    from raysweep.cli.summary import report
    from raysweep.sweep.result import SweepResult

    board = pd.DataFrame({"trial": ["trial-0000"], "val_accuracy": [0.9]})
    result = SweepResult(
        name="my sweep [ü]", recipe="random_forest", dataset="iris", task="classification", metric="accuracy", mode="max",
        best_config={"max_depth": 5}, best_resource=60, best_validation_score=0.9, test_score=0.9, num_trials=1, num_errors=0,
        num_stopped_early=0, leaderboard=board, model=object(), classes=None, storage_path="/x", tracking_uri="sqlite:///my runs.db",
    )  # fmt: skip
    report(result, as_json=False)
    lines = capsys.readouterr().out.splitlines()
    command = next(line for line in lines if line.startswith("in a terminal: ")).removeprefix("in a terminal: ")
    assert shlex.split(command) == ["raysweep", "report", "my sweep [ü]", "--tracking-uri", "sqlite:///my runs.db"]
    review = next(line for line in lines if line.startswith("review with: ")).removeprefix("review with: ")
    assert shlex.split(review) == ["raysweep", "ui", "--tracking-uri", "sqlite:///my runs.db"]


def test_a_resume_command_pastes_into_a_shell() -> None:
    import shlex

    from raysweep.sweep.record import resume_command

    assert shlex.split(resume_command("my sweep", "/data/my results")) == ["raysweep", "resume", "my sweep", "--storage", "/data/my results"]


def test_the_refit_model_takes_an_array_of_its_columns_and_scores_as_scikit_learn_does() -> None:
    """result.model.predict(X.values) failed ("Specifying the columns using strings is only supported for
    dataframes"), and the model had no score()."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge

    from raysweep.data import make_preprocessor
    from raysweep.model import RefitModel

    frame = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "colour": ["r", "g", "r", "g", "r", "g"]})
    labels = np.array(["no", "yes"])
    y = np.array([0, 0, 0, 1, 1, 1])
    preprocessor = make_preprocessor("dense", ["size"], ["colour"], False).fit(frame)
    classifier = RefitModel(preprocessor, LogisticRegression().fit(preprocessor.transform(frame), y), classes=labels)
    assert list(classifier.predict(frame.to_numpy())) == list(classifier.predict(frame)) == list(labels[y])
    assert classifier.score(frame, labels[y]) == 1.0
    with pytest.raises(ValueError, match=r"X has shape \(6, 1\); the model takes 2 columns: size, colour"):
        classifier.predict(frame[["size"]].to_numpy())
    targets = frame["size"].to_numpy() * 2
    regressor = RefitModel(preprocessor, Ridge(alpha=1e-9).fit(preprocessor.transform(frame), targets))
    assert regressor.score(frame.to_numpy(), targets) == pytest.approx(1.0)
