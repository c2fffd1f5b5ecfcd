"""XGBoost trials sharing one GPU against the same trials on the CPU (needs a machine with a GPU).

``python -m benchmarks.gpu [--data-dir DIR] [--trials 4] [--share 0.25]`` runs the XGBoost recipe
on california_housing twice with the same seed and configs (FIFO, random search, 6 steps of 50
rounds): once with ``--gpus-per-trial 0.25`` (four trials on one GPU at once), once on the CPUs
(one trial per CPU). It prints each sweep's wall time and test r2, and the device XGBoost really
trained each trial on, read back from the ``raysweep.device`` tag of its MLflow run. Without a
visible GPU it says so and exits 0 without running anything.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks._common import DEFAULT_DATA_DIR


def visible_gpu() -> bool:
    """Whether XGBoost can train on a GPU here: asked for ``cuda`` without one, it falls back to the CPU."""
    import warnings

    import numpy as np
    import xgboost

    rows = np.random.default_rng(0).random((64, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        booster = xgboost.train({"device": "cuda"}, xgboost.DMatrix(rows, label=rows[:, 0]), 1)
    return json.loads(booster.save_config())["learner"]["generic_param"]["device"].startswith("cuda")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="where california_housing.csv is")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--share", type=float, default=0.25, help="--gpus-per-trial of the GPU sweep")
    args = parser.parse_args(argv)
    if not visible_gpu():
        print("benchmarks.gpu: skipped, XGBoost sees no GPU on this machine (it would train on the CPU); run it where `nvidia-smi` lists one")
        return 0

    import mlflow
    import ray

    from raysweep.sweep.run import run_sweep
    from raysweep.tracking import schema

    dataset = str(Path(args.data_dir) / "california_housing.csv")
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(f"cluster: {ray.cluster_resources().get('CPU', 0):g} CPUs, {ray.cluster_resources().get('GPU', 0):g} GPUs")
    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{folder}/mlflow.db"
        for label, gpus in (("GPU", args.share), ("CPU", None)):
            started = time.monotonic()
            result = run_sweep(
                "xgboost", dataset, target="median_house_value", metric="r2", scheduler="fifo", searcher="random",
                num_samples=args.trials, seed=0, gpus_per_trial=gpus, tracking_uri=uri, storage=f"{folder}/ray",
                name=f"gpu-bench-{label.lower()}",
            )  # fmt: skip
            elapsed = time.monotonic() - started
            client = mlflow.MlflowClient(uri)
            runs = client.search_runs([result.experiment_id], f"tags.{schema.PARENT_RUN_ID} = '{result.parent_run_id}'")
            devices = sorted(f"{r.data.tags.get(schema.TRIAL_ID, '?')}: {r.data.tags.get(schema.DEVICE, '?')}" for r in runs)
            print(f"{label}: {elapsed:.1f} s for {args.trials} trials (--gpus-per-trial {gpus}), test r2 {result.test_score:.4f}")
            for line in devices:
                print(f"  {line}")
            for warning in result.warnings:
                print(f"  warning: {warning}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
