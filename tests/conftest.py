"""Shared fixtures: one local Ray for the whole session, a real MLflow server on 127.0.0.1,
the real datasets in ../shared/data when they are there, and a way to run the CLI as a user."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from raysweep.cli.review import server_environment, stop_server

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


#: fixtures that start something real: a test that uses one is end to end
E2E_FIXTURES = {"ray_local", "mlflow_server", "shared_data"}
#: test modules whose every test runs a sweep, a cluster or a browser
E2E_MODULES = {"test_sweeps", "test_mlflow", "test_reliability", "test_cluster_sweeps", "test_ui_browser", "test_benchmarks_smoke"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``e2e`` every test that starts Ray, an MLflow server, a cluster or a browser.

    ``python -m pytest -m "not e2e"`` is then the fast tier: raysweep's own code on synthetic
    inputs, in seconds. A test that starts one of these some other way is marked by hand.
    """
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if getattr(item, "module", None) else ""
        starts_something = (
            E2E_FIXTURES & set(getattr(item, "fixturenames", ()))
            or module in E2E_MODULES
            or item.get_closest_marker("cluster")
            or item.get_closest_marker("browser")
        )
        if starts_something and not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.e2e)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """In the fast tier (``-m "not e2e"``) a module whose every test is e2e is not even imported.

    Its tests would all be deselected; importing it (and rewriting its asserts) costs each process
    of the fast tier close to a second. ``-m e2e``, or no ``-m``, collects them as before.
    """
    if collection_path.suffix == ".py" and collection_path.stem in E2E_MODULES:
        if " ".join(str(config.getoption("markexpr", "") or "").split()) == "not e2e":
            return True
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """One BLAS thread in this process, from here on (numpy's and scipy's OpenBLAS both).

    The tests' matrices are small (the GP searcher's), where one thread is as fast; and OpenBLAS's
    threads spin, so while another process holds a core (a subprocess case beside the in-process
    tests, or anyone else's run) two threads are several times slower than one. Subprocesses keep
    their defaults.
    """
    import scipy.linalg  # noqa: F401  (scipy's own OpenBLAS: loaded now, so that the limit reaches it)
    from threadpoolctl import threadpool_limits

    session.config.stash[_BLAS_LIMIT] = threadpool_limits(limits=1, user_api="blas")


_BLAS_LIMIT = pytest.StashKey[Any]()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ray_local():
    """One embedded local Ray for every in-process sweep of the session."""
    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """The URI of a real ``mlflow server`` over HTTP on 127.0.0.1.

    ``.ci/run`` starts one and passes RAYSWEEP_TEST_MLFLOW_URI; otherwise the session starts its own.
    """
    given = os.environ.get("RAYSWEEP_TEST_MLFLOW_URI")
    if given:
        _wait_http(given.rstrip("/") + "/health", 60)
        yield given
        return
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(root / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True, env=server_environment(),
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_http(uri + "/health", 120)
        yield uri
    finally:
        stop_server(process)
        log.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real CSVs in ../shared/data; tests that need them skip when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``raysweep ARGS`` in a subprocess, as a user would from a shell."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "raysweep", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def invoke_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``raysweep ARGS`` in this process through click's test runner, from ``cwd``.

    The exit code, stdout and stderr are those :func:`run_cli` gets, without a new interpreter
    importing scikit-learn and pandas again: for commands that start nothing (no Ray, no MLflow
    server). An exception raysweep does not turn into an exit code fails the test with its traceback.
    """
    from click.testing import CliRunner

    from raysweep.cli import main

    previous = os.getcwd()
    os.chdir(cwd)
    try:
        outcome = CliRunner().invoke(main, list(args), prog_name="raysweep", catch_exceptions=False)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(["raysweep", *args], outcome.exit_code, outcome.stdout, outcome.stderr)


#: runs subprocess cases in the background: they mostly import or wait on a socket, so a handful at
#: once share the machine's cores with each other and with the in-process tests
_BACKGROUND = ThreadPoolExecutor(max_workers=8, thread_name_prefix="raysweep-test-subprocess")


def in_background(run: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """Start ``run(*args, **kwargs)`` (a subprocess, e.g. :func:`run_cli`) now; the future holds what it returns."""
    return _BACKGROUND.submit(run, *args, **kwargs)


def selected_cases(request: pytest.FixtureRequest, test: str) -> list[str]:
    """The ids of the cases of ``test`` (in the requesting module) that this session runs; ``""`` for an unparametrized one.

    A module fixture that starts its subprocess cases ahead of their tests starts only these
    (``-k`` picks one case: one subprocess starts).
    """
    return [
        item.callspec.id if hasattr(item, "callspec") else ""
        for item in request.session.items
        if getattr(item, "module", None) is request.module and getattr(item, "originalname", None) == test
    ]


# -- processes (from /proc) --------------------------------------------------------------------------
def live_processes() -> Iterator[tuple[int, list[str], str]]:
    """Every live process: (pid, the fields of /proc/PID/stat after its name, its command line)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if fields and fields[0] not in ("Z", "X"):
            yield int(entry.name), fields, cmdline


def session_processes(session_id: int) -> dict[int, str]:
    """Live processes of a process session (a driver started with start_new_session and all that
    it started, Ray's processes included): pid -> command line."""
    return {pid: cmdline.strip()[:120] for pid, fields, cmdline in live_processes() if int(fields[3]) == session_id}
