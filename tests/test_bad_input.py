"""Every bad input ends as one line on stderr naming the file, key or column and the fix, with
exit code 2, before Ray starts and before anything is written to the working directory.

Every case runs through the CLI's own entry point in-process (fast); one or two of each kind
also run in a subprocess exactly as a user would meet them (the exit code of the real entry point,
nothing else on its stderr); and the cases the Python API can express run through ``plan_sweep``,
which must raise the same ``UserError``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from click.testing import CliRunner

from conftest import in_background, run_cli, selected_cases
from raysweep.cli import main
from raysweep.errors import UserError
from raysweep.sweep.options import plan_sweep

RECIPE = """\
family: random_forest
tasks: [classification]
metric: accuracy
resource: {name: trees, per_step: 10, max: 30}
space:
  max_depth: {type: randint, low: 2, high: 8}
"""


def recipe_with(old: str, new: str) -> str:
    assert old in RECIPE
    return RECIPE.replace(old, new)


def csv_rows(header: str, row, n: int = 30) -> str:
    return header + "\n" + "".join(row(i) + "\n" for i in range(n))


GOOD_CSV = csv_rows("a,b,label", lambda i: f"{i * 0.37 % 1:.3f},{i % 7},{'yes' if i % 2 else 'no'}")


@dataclass
class Case:
    id: str
    args: list[str]
    fragments: tuple[str, ...]
    files: dict[str, str | bytes] = field(default_factory=dict)
    #: the same call through the Python API (plan_sweep keyword arguments), or None for CLI-only cases
    api: dict | None = None


CASES = [
    # -- recipes ---------------------------------------------------------------------------------
    Case("unknown recipe name", ["run", "nope", "--dataset", "iris"],
         ("unknown recipe 'nope'", "prebuilt recipes: mlp, random_forest, svm, xgboost"),
         api={"recipe": "nope", "dataset": "iris"}),
    Case("misspelt recipe name", ["run", "xgbost", "--dataset", "iris"], ("unknown recipe 'xgbost' (did you mean 'xgboost'?)",),
         api={"recipe": "xgbost", "dataset": "iris"}),
    Case("missing recipe file", ["run", "missing.yaml", "--dataset", "iris"],
         ("missing.yaml: no such recipe file", "use a prebuilt recipe"), api={"recipe": "missing.yaml", "dataset": "iris"}),
    Case("unknown key", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: colour: unknown key; allowed keys: name, description, family",),
         files={"bad.yaml": RECIPE + "colour: blue\n"}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("wrong type", ["run", "bad.yaml", "--dataset", "iris"], ("bad.yaml: space.max_depth.low: must be a number, got 'two'",),
         files={"bad.yaml": recipe_with("low: 2", "low: two")}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("low above high", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: space.max_depth: low < high must hold, but got (low=9, high=8); swap or widen the bounds",),
         files={"bad.yaml": recipe_with("low: 2", "low: 9")}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("log bound not positive", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: space.max_features.low: must be > 0 for the log-scale type loguniform, got 0", "use a positive lower bound"),
         files={"bad.yaml": recipe_with("max_depth: {type: randint, low: 2, high: 8}", "max_features: {type: loguniform, low: 0, high: 1}")},
         api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("empty choice list", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: space.max_depth.values: must be a non-empty list, got []", "list at least one value"),
         files={"bad.yaml": recipe_with("{type: randint, low: 2, high: 8}", "{type: choice, values: []}")},
         api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("malformed YAML", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: malformed YAML at line 2, column 4", "fix the syntax"),
         files={"bad.yaml": "family: [unclosed\n  x: y\n"}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("a key given twice", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: line 7: key 'max_depth' is given twice (first at line 6); keep one",),
         files={"bad.yaml": RECIPE + "  max_depth: {type: randint, low: 3, high: 9}\n"}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("YAML that is a list", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: a recipe must be a YAML mapping of keys, got a list",),
         files={"bad.yaml": "- family\n- space\n"}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("empty YAML", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: the file is empty; a recipe needs at least: family, tasks, metric, resource, space",),
         files={"bad.yaml": ""}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("unknown family", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: family: unknown family 'lightgbm'", "use one of random_forest, svm, xgboost, mlp"),
         files={"bad.yaml": recipe_with("family: random_forest", "family: lightgbm")}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("unknown scheduler in a recipe", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: scheduler: unknown scheduler 'median'", "use one of fifo, asha, hyperband, pbt"),
         files={"bad.yaml": RECIPE + "scheduler: median\n"}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("unknown searcher in a recipe", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: searcher: unknown searcher 'bohb'", "use one of random, grid, hyperopt, gp, optuna, anneal"),
         files={"bad.yaml": RECIPE + "searcher: bohb\n"}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("recipe metric for the other task", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: metric.classification: 'rmse' is a regression metric; for classification use one of accuracy",),
         files={"bad.yaml": recipe_with("metric: accuracy", "metric: rmse")}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("recipe for the other task", ["run", "bad.yaml", "--dataset", "diabetes"],
         ("bad.yaml: recipe bad supports classification, but diabetes is a regression dataset",),
         files={"bad.yaml": RECIPE}, api={"recipe": "bad.yaml", "dataset": "diabetes"}),
    Case("not a parameter of the model", ["run", "random_forest", "--dataset", "iris", "--set", "fixed.max_dept=3"],
         ("--set fixed.max_dept=3: not a parameter of RandomForestClassifier; did you mean 'max_depth'?",),
         api={"recipe": "random_forest", "dataset": "iris", "overrides": ["fixed.max_dept=3"]}),
    # -- strategy ----------------------------------------------------------------------------------
    Case("unknown metric", ["run", "random_forest", "--dataset", "iris", "--metric", "foo"],
         ("--metric foo: unknown metric; use one of accuracy, roc_auc, log_loss, f1_macro",),
         api={"recipe": "random_forest", "dataset": "iris", "metric": "foo"}),
    Case("metric for the other task", ["run", "random_forest", "--dataset", "iris", "--metric", "rmse"],
         ("--metric rmse: a regression metric, but the task is classification; use one of accuracy",),
         api={"recipe": "random_forest", "dataset": "iris", "metric": "rmse"}),
    Case("pbt on svm", ["run", "svm", "--dataset", "iris", "--scheduler", "pbt"],
         ("--scheduler pbt: the svm family", "use --scheduler asha or hyperband"),
         api={"recipe": "svm", "dataset": "iris", "scheduler": "pbt"}),
    Case("pbt with hyperopt", ["run", "xgboost", "--dataset", "iris", "--scheduler", "pbt", "--searcher", "hyperopt"],
         ("--scheduler pbt with --searcher hyperopt", "use --searcher random (or grid)"),
         api={"recipe": "xgboost", "dataset": "iris", "scheduler": "pbt", "searcher": "hyperopt"}),
    Case("pbt with nothing to mutate", ["run", "bad.yaml", "--dataset", "iris", "--scheduler", "pbt"],
         ("bad.yaml: pbt.mutations is empty, so --scheduler pbt has nothing to mutate; add pbt.mutations",),
         files={"bad.yaml": RECIPE}, api={"recipe": "bad.yaml", "dataset": "iris", "scheduler": "pbt"}),
    Case("grid type with hyperopt", ["run", "bad.yaml", "--dataset", "iris", "--searcher", "hyperopt"],
         ("bad.yaml: space.max_depth.type: grid cannot be searched by hyperopt; use type: choice, or --searcher grid/random",),
         files={"bad.yaml": recipe_with("{type: randint, low: 2, high: 8}", "{type: grid, values: [2, 4]}")},
         api={"recipe": "bad.yaml", "dataset": "iris", "searcher": "hyperopt"}),
    *[Case(f"pbt with {name}", ["run", "xgboost", "--dataset", "iris", "--scheduler", "pbt", "--searcher", name],
           (f"--scheduler pbt with --searcher {name}: PBT explores by mutating its own population", "use --searcher random (or grid)"),
           api={"recipe": "xgboost", "dataset": "iris", "scheduler": "pbt", "searcher": name})
      for name in ("gp", "optuna", "anneal")],
    *[Case(f"grid type with {name}", ["run", "bad.yaml", "--dataset", "iris", "--searcher", name],
           (f"bad.yaml: space.max_depth.type: grid cannot be searched by {name}; use type: choice, or --searcher grid/random",),
           files={"bad.yaml": recipe_with("{type: randint, low: 2, high: 8}", "{type: grid, values: [2, 4]}")},
           api={"recipe": "bad.yaml", "dataset": "iris", "searcher": name})
      for name in ("gp", "optuna", "anneal")],
    Case("grid type in a recipe searched by gp", ["validate", "bad.yaml"],
         ("bad.yaml: space.max_depth.type: grid cannot be searched by gp",),
         files={"bad.yaml": recipe_with("{type: randint, low: 2, high: 8}", "{type: grid, values: [2, 4]}") + "searcher: gp\n"}),
    Case("unknown searcher flag", ["run", "xgboost", "--dataset", "iris", "--searcher", "bayesopt"],
         ("--searcher bayesopt: unknown searcher (for bayesopt use gp); use one of random, grid, hyperopt, gp, optuna, anneal",),
         api={"recipe": "xgboost", "dataset": "iris", "searcher": "bayesopt"}),
    Case("unknown scheduler through the API only", [], ("--scheduler median: unknown scheduler; use one of fifo, asha",),
         api={"recipe": "random_forest", "dataset": "iris", "scheduler": "median"}),
    # -- data --------------------------------------------------------------------------------------
    Case("unknown dataset name", ["run", "xgboost", "--dataset", "irs"],
         ("--dataset irs: no such file and not a built-in dataset (did you mean 'iris'?)", "give a CSV/Parquet path or one of iris"),
         api={"recipe": "xgboost", "dataset": "irs"}),
    Case("missing data file", ["run", "xgboost", "--dataset", "missing.csv", "--target", "label"],
         ("--dataset missing.csv: no such file",), api={"recipe": "xgboost", "dataset": "missing.csv", "target": "label"}),
    Case("unsupported file type", ["run", "xgboost", "--dataset", "data.xlsx", "--target", "label"],
         ("data.xlsx: unsupported file type .xlsx; use .csv, .csv.gz, .tsv or .parquet",),
         files={"data.xlsx": "PK not really a spreadsheet"}, api={"recipe": "xgboost", "dataset": "data.xlsx", "target": "label"}),
    Case("empty file", ["run", "xgboost", "--dataset", "empty.csv", "--target", "label"],
         ("empty.csv: the file is empty; give a CSV with a header row and data rows",),
         files={"empty.csv": ""}, api={"recipe": "xgboost", "dataset": "empty.csv", "target": "label"}),
    Case("header only", ["run", "xgboost", "--dataset", "data.csv", "--target", "label"],
         ("data.csv: has a header but no data rows",), files={"data.csv": "a,b,label\n"},
         api={"recipe": "xgboost", "dataset": "data.csv", "target": "label"}),
    Case("not a CSV", ["run", "xgboost", "--dataset", "data.csv", "--target", "label"],
         ("data.csv: cannot read it as UTF-8 text (byte 0xff is not UTF-8); save it as UTF-8",), files={"data.csv": b"a,b,label\n\xff\xfe\x00\x81,1,2\n"},
         api={"recipe": "xgboost", "dataset": "data.csv", "target": "label"}),
    Case("no --target for a file", ["run", "xgboost", "--dataset", "data.csv"],
         ("data.csv: which column is the target? pass --target COLUMN (columns: a, b, label)",), files={"data.csv": GOOD_CSV},
         api={"recipe": "xgboost", "dataset": "data.csv"}),
    Case("missing target column", ["run", "xgboost", "--dataset", "data.csv", "--target", "labl"],
         ("data.csv: no column 'labl' (did you mean 'label'?); columns: a, b, label",), files={"data.csv": GOOD_CSV},
         api={"recipe": "xgboost", "dataset": "data.csv", "target": "labl"}),
    Case("integer target with one class", ["run", "xgboost", "--dataset", "data.csv", "--target", "label", "--task", "classification"],
         ("data.csv: target 'label' has a single class (7); classification needs at least two",),
         files={"data.csv": csv_rows("a,b,label", lambda i: f"{i},{i % 3},7")},
         api={"recipe": "xgboost", "dataset": "data.csv", "target": "label", "task": "classification"}),
    Case("target with one class", ["run", "xgboost", "--dataset", "data.csv", "--target", "label"],
         ("data.csv: target 'label' has a single class ('yes'); classification needs at least two",),
         files={"data.csv": csv_rows("a,b,label", lambda i: f"{i},{i % 3},yes")},
         api={"recipe": "xgboost", "dataset": "data.csv", "target": "label"}),
    Case("all-null target", ["run", "xgboost", "--dataset", "data.csv", "--target", "label"],
         ("data.csv: target column 'label' is empty (all values missing); choose another --target",),
         files={"data.csv": csv_rows("a,b,label", lambda i: f"{i},{i % 3},")},
         api={"recipe": "xgboost", "dataset": "data.csv", "target": "label"}),
    Case("text target for regression", ["run", "xgboost", "--dataset", "data.csv", "--target", "label", "--task", "regression"],
         ("data.csv: target 'label' holds text ('no') but the task is regression; use --task classification or a numeric target",),
         files={"data.csv": GOOD_CSV}, api={"recipe": "xgboost", "dataset": "data.csv", "target": "label", "task": "regression"}),
    Case("no feature columns", ["run", "xgboost", "--dataset", "data.csv", "--target", "label"],
         ("data.csv: no feature columns besides the target 'label'; a model needs at least one",),
         files={"data.csv": csv_rows("label", lambda i: str(i % 2))},
         api={"recipe": "xgboost", "dataset": "data.csv", "target": "label"}),
    Case("too few rows", ["run", "xgboost", "--dataset", "data.csv", "--target", "label"],
         ("data.csv: only 4 rows; raysweep needs at least 10",), files={"data.csv": csv_rows("a,label", lambda i: f"{i},{i % 2}", 4)},
         api={"recipe": "xgboost", "dataset": "data.csv", "target": "label"}),
    Case("fewer rows than folds", ["run", "xgboost", "--dataset", "data.csv", "--target", "label", "--cv", "30"],
         ("--cv 30: only 24 rows remain for tuning after the test split; use fewer folds",), files={"data.csv": GOOD_CSV},
         api={"recipe": "xgboost", "dataset": "data.csv", "target": "label", "cv": 30}),
    Case("semicolon-separated CSV", ["run", "xgboost", "--dataset", "data.csv", "--target", "label"],
         ("data.csv: the header reads as one column, its names separated by ';'; raysweep reads commas (.tsv: tabs): save it with commas",),
         files={"data.csv": GOOD_CSV.replace(",", ";")}, api={"recipe": "xgboost", "dataset": "data.csv", "target": "label"}),
    # Left unused without a word: noise is make_regression's.
    Case("synthetic option of the other generator", ["run", "xgboost", "--dataset", "make_classification:noise=0.1"],
         ("--dataset make_classification:noise=0.1: unknown option 'noise' (make_classification does not take it); "
          "use make_classification:n_samples=...,n_features=...,n_informative=...,n_classes=...,random_state=...",),
         api={"recipe": "xgboost", "dataset": "make_classification:noise=0.1"}),
    Case("metric of the other task, the task inferred", ["run", "xgboost", "--dataset", "data.csv", "--target", "label", "--metric", "accuracy"],
         ("--metric accuracy: a classification metric, but the task is regression (inferred from the target 'label'); "
          "use one of rmse, mae, r2, or --task classification",),
         files={"data.csv": csv_rows("a,label", lambda i: f"{i},{i % 60}", 300)},
         api={"recipe": "xgboost", "dataset": "data.csv", "target": "label", "metric": "accuracy"}),
    Case("synthetic option typo", ["run", "xgboost", "--dataset", "make_classification:n_sample=100"],
         ("--dataset make_classification:n_sample=100: unknown option 'n_sample' (did you mean 'n_samples'?)",),
         api={"recipe": "xgboost", "dataset": "make_classification:n_sample=100"}),
    # The class's one row landed in the validation split: the sweep ran, and the refit model's test roc_auc was NaN (exit 0).
    Case("roc_auc with a class the test split lacks", ["run", "xgboost", "--dataset", "data.csv", "--target", "label", "--metric", "roc_auc", "--seed", "10"],
         ("--metric roc_auc: the test split has no row of class 'C' (1 row in all, too few to score it in the validation and the "
          "test split), and roc_auc is undefined without one; use another --metric",),
         files={"data.csv": csv_rows("a,b,label", lambda i: f"{i * 0.37 % 1:.3f},{i % 7},{'C' if i == 5 else ('A' if i % 2 else 'B')}", 40)},
         api={"recipe": "xgboost", "dataset": "data.csv", "target": "label", "metric": "roc_auc", "seed": 10}),
    Case("target for a built-in dataset", ["run", "xgboost", "--dataset", "iris", "--target", "species"],
         ("--target species: the built-in dataset iris has its own target; leave --target out",),
         api={"recipe": "xgboost", "dataset": "iris", "target": "species"}),
    # -- flags -------------------------------------------------------------------------------------
    # click's own usage errors are one line too, with where the help is (they were click's three lines)
    Case("a flag value of the wrong type", ["run", "random_forest", "--dataset", "iris", "--stop-at", "abc"],
         ("error: Invalid value for '--stop-at': 'abc' is not a valid float. See 'raysweep run --help'.",)),
    Case("a misspelt flag", ["run", "random_forest", "--datset", "iris"],
         ("error: No such option '--datset'", "(Did you mean one of: '--dataset'", "?) See '", "raysweep run --help'.")),
    Case("no recipe given", ["run", "--dataset", "iris"], ("error: Missing argument 'RECIPE'. See 'raysweep run --help'.",)),
    Case("resume to a dashboard address", ["resume", "rf-iris", "--address", "http://127.0.0.1:8265"],
         ("error: --address http://127.0.0.1:8265: that is the address of Ray's dashboard and job server",)),
    Case("a misspelt command", ["rnu", "random_forest"], ("error: No such command 'rnu'. Did you mean 'run'? See 'raysweep --help'.",)),
    Case("a subcommand's flag value of the wrong type", ["cluster", "up", "--local", "--workers", "x"],
         ("Invalid value for '--workers': 'x' is not a valid integer", "See 'raysweep cluster up --help'.")),
    Case("storage is a file", ["run", "xgboost", "--dataset", "iris", "--storage", "data.csv/results"],
         ("data.csv is a file, not a folder; pass a folder for Ray's state of the sweep",), files={"data.csv": GOOD_CSV},
         api={"recipe": "xgboost", "dataset": "iris", "storage": "data.csv/results"}),
    # Both were a pyarrow traceback after Ray started, and a FAILED run in MLflow.
    Case("storage no folder can be made in", ["run", "xgboost", "--dataset", "iris", "--storage", "/proc/raysweep"],
         ("--storage /proc/raysweep: cannot make a folder in /proc", "pass a folder you can write in"),
         api={"recipe": "xgboost", "dataset": "iris", "storage": "/proc/raysweep"}),
    Case("storage on a filesystem Ray cannot open", ["run", "xgboost", "--dataset", "iris", "--storage", "foo://bucket/x"],
         ("--storage foo://bucket/x: Ray keeps a sweep's state on s3://", "not on foo://; pass one of those"),
         api={"recipe": "xgboost", "dataset": "iris", "storage": "foo://bucket/x"}),
    Case("zero samples", ["run", "xgboost", "--dataset", "iris", "--num-samples", "0"],
         ("--num-samples 0: must be a whole number >= 1",), api={"recipe": "xgboost", "dataset": "iris", "num_samples": 0}),
    Case("negative samples", ["run", "xgboost", "--dataset", "iris", "--num-samples", "-3"],
         ("--num-samples -3: must be a whole number >= 1",), api={"recipe": "xgboost", "dataset": "iris", "num_samples": -3}),
    Case("one fold", ["run", "xgboost", "--dataset", "iris", "--cv", "1"],
         ("--cv 1: cross-validation needs at least 2 folds; use --cv 5, or leave --cv out",),
         api={"recipe": "xgboost", "dataset": "iris", "cv": 1}),
    Case("zero concurrency", ["run", "xgboost", "--dataset", "iris", "--max-concurrent", "0"], ("--max-concurrent 0: must be >= 1",),
         api={"recipe": "xgboost", "dataset": "iris", "max_concurrent": 0}),
    Case("negative time budget", ["run", "xgboost", "--dataset", "iris", "--time-budget", "-5"],
         ("--time-budget -5.0: must be a finite positive number of seconds, e.g. --time-budget 600",),
         api={"recipe": "xgboost", "dataset": "iris", "time_budget": -5.0}),
    Case("time budget nan", ["run", "xgboost", "--dataset", "iris", "--time-budget", "nan"],
         ("--time-budget nan: must be a finite positive number of seconds",), api={"recipe": "xgboost", "dataset": "iris", "time_budget": float("nan")}),
    Case("time budget inf", ["run", "xgboost", "--dataset", "iris", "--time-budget", "inf"],
         ("--time-budget inf: must be a finite positive number of seconds",), api={"recipe": "xgboost", "dataset": "iris", "time_budget": float("inf")}),
    Case("negative checkpoint interval", ["run", "xgboost", "--dataset", "iris", "--checkpoint-every", "-1"],
         ("--checkpoint-every -1.0: must be a number of seconds >= 0 (0 checkpoints after every step)",),
         api={"recipe": "xgboost", "dataset": "iris", "checkpoint_every": -1.0}),
    Case("sweep name with a slash", ["run", "xgboost", "--dataset", "iris", "--name", "a/b"],
         ("--name a/b: a sweep name may not contain '/'",), api={"recipe": "xgboost", "dataset": "iris", "name": "a/b"}),
    Case("--set on a missing key", ["run", "xgboost", "--dataset", "iris", "--set", "space.nope.high=3"],
         ("--set space.nope.high=3:", "has no key space.nope; keys there: learning_rate, max_depth"),
         api={"recipe": "xgboost", "dataset": "iris", "overrides": ["space.nope.high=3"]}),
    # max_concurrent, a key --set takes, was left out of the list.
    Case("--set on a missing top-level key", ["run", "random_forest", "--dataset", "iris", "--set", "max_concurent=2"],
         ("--set max_concurent=2:", "has no key max_concurent (did you mean 'max_concurrent'?); keys there: name,", "pbt, max_concurrent, fixed"),
         api={"recipe": "random_forest", "dataset": "iris", "overrides": ["max_concurent=2"]}),
    Case("--set malformed", ["run", "xgboost", "--dataset", "iris", "--set", "nonsense"],
         ("--set nonsense: expected KEY.PATH=VALUE, e.g. --set space.max_depth.high=12",),
         api={"recipe": "xgboost", "dataset": "iris", "overrides": ["nonsense"]}),
    Case("--set breaking a rule", ["run", "xgboost", "--dataset", "iris", "--set", "space.max_depth.high=1"],
         ("--set space.max_depth.high=1: space.max_depth: low < high must hold, but got (low=2, high=1)",),
         api={"recipe": "xgboost", "dataset": "iris", "overrides": ["space.max_depth.high=1"]}),
    Case("--set a partial starting point", ["run", "xgboost", "--dataset", "iris", "--set", "points_to_evaluate=[{max_depth: 4}]"],
         ("--set points_to_evaluate=[{max_depth: 4}]: points_to_evaluate.0: gives no value for learning_rate, min_child_weight",),
         api={"recipe": "xgboost", "dataset": "iris", "overrides": ["points_to_evaluate=[{max_depth: 4}]"]}),
    Case("starting point not a number", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: points_to_evaluate.0.max_depth: must be a number, got 'deep'",),
         files={"bad.yaml": RECIPE + "points_to_evaluate: [{max_depth: deep}]\n"}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("validate a bad recipe", ["validate", "bad.yaml"], ("bad.yaml: space.max_depth: low < high must hold",),
         files={"bad.yaml": recipe_with("low: 2", "low: 9")}),
    Case("show an unknown recipe", ["recipes", "show", "nope"], ("unknown recipe 'nope'",)),
    Case("--set a value of the wrong type", ["validate", "xgboost", "--set", "space.max_depth.high=abc"],
         ("--set space.max_depth.high=abc: must be a number, got 'abc'",)),
    Case("--set that breaks a sibling key", ["validate", "xgboost", "--set", "space.max_depth.type=choice"],
         ("--set space.max_depth.type=choice: space.max_depth.low: unknown key; allowed keys: type, values",)),
    # XGBoost checks its values only as it trains: every trial failed after Ray started.
    Case("--set an XGBoost value XGBoost rejects", ["run", "xgboost", "--dataset", "iris", "--set", "fixed.tree_method=histo"],
         ("--set fixed.tree_method=histo: the model rejects these parameters (Invalid Input: 'histo', valid values are: ",),
         api={"recipe": "xgboost", "dataset": "iris", "overrides": ["fixed.tree_method=histo"]}),
    Case("--set an XGBoost range beyond its bounds", ["run", "xgboost", "--dataset", "iris", "--set", "space.subsample.high=2.0"],
         ("--set space.subsample.high=2.0: 2.0 is rejected by XGBClassifier (value 2 for Parameter subsample exceed bound [0,1]); lower high",),
         api={"recipe": "xgboost", "dataset": "iris", "overrides": ["space.subsample.high=2.0"]}),
    Case("--set a fixed value the model rejects", ["run", "svm", "--dataset", "iris", "--set", "fixed.kernel=nope"],
         ("--set fixed.kernel=nope: the model rejects these parameters (The 'kernel' parameter of SVC",),
         api={"recipe": "svm", "dataset": "iris", "overrides": ["fixed.kernel=nope"]}),
    Case("--set a scheduler the family refuses", ["validate", "svm", "--set", "scheduler=pbt"],
         ("--set scheduler=pbt: the svm family carries no training state", "use --scheduler asha or hyperband")),
    Case("validate pbt with nothing to mutate", ["validate", "bad.yaml"],
         ("bad.yaml: pbt.mutations is empty, so scheduler pbt (from bad.yaml) has nothing to mutate",),
         files={"bad.yaml": RECIPE + "scheduler: pbt\n"}),
    Case("validate grid points outside the range", ["validate", "xgboost", "--set", "searcher=grid", "--set", "space.max_depth.high=5"],
         ("--set space.max_depth.high=5: space.max_depth: grid points [6, 9] lie outside [low=2, high=5) (randint leaves out high)",)),
    Case("validate with the searcher run would be given", ["validate", "xgboost", "--searcher", "Grid", "--set", "space.max_depth.high=5"],
         ("--set space.max_depth.high=5: space.max_depth: grid points [6, 9] lie outside [low=2, high=5) (randint leaves out high)",)),
    Case("validate with a scheduler the family refuses", ["validate", "svm", "--scheduler", "pbt"],
         ("--scheduler pbt: the svm family carries no training state", "use --scheduler asha or hyperband")),
    Case("recipe name with a slash", ["validate", "bad.yaml"], ("bad.yaml: name: 'a/b': a sweep's default name and folder start with it and its MLflow runs are found by it",),
         files={"bad.yaml": RECIPE + "name: a/b\n"}),
    Case("recipe name with a space", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: name: 'my recipe': a sweep's default name and folder start with it and its MLflow runs are found by it, so it must be one word of letters, "
          "digits, '-', '_' and '.'; rename it, e.g. my_recipe",),
         files={"bad.yaml": RECIPE + "name: my recipe\n"}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    # -- Ray Tune draws integers with NumPy's int64 ------------------------------------------------------
    Case("an integer bound too large for Ray Tune", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: space.max_depth.high: must fit in a 64-bit integer for randint, got 100000000000000000000000; "
          "use a bound between -9223372036854775808 and 9223372036854775807",),
         files={"bad.yaml": recipe_with("high: 8", "high: 100000000000000000000000")}, api={"recipe": "bad.yaml", "dataset": "iris"}),
    # -- every value of the space, not only the first, goes through the model's own checks ----------------
    Case("a choice value the model rejects", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: space.criterion.values: 'log_los' is rejected by RandomForestClassifier (The 'criterion' parameter of "
          "RandomForestClassifier must be a str among {", "}. Got 'log_los' instead.); fix or remove it"),
         files={"bad.yaml": RECIPE + "  criterion: {type: choice, values: [gini, entropy, log_los]}\n"},
         api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("an svm kernel the model rejects", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: space.kernel.values: 'polyy' is rejected by SVC (The 'kernel' parameter of SVC must be a str among {",
          "Got 'polyy' instead.); fix or remove it"),
         files={"bad.yaml": "family: svm\ntasks: [classification]\nmetric: accuracy\nresource: {name: train_fraction, per_step: 0.25, max: 1.0}\n"
                            "space:\n  kernel: {type: choice, values: [rbf, linear, polyy]}\n"},
         api={"recipe": "bad.yaml", "dataset": "iris"}),
    Case("layer sizes the model rejects in training", ["run", "mlp", "--dataset", "iris", "--set", "space.hidden_layer_sizes.values=[[16],[0,8],32]"],
         ("--set space.hidden_layer_sizes.values=[[16],[0,8],32]: [0, 8] is rejected by MLPClassifier (hidden_layer_sizes must "
          "be whole numbers > 0, got [0, 8]); fix or remove it",),
         api={"recipe": "mlp", "dataset": "iris", "overrides": ["space.hidden_layer_sizes.values=[[16],[0,8],32]"]}),
    Case("a range end the model rejects", ["run", "random_forest", "--dataset", "iris", "--set", "space.max_features.high=3.0"],
         ("--set space.max_features.high=3.0: 3.0 is rejected by RandomForestClassifier (The 'max_features' parameter of "
          "RandomForestClassifier must be an int in the range [1, inf), a float in the range (0.0, 1.0]", "Got 3.0 instead.); lower high"),
         api={"recipe": "random_forest", "dataset": "iris", "overrides": ["space.max_features.high=3.0"]}),
    Case("a range end the model rejects, in a file", ["validate", "bad.yaml"],
         ("bad.yaml: space.max_features.high: 3.0 is rejected by RandomForestClassifier (", "Got 3.0 instead.); lower high"),
         files={"bad.yaml": RECIPE + "  max_features: {type: uniform, low: 0.5, high: 3.0}\n"}),
    Case("the lowest value an integer range draws", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: space.max_depth.low: 0 is rejected by RandomForestClassifier (The 'max_depth' parameter of "
          "RandomForestClassifier must be an int in the range [1, inf) or None. Got 0 instead.); raise low",),
         files={"bad.yaml": recipe_with("{type: randint, low: 2, high: 8}", "{type: qrandint, low: 0, high: 8, q: 4}")},
         api={"recipe": "bad.yaml", "dataset": "iris"}),
    # -- a quantized range with nothing to draw --------------------------------------------------------
    Case("no multiple of q within the bounds", ["run", "bad.yaml", "--dataset", "iris"],
         ("bad.yaml: space.max_depth.q: no multiple of 20 lies between low=2 and high=10, so there is no value to draw; "
          "use a smaller q, or bounds that hold a multiple of it",),
         files={"bad.yaml": recipe_with("{type: randint, low: 2, high: 8}", "{type: qrandint, low: 2, high: 10, q: 20}")},
         api={"recipe": "bad.yaml", "dataset": "iris"}),
    # -- a resource that a trial cannot train to -------------------------------------------------------
    Case("resource.max not a multiple of per_step", ["run", "xgboost", "--dataset", "iris", "--set", "resource.per_step=20", "--set", "resource.max=70"],
         ("--set resource.max=70: 70 is not a multiple of resource.per_step 20, so trials would train to 80; use 60 or 80",),
         api={"recipe": "xgboost", "dataset": "iris", "overrides": ["resource.per_step=20", "resource.max=70"]}),
    Case("resource.max not a multiple of per_step, in a file", ["validate", "bad.yaml"],
         ("bad.yaml: resource.max: 30 is not a multiple of resource.per_step 20, so trials would train to 40; use 20 or 40",),
         files={"bad.yaml": recipe_with("per_step: 10", "per_step: 20")}),
    Case("a row share that stops short of all rows", ["run", "svm", "--dataset", "iris", "--set", "resource.per_step=0.3"],
         ("--set resource.per_step=0.3: resource.max: 1.0 is not a multiple of resource.per_step 0.3, so trials would train to 0.9; "
          "use resource.max 0.9, or a resource.per_step that divides 1.0 (0.25 or 0.2)",),
         api={"recipe": "svm", "dataset": "iris", "overrides": ["resource.per_step=0.3"]}),
    Case("a row share above 1", ["run", "svm", "--dataset", "iris", "--set", "resource.max=1.5"],
         ("--set resource.max=1.5: 1.5 is above 1.0, but svm trains on a share of the training rows (1.0 is all of them); use at most 1.0",),
         api={"recipe": "svm", "dataset": "iris", "overrides": ["resource.max=1.5"]}),
]

#: the cases that also run in a subprocess: one or two of each kind (recipe, strategy, data, flags, validate), each
#: kind reached by the imports a user's process makes on its way (a recipe file alone; a built-in dataset and
#: scikit-learn; a CSV through pandas). Every case runs in-process above with the same checks.
SUBPROCESS = {
    "unknown recipe name", "malformed YAML", "pbt on svm", "--set a scheduler the family refuses",
    "unknown dataset name", "missing target column", "zero samples", "validate a bad recipe",
    "a choice value the model rejects", "a misspelt flag",
}
CLI_CASES = [case for case in CASES if case.args]
SUBPROCESS_CASES = [case for case in CLI_CASES if case.id in SUBPROCESS]
API_CASES = [case for case in CASES if case.api is not None]


def write_files(folder: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def check_one_line_error(case: Case, returncode: int, stdout: str, stderr: str, cwd: Path, before: set[Path]) -> None:
    assert returncode == 2, (stdout, stderr)
    line = stderr.strip()
    assert "\n" not in line, f"expected one line, got:\n{line}"
    assert line.startswith("error: ")
    for fragment in case.fragments:
        assert fragment in line
    assert "Traceback" not in stderr + stdout
    assert stdout == ""
    # Nothing started: no tracking store, no Ray results, nothing new in the working directory.
    assert not (cwd / "mlflow.db").exists()
    assert not (cwd / "raysweep_results").exists()
    assert set(cwd.iterdir()) == before


@pytest.fixture(scope="module", autouse=True)
def subprocesses(request: pytest.FixtureRequest, tmp_path_factory) -> dict[str, tuple[Future, Path, set[Path]]]:
    """This module's subprocesses that the session runs, all started as the module begins.

    They run on the machine's other cores while the in-process cases run here; each test then
    checks its own. Case id -> (the future of its ``run_cli``, its folder, the folder's files before).
    """
    started = {}
    wanted = set(selected_cases(request, "test_cli_subprocess_reports_bad_input_in_one_line"))
    for case in SUBPROCESS_CASES:
        if case.id in wanted:
            folder = tmp_path_factory.mktemp("bad-input")
            write_files(folder, case.files)
            started[case.id] = (in_background(run_cli, *case.args, cwd=folder, timeout=120), folder, set(folder.iterdir()))
    if selected_cases(request, "test_bad_input_never_imports_ray_or_mlflow"):
        folder = tmp_path_factory.mktemp("never-imports")
        started["never imports"] = (in_background(run_bad_inputs_in_one_interpreter, folder), folder, set())
    return started


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.id for case in CLI_CASES])
def test_cli_reports_bad_input_in_one_line(case, tmp_path, monkeypatch):
    write_files(tmp_path, case.files)
    before = set(tmp_path.iterdir())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    writers = started_writers(monkeypatch)
    outcome = CliRunner().invoke(main, case.args, prog_name="raysweep")
    assert not isinstance(outcome.exception, Exception) or isinstance(outcome.exception, SystemExit), outcome.exception
    check_one_line_error(case, outcome.exit_code, outcome.stdout, outcome.stderr, tmp_path, before)
    # `raysweep run` starts its MLflow writer before it reads its input; bad input ends it at
    # once (it would otherwise hold the command's stderr open until its imports were done).
    from raysweep.sweep import early

    assert early.take_writer() is None
    for process, environment in writers:
        assert process.wait(10) != 0  # killed, not left waiting for a sweep
        # It inherits the environment the sweep's processes get: Python's warnings off unless --verbose.
        assert environment.get("PYTHONWARNINGS") == (None if "--verbose" in case.args else "ignore")


def started_writers(monkeypatch: pytest.MonkeyPatch) -> list:
    """The MLflow writer processes started from now on, each with the environment it was started in."""
    from raysweep.tracking import _writer_process

    started: list = []
    spawn = _writer_process.spawn

    def recording(*args, **kwargs):
        started.append((spawn(*args, **kwargs), dict(os.environ)))
        return started[-1][0]

    monkeypatch.setattr(_writer_process, "spawn", recording)
    return started


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[case.id for case in SUBPROCESS_CASES])
def test_cli_subprocess_reports_bad_input_in_one_line(case, subprocesses):
    started, cwd, before = subprocesses[case.id]
    done = started.result()
    check_one_line_error(case, done.returncode, done.stdout, done.stderr, cwd, before)


@pytest.mark.parametrize("case", API_CASES, ids=[case.id for case in API_CASES])
def test_api_raises_the_same_user_error(case, tmp_path, monkeypatch):
    write_files(tmp_path, case.files)
    monkeypatch.chdir(tmp_path)
    options = dict(case.api)
    with pytest.raises(UserError) as info:
        plan_sweep(options.pop("recipe"), options.pop("dataset"), **options)
    message = str(info.value)
    assert "\n" not in message
    for fragment in case.fragments:
        assert fragment in message
    assert info.value.exit_code == 2


#: bad inputs of each kind, run in one interpreter that must import neither ray nor mlflow
NEVER_IMPORTS_CASES = [
    ["run", "bad.yaml", "--dataset", "iris"],
    ["run", "svm", "--dataset", "iris", "--scheduler", "pbt"],
    ["run", "xgboost", "--dataset", "data.csv", "--target", "labl"],
    ["run", "xgboost", "--dataset", "data.csv", "--target", "label", "--cv", "30"],
    ["run", "xgboost", "--dataset", "iris", "--metric", "rmse"],
]


def run_bad_inputs_in_one_interpreter(folder: Path) -> subprocess.CompletedProcess:
    """Run NEVER_IMPORTS_CASES in turn in one fresh interpreter; it prints their exit codes and which of ray/mlflow it imported."""
    write_files(folder, {"data.csv": GOOD_CSV, "bad.yaml": recipe_with("low: 2", "low: 9")})
    script = (
        "import json, sys\n"
        "from raysweep.cli import main\n"
        "codes = []\n"
        f"for args in {NEVER_IMPORTS_CASES!r}:\n"
        "    try:\n"
        "        main(args, prog_name='raysweep')\n"
        "    except SystemExit as exc:\n"
        "        codes.append(exc.code)\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow'})\n"
        "print(json.dumps({'codes': codes, 'heavy': heavy}))\n"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True, timeout=120)


def test_bad_input_never_imports_ray_or_mlflow(subprocesses):
    """The checks run before Ray and MLflow are even imported, let alone started."""
    done = subprocesses["never imports"][0].result()
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"codes": [2] * len(NEVER_IMPORTS_CASES), "heavy": []}
    assert len(done.stderr.strip().splitlines()) == len(NEVER_IMPORTS_CASES)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cv": "5"}, "--cv '5': must be a whole number"),
        ({"max_concurrent": 1.5}, "--max-concurrent 1.5: must be a whole number"),
        ({"num_samples": True}, "--num-samples True: must be a whole number"),
        ({"checkpoint_every": "5"}, "--checkpoint-every '5': must be a number"),
        ({"test_size": "0.2"}, "test_size '0.2': must be a number"),
        ({"time_budget": True}, "--time-budget True: must be a number"),
        # These were an AttributeError or TypeError deep inside, or an MLflow error after Ray started (experiment=5).
        ({"name": 5}, "--name 5: must be text (a str), got int"),
        ({"register_model": 5}, "--register-model 5: must be text (a str), got int"),
        ({"experiment": 5}, "--experiment 5: must be text (a str), got int"),
        ({"experiment": " "}, "--experiment ' ': an experiment's name may not be blank; pass one, or leave --experiment out for raysweep-DATASET"),
        ({"storage": 5}, "--storage 5: must be a folder's path or a URI, got int"),
        ({"overrides": [3]}, "overrides [3]: must be a list of KEY.PATH=VALUE texts, e.g. ['space.max_depth.high=12']"),
    ],
)
def test_the_api_refuses_a_value_of_the_wrong_type_in_one_line(options, message, tmp_path):
    """From Python these were a TypeError from a comparison deep inside (or accepted: True trials)."""
    with pytest.raises(UserError) as raised:
        plan_sweep("random_forest", "iris", **{"storage": tmp_path, **options})
    assert str(raised.value) == message


def test_the_api_takes_numpy_numbers(tmp_path):
    """num_samples=np.int64(3) was refused as "--num-samples 3: must be a whole number >= 1"."""
    import numpy as np

    plan = plan_sweep("random_forest", "iris", storage=tmp_path, num_samples=np.int64(3), nested_cv=np.int64(3), time_budget=np.int64(30))
    assert (plan.num_samples, plan.nested_cv, plan.time_budget) == (3, 3, 30.0)
    assert type(plan.num_samples) is int and plan.max_failures == 0


def test_the_api_takes_a_dataframe_or_an_x_y_pair(tmp_path):
    """A DataFrame, (X, y) or a NumPy pair was an AttributeError ('DataFrame' object has no attribute 'task')."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    by_frame = plan_sweep("random_forest", iris.frame, target="target", storage=tmp_path)
    by_pair = plan_sweep("random_forest", (iris.data, iris.target), storage=tmp_path)
    by_arrays = plan_sweep("random_forest", (iris.data.to_numpy(), iris.target.to_numpy()), storage=tmp_path)
    for plan in (by_frame, by_pair, by_arrays):
        assert (plan.task, plan.dataset.X.shape, plan.dataset.name, plan.experiment) == ("classification", (150, 4), "dataframe", "raysweep-dataframe")
        assert plan.dataset_spec is None  # resumed from Python with the data again
    assert by_frame.dataset.fingerprint == by_pair.dataset.fingerprint
    assert list(by_arrays.dataset.X.columns) == ["x0", "x1", "x2", "x3"]


@pytest.mark.parametrize(
    ("dataset", "options", "message"),
    [
        ("frame", {}, "dataset dataframe: which column is the target? pass target=COLUMN (columns: a, b, label)"),
        ("frame", {"target": "lable"}, "dataset dataframe: no column 'lable' (did you mean 'label'?); columns: a, b, label"),
        ("pair", {"target": "label"}, "target='label': an (X, y) pair holds its target in y; leave target out"),
        ("short y", {}, "dataset dataframe: X has 30 rows and y 29; they must be the same rows"),
        ("1-d X", {}, "dataset dataframe: X must be 2-D (rows x features), got an array of shape (30,)"),
        (5, {}, "dataset of type int: give a built-in name, a CSV/Parquet path, a pandas DataFrame with target=COLUMN, or an (X, y) pair"),
        ("path", {"target": "label"}, "--dataset {tmp}/missing.csv: no such file"),
    ],
)
def test_data_in_memory_is_checked_as_a_files_is(dataset, options, message, tmp_path):
    import io

    import pandas as pd

    frame = pd.read_csv(io.StringIO(GOOD_CSV))
    given = {
        "frame": frame, "pair": (frame[["a", "b"]], frame["label"]), "short y": (frame[["a", "b"]], frame["label"][:-1]),
        "1-d X": (frame["a"].to_numpy(), frame["label"]), "path": tmp_path / "missing.csv",
    }.get(dataset, dataset)
    with pytest.raises(UserError) as raised:
        plan_sweep("random_forest", given, storage=tmp_path, **options)
    assert str(raised.value).startswith(message.format(tmp=tmp_path))


@pytest.mark.parametrize(
    ("column", "message"),
    [
        # The refit model's logging failed (Timedelta is not JSON serializable) and the sweep still exited 0.
        ("duration", "dataset dataframe: column 'd' holds durations (timedelta); convert it to a number (e.g. seconds) or drop it"),
        # A traceback once Ray had started (unhashable type: 'numpy.ndarray').
        ("list", "dataset dataframe: column 'd' holds lists or arrays in its cells (the first in data row 1); a model takes one "
                 "value per cell: spread it into columns of its own, or drop it"),
    ],
)
def test_a_column_no_model_takes_is_refused(column, message, tmp_path):
    import pandas as pd

    rows = range(30)
    cells = pd.to_timedelta(list(rows), unit="s") if column == "duration" else [[i, i + 1] for i in rows]
    frame = pd.DataFrame({"a": list(rows), "d": cells, "label": [i % 2 for i in rows]})
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    with pytest.raises(UserError) as raised:
        plan_sweep("random_forest", frame, target="label", storage=tmp_path)
    assert str(raised.value) == message
    with pytest.raises(UserError) as raised:  # as a Parquet file gives it back
        plan_sweep("random_forest", str(path), target="label", storage=tmp_path)
    assert str(raised.value) == message.replace("dataset dataframe", str(path))


def test_run_sweep_names_its_own_options() -> None:
    """help(run_sweep) showed **options only, and a misspelt one was a TypeError of plan_sweep(), a function not exported."""
    import inspect

    import raysweep

    with pytest.raises(TypeError) as raised:
        raysweep.run_sweep("random_forest", "iris", num_sample=3)
    assert str(raised.value) == "run_sweep() got an unexpected keyword argument 'num_sample' (did you mean 'num_samples'?)"
    shown = inspect.signature(raysweep.run_sweep).parameters
    assert {"num_samples", "nested_cv", "test_size", "recipes", "progress", "tracking"} <= set(shown)
    assert all(parameter.kind is not inspect.Parameter.VAR_KEYWORD for parameter in shown.values())


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        # A name that is not text beside one that is failed in scikit-learn's column selection, after Ray started.
        ({"columns": [0, "colour", "label"]}, None),
        ({"columns": ["a", "a", "label"]}, "dataset dataframe: column name(s) 'a' appear more than once; give each column a name of its own"),
        # A frame is not a file: no hint about its separator.
        ({"columns": ["a;b;label"]}, "dataset dataframe: no column 'label'"),
    ],
)
def test_a_dataframes_column_names_are_checked(frame, message, tmp_path):
    import numpy as np
    import pandas as pd

    data = pd.DataFrame(np.arange(30 * len(frame["columns"])).reshape(30, -1) % 2, columns=frame["columns"])
    if message is None:
        plan = plan_sweep("random_forest", data, target="label", storage=tmp_path)
        assert list(plan.dataset.X.columns) == ["0", "colour"]
        return
    with pytest.raises(UserError) as raised:
        plan_sweep("random_forest", data, target="label", storage=tmp_path)
    assert str(raised.value).startswith(message) and "separated" not in str(raised.value)


def test_a_y_of_several_columns_is_refused(tmp_path):
    import numpy as np

    with pytest.raises(UserError) as raised:
        plan_sweep("random_forest", (np.zeros((30, 2)), np.zeros((30, 2))), storage=tmp_path)
    assert str(raised.value) == "dataset dataframe: y must be one target per row (1-D), got an array of shape (30, 2)"
