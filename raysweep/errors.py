"""Errors raysweep reports to its users."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """A NumPy or pandas scalar as the Python value it holds, for messages (``7``, not ``np.int64(7)``)."""
    return value.item() if hasattr(value, "item") else value


class UserError(Exception):
    """A problem with what the user asked for: a recipe, a dataset, a flag.

    The message is one line that names the file, key or column, the value, the rule and the
    fix. The CLI prints it without a traceback and exits with code 2.
    """

    exit_code = 2


class SweepFailed(Exception):
    """The sweep itself failed (for example every trial raised). The CLI exits with code 1."""

    exit_code = 1


class TrackingIncomplete(Exception):
    """The sweep ran, but MLflow lacks part of it; the message says what happened and how to
    write the rest. ``result`` is the sweep's outcome all the same. The CLI exits with code 1."""

    exit_code = 1

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class SweepInterrupted(Exception):
    """The sweep was stopped (Ctrl-C) with its state saved; the message says how to resume.
    ``name``: the sweep's, when it had one."""

    exit_code = 130

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class NothingToResume(Exception):
    """``raysweep resume`` of a complete sweep (its outcome logged, whether it ran all its trials or
    its own rule, ``--stop-at`` or ``--patience``, ended it): its result stands. The CLI prints the message and exits 0, as a command
    whose goal is met already does (a retry loop around ``resume`` ends). ``name``: the sweep's."""

    exit_code = 0

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name
