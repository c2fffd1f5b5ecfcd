"""What a person watching a sweep sees: its trials as they run, then each phase after them.

On a terminal, a live view on stderr (instead of Ray's pages of tables): trials done out of the
total, each running trial's step along the recipe's resource, the best score so far and its
trial, the time elapsed and an estimate of the time left, and below them what the sweep is doing
once its trials are over (refit, logging, plots). Elsewhere (a pipe, a CI log, ``--json``) one
line per change on stderr, and one line per phase.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from typing import Any, Callable

from ray.tune import Callback

from raysweep.best import better, made_order
from raysweep.sweep.ledger import EndedElsewhere, budget_spent, reported, trial_done
from raysweep.tracking.schema import trial_name
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

#: how often the live view redraws: often enough for a step to show, rarely enough to cost nothing
REFRESH_PER_SECOND = 2
#: running trials listed by name; more are counted in one line
SHOWN_RUNNING = 12


def duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``1h02m``: a duration as a person reads it (``<1s`` under half a second)."""
    seconds = max(0, int(round(seconds)))
    if seconds == 0:
        return "<1s"
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class LiveProgress(Callback):
    """The sweep's progress for a person: a live view on a terminal, one line per change elsewhere.

    ``total`` is how many trials the sweep runs (None: not known up front), ``resource`` the
    recipe's resource (its ``name``, ``per_step``, ``max_steps`` and ``at(steps)``),
    ``concurrency`` how many trials run at once, ``time_budget`` the sweep's budget in seconds
    (``budget_used`` of it spent by a resumed sweep's earlier sessions) and ``started`` the clock reading the elapsed time counts from. The best score is the best
    validation score at any step of any trial so far: the one the sweep's result, leaderboard
    and refit end up with (see :mod:`raysweep.best`). :meth:`phase` reports what the sweep does
    after its trials; :meth:`close` ends the view.
    """

    def __init__(
        self,
        metric_key: str,
        mode: str,
        *,
        total: int | None = None,
        resource: Any = None,
        concurrency: int | None = None,
        time_budget: float | None = None,
        budget_used: float = 0.0,
        started: float | None = None,
        live: bool | None = None,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
        log_every: float = 60.0,
    ) -> None:
        self.metric_key = metric_key
        self.mode = mode
        self.total = total if total and total > 0 else None
        self.resource = resource
        self.concurrency = concurrency
        self.time_budget = time_budget
        #: seconds of the budget a resumed sweep's earlier sessions spent (Tune goes on with the rest)
        self.budget_used = budget_used
        self.clock = clock
        self.started = clock() if started is None else started
        self.console = console or Console(stderr=True, highlight=False)
        #: None: the live view when the console is a terminal
        self.live = live
        self.log_every = log_every
        self.best: float | None = None
        self.best_trial: str | None = None
        self.best_steps = 0
        #: the best's resource when it came from before a resume (see :meth:`resumed`), else None
        self._best_resource: float | None = None
        #: where the best trial came in the order Tune made the trials (None: not known, after a resume)
        self._best_order: tuple[int, str] | None = None
        self._fit_started = self.started
        #: trials whose completion Tune reported in this session
        self._completed: set[str] = set()
        self._ended = EndedElsewhere()
        self._status: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._began: dict[str, float] = {}
        self._durations: list[float] = []
        self._phase: str | None = None
        #: set once Tune's trials are over: nothing is left to estimate then
        self._trials_over = False
        #: set when the sweep's own rule (``--stop-at``, ``--patience``) ended it: the trials not made are not waiting
        self._ended_early = False
        #: after a resume, the trials that share its best score (trial id -> resource), until Tune's
        #: trials tell which was made first (see :meth:`resumed`)
        self._resumed_ties: dict[str, float] = {}
        self._live: Live | None = None
        #: puts Ctrl-Z's handler back as it was, once the live view ends (see :func:`_cursor_through_suspend`)
        self._unhook_suspend: Callable[[], None] | None = None
        self._last_state: tuple | None = None
        self._last_printed = -math.inf
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles callbacks with the experiment state; a console, a live view and a lock are not picklable.
        state = self.__dict__.copy()
        state.update(console=None, _live=None, _lock=None, _unhook_suspend=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_best_order", None)  # a view saved by an earlier raysweep
        state.setdefault("budget_used", 0.0)
        state.setdefault("_ended", EndedElsewhere())
        state.setdefault("_trials_over", False)
        state.setdefault("_ended_early", False)
        state.setdefault("_resumed_ties", {})
        self.__dict__.update(state)
        self.console = Console(stderr=True, highlight=False)
        self._lock = threading.Lock()

    @property
    def drawing_live(self) -> bool:
        """Whether this view redraws in place (a terminal, not a dumb one: Rich never redraws
        there) rather than printing lines."""
        return self.console.is_terminal and not self.console.is_dumb_terminal if self.live is None else self.live

    # -- Ray Tune's hooks ------------------------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self._fit_started = self.clock()

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self._ended.step_begins(trials)
        if self._resumed_ties:
            with self._lock:
                self._settle_resumed_tie(trials)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        with self._lock:
            self._began.setdefault(trial.trial_id, self.clock())

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        with self._lock:
            steps = result.get("training_iteration")
            if isinstance(steps, int):
                self._steps[trial.trial_id] = steps
            value = result.get(self.metric_key)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                return
            order = made_order(getattr(trial, "experiment_tag", None), trial.trial_id)
            # Of equal scores the summary keeps the trial made first (raysweep.best), and so does this line.
            tie = float(value) == self.best and self._best_order is not None and order < self._best_order
            if better(float(value), self.best, self.mode) or tie:
                self.best = float(value)
                self.best_trial = trial_name(trial.trial_id)
                self.best_steps = steps if isinstance(steps, int) else 0
                self._best_resource = None
                self._best_order = order

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        with self._lock:
            self._completed.add(trial.trial_id)
        self._ended_trial(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended_trial(trial)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        with self._lock:
            self._status = {trial.trial_id: self._state(trial) for trial in trials}
        self._show()

    def resumed(self, history: dict[str, list[tuple[float, float, float]]]) -> None:
        """The best score from before a resume: ``history`` is each trial's (resource, value, time)
        as MLflow has them (:attr:`raysweep.tracking.store.SweepTracker.resumed_history`)."""
        with self._lock:
            for trial_id, points in history.items():
                for resource, value, _ in points:
                    if not math.isfinite(value):
                        continue
                    if better(value, self.best, self.mode):
                        self.best, self.best_trial, self._best_resource = value, trial_name(trial_id), resource
                        self._best_order, self._resumed_ties = None, {}
                    if value == self.best:
                        self._resumed_ties.setdefault(trial_id, resource)  # a trial's first step to reach it

    def _settle_resumed_tie(self, trials: list) -> None:
        """Of the trials that shared the best before a resume, the one Tune made first (as the
        summary keeps), once Tune's restored trials give their order."""
        orders = {t.trial_id: made_order(getattr(t, "experiment_tag", None), t.trial_id) for t in trials if t.trial_id in self._resumed_ties}
        if orders and self._best_resource is not None:  # the best is still one from before the resume
            first = min(orders, key=orders.__getitem__)
            self.best_trial, self._best_resource, self._best_order = trial_name(first), self._resumed_ties[first], orders[first]
        self._resumed_ties = {}

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._ended.step_begins(trials)  # a session that ended before its first step: they had all ended before
        with self._lock:
            self._trials_over = True
        self.on_step_end(0, trials)

    # -- after the trials ------------------------------------------------------------------------------------------
    def ended_early(self) -> None:
        """The sweep's own rule ended it: the trials of its count not made yet will not run."""
        with self._lock:
            self._ended_early = True
        self._show()

    def phase(self, text: str) -> None:
        """Say what the sweep is doing now (refitting, logging, drawing the plots): shown until the next phase."""
        with self._lock:
            self._phase = text
        if self.drawing_live:
            self._show()
            if self._live is not None:
                self._live.refresh()  # drawn now: a phase may end before the next refresh
        else:
            self.console.print(escape(text), soft_wrap=True)

    def close(self) -> None:
        """End the live view, leaving its last frame (without the phase) on the screen."""
        with self._lock:
            self._phase = None
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None
        if self._unhook_suspend is not None:
            self._unhook_suspend()
            self._unhook_suspend = None

    # -- what is shown ---------------------------------------------------------------------------------------------
    def _ended_trial(self, trial: Any) -> None:
        with self._lock:
            began = self._began.get(trial.trial_id)
            if began is not None:
                self._durations.append(self.clock() - began)

    def _show(self) -> None:
        if self.drawing_live:
            if self._live is None:
                self._live = Live(console=self.console, get_renderable=self.render, refresh_per_second=REFRESH_PER_SECOND)
                self._live.start()
                self._unhook_suspend = _cursor_through_suspend(self.console)
            return
        with self._lock:
            state = self._counts() + (self.best, self.best_trial)
        now = self.clock()
        if state != self._last_state or now - self._last_printed >= self.log_every:
            self._last_state, self._last_printed = state, now
            self.console.print(escape(self.line()), soft_wrap=True)

    def _state(self, trial: Any) -> str:
        """Tune's status of ``trial``, but ``STOPPED`` for one that Ctrl-C (or SIGTERM) ended before
        it was done: Tune marks it ``TERMINATED`` too, and ``raysweep resume`` runs it on, so it is
        waiting, not done. Done are the trials Tune reported complete, those whose last result says
        ``done`` (a resume's trials that ended before) or that the sweep's own rule cut short, and
        the trials running when a time budget ran out."""
        status = str(trial.status)
        if status != "TERMINATED" or trial.trial_id in self._completed:
            return status
        if self._ended.ended(trial):  # it had ended in an earlier session
            self._completed.add(trial.trial_id)
            return status
        if trial.trial_id not in self._began and not reported(trial):
            return "UNSTARTED"  # made by the searcher, never run (a spent budget ends it so): not a trial of the sweep
        if trial_done(trial):
            return status
        return status if budget_spent(self.time_budget, self._budget_elapsed()) else "STOPPED"

    def _budget_elapsed(self, now: float | None = None) -> float:
        """Seconds of the time budget spent: this session's since Tune began, and the earlier sessions'."""
        return (self.clock() if now is None else now) - self._fit_started + self.budget_used

    def _counts(self) -> tuple[int, int, int, int]:
        """(done, running, waiting, failed); waiting counts the trials not created yet when the total is known."""
        statuses = list(self._status.values())
        done, running, failed = statuses.count("TERMINATED"), statuses.count("RUNNING"), statuses.count("ERROR")
        waiting = statuses.count("PENDING") + statuses.count("PAUSED") + statuses.count("STOPPED")
        if self.total is not None and not self._ended_early and not budget_spent(self.time_budget, self._budget_elapsed()):
            waiting = max(waiting, self.total - done - running - failed)
        return done, running, waiting, failed

    def _at(self, steps: int) -> str:
        """``150 boosting_rounds``: the resource after ``steps`` steps."""
        if self.resource is None:
            return f"step {steps}"
        return f"{self.resource.at(steps):g} {self.resource.name}"

    def _best_text(self) -> tuple[str, str]:
        """The best score so far, and the trial and resource it came at ('' before any)."""
        if self.best is None:
            return "-", ""
        if self._best_resource is not None:
            at = f"{self._best_resource:g} {self.resource.name}" if self.resource is not None else f"{self._best_resource:g}"
        else:
            at = self._at(self.best_steps)
        return f"{self.best:.5g}", f"by {self.best_trial} at {at}"

    def estimate(self) -> tuple[float, str] | None:
        """The time left, in seconds, and how it was estimated; None when there is no basis yet.

        With a trial count: the finished trials' mean wall time × the trials not finished ÷ the
        trials that run at once (a running trial counts whole: rather long than short). With a
        time budget: what is left of it. With both, whichever is sooner.
        """
        now = self.clock()
        guesses: list[tuple[float, str]] = []
        done, running, waiting, failed = self._counts()
        if self.total is not None and self._durations:
            mean = sum(self._durations) / len(self._durations)
            to_go = max(0, self.total - done - failed)
            at_once = max(1, min(self.concurrency or running or 1, to_go or 1))
            times, by = ("×", "÷") if self._unicode else ("x", "/")
            guesses.append((mean * to_go / at_once, f"finished trials' mean {duration(mean)} {times} {to_go} to go {by} {at_once} at once"))
        if self.time_budget:
            guesses.append((max(0.0, self.time_budget - self._budget_elapsed(now)), f"time budget {duration(self.time_budget)}, counted from the trials' start"))
        return min(guesses, key=lambda guess: guess[0]) if guesses else None

    def line(self) -> str:
        """The one-line form: counts, the best so far and its trial, elapsed and left."""
        with self._lock:
            done, running, waiting, failed = self._counts()
            best, by = self._best_text()
            estimate = self.estimate() if self._phase is None and not self._trials_over and (running or waiting) else None
        of = f" of {self.total}" if self.total is not None else ""
        times = duration(self.clock() - self.started)
        if estimate is not None:
            times += f", about {duration(estimate[0])} left"
        return (
            f"trials: {done}{of} done, {running} running, {waiting} waiting, {failed} failed | "
            f"best {self.metric_key} {best} | " + (f"{by} | " if by else "") + times
        )

    @property
    def _unicode(self) -> bool:
        """Whether the console writes Unicode (``·``, ``→``): not to a terminal of a C locale."""
        return (self.console.encoding or "").lower().replace("-", "").startswith("utf")

    def render(self) -> RenderableType:
        """The live view's frame: counts and times, the best so far, each running trial's step, the phase."""
        with self._lock:
            return self._render()

    def _render(self) -> RenderableType:
        done, running, waiting, failed = self._counts()
        summary = Table.grid(padding=(0, 2))
        dot = " · " if self._unicode else " - "
        counts = Text()
        counts.append(f"{done}" + (f" of {self.total}" if self.total is not None else "") + " done", style="green")
        counts.append(f"{dot}{running} running", style="cyan")
        counts.append(f"{dot}{waiting} waiting{dot}")
        counts.append(f"{failed} failed", style="red" if failed else "")
        summary.add_row("trials", counts)
        best, by = self._best_text()
        summary.add_row("best", Text.assemble(f"{self.metric_key} ", (best, "bold"), f" {by}" if by else ""))
        times = Text(f"{duration(self.clock() - self.started)} elapsed")
        estimate = self.estimate() if self._phase is None and not self._trials_over and (running or waiting) else None
        if estimate is not None:
            times.append(f"{dot}about {duration(estimate[0])} left")
            how = f" ({estimate[1]})"
            if len("trials  ") + len(times) + len(how) <= self.console.width:  # how it was estimated, if it fits on the line
                times.append(how, style="dim")
        summary.add_row("time", times)
        parts: list[RenderableType] = [summary]
        active = [t for t, status in self._status.items() if status == "RUNNING"]
        if active:
            table = Table.grid(padding=(0, 2))
            max_steps = self.resource.max_steps if self.resource is not None else None
            for trial_id in active[:SHOWN_RUNNING]:
                steps = self._steps.get(trial_id, 0)
                name = f"  {trial_name(trial_id)}"
                if max_steps:
                    where = f"{self.resource.at(steps):g}/{self._at(max_steps)}"
                    step = f" (step {steps}/{max_steps})" if self.resource.per_step != 1 else ""
                    # A narrow terminal keeps the trial's name and where it is whole: the step count, then the bar give way.
                    room = self.console.width - len(name) - 5 - len(where)  # the two gaps, and the last column
                    if step and room - len(step) >= 5:
                        where, room = where + step, room - len(step)
                    width = min(20, room)
                    bar: RenderableType = ProgressBar(total=max_steps, completed=steps, width=width) if width >= 5 else Text("")
                else:
                    where, bar = f"step {steps}", Text("")
                table.add_row(name, bar, where)
            parts.append(table)
            if len(active) > SHOWN_RUNNING:
                parts.append(Text(f"  and {len(active) - SHOWN_RUNNING} more running", style="dim"))
        if self._phase is not None:
            parts.append(Text(f"{'→' if self._unicode else '->'} {self._phase}", style="bold yellow"))
        return Group(*parts)


def _cursor_through_suspend(console: Console) -> Callable[[], None] | None:
    """Show the cursor while Ctrl-Z has the process stopped: the live view hides it, and the shell
    it returns to had none (until ``reset``). When the process continues (``fg``) the cursor is
    hidden again and the view draws on. Returns what puts the previous handler back; None when
    another handler is set, or off the main thread (where Python sets no handlers)."""
    if not hasattr(signal, "SIGTSTP") or threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTSTP)
    if previous not in (signal.SIG_DFL, None):
        return None

    live = [True]

    def suspend(signum: int, frame: Any) -> None:
        console.show_cursor(True)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        try:
            os.kill(os.getpid(), signal.SIGTSTP)  # stopped here until SIGCONT
        finally:
            if live[0]:  # the view ended meanwhile: the cursor stays shown
                signal.signal(signal.SIGTSTP, suspend)
                console.show_cursor(False)

    signal.signal(signal.SIGTSTP, suspend)

    def unhook() -> None:
        live[0] = False
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTSTP) is suspend:
            signal.signal(signal.SIGTSTP, previous)

    return unhook
