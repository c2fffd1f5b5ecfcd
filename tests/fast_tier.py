"""The fast tier on every core: ``python -m pytest -m "not e2e"`` runs in two pytest-xdist workers.

Loaded with ``-p fast_tier`` from ``addopts`` (``pythonpath`` puts ``tests/`` on ``sys.path`` before
``-p`` plugins load), it adds ``-n 2 --dist loadfile`` when all of these hold:

- the selection is the whole fast tier, ``-m "not e2e"`` over the default test paths (no file,
  folder, node id or ``-k`` given: a few tests run faster in one process than two workers collect
  them);
- pytest-xdist is installed and not turned off (``-p no:xdist``);
- the command does not choose for itself (``-n``, ``--dist``, ``--tx``), and nothing needs one
  process (``--pdb``, ``--trace``, ``--collect-only``);
- this is not an xdist worker, and the machine has at least two cores.

The whole suite (``python -m pytest``, as CI runs it) stays in one process: its e2e tests share one
Ray (the session's ``ray_local``) and one MLflow server. ``-p no:fast_tier`` turns this off.

``loadfile`` keeps a test file in one worker: a module's fixtures (a store written once, the
subprocesses a module starts as it begins for the cases the session runs) run once. The files
start longest first, by the time each took in the last parallel run (pytest's cache), so that the
two workers end together.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

#: at most this many workers (the fast tier's budget is for 2 cores); fewer cores, fewer workers
WORKERS = 2
FAST_TIER = "not e2e"
#: pytest's cache key of each test file's duration in the last parallel fast tier
DURATIONS_KEY = "raysweep/fast_tier_file_seconds"


_PARALLEL = pytest.StashKey[bool]()


def workers() -> int:
    return min(WORKERS, os.cpu_count() or 1)


def wants_workers(early_config: pytest.Config) -> bool:
    options = early_config.known_args_namespace
    if os.environ.get("PYTEST_XDIST_WORKER") or not early_config.pluginmanager.has_plugin("xdist") or workers() < 2:
        return False
    if " ".join(str(getattr(options, "markexpr", "") or "").split()) != FAST_TIER:
        return False
    if getattr(options, "file_or_dir", None) or getattr(options, "keyword", ""):
        return False
    if getattr(options, "numprocesses", None) is not None or getattr(options, "maxprocesses", None) is not None:
        return False  # -n / --maxprocesses of the user's own (-n 0 too)
    if getattr(options, "tx", None) or getattr(options, "dist", "no") != "no" or getattr(options, "distload", False):
        return False
    return not any(getattr(options, name, False) for name in ("usepdb", "trace", "collectonly"))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    if wants_workers(early_config):
        args[:] = ["-n", str(workers()), "--dist", "loadfile", *args]
        early_config.stash[_PARALLEL] = True


def pytest_configure(config: pytest.Config) -> None:
    if config.stash.get(_PARALLEL, False):
        config.pluginmanager.register(_LongestFirst(config), "fast_tier_longest_first")


class _LongestFirst:
    """Starts the test files that took longest last time first, and records how long each took now."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.seconds: dict[str, float] = {}

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        from xdist.scheduler import LoadFileScheduling

        last: dict[str, float] = config.cache.get(DURATIONS_KEY, {}) if config.cache is not None else {}

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
        if self.config.cache is not None and self.seconds:
            self.config.cache.set(DURATIONS_KEY, {scope: round(seconds, 2) for scope, seconds in self.seconds.items()})
