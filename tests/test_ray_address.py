"""A cluster address that cannot be used fails fast, in one line; so does a stale token path.

No Ray cluster is started here: the addresses are a refused port and a socket that accepts but
never answers, as a mistyped or firewalled address would be. Each case is a ``raysweep`` process of
its own, as a user starts it; the module starts them as it begins, one per CPU at a time (so each
gets about the CPU it would get on its own, and the time bound keeps its meaning), and each test
checks its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import selected_cases

# Ray's own connect retries for minutes; these must end within seconds (a loaded machine gets room).
BOUND_S = 30.0


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: no Ray variables except ``extra``, and a home of its own (no recorded cluster, no ~/.ray token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(home)
    env.update(extra)
    return env


def raysweep(*args: str, cwd: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "raysweep", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    return done, time.monotonic() - started


def error_lines(stderr: str) -> list[str]:
    """What stderr holds besides the sweep's header (``raysweep: <recipe> on <dataset> ...``, wrapped)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if lines and lines[0].startswith("raysweep: "):
        lines = lines[1:]
        while lines and not lines[0].startswith("error: ") and "trials, metric" in lines[0]:
            lines = lines[1:]
    return lines


def silent_listener() -> socket.socket:
    """A socket at an address where something accepts TCP connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server


def address_of(server: socket.socket) -> str:
    return f"127.0.0.1:{server.getsockname()[1]}"


REFUSED = "127.0.0.1:1"


def run_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "random_forest", "--dataset", "wine", *extra, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]


@pytest.fixture(scope="module")
def started(request: pytest.FixtureRequest, tmp_path_factory) -> dict[str, tuple[Future, dict[str, str]]]:
    """This module's ``raysweep`` processes that the session runs, started at once.

    Case -> (the future of its ``(done, elapsed)``, what the case used).
    """
    address_cases = selected_cases(request, "test_run_with_an_address_that_cannot_be_used_fails_fast")
    token_modes = selected_cases(request, "test_a_stale_token_path_is_one_line_naming_the_variable")
    listeners: list[socket.socket] = []
    started: dict[str, tuple[Future, dict[str, str]]] = {}
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="raysweep-address")

    def start(case: str, args: list[str], home: Path, env: dict[str, str], used: dict[str, str]) -> None:
        started[case] = (pool.submit(raysweep, *args, cwd=home, env=env), used)

    for where in address_cases:
        home = tmp_path_factory.mktemp(f"address-{where}")
        if where == "silent_listener":
            listeners.append(silent_listener())
        address = REFUSED if where == "refused" else address_of(listeners[-1])
        start(f"address {where}", run_args(home, "--address", address), home, user_env(home), {"address": address})
    if selected_cases(request, "test_ray_address_from_the_environment_fails_fast_too"):
        home = tmp_path_factory.mktemp("ray-address-env")
        listeners.append(silent_listener())
        address = address_of(listeners[-1])
        start("RAY_ADDRESS", run_args(home), home, user_env(home, RAY_ADDRESS=address), {"address": address})
    if selected_cases(request, "test_resume_of_a_sweep_on_an_address_gone_fails_fast"):
        from raysweep.sweep.options import plan_sweep
        from raysweep.sweep.record import save_plan

        # A sweep recorded with an address that is gone now.
        home = tmp_path_factory.mktemp("resume")
        storage = home / "results"
        plan = plan_sweep("random_forest", "wine", name="gone", storage=storage, address=REFUSED, num_samples=2)
        save_plan(plan, None)
        (storage / "gone" / "tuner.pkl").write_bytes(b"")  # as if Tune had started it (resume refuses a sweep without)
        start("resume", ["resume", "gone", "--storage", str(storage)], home, user_env(home), {"address": REFUSED})
    for mode in token_modes:
        # What `raysweep cluster down --local` leaves behind in a shell that exported the token's path.
        home = tmp_path_factory.mktemp(f"stale-token-{mode}")
        gone = home / "local-cluster.token"
        extra = {"RAY_AUTH_TOKEN_PATH": str(gone), **({"RAY_AUTH_MODE": mode} if mode != "None" else {})}
        start(f"stale token {mode}", run_args(home), home, user_env(home, **extra), {"gone": str(gone)})
    try:
        yield started
    finally:
        pool.shutdown(wait=True)  # every process ended before its listener closes
        for server in listeners:
            server.close()


def assert_fails_fast(done: subprocess.CompletedProcess[str], elapsed: float, label: str, reason: str) -> None:
    lines = error_lines(done.stderr)
    assert done.returncode == 2, done.stderr
    assert elapsed < BOUND_S, f"took {elapsed:.0f}s"
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {label}: cannot connect to a Ray cluster there ({reason}"), lines[0]
    assert "gcs_client" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("where", ["refused", "silent_listener"])
def test_run_with_an_address_that_cannot_be_used_fails_fast(where: str, started) -> None:
    future, used = started[f"address {where}"]
    done, elapsed = future.result()
    address = used["address"]
    reason = "Connection refused" if where == "refused" else "something listens there but no Ray GCS answered"
    assert_fails_fast(done, elapsed, f"--address {address}", reason)


def test_ray_address_from_the_environment_fails_fast_too(started) -> None:
    future, used = started["RAY_ADDRESS"]
    done, elapsed = future.result()
    assert_fails_fast(done, elapsed, f"RAY_ADDRESS={used['address']}", "something listens there")
    assert done.stderr.rstrip().endswith("(or unset RAY_ADDRESS for a local Ray)")


def test_resume_of_a_sweep_on_an_address_gone_fails_fast(started) -> None:
    future, used = started["resume"]
    done, elapsed = future.result()
    assert_fails_fast(done, elapsed, f"--address {used['address']} (to resume sweep gone on)", "Connection refused")
    # The address is the one the sweep ran on, not one given to resume: the line says how to pick another.
    assert error_lines(done.stderr)[0].endswith(
        "; check the address; continue it on another with: raysweep resume gone --address HOST:PORT, "
        "or --address local for a local Ray"
    ), done.stderr


@pytest.mark.parametrize("mode", [None, "token"])
def test_a_stale_token_path_is_one_line_naming_the_variable(mode: str | None, started) -> None:
    future, used = started[f"stale token {mode}"]
    done, elapsed = future.result()
    gone = used["gone"]
    lines = error_lines(done.stderr)
    assert done.returncode == 2, done.stderr
    assert elapsed < BOUND_S
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: RAY_AUTH_TOKEN_PATH={gone}: no such file"), lines[0]
    assert "unset RAY_AUTH_TOKEN_PATH" in lines[0]


def test_an_unreadable_token_path_is_refused(tmp_path: Path) -> None:
    from raysweep.errors import UserError
    from raysweep.sweep.connect import check_token_path

    empty = tmp_path / "token"
    empty.write_text("")
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(empty)
    try:
        with pytest.raises(UserError, match=r"^RAY_AUTH_TOKEN_PATH=.*/token: the file is empty; `unset RAY_AUTH_TOKEN_PATH"):
            check_token_path()
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(tmp_path)  # a directory
        with pytest.raises(UserError, match=r"^RAY_AUTH_TOKEN_PATH=.*: cannot read it \(Is a directory\)"):
            check_token_path()
    finally:
        del os.environ["RAY_AUTH_TOKEN_PATH"]
