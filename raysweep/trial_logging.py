"""The Tune callback that hands every trial event to the MLflow writer process.

Writing a trial run costs a few MLflow calls (a database transaction each, or an HTTP round
trip). Made on Tune's event loop they would slow every trial; made on a thread of the driver
they would still take the driver's interpreter lock from Tune. So the callback only takes a
snapshot of the trial and passes it on, and :class:`raysweep.tracking.TrialWriter` does the
writing in a process of its own (``raysweep._writer_process``), in the order Tune raised the
events. ``RAYSWEEP_MLFLOW_WRITER=inline`` writes on Tune's loop instead.

What the writer has not written when the driver is killed, `raysweep resume` (or
`raysweep sync`) writes from Ray's result files.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from typing import Any

from ray.tune import Callback

from raysweep.tracking import SweepTracker, TrialWriter, _TrialView, result_step

logger = logging.getLogger("raysweep.tracking")

#: how long the end of a sweep waits for the writer to catch up
DRAIN_WAIT_S = 600.0
WRITER_ENV = "RAYSWEEP_MLFLOW_WRITER"


class MLflowTrialCallback(Callback):
    """Logs every trial as a child run of the sweep's parent run (see :class:`TrialWriter`)."""

    def __init__(self, tracker: SweepTracker, flush_every: float = 1.0) -> None:
        self.tracker = tracker
        self.flush_every = flush_every
        #: trial id -> [(resource, validation metric, seconds since the sweep started)]
        self.history: dict[str, list[tuple[float, float, float]]] = {
            k: list(v) for k, v in getattr(tracker, "resumed_history", {}).items()
        }
        self._started = getattr(tracker, "started", time.time())
        self._session_started = time.time()
        self._exploits_sent = 0
        self._channel: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment; a restored sweep makes a new one.
        return {"tracker": self.tracker, "flush_every": self.flush_every}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["tracker"], state["flush_every"])

    def start(self) -> None:
        """Start the writer (before Tune starts, so that it is ready by the first trial)."""
        if self._channel is None:
            args = (self.tracker, self._session_started, self.flush_every)
            if os.environ.get(WRITER_ENV) == "inline":
                self._channel = _InlineChannel(*args)
            else:
                try:
                    self._channel = _ProcessChannel(*args)
                except OSError as exc:
                    logger.warning("raysweep: cannot start the MLflow writer process (%s); writing on Tune's loop", exc)
                    self._channel = _InlineChannel(*args)

    def _send(self, kind: str, *args: Any) -> None:
        self.start()
        # PBT's exploits happen in the scheduler, before Tune tells the callbacks of the result.
        exploits = self.tracker.exploits
        while self._exploits_sent < len(exploits):
            self._channel.send("add_exploit", exploits[self._exploits_sent])
            self._exploits_sent += 1
        self._channel.send(kind, *args)

    # -- Tune callback hooks -------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._send("trial_started", _TrialView.of(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        value = result.get(self.tracker.metric_key)
        step = result_step(result, self.tracker.integer_resource)
        if isinstance(value, (int, float)) and step > self.tracker.logged_through.get(trial.trial_id, -1):
            self.history.setdefault(trial.trial_id, []).append(
                (float(result.get("resource", step)), float(value), time.time() - self._started)
            )
        self._send("trial_result", _TrialView.of(trial), dict(result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._send("trial_completed", _TrialView.of(trial))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        view = _TrialView.of(trial, errors=True)
        if view.last_result:
            # The retry repeats the steps since its last checkpoint: they are in the history already.
            logged, step = self.tracker.logged_through, result_step(view.last_result, self.tracker.integer_resource)
            logged[trial.trial_id] = max(logged.get(trial.trial_id, -1), step)
        self._send("trial_recovered", view)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._send("trial_errored", _TrialView.of(trial, errors=True))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._send("experiment_ended", [_TrialView.of(trial) for trial in trials])
        self.wait_idle(DRAIN_WAIT_S)

    # -- for the sweep's end -------------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """Wait until the writer has written every event so far; False if it could not in time."""
        return self._channel is None or self._channel.wait(timeout)

    def close_open_runs(self, status: str, reason: str) -> None:
        """End every trial run still open (the sweep stopped around them), then stop the writer."""
        if self._channel is None:
            return
        self._send("close_open_runs", status, reason)
        if not self.wait_idle(DRAIN_WAIT_S):
            logger.warning(
                "raysweep: the MLflow writer did not finish within %.0f s; `raysweep sync %s` writes the rest",
                DRAIN_WAIT_S, self.tracker.sweep_name,
            )  # fmt: skip
        self._channel.stop()


class _InlineChannel:
    """The writer on the caller's thread."""

    def __init__(self, tracker: SweepTracker, session_started: float, flush_every: float) -> None:
        self.writer = TrialWriter(tracker, session_started, flush_every)

    def send(self, kind: str, *args: Any) -> None:
        getattr(self.writer, kind)(*args)

    def wait(self, timeout: float) -> bool:
        return True

    def stop(self) -> None:
        pass


class _ProcessChannel:
    """The writer in a process of its own, fed through a pipe by a thread of the driver."""

    def __init__(self, tracker: SweepTracker, session_started: float, flush_every: float) -> None:
        env = dict(os.environ)
        # The writer imports raysweep as this process does (a source checkout included).
        env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "raysweep._writer_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl-C for the sweep is the sweep's to handle
        )
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._answers: dict[int, threading.Event] = {}
        self._tokens = 0
        self.dead = False
        self._outbox.put(("init", tracker, session_started, flush_every))
        threading.Thread(target=self._feed, name="raysweep-mlflow-feed", daemon=True).start()
        threading.Thread(target=self._read, name="raysweep-mlflow-read", daemon=True).start()

    def send(self, kind: str, *args: Any) -> None:
        if not self.dead:
            self._outbox.put((kind, *args))

    def wait(self, timeout: float) -> bool:
        with self._lock:
            if self.dead:
                return False
            self._tokens += 1
            token, answered = self._tokens, threading.Event()
            self._answers[token] = answered
        self._outbox.put(("ping", token))
        return answered.wait(timeout) and not self.dead

    def stop(self, timeout: float = 30.0) -> None:
        self._outbox.put(("stop",))
        self._outbox.put(None)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _feed(self) -> None:
        stream = self.process.stdin
        while True:
            message = self._outbox.get()
            if message is None:
                break
            try:
                pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)
                stream.flush()
            except (OSError, ValueError):  # the writer is gone
                self._died()
                break
        try:
            stream.close()
        except OSError:
            pass

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            try:
                token = pickle.load(stream)
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            with self._lock:
                answered = self._answers.pop(token, None)
            if answered is not None:
                answered.set()
        self._died()

    def _died(self) -> None:
        with self._lock:
            if not self.dead and self.process.poll() not in (None, 0):
                logger.warning("raysweep: the MLflow writer process stopped; `raysweep sync` writes what it missed")
            self.dead = True
            answers, self._answers = list(self._answers.values()), {}
        for answered in answers:
            answered.set()
