"""The one place raysweep's errors become a line on stderr and an exit code."""

from __future__ import annotations

from typing import Any

import click

from raysweep.errors import NothingToResume, SweepFailed, SweepInterrupted, TrackingIncomplete, UserError


class RaysweepGroup(click.Group):
    """A click group that turns raysweep's own errors into one line on stderr and the documented exit code.

    Every raysweep command group uses it, so a group run on its own (``raysweep cluster``)
    answers the same way as ``raysweep``.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
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
