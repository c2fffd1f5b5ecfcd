"""--gpus-per-trial: the value's rules, the cluster without GPUs, and trials sharing one GPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from raysweep.errors import UserError
from raysweep.families import get_family
from raysweep.sweep.gpus import fallback_warnings
from raysweep.sweep.options import plan_sweep
from raysweep.tracking import schema
from fast_support import EXPERIMENT, METRIC, SWEEP, empty_store, store_uri, trial_runs, tune_result  # noqa: F401  (fixtures)
from conftest import REPO, invoke_cli

RULE = "must be a fraction in (0, 1] (trials share a GPU) or a whole number >= 1, e.g. --gpus-per-trial 0.25 for four trials per GPU"


@pytest.mark.parametrize("value", ["0", "-0.5", "1.5", "abc", "nan", "inf"])
def test_a_bad_share_is_refused_in_one_line_before_ray(tmp_path: Path, value: str) -> None:
    outcome = invoke_cli("run", "xgboost", "--dataset", "iris", "--gpus-per-trial", value, cwd=tmp_path)
    assert outcome.returncode == 2
    assert outcome.stderr == f"error: --gpus-per-trial {value}: {RULE}\n"
    assert not list(tmp_path.iterdir())  # no MLflow store, no Ray results


@pytest.mark.parametrize(("value", "kept"), [(0.25, 0.25), (1, 1.0), ("0.5", 0.5), (2, 2.0), (None, None)])
def test_a_share_or_whole_gpus_are_taken(value, kept) -> None:
    plan = plan_sweep("xgboost", "iris", gpus_per_trial=value)
    assert plan.gpus_per_trial == kept
    assert plan.notes == []
    assert ("gpus_per_trial" in plan.settings()) == (kept is not None)


def test_the_api_refuses_as_the_flag_does() -> None:
    with pytest.raises(UserError, match=r"^--gpus-per-trial 3\.5: must be a fraction"):
        plan_sweep("xgboost", "iris", gpus_per_trial=3.5)


@pytest.mark.parametrize("recipe", ["random_forest", "svm", "mlp"])
def test_families_without_gpu_training_say_so(recipe: str) -> None:
    plan = plan_sweep(recipe, "iris", gpus_per_trial=0.5)
    family = plan.family.name
    assert plan.notes == [f"--gpus-per-trial 0.5: {family} trains on the CPU only; its trials hold their GPU share without using it"]


def _results(*devices: str | None) -> list:
    return [SimpleNamespace(metrics={schema.DEVICE_RESULT: d} if d else {}) for d in devices]


def test_one_warning_when_trials_given_a_gpu_trained_on_the_cpu() -> None:
    xgboost = get_family("xgboost")
    assert fallback_warnings(0.25, xgboost, _results("cpu", "cpu", "cuda:0")) == [
        "2 of 3 trials asked for a GPU (--gpus-per-trial 0.25) but xgboost trained them on the CPU: "
        "no GPU was visible to them (see the raysweep.device tag of each trial run)"
    ]
    assert fallback_warnings(0.25, xgboost, _results("cuda:0", "cuda:0")) == []
    assert fallback_warnings(None, xgboost, _results("cpu")) == []
    assert fallback_warnings(1, get_family("svm"), _results(None)) == []


def test_a_cluster_without_gpus_refuses_before_any_trial_or_mlflow_run(ray_local, tmp_path: Path) -> None:
    import mlflow

    from raysweep.sweep.run import run_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(UserError) as refused:
        run_sweep("xgboost", "iris", gpus_per_trial=0.5, tracking_uri=uri, storage=str(tmp_path / "ray"), num_samples=2)
    assert str(refused.value) == (
        "--gpus-per-trial 0.5: the Ray cluster has no GPU, so no trial could start; "
        "join a cluster with GPUs (--address), or leave --gpus-per-trial out to train on the CPUs"
    )
    client = mlflow.MlflowClient(uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
    assert not (tmp_path / "ray").exists()


def _node(cpus: float, gpus: float, alive: bool = True) -> dict:
    """A node as ``ray.nodes()`` lists it (the fields the check reads)."""
    resources = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    return {"Alive": alive, "Resources": resources}


@pytest.mark.parametrize(
    ("nodes", "largest"),
    [
        ([_node(8, 1), _node(8, 1)], 1.0),  # two 1-GPU nodes: a 2-GPU trial fits on neither
        ([_node(8, 0), _node(8, 4)], 4.0),
        ([_node(0, 4), _node(8, 1)], 1.0),  # a GPU node without CPUs holds no trial (each takes a CPU)
        ([_node(8, 4, alive=False), _node(8, 1)], 1.0),  # a dead node's GPUs are gone
        ([_node(8, 0)], 0.0),
        ([], 0.0),
    ],
)
def test_the_gpus_a_trial_can_get_are_one_nodes_not_the_clusters_sum(nodes, largest) -> None:
    """Two nodes of one GPU each and --gpus-per-trial 2 passed the check (2 GPUs in the cluster)
    and the sweep waited for ever with every trial pending."""
    from raysweep.sweep.gpus import largest_node_gpus

    assert largest_node_gpus(nodes) == largest


_SHARED_GPU_SWEEP = textwrap.dedent(
    """
    import sys
    import ray
    ray.init(num_gpus=1, num_cpus=4, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    from raysweep.cli import main
    main(sys.argv[1:], prog_name="raysweep")
    """
)


@pytest.mark.e2e
def test_quarter_gpu_trials_get_gpu_0_and_say_they_trained_on_the_cpu(tmp_path: Path) -> None:
    """A node that declares one GPU and has none: Ray gives each trial GPU 0, XGBoost falls back to the CPU."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(REPO)
    outcome = subprocess.run(
        [sys.executable, "-c", _SHARED_GPU_SWEEP, "run", "xgboost", "--dataset", "breast_cancer", "--gpus-per-trial", "0.25",
         "--num-samples", "4", "--scheduler", "fifo", "--set", "resource.max=100",
         "--tracking-uri", uri, "--storage", str(tmp_path / "ray"), "--name", "shared-gpu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    warning = "warning: 4 of 4 trials asked for a GPU (--gpus-per-trial 0.25) but xgboost trained them on the CPU"
    assert outcome.stdout.count(warning) == 1, outcome.stdout
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], f"tags.{schema.TRIAL_ID} != ''")
    assert len(runs) == 4
    assert [(r.data.tags.get(schema.DEVICE), r.data.tags.get(schema.GPU_IDS)) for r in runs] == [("cpu", "0")] * 4


def test_the_trial_run_is_tagged_with_the_device_and_gpus_of_its_first_result(store_uri: str) -> None:
    """The writer turns the trial's ``device`` and ``gpu_ids`` into tags, not metrics (no Ray)."""
    import time

    from raysweep.tracking.store import SweepTracker
    from raysweep.tracking.writer import TrialView, TrialWriter

    tracker = SweepTracker(store_uri, EXPERIMENT, SWEEP, METRIC, 3, True, tags={}, params={})
    tracker.start()
    writer = TrialWriter(tracker, time.time(), 0.0)
    for iteration in (1, 2):
        result = {**tune_result("e55ae_00000", iteration, 0.9, config={"max_depth": 3}), schema.DEVICE_RESULT: "cpu", schema.GPU_IDS_RESULT: "0"}
        writer.trial_result(TrialView("e55ae_00000", {"max_depth": 3}, result, "RUNNING", seen=time.time()), result)
    writer.close_open_runs("KILLED", "sweep_interrupted")
    run = trial_runs(store_uri, tracker.parent_run_id)["trial-0000"]
    assert (run.data.tags[schema.DEVICE], run.data.tags[schema.GPU_IDS]) == ("cpu", "0")
    assert not {schema.DEVICE_RESULT, schema.GPU_IDS_RESULT} & set(run.data.metrics)


def test_the_api_with_progress_says_the_notes_the_command_line_says(monkeypatch, capsys, tmp_path) -> None:
    """run_sweep(progress=True) said nothing of a family that cannot use the GPU it was given."""
    from raysweep.sweep import run

    monkeypatch.setattr(run, "run_planned", lambda plan, **kwargs: plan)
    plan = run.run_sweep("random_forest", "iris", gpus_per_trial=1, progress=True, storage=str(tmp_path))
    said = capsys.readouterr().err.splitlines()
    assert said == plan.said_at_start() and said and said[0].startswith("note: --gpus-per-trial 1: random_forest trains on the CPU")
    run.run_sweep("random_forest", "iris", gpus_per_trial=1, storage=str(tmp_path))
    assert capsys.readouterr().err == ""  # without progress, nothing
