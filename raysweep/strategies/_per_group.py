"""One Ray Tune scheduler per group of trials: each trial is compared with its own group.

``raysweep run auto`` puts each model family in a group of its own. ASHA and HyperBand assume that
a trial's rank at a low rung predicts its rank at the top. That holds among trials of one family,
whose resource is one thing (trees, rounds, epochs or rows), and fails across families: on letter
an SVM at a sixth of its rows scores below a forest at a sixth of its trees, yet the SVM wins at
full resource. So every group gets a scheduler of its own, built by the same builder (Ray's own
ASHA or HyperBand, nothing reimplemented), and this class routes each call to the trial's group.

Under ASHA a group's first trial at a rung has nothing of its own to be compared with, and ASHA
lets a trial with no cutoff go on: an expensive family (an SVM on 30,000 rows) would then spend the
budget on its first trials whatever they score. So until a group has ``quorum`` results at a rung,
its trials there are judged by one more ASHA that sees every group's trials, as a plain sweep's
would be. Which families get more trials is the searcher's to learn.
"""

from __future__ import annotations

from typing import Any, Callable

from ray.tune.schedulers import TrialScheduler

from raysweep.strategies._asha import rung_reached

#: builds one scheduler that notes the reasons of its stops in the dict it is given
Build = Callable[[dict[str, str]], TrialScheduler]


class PerGroupScheduler(TrialScheduler):
    """Routes each trial to the scheduler of its group, built on the group's first trial.

    ``build(stops)`` returns a new scheduler that notes in ``stops`` why it stopped a trial;
    ``group_of(config)`` names a trial's group. ``quorum``: with ASHA, how many results a group
    needs at a rung before its own cutoff decides there (0: always its own; else an ASHA over every
    group decides until then). ``stops`` gets the note of whichever scheduler decided a stop. All of
    it is pickled with the scheduler when Tune saves the experiment.
    """

    def __init__(self, build: Build, group_of: Callable[[dict[str, Any]], str], quorum: int = 0,
                 stops: dict[str, str] | None = None) -> None:
        super().__init__()
        self._build = build
        self._group_of = group_of
        self._quorum = quorum
        self._stops = stops
        self._groups: dict[str, tuple[TrialScheduler, dict[str, str]]] = {}
        self._properties: tuple[Any, Any, dict[str, Any]] | None = None
        self._everyone: tuple[TrialScheduler, dict[str, str]] | None = self._new() if quorum else None
        self._supports_buffered_results = (self._everyone or self._new())[0].supports_buffered_results
        self._mode: str | None = None

    @property
    def groups(self) -> dict[str, TrialScheduler]:
        """The group schedulers so far, by group name."""
        return {group: scheduler for group, (scheduler, _) in self._groups.items()}

    def _new(self) -> tuple[TrialScheduler, dict[str, str]]:
        # Without a quorum each group decides alone (HyperBand's halving also stops trials other than
        # the one reporting): its notes go straight to ``stops``. With one, a note is kept only from
        # the scheduler whose decision counted.
        notes: dict[str, str] = {} if self._quorum or self._stops is None else self._stops
        scheduler = self._build(notes)
        if self._properties is not None:
            metric, mode, spec = self._properties
            scheduler.set_search_properties(metric, mode, **spec)
        return scheduler, notes

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if self._metric and metric:
            return False
        self._properties = (metric, mode, spec)
        self._metric, self._mode = metric, mode
        schedulers = [s for s, _ in self._groups.values()] + ([self._everyone[0]] if self._everyone else [])
        return all([scheduler.set_search_properties(metric, mode, **spec) for scheduler in schedulers])

    def _group(self, trial: Any) -> tuple[TrialScheduler, dict[str, str]]:
        group = str(self._group_of(trial.config))
        if group not in self._groups:
            self._groups[group] = self._new()
        return self._groups[group]

    def _each(self, trial: Any) -> list[TrialScheduler]:
        return [self._group(trial)[0]] + ([self._everyone[0]] if self._everyone else [])

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        for scheduler in self._each(trial):
            scheduler.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        for scheduler in self._each(trial):
            scheduler.on_trial_error(tune_controller, trial)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        for scheduler in self._each(trial):
            scheduler.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        for scheduler in self._each(trial):
            scheduler.on_trial_remove(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        group, group_notes = self._group(trial)
        reached = rung_reached(group, trial, result) if self._everyone else None
        before = len(reached[1]) if reached else None
        action = group.on_trial_result(tune_controller, trial, result)
        notes = group_notes
        if self._everyone is not None:
            everyone, everyone_notes = self._everyone
            action_everyone = everyone.on_trial_result(tune_controller, trial, result)
            if before is not None and before < self._quorum:
                action, notes = action_everyone, everyone_notes
        if self._everyone is not None and action == self.STOP and self._stops is not None and trial.trial_id in notes:
            self._stops[trial.trial_id] = notes[trial.trial_id]
        return action

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        # ASHA's choice is FIFO's over every pending trial; HyperBand's is among the trials it holds,
        # so each group's is asked in turn.
        if self._everyone is not None:
            return self._everyone[0].choose_trial_to_run(tune_controller)
        for scheduler, _ in self._groups.values():
            trial = scheduler.choose_trial_to_run(tune_controller)
            if trial is not None:
                return trial
        return None

    def debug_string(self) -> str:
        return "\n".join(f"{group}: {scheduler.debug_string()}" for group, scheduler in self.groups.items())

