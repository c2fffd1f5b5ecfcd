"""The one place raysweep's errors become a line on stderr and an exit code."""

from __future__ import annotations

from typing import Any

import click

from raysweep.errors import NothingToResume, SweepFailed, SweepInterrupted, TrackingIncomplete, UserError


class _UsageLine(click.UsageError):
    """click's usage error (an unknown option, a value of the wrong type, a missing argument) as
    one line on stderr, like raysweep's own errors: the message and where the help is."""

    @classmethod
    def of(cls, exc: click.UsageError) -> click.UsageError:
        if isinstance(exc, (cls, getattr(click.exceptions, "NoArgsIsHelpError", cls))):  # click 8.2+
            return exc  # a bare ``raysweep`` prints its help, as click does
        return cls(exc.format_message(), ctx=exc.ctx)

    def show(self, file: Any = None) -> None:
        message = self.format_message()
        if message[-1:] not in (".", "?", "!", ")"):
            message += "."
        where = f" See '{self.ctx.command_path} --help'." if self.ctx is not None else ""
        click.echo(f"error: {message}{where}", err=True)


class RaysweepGroup(click.Group):
    """A click group that turns raysweep's own errors into one line on stderr and the documented exit code.

    Every raysweep command group uses it, so a group run on its own (``raysweep cluster``)
    answers the same way as ``raysweep``.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise _UsageLine.of(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a subcommand's arguments, or an unknown subcommand
            raise _UsageLine.of(exc) from None
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except SweepFailed as exc:
            click.echo(f"sweep failed: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except NothingToResume as exc:
            click.echo(str(exc), err=True)
            ctx.exit(exc.exit_code)
        except SweepInterrupted as exc:
            click.echo(str(exc), err=True)
            ctx.exit(exc.exit_code)
        except TrackingIncomplete as exc:
            click.echo(f"raysweep: {exc}", err=True)
            ctx.exit(exc.exit_code)

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        """Run the command line; a process started as ``raysweep ...`` writes on when its reader has
        gone (:mod:`raysweep.cli._streams`) and exits without a final garbage collection.

        At exit Python collects every object cycle of the interpreter once more, and after a
        sweep (Ray, MLflow, scikit-learn, pandas loaded) that took 1.5 s after the summary was
        printed. ``gc.freeze()`` leaves those objects out of it; files and processes close as
        before (exit handlers still run). Only when the arguments come from the process's own
        command line: a caller that invokes the group in its own process keeps its collector.
        """
        if args is not None:
            return super().main(args, *rest, **kwargs)
        from raysweep.cli._streams import outlive_readers

        outlive_readers()  # ``raysweep run ... | head``: the sweep runs on, its outcome sets the exit code
        try:
            return super().main(args, *rest, **kwargs)
        finally:
            import gc

            gc.freeze()
