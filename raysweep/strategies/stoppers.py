"""When the whole sweep ends early: ``--stop-at`` and ``--patience`` as Ray Tune stoppers.

Tune asks a :class:`~ray.tune.stopper.Stopper` about every result (``__call__``: stop this
trial?) and, once per step of its loop, whether the experiment is over (``stop_all``). Tune's
``ExperimentPlateauStopper`` looks at the spread of the top results, not at how long the best has
stood, so ``--patience`` is :class:`PatienceStopper`, our own. Both note in words why they ended
the sweep (:attr:`SweepStopper.reason`); :class:`raysweep.strategies.stops.StopNotes` carries that
into the results of the trials it cut short, and tells the patience rule when a trial finishes.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

from ray.tune.stopper import CombinedStopper, Stopper

from raysweep.tracking import schema


def _better(value: float, than: float | None, mode: str) -> bool:
    return than is None or (value > than if mode == "max" else value < than)


class StepLimit(Stopper):
    """Ends a trial at the recipe's last step (what ``stop={"training_iteration": max_steps}`` does).

    Counted from the trial's own ``training_iteration``, not from the results this object has seen
    (as Tune's ``MaximumIterationStopper`` does), so a restored or PBT-exploited trial stops at the
    right step.
    """

    def __init__(self, max_steps: int) -> None:
        self.max_steps = max_steps

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return int(result.get("training_iteration", 0) or 0) >= self.max_steps

    def stop_all(self) -> bool:
        return False


class TargetStopper(Stopper):
    """``--stop-at``: the sweep ends as soon as a trial's validation score reaches ``target``."""

    def __init__(self, metric_key: str, mode: str, target: float) -> None:
        self.metric_key, self.mode, self.target = metric_key, mode, target
        #: why the sweep ended, once it has; and the trial that reached the target
        self.reason: str | None = None
        self.trial_id: str | None = None
        #: every trial whose result reached the target (several may in one round of results)
        self.reached: set[str] = set()

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self.metric_key)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        reached = value >= self.target if self.mode == "max" else value <= self.target
        if reached:
            self.reached.add(trial_id)
        if reached and self.reason is None:
            self.trial_id = trial_id
            self.reason = f"--stop-at {self.target:g}: {schema.trial_name(trial_id)} reached {self.metric_key} {value:.5g}"
        return reached

    def stop_all(self) -> bool:
        return self.reason is not None


class PatienceStopper(Stopper):
    """``--patience N``: the sweep ends once N finished trials in a row did not beat the best score.

    A trial counts when it finishes (runs to its last step, or a scheduler stops it early), with
    the best score it reported at any step; a failed trial does not count. A trial improves on the
    best only if it is strictly better.
    """

    def __init__(self, metric_key: str, mode: str, patience: int) -> None:
        self.metric_key, self.mode, self.patience = metric_key, mode, patience
        #: each trial's best score so far
        self.trial_bests: dict[str, float] = {}
        #: the best score of the finished trials, and which trial had it
        self.best: float | None = None
        self.best_trial: str | None = None
        #: finished trials since the best last improved
        self.since_best = 0
        self.reason: str | None = None

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self.metric_key)
        if isinstance(value, (int, float)) and math.isfinite(value) and _better(value, self.trial_bests.get(trial_id), self.mode):
            self.trial_bests[trial_id] = float(value)
        return False  # it never stops one trial: the sweep's scheduler does that

    def state(self) -> dict[str, Any]:
        """What the count has seen, to carry over a resume (see :meth:`restore`)."""
        return {"trial_bests": dict(self.trial_bests), "best": self.best, "best_trial": self.best_trial, "since_best": self.since_best}

    def restore(self, state: dict[str, Any]) -> None:
        self.trial_bests = dict(state["trial_bests"])
        self.best, self.best_trial, self.since_best = state["best"], state["best_trial"], int(state["since_best"])

    def trial_finished(self, trial_id: str) -> None:
        """Count a finished trial: the best improved, or one more trial went by without it."""
        value = self.trial_bests.pop(trial_id, None)
        if value is not None and _better(value, self.best, self.mode):
            self.best, self.best_trial, self.since_best = value, trial_id, 0
            return
        self.since_best += 1
        if self.since_best >= self.patience and self.reason is None:
            # The finished trials' best: a trial still running or paused may be ahead of it already.
            best = f"the finished trials' best {self.best:.5g} by {schema.trial_name(self.best_trial)}" if self.best_trial else "no score yet"
            self.reason = f"--patience {self.patience}: no better {self.metric_key} in the last {self.since_best} finished trials ({best})"

    def stop_all(self) -> bool:
        return self.reason is not None


#: the stopper of each sweep running in this process, by the sweep's folder (see :meth:`SweepStopper.__reduce__`)
_LIVE: weakref.WeakValueDictionary[str, SweepStopper] = weakref.WeakValueDictionary()


class SweepStopper(CombinedStopper):
    """The sweep's stoppers as one: the recipe's last step for each trial, and the rules that end
    the whole sweep early (``--stop-at``, ``--patience``). ``sweep``: the sweep's folder (its
    storage and name), under which a copy unpickled in this process finds this one (see
    :meth:`__reduce__`)."""

    def __init__(self, max_steps: int, rules: list[TargetStopper | PatienceStopper], sweep: str | None = None) -> None:
        # Every rule sees every result: CombinedStopper's any() would skip the rest after a True.
        super().__init__(*rules, StepLimit(max_steps))
        self.rules = rules
        self.max_steps = max_steps
        self.sweep = sweep
        if sweep is not None:
            _LIVE[sweep] = self

    def __reduce__(self) -> tuple[Any, ...]:
        # Ray Tune saves its stopper with the experiment's state, and a resumed run puts the copy
        # it unpickles in place of the one it was given (TuneController.__setstate__, Ray 2.60).
        # That copy heard every result; the sweep's callbacks told this one of each finished
        # trial: --patience never ended a resumed sweep, and named a stale best when it said it
        # would have. Unpickled where this sweep runs, it is this one.
        return (_unpickled, (self.sweep, self.max_steps, self.rules))

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return any([stopper(trial_id, result) for stopper in self._stoppers])

    @property
    def reason(self) -> str | None:
        """Why the sweep ended early, in words; None while (or if) it runs its course."""
        return next((rule.reason for rule in self.rules if rule.reason), None)

    @property
    def trial_id(self) -> str | None:
        """The trial whose result ended the sweep (``--stop-at``), if one did."""
        return next((rule.trial_id for rule in self.rules if isinstance(rule, TargetStopper) and rule.reason), None)

    def reached(self, trial_id: str) -> bool:
        """Whether this trial's own result reached ``--stop-at`` (it ends for that, not for the scheduler)."""
        return any(isinstance(rule, TargetStopper) and trial_id in rule.reached for rule in self.rules)

    def state(self) -> dict[str, Any] | None:
        """The ``--patience`` count so far (the target rule keeps nothing), or None."""
        found = [rule.state() for rule in self.rules if isinstance(rule, PatienceStopper)]
        return found[0] if found else None

    def restore(self, state: dict[str, Any]) -> None:
        for rule in self.rules:
            if isinstance(rule, PatienceStopper):
                rule.restore(state)

    def trial_finished(self, trial_id: str) -> None:
        for rule in self.rules:
            if isinstance(rule, PatienceStopper):
                rule.trial_finished(trial_id)


def _unpickled(sweep: str | None, max_steps: int, rules: list[TargetStopper | PatienceStopper]) -> SweepStopper:
    """The live stopper of sweep ``sweep`` in this process, else a copy of the one pickled."""
    live = _LIVE.get(sweep) if sweep is not None else None
    if live is not None:
        return live
    copy = SweepStopper(max_steps, rules)
    copy.sweep = sweep
    return copy


def build_stopper(
    metric_key: str, mode: str, max_steps: int, *, stop_at: float | None = None, patience: int | None = None, sweep: str | None = None,
) -> SweepStopper | None:
    """The sweep's stopper, or None when no rule ends the sweep early (then each trial stops at its last step alone)."""
    rules: list[TargetStopper | PatienceStopper] = []
    if stop_at is not None:
        rules.append(TargetStopper(metric_key, mode, stop_at))
    if patience is not None:
        rules.append(PatienceStopper(metric_key, mode, patience))
    return SweepStopper(max_steps, rules, sweep) if rules else None
