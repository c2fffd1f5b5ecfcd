"""The ``raysweep`` command line: every command, one error-to-exit-code group, one summary printer."""

from raysweep.cli.main import main

__all__ = ["main"]
