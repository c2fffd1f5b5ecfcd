"""The sweep's charts, drawn in a process of their own while the sweep logs its refit model.

At a sweep's end the driver has two pieces of work that need nothing from each other: the charts
(matplotlib: about 0.6 s for a 500-trial sweep, plus 0.3 s of import) and the refit model's MLflow
log (serialising it, its signature and input example: about 0.7 s). The trials are over, so a core
is free. A drawing process (:mod:`raysweep.tracking._drawing_process`) starts as the trials end,
imports matplotlib while the driver refits the best config, and draws the charts while the driver
logs the model. The driver then logs the PNGs it wrote. (Started with the trials, its imports took
CPU from them: on 500 no-op trials the trials took 0.5 s longer.)

Never a new way to fail: when the process cannot start, dies, answers with an error or takes too
long, the driver draws that chart itself, as it would without this process.
"""

from __future__ import annotations

import logging
import pickle
import queue
import subprocess
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any

from raysweep.tracking.side_process import spawn

logger = logging.getLogger(__name__)

#: how long the driver waits for a chart before it draws the chart itself (a 10,000-trial sweep's
#: plots take a few seconds)
WAIT_S = 60.0


class Drawer:
    """The drawing process: :meth:`draw` hands it a job and returns at once; :meth:`close` ends it."""

    def __init__(self) -> None:
        # Quiet: its failures come back as answers; matplotlib's notices stay out of the sweep's output.
        self.process = spawn("raysweep.tracking._drawing_process", quiet=True)
        self._lock = threading.Lock()
        self._waiting: deque[Future] = deque()  # answers come in the order the jobs went
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._gone = False
        threading.Thread(target=self._feed, name="raysweep-drawing-feed", daemon=True).start()
        threading.Thread(target=self._read, name="raysweep-drawing-read", daemon=True).start()

    def draw(self, name: str, *args: Any) -> Future:
        """Have the process run job ``name`` (see ``_drawing_process.JOBS``) on ``args``.

        The future's result is the job's value, or None when the process could not give it.
        The job is written to the pipe by a thread of this process: the caller never waits.
        """
        future: Future = Future()
        with self._lock:
            if self._gone:
                future.set_result(None)
                return future
            self._waiting.append(future)
            self._outbox.put((name, args))
        return future

    def _feed(self) -> None:
        while True:
            job = self._outbox.get()
            if job is None:
                break
            try:
                pickle.dump(job, self.process.stdin)
                self.process.stdin.flush()
            except Exception as exc:  # a dead process (broken pipe) or a job that cannot be pickled
                logger.debug("raysweep: could not hand %s to the drawing process: %s", job[0], exc)
                self._give_up()
                break
        self._stop()

    def _read(self) -> None:
        while True:
            try:
                status, value = pickle.load(self.process.stdout)
            except Exception:  # EOF: the process ended
                self._give_up()
                return
            with self._lock:
                future = self._waiting.popleft() if self._waiting else None
            if future is not None and not future.done():
                if status != "ok":
                    logger.debug("raysweep: the drawing process failed: %s", value)
                future.set_result(value if status == "ok" else None)

    def _give_up(self) -> None:
        with self._lock:
            self._gone = True
            waiting, self._waiting = list(self._waiting), deque()
        for future in waiting:
            if not future.done():
                future.set_result(None)
        self._outbox.put(None)

    def _stop(self) -> None:
        try:
            self.process.stdin.close()
        except Exception:
            pass

    def close(self, timeout: float = 5.0) -> None:
        """End the process: it exits when its stdin closes (killed if it has not within ``timeout``).
        Returns at once; a thread of this process waits for the exit."""
        with self._lock:
            self._gone = True
        self._outbox.put(None)  # after the jobs already handed over
        threading.Thread(target=self._reap, args=(timeout,), name="raysweep-drawing-reap", daemon=True).start()

    def _reap(self, timeout: float) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_drawer() -> Drawer | None:
    """A drawing process, or None (the sweep then draws its charts itself) when it cannot start."""
    try:
        return Drawer()
    except Exception as exc:
        logger.debug("raysweep: no drawing process (%s); the sweep draws its charts itself", exc)
        return None


def drawn(job: Future | None, timeout: float = WAIT_S) -> Any:
    """The value of a job from :meth:`Drawer.draw`, or None (no job, failed, or not back within ``timeout``)."""
    if job is None:
        return None
    try:
        return job.result(timeout)
    except Exception:  # TimeoutError
        logger.debug("raysweep: the drawing process took over %.0f s; drawing here", timeout)
        return None
