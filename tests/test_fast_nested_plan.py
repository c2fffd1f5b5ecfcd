"""How many of a nested job's sweeps start at once, and with how many trials each (synthetic plans)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from raysweep.sweep.nested import sweeps_at_once


@pytest.mark.parametrize(
    "time_budget, max_concurrent, cpus, expected",
    [
        (None, None, 2, (6, None)),  # trial counts: all at once, each sweep as a plain one
        (None, 4, 2, (6, None)),
        (120, None, 2, (2, 1)),  # budgets on 2 CPUs: two sweeps at a time, one trial each
        (120, None, 12, (6, 2)),  # CPUs to spare: every sweep at once, an equal share each
        (120, None, 64, (6, 10)),
        (120, 4, 2, (1, 4)),  # --max-concurrent beyond the cluster: one sweep at a time
        (120, 2, 8, (4, 2)),
        (120, None, 1, (1, 1)),
    ],
)
def test_sweeps_with_a_time_budget_start_only_with_cpus_for_their_trials(time_budget, max_concurrent, cpus, expected):
    plan = SimpleNamespace(time_budget=time_budget, max_concurrent=max_concurrent)
    at_once, per_sweep = sweeps_at_once(plan, 6, cpus)
    assert (at_once, per_sweep) == expected
    if per_sweep is not None:
        assert at_once * per_sweep <= max(cpus, per_sweep), "more trials at once than the cluster has CPUs"
