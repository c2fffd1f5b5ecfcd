"""The process that draws a sweep's charts: ``python -m raysweep.tracking._drawing_process``.

It imports matplotlib and raysweep's chart code as it starts (at nice 10, see
:mod:`raysweep.tracking.side_process`), then reads pickled jobs from stdin, one at a time: ``(name, args)``, where
``name`` is one of :data:`JOBS`. Each job is answered on stdout with ``("ok", value)`` or
``("error", message)``. It ends when stdin closes (the sweep is done, or its process died).
"""

from __future__ import annotations

import importlib
import pickle
import sys

#: what this process draws: name -> (module, function)
JOBS = {
    "plots": ("raysweep.tracking.outcome", "write_plots"),
    "importance": ("raysweep.tracking.importance", "write_importance_plot"),
}


def main() -> int:
    from raysweep.tracking.side_process import detach

    inbox, outbox = detach()
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
