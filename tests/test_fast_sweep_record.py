"""Fast tests of a sweep's plan and its saved record: ``plan_sweep``'s defaults and checks,
``SweepPlan.settings()``, and the record ``raysweep run`` saves next to Ray's state, read back
the way ``raysweep resume`` and ``raysweep sync`` find it. No Ray is started.
"""

from __future__ import annotations

import json
from dataclasses import asdict
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from fast_support import EXPERIMENT, SWEEP, empty_store, store_uri
from raysweep.errors import UserError
from raysweep.sweep.options import plan_sweep
from raysweep.sweep.record import save_plan
from raysweep.sweep.run import resume_sweep
from raysweep.sweep.record import SWEEP_FILE
from raysweep.sweep.record import read_text as _read_text
from raysweep.tracking.sync import _sweep_folder
from raysweep.tracking.store import SweepTracker

__all__ = ["empty_store", "store_uri"]  # fixtures


@pytest.fixture(autouse=True)
def no_ray_started() -> Any:
    """Planning, saving and finding a sweep never start Ray."""
    import ray

    # In a whole-suite run an earlier end-to-end test may have started the session's Ray already.
    started_before = ray.is_initialized()
    yield
    assert started_before or not ray.is_initialized()


# -- plan_sweep's defaults -------------------------------------------------------------------------
def test_defaults_come_from_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plan = plan_sweep("random_forest", "iris")
    assert (plan.recipe.name, plan.task, plan.metric, plan.mode) == ("random_forest", "classification", "accuracy", "max")
    assert (plan.scheduler, plan.searcher, plan.num_samples) == ("asha", "hyperopt", 20)
    assert plan.metric_key == "val_accuracy"
    assert plan.experiment == "raysweep-iris"
    assert re.fullmatch(r"random_forest-iris-\d{8}-\d{6}", plan.name)
    assert plan.storage == str(tmp_path.resolve() / "raysweep_results")
    # the tracking URI is resolved once, here: MLFLOW_TRACKING_URI, else the embedded sqlite store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    plan = plan_sweep("random_forest", "iris")
    assert (plan.tracking_uri, plan.checkpoint_every, plan.max_failures, plan.seed) == ("sqlite:///mlflow.db", 10.0, 0, 0)
    assert (plan.test_size, plan.val_size, plan.dataset_spec) == (0.2, 0.2, "iris")


@pytest.mark.parametrize(
    ("options", "expected"),
    [({"searcher": "grid"}, 1), ({"searcher": "grid", "num_samples": 3}, 3), ({"searcher": "random"}, 20), ({"num_samples": 7}, 7)],
    ids=["grid-one-pass", "grid-passes-given", "random-recipe-default", "given"],
)
def test_num_samples(options: dict[str, Any], expected: int) -> None:
    assert plan_sweep("random_forest", "iris", **options).num_samples == expected


@pytest.mark.parametrize(
    ("storage", "expected"),
    [("out", "{cwd}/out"), ("~/sweeps", "{home}/sweeps"), ("s3://bucket/sweeps", "s3://bucket/sweeps")],
    ids=["relative", "home", "uri-kept"],
)
def test_storage_is_resolved_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: str, expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    plan = plan_sweep("random_forest", "iris", storage=storage)
    assert plan.storage == expected.format(cwd=tmp_path.resolve(), home=(tmp_path / "home").resolve())


def test_explicit_names_win() -> None:
    plan = plan_sweep("svm", "wine", name="my-sweep", experiment="my-experiment", metric="f1_macro", scheduler="fifo", searcher="random")
    assert (plan.name, plan.experiment, plan.metric, plan.mode, plan.scheduler, plan.searcher) == (
        "my-sweep", "my-experiment", "f1_macro", "max", "fifo", "random",
    )  # fmt: skip


def test_settings_logged_to_mlflow() -> None:
    plan = plan_sweep("random_forest", "iris", overrides=["resource.max=60"], searcher="random", num_samples=4, seed=3, cv=3)
    assert plan.settings() == {
        "recipe": "random_forest", "family": "random_forest", "dataset": "iris", "task": "classification",
        "metric": "accuracy", "mode": "max", "scheduler": "asha", "searcher": "random", "num_samples": 4,
        "max_concurrent": "auto", "time_budget_s": "none", "cv": 3, "seed": 3, "resource": "trees",
        "resource_per_step": 20, "resource_max": 60, "test_size": 0.2, "val_size": 0.2, "max_failures": 0,
        "checkpoint_every_s": 10.0,
    }  # fmt: skip
    budgeted = plan_sweep("svm", "iris", time_budget=30, max_concurrent=2).settings()
    shown = [budgeted[key] for key in ("time_budget_s", "max_concurrent", "resource", "resource_per_step")]
    assert shown == [30, 2, "train_fraction", 0.1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_samples": 0}, "--num-samples 0: must be a whole number >= 1"),
        ({"cv": 1}, "--cv 1: cross-validation needs at least 2 folds; use --cv 5, or leave --cv out for one validation split"),
        ({"max_concurrent": 0}, "--max-concurrent 0: must be >= 1"),
        ({"time_budget": -5}, "--time-budget -5: must be a finite positive number of seconds, e.g. --time-budget 600"),
        ({"time_budget": float("nan")}, "--time-budget nan: must be a finite positive number of seconds, e.g. --time-budget 600"),
        ({"max_failures": -1}, "--max-failures -1: must be >= 0"),
        ({"checkpoint_every": float("nan")}, "--checkpoint-every nan: must be a number of seconds >= 0 (0 checkpoints after every step)"),
        ({"test_size": 0.5, "val_size": 0.5}, "test_size=0.5, val_size=0.5: each must be in (0, 0.9) and together below 0.95"),
        ({"task": "clustering"}, "--task clustering: unknown task; use one of classification, regression"),
        ({"name": "runs/one"}, "--name runs/one: a sweep name may not contain '/' or start with '.'"),
        ({"metric": "rmse"}, "--metric rmse: a regression metric, but the task is classification; "
         "use one of accuracy, roc_auc, log_loss, f1_macro"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_plan_refuses_bad_options_in_one_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as caught:
        plan_sweep("random_forest", "iris", **options)
    assert str(caught.value) == message


# -- the saved record --------------------------------------------------------------------------------
def _saved(tmp_path: Path, store_uri: str, **options: Any) -> tuple[Any, SweepTracker, Path]:
    plan = plan_sweep(
        "random_forest", "iris", overrides=["resource.max=60"], name=SWEEP, storage=tmp_path / "raysweep_results",
        tracking_uri=store_uri, experiment=EXPERIMENT, **options,
    )  # fmt: skip
    tracker = SweepTracker(store_uri, plan.experiment, plan.name, plan.metric_key, 3, True, params=plan.settings())
    tracker.start()
    save_plan(plan, tracker)
    (tmp_path / "raysweep_results" / SWEEP / "tuner.pkl").write_bytes(b"")  # as Ray Tune leaves it once the trials start
    return plan, tracker, tmp_path / "raysweep_results" / SWEEP / SWEEP_FILE


def test_record_holds_what_resume_needs(tmp_path: Path, store_uri: str) -> None:
    plan, tracker, path = _saved(tmp_path, store_uri, searcher="random", num_samples=4, time_budget=60, seed=2)
    record = json.loads(path.read_text())
    assert record["name"] == SWEEP
    assert record["storage"] == str((tmp_path / "raysweep_results").resolve())
    assert record["recipe"] == plan.recipe.raw
    assert record["recipe"]["resource"] == {"name": "trees", "per_step": 20, "max": 60}  # the override is kept
    assert (record["recipe_name"], record["recipe_source"]) == ("random_forest", plan.recipe.source)
    assert (record["dataset"], record["dataset_fingerprint"]) == ("iris", plan.dataset.fingerprint)
    assert record["options"] == {
        "target": None, "task": "classification", "metric": "accuracy", "scheduler": "asha", "searcher": "random",
        "num_samples": 4, "time_budget": 60, "max_concurrent": None, "cv": None, "seed": 2, "address": None,
        "tracking_uri": store_uri, "experiment": EXPERIMENT, "max_failures": 0, "checkpoint_every": 10.0,
        "test_size": 0.2, "val_size": 0.2, "register_model": None, "name": SWEEP,
        "storage": str((tmp_path / "raysweep_results").resolve()), "fill_time_budget": False, "warm_start": False,
        "stop_at": None, "patience": None, "gpus_per_trial": None, "recipes": None, "nested_cv": None,
    }  # fmt: skip
    assert record["options"] == {**asdict(plan.options), "tracking_uri": store_uri}  # the options object, as it is
    assert (record["experiment_id"], record["parent_run_id"]) == (tracker.experiment_id, tracker.parent_run_id)


def test_record_keeps_a_relative_sqlite_uri_absolute(tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    _, _, path = _saved(tmp_path, "sqlite:///mlflow.db")
    assert json.loads(path.read_text())["options"]["tracking_uri"] == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_a_sweep_run_on_the_cluster_of_ray_address_resumes_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run with RAY_ADDRESS, resumed without it: the resume started an embedded local Ray."""
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    plan = plan_sweep("random_forest", "iris", name=SWEEP, storage=tmp_path, tracking_uri="sqlite:///x.db")
    save_plan(plan, None)
    assert json.loads((tmp_path / SWEEP / SWEEP_FILE).read_text())["options"]["address"] == "10.0.0.5:6379"
    given = plan_sweep("random_forest", "iris", name="given", storage=tmp_path, address="10.0.0.6:6379", tracking_uri="sqlite:///x.db")
    save_plan(given, None)  # --address wins over the variable, as it does when the sweep connects
    assert json.loads((tmp_path / "given" / SWEEP_FILE).read_text())["options"]["address"] == "10.0.0.6:6379"


def test_record_of_an_untracked_sweep(tmp_path: Path) -> None:
    plan = plan_sweep("random_forest", "iris", name=SWEEP, storage=tmp_path, tracking_uri="sqlite:///x.db")
    save_plan(plan, None)
    record = json.loads((tmp_path / SWEEP / SWEEP_FILE).read_text())
    assert (record["experiment_id"], record["parent_run_id"], record["options"]["tracking_uri"]) == (None, None, "sqlite:///x.db")


def test_sync_finds_the_record_by_name_and_by_folder(tmp_path: Path, store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, path = _saved(tmp_path, store_uri)
    saved = json.loads(path.read_text())
    assert _sweep_folder(SWEEP, str(tmp_path / "raysweep_results")) == (path.parent.resolve(), saved)
    assert _sweep_folder(str(path.parent), None) == (path.parent.resolve(), saved)
    monkeypatch.chdir(tmp_path)  # the default storage: ./raysweep_results
    assert _sweep_folder(SWEEP, None) == (path.parent.resolve(), saved)
    assert json.loads(_read_text(str(path))) == saved
    assert _read_text(str(tmp_path / "nowhere" / SWEEP_FILE)) is None


def test_record_rebuilds_the_same_plan(tmp_path: Path, store_uri: str) -> None:
    from raysweep.recipes import validate_recipe_data

    plan, _, path = _saved(tmp_path, store_uri, searcher="random", num_samples=4, cv=3, max_failures=2, checkpoint_every=0)
    record = json.loads(path.read_text())
    # what `raysweep resume` does with it
    recipe = validate_recipe_data(record["recipe"], record["recipe_source"], record["recipe_name"])
    again = plan_sweep(recipe, record["dataset"], **record["options"])
    assert recipe.content_hash == plan.recipe.content_hash
    assert again.settings() == plan.settings()
    assert again.dataset.fingerprint == record["dataset_fingerprint"]
    assert (again.name, again.storage, again.experiment, again.tracking_uri) == (plan.name, plan.storage, plan.experiment, store_uri)


# -- what resume refuses before it starts anything -------------------------------------------------------
def test_resume_of_an_unknown_sweep(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        resume_sweep("no-such-sweep", storage=str(tmp_path))
    assert str(caught.value) == (
        f"no sweep 'no-such-sweep' to resume under {tmp_path.resolve()}; pass the sweep's name with --storage where it ran, or its folder"
    )


def test_resume_of_a_misspelt_sweep_names_the_nearest_and_the_newest(tmp_path: Path) -> None:
    """resume and sync said only "no sweep 'x'", where report lists the recent sweeps and suggests one."""
    for name in ("rf-iris-1", "xgb-iris-2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "raysweep_sweep.json").write_text(json.dumps({"name": name}))
    with pytest.raises(UserError) as caught:
        resume_sweep("rf-iris-l", storage=str(tmp_path))
    assert str(caught.value).startswith(
        f"no sweep 'rf-iris-l' to resume under {tmp_path.resolve()} (did you mean 'rf-iris-1'?); sweeps there, newest first: "
    )
    assert sorted(str(caught.value).split("newest first: ")[1].split("; ")[0].split(", ")) == ["rf-iris-1", "xgb-iris-2"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataset": None}, f"sweep {SWEEP} was given its data in memory: resume it from Python with the same data, "
                            f"raysweep.resume_sweep({SWEEP!r}, dataset=...)"),
        ({"dataset_fingerprint": "0000000000000000"}, f"--dataset iris: its contents changed since sweep {SWEEP} started "
         "(fingerprint differs); resuming would mix two datasets, start a new sweep instead"),
    ],
    ids=["data-object", "data-changed"],
)
def test_resume_refuses_a_sweep_it_cannot_continue(tmp_path: Path, store_uri: str, change: dict, message: str) -> None:
    _, _, path = _saved(tmp_path, store_uri)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(UserError) as caught:
        resume_sweep(SWEEP, storage=str(tmp_path / "raysweep_results"))
    assert str(caught.value) == message


def test_resume_takes_data_in_memory_again_and_checks_it_is_the_same(tmp_path: Path, store_uri: str) -> None:
    """A sweep given a DataFrame could not be resumed at all: resume_sweep had no way to take the data."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    _, _, path = _saved(tmp_path, store_uri)
    with pytest.raises(UserError) as caught:  # the record names its data: nothing else is taken
        resume_sweep(SWEEP, storage=str(tmp_path / "raysweep_results"), dataset=frame)
    assert str(caught.value) == f"dataset: sweep {SWEEP} reads its data from iris itself; leave dataset out"
    path.write_text(json.dumps({**json.loads(path.read_text()), "dataset": None}))
    changed = frame.assign(target=frame["target"].iloc[::-1].to_numpy())
    with pytest.raises(UserError) as caught:
        resume_sweep(SWEEP, storage=str(tmp_path / "raysweep_results"), dataset=(changed.drop(columns="target"), changed["target"]))
    assert str(caught.value) == (
        f"dataset: its contents changed since sweep {SWEEP} started (fingerprint differs); resuming would mix two datasets, "
        "start a new sweep instead"
    )


def test_the_command_lines_resume_refusing_ends_the_writer_it_started(tmp_path: Path, store_uri: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # `raysweep resume` starts the sweep's MLflow writer once it has found the sweep (its import
    # runs while the data is read again); a refusal after that ends it at once.
    from click.testing import CliRunner

    from raysweep.cli import main
    from raysweep.sweep import early
    from raysweep.tracking import _writer_process

    _, _, path = _saved(tmp_path, store_uri)
    path.write_text(json.dumps({**json.loads(path.read_text()), "dataset_fingerprint": "0000000000000000"}))
    started: list = []
    spawn = _writer_process.spawn
    monkeypatch.setattr(_writer_process, "spawn", lambda *args: started.append(spawn(*args)) or started[-1])
    outcome = CliRunner().invoke(main, ["resume", SWEEP, "--storage", str(tmp_path / "raysweep_results")], prog_name="raysweep")
    assert outcome.exit_code == 2, outcome.output
    assert "its contents changed since sweep" in outcome.stderr
    assert len(started) == 1 and _writer_process.SQL_STORE in started[0].args  # the sweep's sqlite store
    assert started[0].wait(10) != 0 and early.take_writer() is None
