"""Fast tests of the share benchmark's table (synthetic records): medians with their range, and the
ratio of raysweep's CPU share to plain Ray Tune's taken pair by pair."""

from __future__ import annotations

from benchmarks.share import table


def _record(arm: str, pair: int, trials: int, training: float, cpu: float | None) -> dict:
    return {"arm": arm, "pair": pair, "trials": trials, "elapsed_s": 130.0 + pair, "training_share": training, "cpu_share": cpu}


def test_the_table_gives_each_arms_median_and_range_and_the_ratio_pair_by_pair() -> None:
    records = [
        _record("raysweep", 0, 780, 0.60, 0.66), _record("tune", 0, 900, 0.70, 0.80),
        _record("raysweep", 1, 800, 0.62, 0.70), _record("tune", 1, 950, 0.72, 0.70),
        _record("raysweep", 2, 790, 0.58, 0.69), _record("tune", 2, 930, 0.71, 0.75),
    ]  # fmt: skip
    lines = table(records)
    raysweep = next(line for line in lines if line.startswith("| raysweep"))
    tune = next(line for line in lines if line.startswith("| tune"))
    assert "| 790 (780-800) |" in raysweep and "| 60% (58-62) | 69% (66-70) |" in raysweep
    assert "| 930 (900-950) |" in tune and "| 75% (70-80) |" in tune
    # pairs: 0.66/0.80 = 0.825, 0.70/0.70 = 1.0, 0.69/0.75 = 0.92 -> median 0.92 (0.82-1.00)
    assert lines[-1] == "raysweep's CPU share against plain Ray Tune's, pair by pair: 0.92x (0.82-1.00x), 3 pairs"


def test_a_run_without_a_cpu_reading_is_left_out_of_the_ratio_not_counted_as_zero() -> None:
    records = [_record("raysweep", 0, 10, 0.5, None), _record("tune", 0, 10, 0.5, 0.6),
               _record("raysweep", 1, 10, 0.5, 0.6), _record("tune", 1, 10, 0.5, 0.5)]  # fmt: skip
    lines = table(records)
    assert lines[-1].endswith("1.20x (1.20-1.20x), 1 pair")
    assert "| 60% (60-60) |" in next(line for line in lines if line.startswith("| raysweep"))
