"""How the sweep's trials stood when Tune came back: the Tune callback that notes it."""

from __future__ import annotations

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
        self._ended = EndedElsewhere()

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self._ended.step_begins(trials)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started.add(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended.completed(trial)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.trials = [(trial.status, trial_done(trial) or self._ended.ended(trial, trials)) for trial in trials]
        # Not started and nothing reported, whatever its status: at the experiment's end (a spent
        # time budget, a stopper) Tune marks TERMINATED every trial it has asked an actor for,
        # started or not. A trial that failed before it started is one of the sweep (its error is
        # logged), and so is one that reported before (a retry, or an earlier session's) and waits.
        self.never_started = {
            str(trial.path)
            for trial in trials
            if trial.status != "ERROR" and trial.trial_id not in self._started and not _last_result(trial)
        }


class EndedElsewhere:
    """The trials that ended other than by Ctrl-C though their last result lacks ``done``: those a
    resumed session found TERMINATED (they had ended in an earlier one: Tune never runs them again),
    and those Tune reported complete in this one (HyperBand stops a paused trial with no new
    result). A resume took such a trial for one more interruption, every time. Ctrl-C marks
    TERMINATED every trial Tune had asked an actor for, started or not: those are none of these."""

    def __init__(self) -> None:
        #: TERMINATED when this session's first step began (None: no step yet)
        self._before: set[str] | None = None
        self._completed: set[str] = set()

    def step_begins(self, trials: list) -> None:
        if self._before is None:
            self._before = {trial.trial_id for trial in trials if trial.status == "TERMINATED"}

    def completed(self, trial: Any) -> None:
        self._completed.add(trial.trial_id)

    def ended(self, trial: Any, trials: list | None = None) -> bool:
        """Whether TERMINATED ``trial`` is one of them. ``trials`` (all of them, at the experiment's
        end): a session that ended before its first step found every TERMINATED trial so."""
        if trial.status != "TERMINATED":
            return False
        if self._before is None and trials is not None:
            self.step_begins(trials)
        return trial.trial_id in (self._before or ()) or trial.trial_id in self._completed


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
