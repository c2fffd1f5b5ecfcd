"""What "best" means in a sweep: the best validation score at any step of any trial.

A trial's best is its best step: the validation score there, the number of resource steps it
had trained, and the config in force at that step (under PBT a trial's config changes along
the way). The sweep's best is the best of its trials' bests, and the refit trains that config
for that many steps, as XGBoost's own early stopping keeps its best iteration
(``benchmarks/best_step.py`` measured this against each trial's last step). The progress line,
the best-so-far plot, the leaderboard, the summary, the refit, the MLflow parent run and
``raysweep report`` all use this one meaning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["TrialBest", "better", "family_bests", "made_order", "sweep_best", "trial_best"]

CONFIG_PREFIX = "config/"


def better(value: float, than: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``than`` (None: nothing yet) for a metric of direction ``mode``.

    Ties are not better: the first step to reach a score keeps it (the shorter refit).
    """
    if than is None:
        return True
    return value > than if mode == "max" else value < than


def made_order(experiment_tag: Any, trial_id: Any) -> tuple[int, str]:
    """Where a trial came in the order Tune made it, which settles ties between trials (the first
    made keeps a score): the counter that starts its ``experiment_tag`` (``"12_max_depth=..."``;
    both of Tune's trial generators number trials so, and keep the count over a restore), then its
    id. Trial ids are random for every searcher but random and grid."""
    counter = str(experiment_tag or "").split("_", 1)[0]
    return (int(counter) if counter.isdigit() else 1 << 62, str(trial_id or ""))


@dataclass(frozen=True)
class TrialBest:
    """One trial's best step: its validation score, the steps trained by then and the config then."""

    value: float
    steps: int
    config: dict[str, Any]


def trial_best(rows: Iterable[Mapping[str, Any]], metric_key: str, mode: str, config: Mapping[str, Any]) -> TrialBest | None:
    """The best step among a trial's results (in the order reported), or None if none has a finite score.

    ``rows`` are Tune results, flat (``config/<name>`` columns, as in ``Result.metrics_dataframe``)
    or nested (a ``config`` dict); ``config`` is the trial's config, for what a row does not carry.
    """
    best: TrialBest | None = None
    for row in rows:
        value = _number(row.get(metric_key))
        if value is None or not better(value, best.value if best else None, mode):
            continue
        best = TrialBest(value, int(row.get("training_iteration") or 0), _config_at(row, config))
    return best


def sweep_best(bests: Sequence[TrialBest | None], mode: str) -> int | None:
    """The position of the best trial (the first of equals), or None if no trial has a score."""
    chosen: int | None = None
    for index, best in enumerate(bests):
        if best is not None and (chosen is None or better(best.value, bests[chosen].value, mode)):  # type: ignore[union-attr]
            chosen = index
    return chosen


def _config_at(row: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    nested = row.get("config")
    at_step = nested if isinstance(nested, Mapping) else {}
    out = {}
    for name, value in config.items():
        found = at_step.get(name, row.get(CONFIG_PREFIX + name))
        missing = found is None or (isinstance(found, float) and math.isnan(found))
        out[name] = value if missing else _plain(found)
    return out


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (from a results table) as plain Python."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value.item() if hasattr(value, "item") else value


def family_bests(leaderboard: Any, metric_key: str, mode: str, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """An auto sweep's families (``names``) each with its trial count and best validation score in
    ``leaderboard`` (a ``family`` column; None: no score), best family first."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        rows = leaderboard[leaderboard["family"] == name] if "family" in leaderboard else leaderboard.iloc[:0]
        scores = rows[metric_key].dropna()
        best = (scores.max() if mode == "max" else scores.min()) if len(scores) else None
        out[name] = {"trials": int(len(rows)), "best": None if best is None else float(best)}
    ranked = sorted(out.items(), key=lambda item: (item[1]["best"] is None, -(item[1]["best"] or 0) if mode == "max" else (item[1]["best"] or 0)))
    return dict(ranked)
