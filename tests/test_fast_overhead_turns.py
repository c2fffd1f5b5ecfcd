"""Fast tests of the overhead suite's turns: run order, ratios within turns, busy turns (synthetic records)."""

from __future__ import annotations

from benchmarks._common import Settings
from benchmarks.overhead import cells, turn_summary
from benchmarks.report import busy_turns, turn_differences, turn_ratios


def _record(tool: str, turn: int, ms: float, load: float = 0.5) -> dict:
    return {"tool": tool, "workload": "noop", "seed": 0, "turn": turn, "trials": 300, "ms_per_trial": ms, "loadavg_before": load}


def test_the_tools_take_turns_each_run_in_a_worker_of_its_own() -> None:
    settings = Settings(out="/tmp/unused", data_dir=None, seeds=1, functions=("noop",), pairs=3)
    planned = [c for c in cells(settings) if c["tool"] in ("raysweep_mlflow", "ray_function_reuse")]
    assert [(c["tool"], c["turn"]) for c in planned] == [
        ("raysweep_mlflow", 0), ("ray_function_reuse", 0), ("raysweep_mlflow", 1), ("ray_function_reuse", 1),
        ("raysweep_mlflow", 2), ("ray_function_reuse", 2),
    ]
    assert len({c["group"] for c in cells(settings)}) == len(cells(settings))


def test_ratios_are_taken_within_turns_and_busy_turns_are_counted() -> None:
    records = [
        _record("raysweep_mlflow", 0, 30.0), _record("ray_function_reuse", 0, 30.0),
        _record("raysweep_mlflow", 1, 60.0, load=9.0), _record("ray_function_reuse", 1, 40.0),
        _record("raysweep_mlflow", 2, 27.0), _record("ray_function_reuse", 2, 30.0),
        _record("raysweep_nomlflow", 2, 20.0),
    ]
    assert turn_ratios(records, "noop", "raysweep_mlflow", "ray_function_reuse") == [1.0, 1.5, 0.9]
    assert turn_differences(records, "noop", "raysweep_mlflow", "raysweep_nomlflow") == [7.0]
    assert busy_turns(records, "noop") == [(0, 1)]
    lines = turn_summary(records)
    assert "raysweep_mlflow        noop      seed 0:     30.0 ms/trial over 300 trials, median of 3 turn(s) (27.0-60.0)" in lines
    assert "raysweep_mlflow / ray_function_reuse noop: 1.00x, median of 3 turn(s) (0.90-1.50x); busy machine in 1 of them" in lines


def test_a_run_is_busy_by_the_cpus_others_used_just_before_it_and_old_records_by_their_load() -> None:
    from benchmarks.report import busy_before

    # Measured: a high load average left by the suite's own previous run does not make it busy.
    assert not busy_before({"cpus_busy_before": 0.05, "loadavg_before": 3.5})
    assert busy_before({"cpus_busy_before": 1.2, "loadavg_before": 0.2})
    # Records from before the measure keep the load-average rule.
    assert busy_before({"loadavg_before": 3.5}) and not busy_before({"loadavg_before": 2.5})
    records = [{**_record("raysweep_mlflow", 0, 30.0, load=4.0), "cpus_busy_before": 0.1}, _record("ray_function_reuse", 0, 30.0),
               {**_record("raysweep_mlflow", 1, 30.0), "cpus_busy_before": 1.5}, _record("ray_function_reuse", 1, 30.0)]
    assert busy_turns(records, "noop") == [(0, 1)]


def test_cpus_busy_sees_a_process_that_spins_beside_it() -> None:
    import os
    import subprocess
    import sys

    from benchmarks._common import cpus_busy

    quiet = cpus_busy(0.5)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = cpus_busy(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert quiet is not None and 0 <= quiet <= 2 * (os.cpu_count() or 1)
    # One core spun the whole half second (less a moment to start); other work only adds to it.
    assert busy is not None and busy >= 0.7, busy
