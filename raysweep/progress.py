"""A live one-panel view of a sweep (instead of Ray's pages of tables)."""

from __future__ import annotations

import math
import time
from typing import Any

from ray.tune import Callback

from raysweep.best import better
from rich.console import Console
from rich.live import Live
from rich.table import Table


class LiveProgress(Callback):
    """Shows trials done / running / pending / failed, the best score so far and the elapsed time.

    The best score is the best validation score at any step of any trial so far: the one the
    sweep's result, leaderboard and refit end up with (see :mod:`raysweep.best`).

    On a terminal it redraws in place; elsewhere (a CI log, a pipe) it prints a line every
    ``log_every`` seconds.
    """

    def __init__(self, metric_key: str, mode: str, num_samples: int | None, console: Console | None = None,
                 log_every: float = 15.0) -> None:
        self.metric_key = metric_key
        self.mode = mode
        self.num_samples = num_samples
        self.console = console or Console(stderr=True)
        self.log_every = log_every
        self.started = time.monotonic()
        self.best: float | None = None
        self._live: Live | None = None
        self._last_line = 0.0
        self._counts: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles callbacks with the experiment state; a console is not picklable.
        state = self.__dict__.copy()
        state["console"] = None
        state["_live"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.console = Console(stderr=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric_key)
        if isinstance(value, (int, float)) and math.isfinite(value) and better(float(value), self.best, self.mode):
            self.best = float(value)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        self._counts = counts
        if self.console.is_terminal:
            if self._live is None:
                self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
                self._live.start()
            else:
                self._live.update(self._render())
        elif time.monotonic() - self._last_line >= self.log_every:
            self._last_line = time.monotonic()
            self.console.print(self._line(), highlight=False)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.on_step_end(0, trials)
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None
        else:
            self.console.print(self._line(), highlight=False)

    def _line(self) -> str:
        c = self._counts
        best = "-" if self.best is None else f"{self.best:.5g}"
        return (
            f"trials: {c.get('TERMINATED', 0)} done, {c.get('RUNNING', 0)} running, "
            f"{c.get('PENDING', 0) + c.get('PAUSED', 0)} waiting, {c.get('ERROR', 0)} failed | "
            f"best {self.metric_key} {best} | {time.monotonic() - self.started:.0f}s"
        )

    def _render(self) -> Table:
        c = self._counts
        table = Table.grid(padding=(0, 2))
        table.add_row(
            f"[green]{c.get('TERMINATED', 0)} done[/]",
            f"[cyan]{c.get('RUNNING', 0)} running[/]",
            f"{c.get('PENDING', 0) + c.get('PAUSED', 0)} waiting",
            f"[red]{c.get('ERROR', 0)} failed[/]",
            f"best {self.metric_key}: [bold]{'-' if self.best is None else f'{self.best:.5g}'}[/]",
            f"{time.monotonic() - self.started:.0f}s",
        )
        return table
