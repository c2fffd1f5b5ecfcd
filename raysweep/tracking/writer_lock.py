"""One MLflow writer per sweep at a time, across processes.

The writer process of a sweep holds an exclusive lock named after the sweep's parent run for as
long as it lives. When its driver dies (SIGKILL, a lost node), the writer still writes what it had
been sent, and only then exits; the operating system drops the lock with it. ``raysweep resume``
and ``raysweep sync`` wait for that lock before they read MLflow, so they never create a trial's
run that the old writer is about to create too. The lock is a file in the system's temporary
folder (``fcntl.flock``); where there is no ``fcntl`` (Windows) there is no lock.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import IO, Callable

from raysweep.tracking.side_process import SWEEP_PID_ENV

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

#: how long a resume waits for a killed sweep's writer to finish what it was sent
WAIT_SECONDS = 120.0


def _path(parent_run_id: str) -> str:
    return os.path.join(tempfile.gettempdir(), f"raysweep-writer-{parent_run_id}.lock")


def hold(parent_run_id: str) -> IO[bytes] | None:
    """Take the sweep's lock for this process's lifetime (keep the returned file open), or until
    :func:`release`."""
    if fcntl is None or not parent_run_id:
        return None
    path = _path(parent_run_id)
    while True:
        handle = open(path, "ab")
        fcntl.flock(handle, fcntl.LOCK_EX)  # an older writer of the same sweep finishes first
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                # The sweep's own process, for :func:`live_driver`: the one that started this
                # writer (its id given at the start, not the parent now: a writer whose sweep has
                # died has init's), else nothing known.
                handle.truncate(0)
                handle.write(os.environ.get(SWEEP_PID_ENV, "").encode())
                handle.flush()
                return handle
        except FileNotFoundError:
            pass
        handle.close()  # the older writer released it and removed its file meanwhile: lock the new one


def release(handle: IO[bytes] | None, parent_run_id: str) -> None:
    """Give the lock up once everything the writer was sent is written, and remove its file (the
    temporary folder kept one empty file per sweep otherwise)."""
    if handle is None:
        return
    try:
        path = _path(parent_run_id)
        if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
            os.unlink(path)  # while locked: a writer that opens it next locks a new file (see hold)
    except OSError:
        pass
    handle.close()


def live_driver(parent_run_id: str | None) -> int | None:
    """The process id of the sweep's own process while it runs (its writer holds the lock and it
    is alive), else None: a sweep whose driver was killed has only a writer finishing what it was
    sent, which :func:`wait_for_writer` waits for."""
    if fcntl is None or not parent_run_id:
        return None
    try:
        handle = open(_path(parent_run_id), "rb")
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            from raysweep.cluster._processes import _is_alive

            text = handle.read().decode(errors="replace").strip()
            return int(text) if text.isdigit() and _is_alive(int(text)) else None
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def refuse_while_running(parent_run_id: str | None, name: str, command: str) -> None:
    """A :class:`~raysweep.errors.UserError` when sweep ``name`` is still running: ``command``
    (``sync``, ``resume``) would write its MLflow runs beside it, and closed its parent run KILLED
    under a sweep that then finished."""
    from raysweep.errors import UserError

    driver = live_driver(parent_run_id)
    if driver is not None:
        raise UserError(
            f"sweep {name} is still running (process {driver}): {command} it once it has stopped; "
            f"Ctrl-C in its terminal (or kill {driver}) stops it, resumable"
        )


def wait_for_writer(parent_run_id: str | None, say: Callable[[str], None] | None = None, timeout: float = WAIT_SECONDS) -> bool:
    """Wait until no process writes the sweep's runs; False if one still does after ``timeout`` s."""
    if fcntl is None or not parent_run_id or not os.path.exists(_path(parent_run_id)):
        return True
    deadline, told = time.monotonic() + timeout, False
    try:
        handle = open(_path(parent_run_id), "rb")  # not made again when its writer removed it meanwhile
    except FileNotFoundError:
        return True
    with handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                if say is not None and not told:
                    say("raysweep: waiting for the sweep's earlier MLflow writer to write what it was sent")
                    told = True
                time.sleep(0.1)
                continue
            fcntl.flock(handle, fcntl.LOCK_UN)
            return True
