"""Short trials share out the sweep's CPUs: Ray Tune's actor reuse keeps the actors it starts.

With ``reuse_actors`` Ray Tune gives a staged trial any actor that frees up and removes the actor
it was starting for that trial. When trials end sooner than a trial process starts, that left a
sweep on one actor however many CPUs it had (``raysweep/sweep/actors.py``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from raysweep.sweep.actors import KeepStartingActors, _marked, starting_own_actor


def _controller(started: bool, holds_resources: bool, resetting: bool = False) -> tuple[SimpleNamespace, object]:
    trial, actor = object(), object()
    controller = SimpleNamespace(
        _trial_to_actor={trial: actor},
        _resetting_trials={trial} if resetting else set(),
        _started_actors={actor} if started else set(),
        _actor_manager=SimpleNamespace(_live_actors_to_ray_actors_resources={actor: None} if holds_resources else {}),
        _callbacks=SimpleNamespace(_callbacks=[object(), KeepStartingActors()]),
    )
    return controller, trial


def test_a_trial_waits_only_for_its_own_actor_that_holds_resources_and_has_not_started() -> None:
    controller, trial = _controller(started=False, holds_resources=True)
    assert starting_own_actor(controller, trial)
    for case in ({"started": True, "holds_resources": True}, {"started": False, "holds_resources": False},
                 {"started": False, "holds_resources": True, "resetting": True}):
        controller, trial = _controller(**case)
        assert not starting_own_actor(controller, trial), case
    assert not starting_own_actor(controller, object())  # a trial with no actor of its own


def test_only_tuners_that_carry_the_marker_follow_the_rule() -> None:
    marked, _ = _controller(started=False, holds_resources=True)
    assert _marked(marked)
    plain = SimpleNamespace(_callbacks=SimpleNamespace(_callbacks=[object()]))
    assert not _marked(plain)


def test_a_sweep_of_millisecond_trials_runs_them_on_as_many_actors_as_it_has_cpus(ray_local, tmp_path: Path) -> None:
    from benchmarks.families import analytic_dataset, analytic_recipe
    from raysweep import run_sweep

    result = run_sweep(
        analytic_recipe("noop"), analytic_dataset("noop"), tracking=False, progress=False, num_samples=120,
        max_concurrent=2, seed=3, name="short-trials", storage=str(tmp_path / "ray"),
    )  # fmt: skip
    assert result.num_trials == 120 and result.num_errors == 0
    pids = Counter(
        json.loads(line)["pid"]
        for path in (tmp_path / "ray" / "short-trials").glob("*/result.json")
        for line in path.read_text().splitlines() if line.strip()
    )  # fmt: skip
    assert sum(pids.values()) == 120
    # Two CPUs, two actors, each reused for many trials (before: one actor ran all of them). The
    # second actor's process may take longer to start than 40 such trials take on the first one on a
    # busy machine (seen: 36 and 4), so the sweep is long enough to outlast a slow start.
    assert len(pids) == 2, pids
    assert min(pids.values()) >= 5, pids
