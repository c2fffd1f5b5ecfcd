"""How the sweep's trials stood when Tune came back: the Tune callback that notes it."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from ray.tune import Callback

from raysweep.tracking import schema


class TrialLedger(Callback):
    """Notes each trial's final status and whether its last result was ``done``.

    Tune calls ``on_experiment_end`` however the experiment ends (finished, interrupted), with
    every trial: the runner reads this ledger to tell an interrupted sweep from a finished one.
    """

    def __init__(self) -> None:
        #: (Tune's status, whether the last result carried ``done``) of every trial; a trial the
        #: sweep's own end cut short counts as done
        self.trials: list[tuple[str, bool]] = []
        #: the folders of the trials the searcher made but that never started (a spent time
        #: budget, or the sweep's own end)
        self.never_started: set[str] = set()
        self._started: set[str] = set()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started.add(trial.trial_id)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.trials = [(trial.status, trial_done(trial) or ended_unstarted(trial, self._started)) for trial in trials]
        # Not started and nothing reported, whatever its status: at the experiment's end (a spent
        # time budget, a stopper) Tune marks TERMINATED every trial it has asked an actor for,
        # started or not. A trial that failed before it started is one of the sweep (its error is
        # logged), and so is one that reported before (a retry, or an earlier session's) and waits.
        self.never_started = {
            str(trial.path)
            for trial in trials
            if trial.status != "ERROR" and trial.trial_id not in self._started and not _last_result(trial)
        }


def ended_unstarted(trial: Any, started: Container[str]) -> bool:
    """Whether ``trial`` ended without running in this session though it reported before: it had
    ended in an earlier one, or the scheduler stopped it while it was paused (HyperBand does that
    with no new result, so without ``done``). Ctrl-C ends only the trials that run. A resume took
    such a trial for one more interruption, every time (``started``: this session's trials)."""
    return trial.status == "TERMINATED" and trial.trial_id not in started and reported(trial)


def reported(trial: Any) -> bool:
    """Whether ``trial`` has reported a result (in this session or an earlier one)."""
    return bool(_last_result(trial))


def trial_done(trial: Any) -> bool:
    """Whether Tune's last result of ``trial`` says it ended: ``done`` (completed, or stopped by the
    scheduler) or cut short by the sweep's own rule. A trial Ctrl-C ended is neither."""
    return _ended(_last_result(trial))


def budget_spent(time_budget: float | None, elapsed: float) -> bool:
    """Whether a sweep ``elapsed`` seconds into its time budget has spent it (Tune ends the trials
    running then; within a tenth of the budget counts, as Tune stops a little early)."""
    return bool(time_budget) and elapsed >= 0.9 * float(time_budget or 0)


def _ended(last: dict[str, Any]) -> bool:
    return bool(last.get("done") or last.get(schema.SWEEP_STOP_RESULT))


def _last_result(trial: Any) -> dict[str, Any]:
    # The recorded result: before a trial's first report, Trial.last_result waits on a remote call.
    metadata = getattr(trial, "run_metadata", None)
    return dict((metadata.last_result if metadata is not None else trial.last_result) or {})
