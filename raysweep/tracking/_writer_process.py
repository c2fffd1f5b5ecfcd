"""The process that writes a sweep's trial runs to MLflow: ``python -m raysweep.tracking._writer_process``.

It reads pickled messages from stdin, in order: first ``("init", tracker, session_started,
flush_every)``, then Tune's events as ``(method, *args)`` of :class:`raysweep.tracking.writer.TrialWriter`
(``("replay", trial_folders)`` first when it takes over from a writer that died), ``("ping",
token)`` (answered on stdout with ``(token, what is not written yet or None)`` once everything
before it is handled) and ``("stop",)``.
It runs at nice 10 (ranked below the sweep where the kernel schedules processes one by one; under
Linux's autogroup its session's group shares the CPU with the sweep's, see
:data:`raysweep.tracking.side_process.NICENESS`) and in a session of its own, so a Ctrl-C meant for
the sweep does not stop it halfway; when
the sweep's process dies (its end of the pipe closes), it writes what it holds and exits.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from typing import Any

logger = logging.getLogger("raysweep.tracking")

#: the argument that tells the process its store is a database (its store module is imported early)
SQL_STORE = "--sql-store"


def spawn(tracking_uri: str | None = None) -> subprocess.Popen:
    """Start a writer process; it imports MLflow (and, for a database ``tracking_uri``, its SQL
    store) at once, then waits for its "init". Started as a sweep starts, its imports run while
    the sweep prepares its data and Tune, not while the first trials do."""
    from raysweep.tracking.side_process import spawn as spawn_side

    return spawn_side("raysweep.tracking._writer_process", *([SQL_STORE] if is_database(tracking_uri) else []))


def is_database(tracking_uri: str | None) -> bool:
    """Whether MLflow opens ``tracking_uri`` with its SQLAlchemy store (the writer imports that store early)."""
    return bool(tracking_uri) and not str(tracking_uri).startswith(("http:", "https:", "databricks", "file:"))


def suits(process: Any, tracking_uri: str | None) -> bool:
    """Whether a writer ``process`` started by :func:`spawn`, still running, can write to ``tracking_uri``'s store."""
    return process.poll() is None and (SQL_STORE in process.args) == is_database(tracking_uri)


def prepare_environment() -> None:
    """The writer's MLflow settings, set in the writer itself: the command line starts it before
    the sweep sets them in its own process (see :func:`raysweep.sweep.early.start_writer`)."""
    from raysweep.tracking.store import sweep_client_defaults, write_sqlite_lightly

    write_sqlite_lightly()
    sweep_client_defaults()


def main() -> int:
    from raysweep.tracking.side_process import detach

    inbox, outbox = detach()

    from raysweep.tracking.writer import TrialWriter

    prepare_environment()
    # MLflow's import (about a second) before the first message: a writer started early (see
    # spawn) has it done by the first trial. The store itself opens with "init".
    import mlflow.tracking  # noqa: F401

    if SQL_STORE in sys.argv:
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    from raysweep.tracking.writer_lock import hold, release

    writer = lock = None
    while True:
        try:
            message = pickle.load(inbox)
        except EOFError:
            # The sweep's process is gone: what it sent is written, the runs stay open for
            # `raysweep resume` (or `raysweep sync`) to end.
            if writer is not None:
                writer.flush_all()
                release(lock, writer.tracker.parent_run_id)
            return 0
        kind, args = message[0], message[1:]
        if kind == "init":
            writer = TrialWriter(*args)
            lock = hold(writer.tracker.parent_run_id)  # held until everything is written, or this process ends
        elif kind == "ping":
            pickle.dump((args[0], writer.unwritten() if writer is not None else None), outbox)
            outbox.flush()
        elif kind == "replay" and writer is not None:
            from raysweep.tracking.sync import replay_trial_folders

            writer.replay(*args, replay_trial_folders)
        elif kind == "stop":
            # Everything is written (the sweep waited for the last ping): skip the slow teardown.
            if writer is not None:
                release(lock, writer.tracker.parent_run_id)
            sys.stderr.flush()
            os._exit(0)
        elif writer is not None:
            try:
                writer.take(kind, *args)
            except Exception as exc:  # tracking never fails the sweep
                logger.warning("raysweep: MLflow logging failed in %s (the sweep goes on): %s", kind, exc)


if __name__ == "__main__":
    sys.exit(main())
