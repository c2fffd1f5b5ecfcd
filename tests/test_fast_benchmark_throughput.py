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


def test_the_idle_share_is_the_idle_ticks_over_all_ticks_between_the_samples_nearest_the_window() -> None:
    from benchmarks.throughput import idle_share, idle_shares

    # (time, idle + iowait CPU seconds, all CPU seconds), as machine_cpu_seconds gives them
    samples = [(0.0, 0, 0), (1.0, 100, 200), (2.0, 110, 400), (3.0, 130, 600), (4.0, 330, 800)]
    assert idle_share(samples, 1.0, 3.0) == 30 / 400  # 7.5% idle while the results came in
    assert idle_share(samples, 1.04, 2.96) == 30 / 400  # nearest samples
    assert idle_share(samples, 3.0, 3.0) is None and idle_share([], 1.0, 2.0) is None
    shares = idle_shares({"first_start": 1.0, "half_result": 2.0, "last_result": 3.0}, samples)
    assert shares == {"idle_share": 0.075, "idle_share_steady": 0.1}


def test_the_ceiling_sets_mlflows_cpu_per_row_against_plain_tunes_busy_core_time_per_result() -> None:
    from benchmarks.row_cost import busy_seconds_per_result, ceiling, cost_per_row

    # 1000 results a second on 2 cores, 10% idle: 1.8 ms of core time per result
    busy = busy_seconds_per_result(1000.0, 0.1, 2)
    assert abs(busy - 0.0018) < 1e-12
    # three rows of 100 us each add 0.3 ms a result: 1.8 / 2.1
    assert abs(ceiling(busy, 3.0, 100e-6) - 1.8 / 2.1) < 1e-12
    assert ceiling(busy, 0.0, 100e-6) == 1.0
    rounds = [{"kind": "sqlite", "us_per_row": 90.0}, {"kind": "sqlite", "us_per_row": 110.0},
              {"kind": "sqlite", "us_per_row": 100.0}, {"kind": "http", "us_per_row": 250.0}]  # fmt: skip
    assert cost_per_row(rounds, "sqlite") == 100e-6 and cost_per_row(rounds, "http") == 250e-6
    assert cost_per_row(rounds, "other") is None


def test_the_section_says_what_mlflows_own_cost_per_row_leaves_for_each_store() -> None:
    records = [
        {**_record("ray_tune", 1000.0, None), "idle_share": 0.1, "idle_share_steady": 0.05},
        {**_record("raysweep_sqlite", 900.0, 850.0), "metric_rows_per_result": 3.0, "idle_share": 0.02},
        {**_record("raysweep_http", 800.0, 700.0), "metric_rows_per_result": 3.0, "idle_share": 0.0},
    ]  # fmt: skip
    row_costs = [
        {"kind": "sqlite", "us_per_row": 100.0, "client_us_per_row": 100.0, "server_us_per_row": 0.0},
        {"kind": "http", "us_per_row": 200.0, "client_us_per_row": 40.0, "server_us_per_row": 160.0},
    ]  # fmt: skip
    text = "\n".join(section(records, ["--repeats", "1"], row_costs))
    assert "| cores idle while Tune processed the results, % | 10.0 | 2.0 | 0.0 |" in text
    assert "| metric rows written per result | - | 3.00 | 3.00 |" in text
    assert "sqlite 100.0 us; http 200.0 us (client 40.0, server 160.0)" in text
    assert "(10.0% idle): 1.80 ms of core time per result" in text
    # 1.8 / (1.8 + 3 x 0.1) = 0.857; 1.8 / (1.8 + 0.1) = 0.947; 1.8 / (1.8 + 3 x 0.2) = 0.75
    assert "- raysweep, MLflow in sqlite: 3.00 rows per result, so at most 0.86x (goal >= 0.9x); with the validation metric alone (1 row), at most 0.95x." in text
    assert "- raysweep, MLflow over HTTP (`mlflow server`): 3.00 rows per result, so at most 0.75x (goal >= 0.9x)" in text
    # without the row costs (or plain Tune's idle share) there is no ceiling to state
    assert "at most" not in "\n".join(section(records, ["--repeats", "1"]))
