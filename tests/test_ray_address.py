"""A cluster address that cannot be used fails fast, in one line; so does a stale token path.

No Ray cluster is started here: the addresses are a refused port and a socket that accepts but
never answers, as a mistyped or firewalled address would be.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


@pytest.fixture
def silent_listener():
    """An address where something accepts TCP connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture
def refused() -> str:
    return "127.0.0.1:1"


def assert_fails_fast(done: subprocess.CompletedProcess[str], elapsed: float, label: str, reason: str) -> None:
    lines = error_lines(done.stderr)
    assert done.returncode == 2, done.stderr
    assert elapsed < BOUND_S, f"took {elapsed:.0f}s"
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {label}: cannot connect to a Ray cluster there ({reason}"), lines[0]
    assert "gcs_client" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("where", ["refused", "silent_listener"])
def test_run_with_an_address_that_cannot_be_used_fails_fast(where: str, request, tmp_path: Path) -> None:
    address = request.getfixturevalue(where)
    done, elapsed = raysweep(
        "run", "random_forest", "--dataset", "wine", "--address", address, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
        cwd=tmp_path, env=user_env(tmp_path),
    )  # fmt: skip
    reason = "Connection refused" if where == "refused" else "something listens there but no Ray GCS answered"
    assert_fails_fast(done, elapsed, f"--address {address}", reason)


def test_ray_address_from_the_environment_fails_fast_too(silent_listener: str, tmp_path: Path) -> None:
    done, elapsed = raysweep(
        "run", "random_forest", "--dataset", "wine", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
        cwd=tmp_path, env=user_env(tmp_path, RAY_ADDRESS=silent_listener),
    )  # fmt: skip
    assert_fails_fast(done, elapsed, f"RAY_ADDRESS={silent_listener}", "something listens there")
    assert done.stderr.rstrip().endswith("(or unset RAY_ADDRESS for a local Ray)")


def test_resume_of_a_sweep_on_an_address_gone_fails_fast(refused: str, tmp_path: Path) -> None:
    from raysweep.sweep.options import plan_sweep
    from raysweep.sweep.run import _save_sweep_record

    storage = tmp_path / "results"
    plan = plan_sweep("random_forest", "wine", name="gone", storage=storage, address=refused, num_samples=2)
    _save_sweep_record(plan, None)
    done, elapsed = raysweep("resume", "gone", "--storage", str(storage), cwd=tmp_path, env=user_env(tmp_path))
    assert_fails_fast(done, elapsed, f"--address {refused}", "Connection refused")


@pytest.mark.parametrize("mode", [None, "token"])
def test_a_stale_token_path_is_one_line_naming_the_variable(mode: str | None, tmp_path: Path) -> None:
    # What `raysweep cluster down --local` leaves behind in a shell that exported the token's path.
    gone = tmp_path / "local-cluster.token"
    extra = {"RAY_AUTH_TOKEN_PATH": str(gone), **({"RAY_AUTH_MODE": mode} if mode else {})}
    done, elapsed = raysweep("run", "random_forest", "--dataset", "wine", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", cwd=tmp_path, env=user_env(tmp_path, **extra))
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
