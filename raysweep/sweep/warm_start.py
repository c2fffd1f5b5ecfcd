"""``--warm-start``: what a sweep's searcher learns from earlier sweeps before its first trial."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from raysweep.strategies import registry as strategies
from raysweep.sweep.options import SweepPlan
from raysweep.tracking import schema


@dataclass(frozen=True)
class WarmStart:
    """The earlier trials a sweep's searcher takes, and where they came from."""

    #: ``(config, validation score)`` handed to the searcher, best first
    points: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    #: the earlier sweeps they came from
    sweeps: list[str] = field(default_factory=list)
    #: usable trials found (the searcher may take only the best few of them)
    found: int = 0
    #: trials left out because their config falls outside today's space
    outside_space: int = 0

    @property
    def trials(self) -> int:
        """How many earlier trials the searcher takes: the ``warm_start_trials`` param."""
        return len(self.points)

    def message(self, plan: SweepPlan) -> str:
        """One line on what the warm start found, for stderr."""
        if not self.found:
            outside = f" ({self.outside_space} trial(s) skipped: config outside today's space)" if self.outside_space else ""
            return (
                f"raysweep: --warm-start: no earlier sweep of recipe {plan.recipe.name} on this dataset with metric "
                f"{plan.metric} and this search space in {plan.tracking_uri}{outside}; running cold"
            )
        taken = f"{self.trials} of {self.found}" if self.trials < self.found else f"{self.trials}"
        skipped = f"; {self.outside_space} skipped (config outside today's space)" if self.outside_space else ""
        return f"raysweep: warm start: {taken} earlier trial(s) from {', '.join(self.sweeps)}{skipped}"

    def record(self) -> dict[str, Any]:
        """What the sweep record keeps of it, for a resumed sweep's result."""
        return {"from": list(self.sweeps), "trials": self.trials}


def find_warm_start(plan: SweepPlan) -> WarmStart:
    """The earlier trials ``plan``'s searcher takes, from the store at ``plan.tracking_uri``.

    A store that does not exist yet holds no earlier sweep.
    """
    from raysweep.tracking.earlier import earlier_trials
    from raysweep.tracking.store import check_reachable, sqlite_path

    database = sqlite_path(plan.tracking_uri)
    if database is not None and not database.is_file():
        return WarmStart()
    check_reachable(plan.tracking_uri)  # a server that does not answer: one line, not minutes of retries
    from mlflow.tracking import MlflowClient

    found = earlier_trials(
        MlflowClient(plan.tracking_uri), recipe=plan.recipe.name, dataset_fingerprint=plan.dataset.fingerprint,
        metric=plan.metric, space=plan.recipe.space, mode=plan.mode,
    )  # fmt: skip
    points = strategies.warm_start_points(plan.searcher, found.points)
    return WarmStart(points, found.sweeps, len(found.points), found.outside_space)


class Warm(NamedTuple):
    """A sweep's warm start as the runner uses it (all empty for a cold sweep)."""

    points: list[tuple[dict[str, Any], float]]
    tags: dict[str, str]
    params: dict[str, Any]
    #: what the sweep record and the result keep: the earlier sweeps and how many trials were used
    record: dict[str, Any] | None


def warm_start_for(plan: SweepPlan, resume: dict[str, Any] | None, progress: bool) -> Warm:
    """The earlier trials for ``plan``'s searcher, and what the parent run and the result say of them;
    with ``progress``, one line on stderr says what was found.

    A resumed sweep's searcher comes back from Ray's saved state with them already learnt.
    """
    if resume is not None:
        return Warm([], {}, {}, resume.get("warm_start"))
    if not plan.warm_start:
        return Warm([], {}, {}, None)
    warm = find_warm_start(plan)
    if progress:
        print(warm.message(plan), file=sys.stderr, flush=True)
    tags = {schema.WARM_START_FROM: ",".join(warm.sweeps)[:5000]} if warm.trials else {}
    return Warm(warm.points, tags, {schema.WARM_START_TRIALS: warm.trials}, warm.record())
