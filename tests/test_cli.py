"""The ``raysweep`` command as a user runs it, reading stdout, stderr and the exit code.

What needs a fresh interpreter runs in a subprocess: the entry point's --help and --version, a
recipe listed and shown through a real pipe, what the light commands import; these start together
as the module begins and run beside the in-process tests. The recipe commands that start nothing
run in-process through click's runner (``invoke_cli``), with the same exit code and output, so
scikit-learn is imported once and not per command.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import Future
from pathlib import Path
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, in_background, invoke_cli, run_cli, selected_cases
from raysweep.recipes import bundled_recipes_dir
from raysweep.sweep.run import run_sweep

JSON_KEYS = {"best_config", "best_validation_score", "test_score", "metric", "num_trials", "num_errors"}


# -- in-process, through click's runner -------------------------------------------------------------------------------------
def split_show_output(stdout: str) -> tuple[str, list[str], list[str]]:
    """(the recipe YAML, the resolved-domain lines, the other trailing lines) of ``recipes show``, comment marks removed."""
    lines = stdout.splitlines()
    marker = lines.index("# resolved search space (Ray Tune domains)")
    text = "\n".join(lines[1:marker])
    rest = lines[marker + 1 :]
    assert all(line.startswith("# ") for line in rest), rest
    rest = [line[2:] for line in rest]
    domains = [line for line in rest if ": tune." in line]
    comments = [line for line in rest if ": tune." not in line]
    return text, domains, comments


def expected_domain_line(name: str, spec: dict) -> str:
    """How ``recipes show`` should render one search-space entry of the recipe file."""
    if "values" in spec:
        return f"{name}: tune.{'grid_search' if spec['type'] == 'grid' else 'choice'}({spec['values']!r})"
    bounds = ", ".join(str(spec[key]) for key in ("low", "high", "q") if key in spec)
    return f"{name}: tune.{spec['type']}({bounds})" + (f"  grid: {spec['grid']}" if "grid" in spec else "")


def test_set_override_takes_effect(tmp_path):
    done = invoke_cli("recipes", "show", "xgboost", "--set", "space.max_depth.high=12", "--set", "resource.max=100", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text, domains, comments = split_show_output(done.stdout)
    assert yaml.safe_load(text)["space"]["max_depth"]["high"] == 12
    assert "max_depth: tune.randint(2, 12)  grid: [3, 6, 9]" in domains
    assert "resource: boosting_rounds, 50 per step, 2 steps up to 100" in comments
    # The recipe itself is untouched.
    again = invoke_cli("recipes", "show", "xgboost", cwd=tmp_path)
    assert "max_depth: tune.randint(2, 11)  grid: [3, 6, 9]" in split_show_output(again.stdout)[1]


def test_validate_says_where_a_narrowed_range_moves_the_starting_point(tmp_path):
    done = invoke_cli("validate", "random_forest", "--set", "space.max_depth.high=12", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("random_forest.yaml: ok (random_forest; classification, regression; 3 parameters searched)")
    assert "points_to_evaluate.0.max_depth: 32 lies outside space.max_depth [low=4, high=12]; starting from 11" in done.stderr


@pytest.mark.parametrize("name", sorted(p.stem for p in bundled_recipes_dir().glob("*.yaml")))
def test_a_shown_recipe_is_a_recipe_of_its_own(name, tmp_path):
    """The README's way to start a recipe: ``recipes show NAME > my.yaml``, then ``validate my.yaml``."""
    done = invoke_cli("recipes", "show", name, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    mine = tmp_path / f"my_{name}.yaml"
    mine.write_text(done.stdout)
    assert yaml.safe_load(done.stdout) == yaml.safe_load((bundled_recipes_dir() / f"{name}.yaml").read_text())
    checked = invoke_cli("validate", mine.name, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""  # an unchanged copy shares the prebuilt recipe's name without a note
    assert checked.stdout.startswith(f"{mine.name}: ok ({name};")
    # A changed copy that keeps the prebuilt name is told that its sweeps would be filed with the prebuilt's.
    mine.write_text(done.stdout.replace("num_samples: 20", "num_samples: 7"))
    checked = invoke_cli("validate", mine.name, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == (
        f"{mine.name}: name: {name} is also the prebuilt recipe's name, so this changed copy's sweeps would be named "
        f"after it and filed with its runs (MLflow experiment raysweep-DATASET); give it a name of its own"
    )


@pytest.mark.parametrize(
    "recipe, overrides",
    [
        ("svm", ["--set", "scheduler=pbt"]),
        ("xgboost", ["--set", "scheduler=pbt", "--set", "searcher=hyperopt"]),
        ("xgboost", ["--set", "searcher=grid", "--set", "space.max_depth.high=5"]),
        ("random_forest", ["--set", "fixed.max_dept=3"]),
    ],
)
def test_validate_refuses_what_run_refuses(recipe, overrides, tmp_path):
    checked = invoke_cli("validate", recipe, *overrides, cwd=tmp_path)
    ran = invoke_cli("run", recipe, "--dataset", "iris", *overrides, cwd=tmp_path)
    assert (checked.returncode, ran.returncode) == (2, 2), (checked.stderr, ran.stderr)
    assert checked.stdout == ""
    assert checked.stderr.startswith("error: --set ") and checked.stderr.count("\n") == 1, checked.stderr
    assert checked.stderr == ran.stderr


def test_validate(tmp_path):
    done = invoke_cli("validate", "recipes/xgboost.yaml", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "recipes/xgboost.yaml: ok (xgboost; classification, regression; 6 parameters searched)"
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "family: svm\ntasks: regression\nmetric: mae\nresource: {name: train_fraction, per_step: 0.5, max: 1.0}\n"
        "space:\n  C: {type: loguniform, low: 0.1, high: 10}\n"
    )
    done = invoke_cli("validate", "mine.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mine.yaml: ok (svm; regression; 1 parameter searched)"
    done = invoke_cli("validate", "random_forest", "--set", "early_stopping.grace_period=50", cwd=tmp_path)  # run said it, validate said ok only
    assert done.returncode == 0 and done.stderr.strip() == (
        "note: early_stopping.grace_period 50 is not below the 10 steps a trial has, so asha stops no trial early; lower it (or raise resource.max)"
    )
    done = invoke_cli("validate", "auto", cwd=tmp_path)  # it said "unknown recipe 'auto'", which `run auto` takes
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: auto is not a recipe: `raysweep run auto` runs several (every prebuilt one, or --recipes); "
        "validate each of them by its name or file"
    )


# -- in subprocesses, started as the module begins ------------------------------------------------------------------------
LIGHT_COMMANDS = [["--help"], ["recipes", "list"], ["recipes", "show", "xgboost"], ["validate", "recipes/mlp.yaml"], ["run", "--help"]]


def run_light_commands() -> subprocess.CompletedProcess:
    """Run each light command in turn in one fresh interpreter; it prints, for each, which of ray/mlflow are imported after it and its exit code.

    ``sys.modules`` only grows, so a command that imports ray or mlflow shows them after itself
    (and after every command that follows it).
    """
    script = (
        "import json, sys, io, contextlib\n"
        "from raysweep.cli import main\n"
        "after = {}\n"
        f"for args in {LIGHT_COMMANDS!r}:\n"
        "    code = 0\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(args, prog_name='raysweep')\n"
        "        except SystemExit as exc:\n"
        "            code = exc.code or 0\n"
        "    after[' '.join(args)] = [sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow'}), code]\n"
        "print(json.dumps(after))\n"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)


#: test -> the ``raysweep`` commands it runs in a subprocess
SUBPROCESS_COMMANDS = {
    "test_help_lists_the_commands": [("--help",), ("--version",)],
    "test_recipes_list_shows_the_four_recipes": [("recipes", "list")],
    "test_recipes_show_prints_yaml_and_domains": [("recipes", "show", "xgboost")],
}


@pytest.fixture(scope="module", autouse=True)
def subprocesses(request: pytest.FixtureRequest, tmp_path_factory) -> dict[tuple[str, ...], Future]:
    """This module's subprocesses that the session runs, all started as the module begins: command -> its future."""
    folder = tmp_path_factory.mktemp("cli")
    started = {}
    if selected_cases(request, "test_light_commands_import_neither_ray_nor_mlflow"):
        started[("light commands",)] = in_background(run_light_commands)
    for test, commands in SUBPROCESS_COMMANDS.items():
        if selected_cases(request, test):
            started.update({command: in_background(run_cli, *command, cwd=folder) for command in commands})
    return started


@pytest.mark.parametrize("args", LIGHT_COMMANDS, ids=lambda args: " ".join(args))
def test_light_commands_import_neither_ray_nor_mlflow(args, subprocesses):
    done = subprocesses[("light commands",)].result()
    assert done.returncode == 0, done.stderr
    heavy, code = json.loads(done.stdout.strip().splitlines()[-1])[" ".join(args)]
    assert code == 0
    assert heavy == []


def test_help_lists_the_commands(subprocesses):
    done = subprocesses[("--help",)].result()
    assert done.returncode == 0 and done.stderr == ""
    for command in ("run", "recipes", "validate"):
        assert f"  {command} " in done.stdout
    version = subprocesses[("--version",)].result()
    assert version.returncode == 0 and "raysweep, version 0.1.0" in version.stdout


def test_recipes_list_shows_the_four_recipes(subprocesses):
    done = subprocesses[("recipes", "list")].result()
    assert done.returncode == 0, done.stderr
    rows = [line.split("│")[1].strip() for line in done.stdout.splitlines() if line.startswith("│") and line.split("│")[1].strip()]
    assert rows == ["mlp", "random_forest", "svm", "xgboost"]
    assert "boosting_rounds" in done.stdout and "50/step" in done.stdout
    assert "hyperopt" in done.stdout and "asha" in done.stdout


def test_recipes_show_prints_yaml_and_domains(subprocesses):
    done = subprocesses[("recipes", "show", "xgboost")].result()
    assert done.returncode == 0, done.stderr
    # The recipe ships inside the package: the checkout's recipes/ or the installed wheel's copy
    # (raysweep/recipes/prebuilt/).
    header = done.stdout.splitlines()[0]
    assert header.startswith("# ") and header.endswith(("/recipes/xgboost.yaml", "/recipes/prebuilt/xgboost.yaml")), header
    assert Path(header[2:]).read_text() == (bundled_recipes_dir() / "xgboost.yaml").read_text()
    text, domains, comments = split_show_output(done.stdout)
    raw = yaml.safe_load((bundled_recipes_dir() / "xgboost.yaml").read_text())
    assert yaml.safe_load(text) == raw
    assert domains == [expected_domain_line(name, spec) for name, spec in raw["space"].items()]
    assert "max_depth: tune.randint(2, 11)  grid: [3, 6, 9]" in domains
    assert "fixed: tree_method='hist'" in comments
    resource = raw["resource"]
    steps = round(resource["max"] / resource["per_step"])
    assert f"resource: {resource['name']}, {resource['per_step']} per step, {steps} steps up to {resource['max']}" in comments


# -- sweeps through the CLI (each starts its own Ray in the subprocess) ----------------------------------------------------
def run_cli_reader_gone(*args: str, cwd: Path, first_lines: int = 0) -> tuple[int, str]:
    """Run ``raysweep ARGS 2>&1 | head -FIRST_LINES`` (0: a reader that closes before a word is
    written): (the exit code, what the reader got)."""
    process = subprocess.Popen([sys.executable, "-m", "raysweep", *args], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    got = [process.stdout.readline() for _ in range(first_lines)]
    process.stdout.close()
    return process.wait(timeout=600), "".join(got)


@pytest.mark.parametrize("args, code", [(("recipes", "show", "xgboost"), 0), (("recipes", "list"), 0), (("validate", "nope.yaml"), 2)],
                         ids=["show", "list", "validate a missing file"])
def test_a_reader_gone_leaves_the_exit_code_to_the_command(args, code, tmp_path):
    """``raysweep recipes show xgboost | head -0`` exited 1 (click's broken-pipe exit) for a command that had succeeded."""
    assert run_cli_reader_gone(*args, cwd=tmp_path) == (code, "")


@pytest.mark.e2e  # a real sweep: Ray starts in the subprocess
def test_a_sweep_runs_to_its_end_when_its_reader_has_gone(tmp_path):
    """``raysweep run ... 2>&1 | head -1``: the live view's next line, after ``head`` had gone, ended
    the sweep as failed ("no reason recorded"). It runs on; its outcome sets the exit code."""
    import mlflow

    code, got = run_cli_reader_gone(
        "run", "random_forest", "--dataset", "iris", "--scheduler", "fifo", "--searcher", "random", "--num-samples", "2",
        "--set", "resource.max=40", "--name", "reader-gone", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
        cwd=tmp_path, first_lines=1,
    )
    assert got.startswith("raysweep: random_forest on iris"), got
    assert code == 0
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("raysweep-iris").experiment_id])
    parent = [run for run in runs if run.info.run_name == "reader-gone"]
    assert [run.info.status for run in parent] == ["FINISHED"]
    assert sorted(run.info.status for run in runs if run is not parent[0]) == ["FINISHED", "FINISHED"]
    assert 0.8 < parent[0].data.metrics["test_accuracy"] <= 1


def parse_json_stdout(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line on stdout, got:\n{stdout}"
    outcome = json.loads(lines[0])
    assert isinstance(outcome, dict)
    return outcome


def test_run_json_matches_the_python_api(ray_local, tmp_path, capsys):
    options = ["--scheduler", "fifo", "--searcher", "random", "--num-samples", "2", "--seed", "0", "--metric", "log_loss",
               "--set", "resource.max=40", "--set", "space.max_depth.low=3", "--set", "space.max_depth.high=4",
               "--set", "space.max_depth.grid=[3]"]
    cwd = tmp_path / "cli"
    cwd.mkdir()
    done = run_cli("run", "random_forest", "--dataset", "breast_cancer", *options, "--json",
                   "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    banner = "raysweep: random_forest on breast_cancer (classification, 569 rows), fifo + random, 2 trials, metric log_loss (min)"
    assert banner in done.stderr.splitlines(), "the banner says what runs, one line in a pipe"
    outcome = parse_json_stdout(done.stdout)
    assert JSON_KEYS <= set(outcome)
    assert outcome["metric"] == "log_loss" and outcome["mode"] == "min"
    assert outcome["num_trials"] == 2 and outcome["num_errors"] == 0
    assert outcome["best_config"]["max_depth"] == 3, "--set narrowed max_depth to [3, 4)"
    assert 0 < outcome["test_score"] < 0.3 and 0 < outcome["best_validation_score"] < 0.3
    assert outcome["tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db" and outcome["parent_run_id"]
    # With --json, the progress on stderr is a line per change (no live view), then a line per phase.
    progress = [line for line in done.stderr.splitlines() if line.startswith("trials: ")]
    best_trial, best_trees = check_progress_lines(progress, total=2, metric="val_log_loss", resource="trees")
    assert f"refitting the best config ({best_trial}) on 455 rows for {best_trees // 20} step" in done.stderr
    assert "\x1b[" not in done.stderr, "no cursor movement or colour in a pipe"
    assert (tmp_path / "mlflow.db").exists()
    assert (cwd / "raysweep_results").is_dir(), "Ray's results go to ./raysweep_results by default"
    # The CLI is a shell over the API: the same sweep in-process finds the same config and score.
    api = run_sweep("random_forest", "breast_cancer", scheduler="fifo", searcher="random", num_samples=2, seed=0,
                    metric="log_loss", overrides=["resource.max=40", "space.max_depth.low=3", "space.max_depth.high=4",
                                                  "space.max_depth.grid=[3]"],
                    tracking=False, storage=str(tmp_path / "api"))
    assert api.best_config == pytest.approx(outcome["best_config"])
    assert api.best_validation_score == pytest.approx(outcome["best_validation_score"], abs=1e-12)
    assert api.test_score == pytest.approx(outcome["test_score"], abs=1e-9)
    # raysweep is also a library: without progress=True it says nothing.
    said = capsys.readouterr()
    assert "trials: " not in said.err and "refitting" not in said.err and said.out == "", said


def test_real_dataset_through_the_cli(shared_data, tmp_path, monkeypatch):
    """adult.csv.gz as found: gzip, a saved index column, text with leading spaces, '<=50K' / '>50K' labels."""
    path = shared_data / "adult.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    done = run_cli(
        "run", "xgboost", "--dataset", str(path), "--target", "income", "--scheduler", "asha", "--searcher", "random",
        "--num-samples", "4", "--set", "resource.per_step=25", "--set", "resource.max=75", "--set", "space.max_depth.high=6",
        "--seed", "0", "--json",
        "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--storage", str(tmp_path / "results"), cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stderr = " ".join(done.stderr.split())
    assert "dropped the unnamed index column" in stderr
    assert "adult: task inferred from target 'income': classification" in stderr
    # The recipe starts from XGBoost's defaults; max_depth 6 no longer fits the narrowed range.
    assert "points_to_evaluate.0.max_depth: 6 lies outside space.max_depth [low=2, high=6]; starting from 5" in stderr
    outcome = parse_json_stdout(done.stdout)
    assert outcome["dataset"] == "adult" and outcome["task"] == "classification" and outcome["metric"] == "accuracy"
    assert outcome["num_trials"] == 4 and outcome["num_errors"] == 0
    # Predicting the majority class gives 0.76; boosted trees reach about 0.87.
    assert 0.83 < outcome["test_score"] <= 0.9
    # The logged model predicts alike from the file read as raysweep reads it and by plain
    # pd.read_csv, whose text keeps the space after each comma (" Private").
    import mlflow
    import pandas as pd

    # Not mlflow.set_tracking_uri: it sets MLFLOW_TRACKING_URI for the rest of this process, and the
    # sweeps later tests start would log into this test's store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    model = mlflow.pyfunc.load_model(outcome["model_uri"])
    as_read = pd.read_csv(path, skipinitialspace=True).drop(columns=["Unnamed: 0", "income"])
    plain = pd.read_csv(path).drop(columns=["Unnamed: 0", "income"])
    assert plain["workclass"].str.startswith(" ").any()
    assert list(model.predict(plain)) == list(model.predict(as_read))


PROGRESS_LINE = re.compile(
    r"trials: (\d+) of (\d+) done, (\d+) running, (\d+) waiting, (\d+) failed \| best (\w+) (-|[\d.e+-]+) \| "
    r"(?:by (trial-\w+) at ([\d.]+) (\w+) \| )?(\d+s|\d+m\d\ds)(?:, about (?:<1s|\d+s|\d+m\d\ds) left)?"
)


def check_progress_lines(lines: list[str], *, total: int, metric: str, resource: str) -> tuple[str, int]:
    """Check a sweep's progress lines in a pipe: one per change, each with the total; the best trial and its resource at the end."""
    assert lines, "no progress line"
    states = []
    for line in lines:
        match = PROGRESS_LINE.fullmatch(line)
        assert match, f"not a progress line: {line!r}"
        done, of, running, waiting, failed, key, best, trial, amount, name, _ = match.groups()
        assert int(of) == total and key == metric, line
        assert int(done) + int(running) + int(waiting) + int(failed) == total, line
        assert (trial is None) == (best == "-") and name in (None, resource), line
        states.append((done, running, waiting, failed, best, trial))
    # A line for each change, none while nothing changes (unless a minute passed: not in so short a sweep).
    assert all(a != b for a, b in zip(states, states[1:])), lines
    last = PROGRESS_LINE.fullmatch(lines[-1]).groups()
    assert last[:5] == (str(total), str(total), "0", "0", "0"), lines[-1]
    return last[7], int(last[8])


@pytest.mark.e2e  # a real sweep: Ray starts in the subprocess
def test_a_first_sweep_prints_only_raysweeps_own_lines(tmp_path):
    """A fresh folder, a fresh sqlite store, integer columns: no MLflow table creation, no schema hint, no INFO lines."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame[["magnesium", "proline"]] = frame[["magnesium", "proline"]].astype(int)  # MLflow hints about integer columns
    frame.to_csv(tmp_path / "wine.csv", index=False)
    done = run_cli(
        "run", "xgboost", "--dataset", "wine.csv", "--target", "target", "--task", "classification",
        "--scheduler", "fifo", "--searcher", "random", "--num-samples", "2", "--set", "resource.max=100",
        cwd=tmp_path, env={"MLFLOW_TRACKING_URI": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "mlflow.db").exists(), "the sweep logged to a store it created"
    for noise in ("Creating initial MLflow database tables", "Updating database tables", "alembic",
                  "Inferred schema contains integer", "Warning", " INFO ", "Traceback"):
        assert noise not in done.stderr, done.stderr
    # What is left is raysweep's own: the header (one line: it was wrapped at 80 columns in a pipe),
    # the progress lines, and what the sweep does after its trials, one line a phase.
    header = "raysweep: xgboost on wine (classification, 178 rows), fifo + random, 2 trials, metric accuracy (max)"
    progress = [line for line in done.stderr.splitlines() if line.startswith("trials: ")]
    others = [line for line in done.stderr.splitlines() if not line.startswith("trials: ")]
    best_trial, best_rounds = check_progress_lines(progress, total=2, metric="val_accuracy", resource="boosting_rounds")
    steps = best_rounds // 50
    assert others[-5:] == [
        f"refitting the best config ({best_trial}) on 142 rows for {steps} step{'s' if steps > 1 else ''} ({best_rounds} boosting_rounds)",
        "logging the scores and the leaderboard to MLflow",
        "drawing the plots",
        "logging the model to MLflow",
        "waiting for the MLflow writer",
    ], done.stderr
    assert others[:-5] == [header], done.stderr
    # The summary names the refit model: the one in the sweep's experiment.
    model_uri = re.search(r"^model: (models:/m-\w+)$", done.stdout, re.MULTILINE)
    assert model_uri, done.stdout
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("raysweep-wine")
    models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert [f"models:/{m.model_id}" for m in models] == [model_uri.group(1)]
    assert models[0].name.startswith("xgboost-wine-")  # the sweep's default name
    parent = client.get_run(models[0].source_run_id)
    assert parent.info.run_name == models[0].name and parent.data.tags["raysweep.model_flavor"] == "xgboost"
    # The sweep is complete: resume says so in one line, exits 0, and logs no second model.
    name = models[0].name
    again = run_cli("resume", name, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": ""})
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr == f"raysweep: sweep {name} is complete; nothing to resume. Its result: raysweep report {name}\n"
    assert [m.model_id for m in client.search_logged_models(experiment_ids=[experiment.experiment_id])] == [models[0].model_id]


def test_the_public_api_is_listed_and_importing_it_starts_nothing_heavy():
    """run_sweep and SweepResult were missing from dir(raysweep) and help(raysweep) (loaded when first
    used), and resume_sweep and the errors a sweep raises were not exported at all."""
    script = (
        "import json, sys, raysweep\n"
        "names = sorted(raysweep.__all__)\n"
        "listed = all(name in dir(raysweep) for name in names)\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow'})\n"
        "resolved = all(getattr(raysweep, name) is not None for name in names)\n"
        "print(json.dumps({'names': names, 'listed': listed, 'heavy_before_use': heavy, 'resolved': resolved}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    shown = json.loads(done.stdout)
    assert {"run_sweep", "resume_sweep", "SweepResult", "SweepInterrupted", "SweepFailed", "TrackingIncomplete", "NothingToResume"} <= set(shown["names"])
    assert shown["listed"] and shown["resolved"] and shown["heavy_before_use"] == [], shown
