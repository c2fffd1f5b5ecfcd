"""Standard streams that outlive their reader: ``raysweep run ... | head`` or a log viewer closed
while the sweep runs.

A reader that goes away (``head`` after its lines, a closed terminal tab's pipe) makes the next
write to its stream raise :class:`BrokenPipeError` (Python ignores ``SIGPIPE``). Raised inside the
live view or a summary line, it ended the sweep as failed, or made a finished one exit 1 (click's
broken-pipe exit). What the stream is for is telling the user; the user stopped reading, so the
rest of the writes go to ``os.devnull`` and the sweep's outcome alone sets the exit code.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


class ReaderGone:
    """``stream`` whose writes and flushes stop failing once its reader has gone: its file
    descriptor then points to ``os.devnull`` (what Python's documentation does for ``SIGPIPE``),
    for this process's every writer to it, Rich's and Ray's included."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def outlive_readers() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`ReaderGone` (once; a stream without a file
    descriptor, as a test's capture, is left as it is)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, ReaderGone):
            continue
        try:
            stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
        setattr(sys, name, ReaderGone(stream))
