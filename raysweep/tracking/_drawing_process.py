"""The process that draws a sweep's charts: ``python -m raysweep.tracking._drawing_process``.

It imports matplotlib and raysweep's chart code as it starts (at a lower priority than the
sweep), then reads pickled jobs from stdin, one at a time: ``(name, args)``, where
``name`` is one of :data:`JOBS`. Each job is answered on stdout with ``("ok", value)`` or
``("error", message)``. It ends when stdin closes (the sweep is done, or its process died).
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import sys

#: what this process draws: name -> (module, function)
JOBS = {
    "plots": ("raysweep.tracking.outcome", "write_plots"),
    "importance": ("raysweep.tracking.importance", "write_importance_plot"),
}
#: as the MLflow writer: the sweep's own work comes first, the charts use what it leaves
NICENESS = 10


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C for the sweep is the sweep's to handle
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    inbox, outbox = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # the pipe carries answers only
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    from matplotlib.collections import LineCollection  # noqa: F401

    functions = {name: getattr(importlib.import_module(module), function) for name, (module, function) in JOBS.items()}
    while True:
        try:
            name, args = pickle.load(inbox)
        except EOFError:
            return 0
        try:
            answer = ("ok", functions[name](*args))
        except Exception as exc:  # the sweep draws it itself, and says so if it fails there too
            answer = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(answer, outbox)
        outbox.flush()


if __name__ == "__main__":
    sys.exit(main())
