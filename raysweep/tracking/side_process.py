"""The processes a sweep runs beside itself (the MLflow writer, the chart drawer): how the sweep
starts one, and how one sets itself apart from the sweep as it starts.

Each is ``python -m <module>``, talking with the sweep over its stdin and stdout in pickles.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import BinaryIO

#: how much lower than the sweep's a side process's CPU priority is: it takes what the trials and
#: Tune's loop leave idle
NICENESS = 10


def spawn(module: str, *args: str, quiet: bool = False) -> subprocess.Popen:
    """Start ``python -m module *args`` with pipes to its stdin and stdout. ``quiet``: its stderr
    goes nowhere (its failures come back as answers) instead of to the sweep's."""
    env = dict(os.environ)
    # It imports raysweep as this process does (a source checkout included).
    env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else None,
        env=env,
        start_new_session=True,  # a Ctrl-C for the sweep is the sweep's to handle
    )


def detach() -> tuple[BinaryIO, BinaryIO]:
    """In the side process, first thing: ignore Ctrl-C, run at :data:`NICENESS`, and keep stdout
    for answers (``print`` goes to stderr). Returns the pipes (from the sweep, to the sweep)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    inbox, outbox = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    return inbox, outbox
