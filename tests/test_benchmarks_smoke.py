"""The benchmark harness's smoke mode runs end to end and writes its report.

Benchmarks are not tests: this only proves that ``python -m benchmarks --smoke`` works (tiny
sizes, synthetic data, every suite and code path once), so the harness does not rot between
full runs. It never touches benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_smoke_mode_runs_every_suite_and_writes_the_report(tmp_path: Path) -> None:
    results = REPO / "benchmarks" / "RESULTS.md"
    before = results.read_bytes() if results.exists() else None
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    report = (tmp_path / "RESULTS.md").read_text()
    for heading in ("# raysweep benchmarks", "## Targets", "## 1. Orchestration overhead",
                    "## 2. Search quality at equal wall time", "## 3. Startup and utilization", "## Machine"):
        assert heading in report, heading
    for header in ("| target | measured | status |",
                   "| tool | trials | branin ms/trial |",
                   "| tool | test r2 | test rmse | time to default (s) | elapsed (s) | trials |",
                   "| measurement | median | target | notes |"):
        assert header in report, header
    assert "**Preliminary.**" in report  # a smoke run never passes for real numbers
    assert "raysweep, MLflow on" in report and "plain Ray Tune, random search" in report
    assert "`raysweep --help` wall time" in report and "first trial started" in report
    for plot in ("overhead.png", "quality-synthetic-xgboost.png", "startup.png"):
        assert (tmp_path / "plots" / plot).stat().st_size > 1000, plot
    assert (results.read_bytes() if results.exists() else None) == before, "smoke mode must not touch benchmarks/RESULTS.md"


def test_searchers_benchmark_reports_each_median_with_its_spread_and_repeats_a_seed_exactly(tmp_path: Path) -> None:
    import json
    import re

    command = [sys.executable, "-m", "benchmarks.searchers", "--seeds", "3", "--trials", "30", "--timing-trials", "0",
               "--searchers", "optuna,random", "--functions", "branin", "--out", str(tmp_path)]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    report = (tmp_path / "RESULTS.md").read_text()
    assert "### branin (3 seeds)" in report
    row = re.search(r"^\| random \| ([0-9.e+-]+) \(([0-9.e+-]+)–([0-9.e+-]+)\) \|", report, re.MULTILINE)
    assert row, report
    median, low, high = (float(value) for value in row.groups())
    assert 0 < low <= median <= high  # regret is above the minimum after 30 random trials
    assert "Check (GP and both TPEs below random" in report

    first = json.loads((tmp_path / "results" / "searchers" / "branin-optuna-s1-n30.json").read_text())
    again = subprocess.run([*command[:-1], str(tmp_path / "again")], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads((tmp_path / "again" / "results" / "searchers" / "branin-optuna-s1-n30.json").read_text())
    assert second["regret"] == first["regret"]  # a seed's regret is the same on every run
