"""Fast tests of the throughput benchmark's figures and its LOAD.md section (synthetic records)."""

from __future__ import annotations

from benchmarks.throughput import figures, section


def _record(tool: str, tune_rate: float, mlflow_rate: float | None) -> dict:
    record = {
        "tool": tool, "trials_requested": 16, "steps": 300, "expected_results": 4800, "loadavg_end": [1.0, 1.0, 1.0],
        "recorded_at": "2026-12-02 17:00", "tune_results_per_s": tune_rate, "tune_steady_per_s": tune_rate, "wall_s": 10.0,
    }  # fmt: skip
    if mlflow_rate is not None:
        record.update(mlflow_results_per_s=mlflow_rate, mlflow_rows=4800, lost=0)
    return record


def test_the_rates_into_mlflow_count_from_the_first_start_until_every_row_is_in() -> None:
    record = {"began": 0.0, "ended": 20.0, "first_start": 2.0, "last_result": 8.0, "half_result": 5.0,
              "results_seen": 600, "expected_results": 600}  # fmt: skip
    curve = [(3.0, 0), (5.0, 200), (8.0, 500), (9.0, 600)]
    out = figures(record, curve, final_rows=600)
    assert out["tune_results_per_s"] == 100.0  # 600 results from 2 s to 8 s
    assert out["mlflow_results_per_s"] == round(600 / 7.0, 1)  # the last row was in at 9 s
    assert out["backlog_at_tune_end"] == 100 and out["drain_s"] == 1.0
    assert out["lost"] == 0


def test_raysweep_is_set_against_plain_tune_with_its_goal_and_against_rays_mlflow_callback_without_one() -> None:
    records = [
        _record("ray_tune", 1000.0, None), _record("raysweep_sqlite", 900.0, 800.0),
        _record("raysweep_http", 800.0, 600.0), _record("ray_tune_mlflow", 20.0, 20.0),
    ]  # fmt: skip
    text = "\n".join(section(records, ["--repeats", "1"]))
    assert "- raysweep, MLflow in sqlite: results into MLflow per second against plain Ray Tune's processed: 0.80x (goal >= 0.9x)." in text
    assert ("- plain Ray Tune, loggers off, Ray's `MLflowLoggerCallback` into sqlite: results into MLflow per second against "
            "plain Ray Tune's processed: 0.02x.") in text  # fmt: skip
    assert "- raysweep, MLflow in sqlite: results into MLflow per second against Ray's `MLflowLoggerCallback` into sqlite, run by run: 40.00x." in text
    assert "- raysweep, MLflow over HTTP (`mlflow server`): results into MLflow per second against Ray's `MLflowLoggerCallback` into sqlite, run by run: 30.00x." in text
