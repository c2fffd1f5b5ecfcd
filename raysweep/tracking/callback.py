"""The Tune callback that hands every trial event to the MLflow writer process.

Writing a trial run costs a few MLflow calls (a database transaction each, or an HTTP round
trip). Made on Tune's event loop they would slow every trial; made on a thread of the driver
they would still take the driver's interpreter lock from Tune. So the callback only takes a
snapshot of the trial and passes it on, and :class:`raysweep.tracking.writer.TrialWriter` does the
writing in a process of its own (``raysweep.tracking._writer_process``), in the order Tune raised the
events. ``RAYSWEEP_MLFLOW_WRITER=inline`` writes on Tune's loop instead.

What the writer has not written when the driver is killed, `raysweep resume` (or
`raysweep sync`) writes from Ray's result files. When the writer dies and the sweep goes on
(killed, out of memory), the sweep starts a new one that writes first, from the same files, what
the dead one had not (see :meth:`MLflowTrialCallback._replace_dead_writer`).
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import queue
import signal
import subprocess
import threading
import time
from typing import Any

from ray.tune import Callback

from raysweep.tracking import schema
from raysweep.tracking.store import SweepTracker
from raysweep.tracking.writer import TrialView, TrialWriter

logger = logging.getLogger("raysweep.tracking")

#: how long the end of a sweep waits for the writer to catch up
DRAIN_WAIT_S = 600.0
WRITER_ENV = "RAYSWEEP_MLFLOW_WRITER"
#: how many writers a sweep starts after the first, each when the one before it died
WRITER_RESTARTS = 3


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
        # Where the time budget counts from: a resumed sweep's earlier sessions spent part of it.
        self._session_started = time.time() - float(getattr(tracker, "budget_used", 0.0) or 0.0)
        self._exploits_sent = 0
        self._channel: Any = None
        #: Tune's trials (the list it passes to every hook), for a writer that takes over
        self._trials: list = []
        #: the trials that ended in this session: trial id -> the event that ended it
        self._ended: dict[str, tuple[str, TrialView]] = {}
        #: the sweep's end as sent to the writer: experiment_ended, then close_open_runs
        self._final: list[tuple[Any, ...]] = []
        #: how each writer that died ended ("was killed by SIGKILL")
        self._deaths: list[str] = []
        self._stopped = False
        #: trial id -> the folder Ray records the trial's results in, as of the experiment's end
        self._folders: dict[str, str] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment; a restored sweep makes a new one.
        return {"tracker": self.tracker, "flush_every": self.flush_every}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["tracker"], state["flush_every"])

    def start(self, process: Any = None) -> None:
        """Start the writer (before Tune starts, so that it is ready by the first trial), in ``process`` if given."""
        if self._channel is None:
            args = (self.tracker, self._session_started, self.flush_every)
            if os.environ.get(WRITER_ENV) == "inline":
                self._channel = _InlineChannel(*args)
                if process is not None:  # started early, not needed
                    process.kill()
            else:
                try:
                    self._channel = _ProcessChannel(*args, process=process)
                except OSError as exc:
                    logger.warning("raysweep: cannot start the MLflow writer process (%s); writing on Tune's loop", exc)
                    self._channel = _InlineChannel(*args)

    def _send(self, kind: str, *args: Any) -> None:
        self.start()
        if getattr(self._channel, "dead", False):
            self._replace_dead_writer()
        # PBT's exploits happen in the scheduler, before Tune tells the callbacks of the result.
        exploits = self.tracker.exploits
        while self._exploits_sent < len(exploits):
            self._channel.send("add_exploit", exploits[self._exploits_sent])
            self._exploits_sent += 1
        self._channel.send(kind, *args)

    def _replace_dead_writer(self) -> bool:
        """Start a writer in place of one that died; False when no new one runs.

        The new writer starts at once, not at the sweep's end: MLflow stays current while the
        sweep goes on (a writer lost in the first minutes would otherwise leave it stale for the
        rest of a long sweep), and the trials still running go on logging to it. Its first job
        is the replay that `raysweep sync` does, from Ray's result files, minus the ending of
        runs: it finds the dead writer's runs again by their trial-id tag (no second run for a
        trial) and writes only the steps MLflow lacks. That covers every result sent to the dead
        writer: Tune's JSON logger writes (and flushes) each result right after this callback
        saw it, before Tune raises its next event, so by the time the death is noticed here,
        all of them are in the files. The results sent from now on follow the replay in order
        and are skipped up to the last step it wrote, so no step is written twice. Ends of
        trials the dead writer may have missed are sent again (a run ended already stays as it
        is), then the sweep's end, if it came.
        """
        if self._stopped or len(self._deaths) > WRITER_RESTARTS:
            return False
        dead = self._channel
        self._deaths.append(dead.how_it_ended())
        dead.stop(timeout=5.0)
        if len(self._deaths) > WRITER_RESTARTS:
            logger.warning("raysweep: the MLflow writer process %s, for the %d. time; no new one is started", self._deaths[-1], len(self._deaths))
            return False
        logger.warning(
            "raysweep: the MLflow writer process %s; a new one writes what it had not, from Ray's results", self._deaths[-1]
        )
        tracker = copy.copy(self.tracker)
        tracker.exploits = list(self.tracker.exploits)  # the new writer is told of these already
        try:
            channel = _ProcessChannel(tracker, self._session_started, self.flush_every)
        except OSError as exc:
            self._deaths.append(f"could not be started again ({exc})")
            self._deaths.extend([self._deaths[-1]] * WRITER_RESTARTS)  # no more tries
            return False
        self._channel = channel
        self._exploits_sent = len(tracker.exploits)
        channel.send("replay", list(trial_folders(self._trials, self._folders).values()))
        for message in self._ended.values():
            channel.send(*message)
        for message in self._final:
            channel.send(*message)
        return True

    # -- Tune callback hooks -------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trials = trials
        self._send("trial_started", TrialView.of(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        value = result.get(self.tracker.metric_key)
        step = schema.result_step(result, self.tracker.integer_resource)
        if isinstance(value, (int, float)) and step > self.tracker.logged_through.get(trial.trial_id, -1):
            self.history.setdefault(trial.trial_id, []).append(
                (float(result.get(schema.RESOURCE, step)), float(value), time.time() - self._started)
            )
        self._trials = trials
        self._send("trial_result", TrialView.of(trial), dict(result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trials = trials
        self._ended[trial.trial_id] = ("trial_completed", TrialView.of(trial))
        self._send(*self._ended[trial.trial_id])

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        view = TrialView.of(trial, errors=True)
        if view.last_result:
            # The retry repeats the steps since its last checkpoint: they are in the history already.
            logged, step = self.tracker.logged_through, schema.result_step(view.last_result, self.tracker.integer_resource)
            logged[trial.trial_id] = max(logged.get(trial.trial_id, -1), step)
        self._send("trial_recovered", view)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trials = trials
        self._ended[trial.trial_id] = ("trial_errored", TrialView.of(trial, errors=True))
        self._send(*self._ended[trial.trial_id])

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._trials = trials
        # Taken while Ray runs: a writer found dead after Ray has shut down still gets them.
        self._folders = trial_folders(trials, {})
        self._final.append(("experiment_ended", [TrialView.of(trial) for trial in trials]))
        # Not waited for here: the writer catches up while the sweep refits its best config and
        # logs its outcome, and the sweep's end (close_open_runs) waits for it.
        self._send(*self._final[-1])

    # -- for the sweep's end -------------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """Wait until the writer has handled every event so far (a writer that died is replaced
        first); False if that could not be done in time."""
        if self._channel is None:
            return True
        deadline = time.monotonic() + timeout
        while not self._channel.wait(max(0.0, deadline - time.monotonic())):
            if not getattr(self._channel, "dead", False) or time.monotonic() >= deadline or not self._replace_dead_writer():
                return False
        return True

    def close_open_runs(self, status: str, reason: str) -> str | None:
        """End every trial run still open (the sweep stopped around them), then stop the writer.

        Returns what went wrong when a writer died and MLflow still lacks part of the sweep
        (None when it has it all, or when no writer died).
        """
        if self._channel is None:
            return None
        self._final.append(("close_open_runs", status, reason))
        self._send(*self._final[-1])
        handled = self.wait_idle(DRAIN_WAIT_S)
        lacking = getattr(self._channel, "unwritten", None) if handled else None
        dead = getattr(self._channel, "dead", False)
        self._stopped = True
        self._channel.stop()
        if not self._deaths:
            if not handled:
                logger.warning(
                    "raysweep: the MLflow writer did not finish within %.0f s; `raysweep sync %s` writes the rest",
                    DRAIN_WAIT_S, self.tracker.sweep_name,
                )  # fmt: skip
            return None
        if handled and lacking is None:
            return None
        what = f"the MLflow writer process {self._deaths[0]}"
        if handled:
            return f"{what}, and the one started in its place could not complete the tracking: {lacking}"
        if dead:
            return f"{what}, and so did the {len(self._deaths) - 1} started in its place"
        return f"{what}, and the one started in its place did not finish within {DRAIN_WAIT_S:.0f} s"


def trial_folders(trials: list, known: dict[str, str]) -> dict[str, str]:
    """Trial id -> the folder Ray records the trial's results in.

    Tune works the folder out from Ray's session, so once Ray has shut down (the sweep's end
    may find its writer dead only then) the folders ``known`` from earlier are used.
    """
    folders = dict(known)
    for trial in trials:
        try:
            folder = trial.local_path
        except Exception:  # Ray has shut down
            continue
        if folder:
            folders[trial.trial_id] = str(folder)
    return folders


class _InlineChannel:
    """The writer on the caller's thread."""

    def __init__(self, tracker: SweepTracker, session_started: float, flush_every: float) -> None:
        self.writer = TrialWriter(tracker, session_started, flush_every)

    def send(self, kind: str, *args: Any) -> None:
        if kind == "add_exploit":
            # The writer shares the callback's tracker, and so its list of exploits: it reads the
            # exploit there already (appending it again would feed the callback's loop forever).
            return
        self.writer.take(kind, *args)

    def wait(self, timeout: float) -> bool:
        return True

    def stop(self, timeout: float = 0.0) -> None:
        pass


class _ProcessChannel:
    """The writer in a process of its own, fed through a pipe by a thread of the driver."""

    def __init__(self, tracker: SweepTracker, session_started: float, flush_every: float, process: Any = None) -> None:
        from raysweep.tracking._writer_process import spawn

        # ``process``: one started with the sweep (see start_trial_logging), MLflow imported by now.
        self.process = process if process is not None and process.poll() is None else spawn(tracker.tracking_uri)
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._answers: dict[int, threading.Event] = {}
        self._tokens = 0
        self.dead = False
        #: what the writer had not written to MLflow when it last answered (None: nothing)
        self.unwritten: str | None = None
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

    def how_it_ended(self) -> str:
        """How the writer process ended, in words ("was killed by SIGKILL")."""
        try:
            code = self.process.wait(5)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

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
                token, self.unwritten = pickle.load(stream)
            except (EOFError, OSError, pickle.UnpicklingError, TypeError, ValueError):
                break
            with self._lock:
                answered = self._answers.pop(token, None)
            if answered is not None:
                answered.set()
        self._died()

    def _died(self) -> None:
        # The sweep's callback notices (``dead``), says so and starts another writer.
        with self._lock:
            self.dead = True
            answers, self._answers = list(self._answers.values()), {}
        for answered in answers:
            answered.set()


def start_trial_logging(tracker: SweepTracker, process: Any = None) -> MLflowTrialCallback:
    """The Tune callback that logs the sweep's trials, its writer started (before Tune starts);
    ``process``: a writer process started earlier (``_writer_process.spawn``), to use."""
    callback = tracker.trial_callback = MLflowTrialCallback(tracker)
    callback.start(process)
    return callback
