"""A trial writer that took over from one that died: it first writes, from Ray's results, what the dead one had not.

The replay is ``raysweep sync``'s (:func:`raysweep.tracking.sync.replay_trial_folders`), minus
the ending of runs: it finds the trial runs again by their trial-id tag, writes the steps MLflow
lacks, and hands the runs to the writer. Until it has succeeded, the writer opens and writes no
run (it would be a second run for a trial) and holds the trials' ends.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from raysweep.errors import UserError
from raysweep.tracking.store import check_reachable

#: how often a replay that failed (the tracking server away) is tried again
RETRY_S = 5.0


class Takeover:
    """The replay a new writer owes, and the events that wait for it."""

    def __init__(self, trial_folders: list[str], replayer: Callable[..., dict[str, Any]]) -> None:
        self.trial_folders = list(trial_folders)
        self.replayer = replayer
        self.done = False
        #: why the last try failed, in a few words
        self.error = ""
        self.tried = 0.0
        #: events (method name, arguments) held until the replay is done
        self.held: list[tuple[str, tuple[Any, ...]]] = []

    def ready(self, writer: Any, force: bool = False) -> bool:
        """Whether the replay is done (tried again here, at most every few seconds unless forced)."""
        if self.done:
            return True
        if not force and time.monotonic() - self.tried < RETRY_S:
            return False
        self.tried = time.monotonic()
        tracker = writer.tracker
        try:
            replayed = self.replayer(
                writer.client, self.trial_folders, experiment_id=tracker.experiment_id,
                parent_run_id=tracker.parent_run_id, sweep=tracker.sweep_name, integer_resource=tracker.integer_resource,
            )  # fmt: skip
        except Exception as exc:
            try:
                check_reachable(tracker.tracking_uri)
                self.error = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            except UserError:
                self.error = f"the tracking server {tracker.tracking_uri} does not answer"
            writer._warn_once(f"raysweep: cannot write the trial runs again from Ray's results ({self.error}); will retry")
            return False
        self.done = True
        writer.adopt(replayed)
        held, self.held = self.held, []
        for kind, args in held:
            getattr(writer, kind)(*args)
        return True
