"""Both tiers on every core: ``python -m pytest -m "not e2e"`` and ``python -m pytest -m e2e`` each
run in two pytest-xdist workers.

Loaded with ``-p fast_tier`` from ``addopts`` (``pythonpath`` puts ``tests/`` on ``sys.path`` before
``-p`` plugins load), it adds ``-n 2 --dist loadfile`` when all of these hold:

- the selection is one whole tier, ``-m "not e2e"`` or ``-m e2e`` over the default test paths (no
  file, folder, node id or ``-k`` given: a few tests run faster in one process than two workers
  collect them);
- pytest-xdist is installed and not turned off (``-p no:xdist``);
- the command does not choose for itself (``-n``, ``--dist``, ``--tx``), and nothing needs one
  process (``--pdb``, ``--trace``, ``--collect-only``);
- this is not an xdist worker, and the machine has at least two cores.

The whole suite (``python -m pytest``) stays in one process. ``-p no:fast_tier`` turns this off.

The end-to-end tests spend about a quarter of their time waiting (on a server starting, a process
exiting, a sweep's time budget) with a core idle: two workers fill it. Each worker has its own
session fixtures (one local Ray each; the MLflow server ``.ci/run`` starts is shared, every test
keeps to experiments and sweep names of its own). A test that needs a core to itself for a fixed
time does not belong in this tier as written: the time budgets in it leave room for a second worker.

Each worker runs in a session of its own (:func:`own_session`): on Linux a test's trials then compete
for the CPU with its own processes only, not with the other worker's test.

``loadfile`` keeps a test file in one worker: a module's fixtures (a store written once, the
subprocesses a module starts as it begins for the cases the session runs, a cluster) run once. The
files start longest first, by the time each took in the last parallel run of the tier (pytest's
cache), else by the tier's ``longest_first`` (a clean clone, as CI runs it), so that the two workers end
together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

#: at most this many workers (the fast tier's budget is for 2 cores); fewer cores, fewer workers
WORKERS = 2


@dataclass(frozen=True)
class Tier:
    """A tier that runs in workers when selected whole."""

    #: pytest's cache key of each of the tier's test files' durations in its last parallel run
    cache_key: str
    #: with nothing cached, these files start first, in this order; the rest follow in xdist's order
    longest_first: tuple[str, ...] = ()


#: the ``-m`` expressions that select a whole tier
TIERS = {
    "not e2e": Tier("raysweep/fast_tier_file_seconds"),
    # the longest end-to-end files, from ``--durations=0`` of a two-worker run
    "e2e": Tier("raysweep/e2e_tier_file_seconds", (
        "tests/test_reliability.py", "tests/test_sweeps.py", "tests/test_benchmarks_smoke.py", "tests/test_cluster_sweeps.py",
        "tests/test_nested_resume.py", "tests/test_mlflow.py", "tests/test_local_cluster.py", "tests/test_ui_browser.py",
        "tests/test_nested.py", "tests/test_warm_start.py", "tests/test_cli.py",
    )),
}  # fmt: skip

#: the tier running in workers
_PARALLEL = pytest.StashKey[Tier]()


def workers() -> int:
    return min(WORKERS, os.cpu_count() or 1)


def wants_workers(early_config: pytest.Config) -> Tier | None:
    """The tier this command runs whole, if it is to run in workers."""
    options = early_config.known_args_namespace
    if os.environ.get("PYTEST_XDIST_WORKER") or not early_config.pluginmanager.has_plugin("xdist") or workers() < 2:
        return None
    selected = TIERS.get(" ".join(str(getattr(options, "markexpr", "") or "").split()))
    if selected is None or getattr(options, "file_or_dir", None) or getattr(options, "keyword", ""):
        return None
    if getattr(options, "numprocesses", None) is not None or getattr(options, "maxprocesses", None) is not None:
        return None  # -n / --maxprocesses of the user's own (-n 0 too)
    if getattr(options, "tx", None) or getattr(options, "dist", "no") != "no" or getattr(options, "distload", False):
        return None
    return None if any(getattr(options, name, False) for name in ("usepdb", "trace", "collectonly")) else selected


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    selected = wants_workers(early_config)
    if selected is not None:
        args[:] = ["-n", str(workers()), "--dist", "loadfile", *args]
        early_config.stash[_PARALLEL] = selected


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        own_session()
    selected = config.stash.get(_PARALLEL, None)
    if selected is not None:
        config.pluginmanager.register(_LongestFirst(config, selected), "fast_tier_longest_first")


def own_session() -> None:
    """Put this xdist worker, and every process its tests start, in a session of its own.

    Ray runs its workers, the trials among them, at nice 15 (Ray's ``worker_niceness``). Linux's
    autogroup (on here) schedules each session as one group and ranks by nice only inside it: with
    both xdist workers in pytest's session, one test's nice-0 processes (a driver, an MLflow server,
    a benchmark's baseline) took nearly all the CPU from the other test's trials. Measured with two
    CPU-bound nice-0 processes beside it: plain Ray Tune's first result came 40 s after the start in
    the same session, 12 s with them in a session of their own (6 s on an idle machine); raysweep's
    ASHA sweep with a 15 s budget got no trial to report (nor with 60 s), against 71 trials. In
    sessions of their own the two workers get an equal share each, and a test's trials rank only
    against its own processes, as when a user runs one sweep.
    """
    try:
        os.setsid()
    except OSError:  # already a session or process group leader: nothing to part from
        pass


class _LongestFirst:
    """Starts the test files that took longest last time first, and records how long each took now."""

    def __init__(self, config: pytest.Config, tier: Tier) -> None:
        self.config = config
        self.tier = tier
        self.seconds: dict[str, float] = {}

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        from xdist.scheduler import LoadFileScheduling

        cache = getattr(config, "cache", None)  # none with ``-p no:cacheprovider``
        last: dict[str, float] = cache.get(self.tier.cache_key, {}) if cache is not None else {}
        if not last:  # each listed file's place in the list for a duration, all before the unlisted (0)
            order = self.tier.longest_first
            last = {path: float(len(order) - rank) for rank, path in enumerate(order)}

        class LongestFileFirst(LoadFileScheduling):
            """xdist's ``loadfile``, its queue of files sorted by last time's durations (unknown ones after, in xdist's order)."""

            ordered = False

            # Private ``LoadFileScheduling._assign_work_unit`` and ``workqueue`` (an ordered dict of
            # file -> tests): checked on pytest-xdist 3.8.0; any other order is still correct, only slower.
            def _assign_work_unit(self, node: Any) -> None:
                if not self.ordered:
                    queue = sorted(self.workqueue.items(), key=lambda unit: -float(last.get(unit[0], 0.0)))
                    self.workqueue.clear()
                    self.workqueue.update(queue)
                    self.ordered = True
                super()._assign_work_unit(node)

        return LongestFileFirst(config, log)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        scope = report.nodeid.split("::", 1)[0]
        self.seconds[scope] = self.seconds.get(scope, 0.0) + report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = getattr(self.config, "cache", None)
        if cache is not None and self.seconds:
            cache.set(self.tier.cache_key, {scope: round(seconds, 2) for scope, seconds in self.seconds.items()})
