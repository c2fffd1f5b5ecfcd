"""A local cluster's processes: finding them by session and marker, signalling them, waiting for them to go."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from raysweep.cluster._state import _MARKER_ENV

# -- processes ---------------------------------------------------------------------------------------
def _node_pids(node: Any, cluster: Any) -> list[int]:
    return _session_pids(node.session_id, cluster.cluster_id, cluster.temp_dir)


def _session_pids(session_id: int | None, cluster_id: str, temp_dir: Path) -> list[int]:
    """Live (non-zombie) processes of session ``session_id`` (None: of any session) that belong to
    cluster ``cluster_id``.

    A process belongs if it carries the cluster's marker variable, names the cluster's own Ray temp
    dir on its command line (GCS, raylet, dashboard, monitors all do), or descends from one that
    does: Ray's agents and workers rename themselves, which can overwrite the environment block
    /proc shows, so neither test alone finds them.
    """
    marker = f"{_MARKER_ENV}={cluster_id}".encode()
    temp = str(temp_dir).encode()
    parents: dict[int, int] = {}
    ours: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            # The command name (field 2) may contain spaces and parentheses; the rest follows the last ')'.
            state, ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
            if (session_id is not None and int(session) != session_id) or state in ("Z", "X"):
                continue
            parents[pid] = int(ppid)
            if temp in Path(f"/proc/{pid}/cmdline").read_bytes() or marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                ours.add(pid)
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    grew = True
    while grew:
        descendants = {pid for pid, ppid in parents.items() if ppid in ours} - ours
        ours |= descendants
        grew = bool(descendants)
    return sorted(ours)


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Wait until none of ``pids`` is alive; return those still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    left = [pid for pid in pids if _is_alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [pid for pid in left if _is_alive(pid)]
    return left
