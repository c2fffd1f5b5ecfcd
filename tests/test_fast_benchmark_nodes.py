"""Fast tests of the nodes benchmark's figures and its LOAD.md section (synthetic trial times and records)."""

from __future__ import annotations

import pytest

from benchmarks.nodes import _from_callbacks, _rates, section


def test_rates_count_every_trial_from_the_first_start_and_the_steady_rate_after_the_first_wave() -> None:
    # 2 slots, 3 waves of 1 s trials; the second slot's actor came up 0.5 s after the first
    starts = [100.0, 100.5, 101.0, 101.5, 102.0, 102.5]
    ends = [101.0, 101.5, 102.0, 102.5, 103.0, 103.5]
    figures = _rates(starts, ends, slots=2, began=90.0)
    assert figures["trials_per_s"] == pytest.approx(6 / 3.5, abs=0.01)
    assert figures["span_s"] == 3.5
    assert figures["trials_per_s_after_first_wave"] == pytest.approx(4 / 2.0)
    assert figures["first_wave_start_spread_s"] == 0.5
    assert figures["first_trial_start_s"] == 10.0


def test_plain_tune_trials_are_counted_by_the_node_they_reported_and_unfinished_ones_left_out() -> None:
    trials = [
        {"start": 10.0, "end": 11.0, "node": "aa"},
        {"start": 10.2, "end": 11.2, "node": "bb"},
        {"start": 11.0, "end": 12.0, "node": "aa"},
        {"start": 11.2, "node": "bb"},  # never completed
    ]
    figures = _from_callbacks(trials, began=5.0, slots=2, worker_ids={"aa": "worker 0", "bb": "worker 1"})
    assert figures["node_spread"] == {"worker 0": 2, "worker 1": 2}
    assert figures["trials_finished"] == 3
    assert figures["trials_per_s"] == pytest.approx(3 / 2.0)


def _record(tool: str, nodes: int, rate: float, after: float) -> dict:
    return {
        "tool": tool, "nodes": nodes, "cpus_per_node": 8, "slots": 8 * nodes, "trials_requested": 32 * nodes, "steps": 5,
        "loadavg_end": [1.0, 1.0, 1.0], "recorded_at": "2026-12-02 17:00", "node_spread": {f"worker {i}": 32 for i in range(nodes)},
        "trials_finished": 32 * nodes, "trials_per_s": rate, "trials_per_s_after_first_wave": after,
        "first_wave_start_spread_s": 1.0, "first_trial_start_s": 8.0,
    }  # fmt: skip


def test_the_section_gives_each_tool_its_scaling_and_raysweep_against_plain_tune_at_each_size() -> None:
    records = [
        _record("raysweep", 1, 1.6, 1.6), _record("ray_tune", 1, 1.6, 1.6),
        _record("raysweep", 4, 4.8, 6.4), _record("ray_tune", 4, 5.6, 6.4),
    ]  # fmt: skip
    text = "\n".join(section(records, ["--repeats", "1"]))
    assert "- raysweep (MLflow on), 4 nodes against 1, trials per second (first start to last end): 3.00x (goal >= 3.5x" in text
    assert "- plain Ray Tune (function trainable, reuse), 4 nodes against 1, trials per second (first start to last end): 3.50x (ideal 4x)." in text
    assert "- 4 worker node(s): raysweep's trials per second (first start to last end) against plain Ray Tune's, run by run: 0.86x." in text
    assert "- 1 worker node(s): raysweep's trials per second (first start to last end) against plain Ray Tune's, run by run: 1.00x." in text
    assert "| 4 | 128 | 4.80 | 6.40 | 1.0 | 8.0 | worker 0: 32, worker 1: 32, worker 2: 32, worker 3: 32 | 128/128 |" in text


def test_records_from_before_the_plain_arm_read_as_raysweep_s() -> None:
    new_keys = ("tool", "trials_finished", "first_wave_start_spread_s")
    old = [{k: v for k, v in _record("raysweep", n, 1.6 * n, 1.6 * n).items() if k not in new_keys}
           | {"mlflow_child_statuses": {"FINISHED": 32 * n}} for n in (1, 4)]  # fmt: skip
    text = "\n".join(section(old, []))
    assert "raysweep (MLflow on):" in text and "plain Ray Tune" not in text
    assert "| 1 | 32 | 1.60 | 1.60 | - | 8.0 | worker 0: 32 | 32/32 |" in text
