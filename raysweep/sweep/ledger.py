"""How the sweep's trials stood when Tune came back: the Tune callback that notes it."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback


class TrialLedger(Callback):
    """Notes each trial's final status and whether its last result was ``done``.

    Tune calls ``on_experiment_end`` however the experiment ends (finished, interrupted), with
    every trial: the runner reads this ledger to tell an interrupted sweep from a finished one.
    """

    def __init__(self) -> None:
        #: (Tune's status, whether the last result carried ``done``) of every trial
        self.trials: list[tuple[str, bool]] = []
        #: the folders of the trials the searcher made but that never started (a spent time budget)
        self.never_started: set[str] = set()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.trials = [(trial.status, bool(_last_result(trial).get("done"))) for trial in trials]
        self.never_started = {str(trial.path) for trial in trials if trial.status == "PENDING"}


def _last_result(trial: Any) -> dict[str, Any]:
    # The recorded result: before a trial's first report, Trial.last_result waits on a remote call.
    metadata = getattr(trial, "run_metadata", None)
    return dict((metadata.last_result if metadata is not None else trial.last_result) or {})
