"""``raysweep resume`` of a sweep that its own rule (``--stop-at``) ended but whose driver died during
the refit: the trials are over, the outcome is not in MLflow. Resume logs the outcome (refit, test
score, model, parent run FINISHED) without starting a trial; once it is there, resume has nothing to do.

End to end: the shared local Ray, a sqlite MLflow store, breast_cancer. The driver's death is the
refit raising, the parent run then set back to RUNNING as a killed driver leaves it.
"""

from __future__ import annotations

import pytest

from raysweep.errors import NothingToResume
from raysweep.tracking import schema


class DriverKilled(Exception):
    pass


def test_resume_finishes_the_outcome_of_a_sweep_stopped_by_its_rule_and_killed_during_the_refit(ray_local, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    import raysweep.sweep.run as run_module
    from raysweep import run_sweep
    from raysweep.sweep.run import find_resumable, resume_sweep

    uri, storage = f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "results")

    def killed(*args, **kwargs):
        raise DriverKilled("killed during the refit")

    with monkeypatch.context() as patched:
        patched.setattr(run_module, "summarise", killed)
        with pytest.raises(DriverKilled):
            run_sweep("random_forest", "breast_cancer", scheduler="fifo", searcher="random", num_samples=8, seed=0, max_concurrent=1,
                      stop_at=0.9, overrides=["resource.max=60"], name="stopped", tracking_uri=uri, storage=storage)  # fmt: skip
    client = MlflowClient(uri)
    _, record = find_resumable("stopped", storage)  # not "nothing to resume": the outcome is missing
    assert record["stopped_by"].startswith("--stop-at 0.9: trial-")
    parent_id = record["parent_run_id"]
    client.update_run(parent_id, status="RUNNING")
    test_key = schema.test_metric("accuracy")
    assert test_key not in client.get_run(parent_id).data.metrics
    trials_before = sorted(r.info.run_id for r in client.search_runs([record["experiment_id"]]) if r.info.run_id != parent_id)

    result = resume_sweep("stopped", storage=storage)
    assert result.parent_run_id == parent_id and result.stopped_by == record["stopped_by"]
    assert result.num_trials == len(trials_before) < 8, "no trial ran again, none was added"
    # A trial Tune had made but the rule ended before it started is no trial of the sweep.
    assert len(result.leaderboard) == result.num_trials and result.leaderboard["val_accuracy"].notna().all()
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert 0.85 < parent.data.metrics[test_key] == pytest.approx(result.test_score)
    assert parent.data.tags[schema.STOPPED_BY] == record["stopped_by"]
    assert result.model_uri and parent.data.tags[schema.MODEL_FLAVOR] == "sklearn"
    trials_after = sorted(r.info.run_id for r in client.search_runs([record["experiment_id"]]) if r.info.run_id != parent_id)
    assert trials_after == trials_before

    # The outcome is there now: nothing to resume.
    with pytest.raises(NothingToResume, match="ended by its own rule .*; nothing to resume"):
        find_resumable("stopped", storage)
    # A driver killed while it logged the model, after the test score: the record says the outcome is
    # not complete, and resume takes it up although MLflow has the score.
    from raysweep.sweep import record as sweep_record

    folder, saved = sweep_record.find("stopped", storage)
    sweep_record.save(folder, {**saved, "outcome_done": False})
    assert find_resumable("stopped", storage)[1]["outcome_done"] is False
