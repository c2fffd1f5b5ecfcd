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

#: the nice value of a side process. It ranks the process below the sweep only where the kernel
#: schedules processes one by one. Linux's autogroup (on by default in most distributions, and on
#: the machine the benchmarks ran on) schedules each session as one group, and a side process has
#: a session of its own (see :func:`spawn`): its group then gets as much CPU as the sweep's whole
#: group (the driver, and on a local Ray every Ray process and trial) and the nice value ranks it
#: only against itself. Three CPU-bound processes on 2 cores, two in one session and one at nice 10
#: in a session of its own: the lone one got a whole core. Lowering its group's nice value too
#: (``/proc/self/autogroup``) is not done: the writer then falls behind tiny trials and the sweep's
#: end waits for it (300 no-op trials: 10.1 s against 9.0 s, median of 4 alternating pairs; see
#: benchmarks/ANALYSIS.md, which also has what it did to a nested job).
NICENESS = 10


#: the environment variable that gives a side process the id of the sweep's process that started it
SWEEP_PID_ENV = "RAYSWEEP_SWEEP_PID"


def spawn(module: str, *args: str, quiet: bool = False) -> subprocess.Popen:
    """Start ``python -m module *args`` with pipes to its stdin and stdout. ``quiet``: its stderr
    goes nowhere (its failures come back as answers) instead of to the sweep's."""
    env = dict(os.environ)
    # It imports raysweep as this process does (a source checkout included).
    env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    env[SWEEP_PID_ENV] = str(os.getpid())  # the sweep's process (see raysweep.tracking.writer_lock.hold)
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else None,
        env=env,
        start_new_session=True,  # a Ctrl-C for the sweep is the sweep's to handle
    )


def detach() -> tuple[BinaryIO, BinaryIO]:
    """In the side process, first thing: ignore Ctrl-C and SIGTERM, run at :data:`NICENESS`, and
    keep stdout for answers (``print`` goes to stderr). Returns the pipes (from the sweep, to the
    sweep). A stop is the sweep's to handle, which ends this process once it has what it needs
    (or, killed itself, by closing the pipe): ``ray job stop`` sends SIGTERM to the job's whole
    process tree, and the writer, ended before the sweep had logged its stop, was replaced with
    "the MLflow writer process was killed by SIGTERM" on the job's log."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    inbox, outbox = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    return inbox, outbox
