"""tests/fast_tier.py, the plugin that runs a whole tier in two pytest-xdist workers, on a suite of two files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist")

TESTS = Path(__file__).resolve().parent

_INI = """
[pytest]
testpaths = suite
markers =
    e2e: end to end
"""


def _pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env.pop("PYTEST_XDIST_WORKER", None)  # this test may itself run in a worker
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-p", "fast_tier", "-p", "no:randomly", "-q", *args]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text(_INI)
    tests = tmp_path / "suite"
    tests.mkdir()
    # each test writes down the worker it ran in, and whether that worker leads a session of its own
    body = (
        "import os, pathlib\n"
        "def test_{name}():\n"
        "    worker = os.environ.get('PYTEST_XDIST_WORKER', 'none')\n"
        "    pathlib.Path(__file__).with_suffix('.ran').write_text(f'{{worker}} {{os.getsid(0) == os.getpid()}}')\n"
    )
    (tests / "test_a.py").write_text(body.format(name="a"))
    (tests / "test_b.py").write_text(body.format(name="b"))
    return tmp_path


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the tier runs in workers only with two cores or more")
@pytest.mark.parametrize("cache", ["cache", "no cache"])
def test_a_whole_tier_runs_in_two_workers_each_in_a_session_of_its_own(suite: Path, cache: str) -> None:
    extra = ["-p", "no:cacheprovider"] if cache == "no cache" else []
    done = _pytest(suite, "-m", "not e2e", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout, done.stdout
    ran = [path.read_text().split() for path in sorted((suite / "suite").glob("*.ran"))]
    assert len(ran) == 2 and all(worker.startswith("gw") for worker, _ in ran), ran
    assert all(leads == "True" for _, leads in ran), ran
    if cache == "cache":
        assert (suite / ".pytest_cache").is_dir()


def test_a_file_given_runs_in_this_process(suite: Path) -> None:
    done = _pytest(suite, "-m", "not e2e", "suite/test_a.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout
    assert (suite / "suite" / "test_a.ran").read_text().split()[0] == "none"
