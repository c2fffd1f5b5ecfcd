"""Sweeps side by side: one row per sweep (parent run) of an experiment or of a dataset, best first.

Every name read here comes from :mod:`raysweep.tracking.schema`; the client is the caller's.
Sweeps that score by different metrics are not ranked against each other: they form groups, one
per metric, each best first in its metric's direction.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from raysweep.errors import UserError
from raysweep.tracking import schema
from raysweep.tracking.queries import _quoted, all_experiment_ids, child_runs, named_experiments, sweep_metric


@dataclass
class SweepRow:
    """One sweep as ``raysweep compare`` lists it."""

    sweep: str
    experiment: str
    recipe: str
    dataset: str
    scheduler: str
    searcher: str
    metric: str
    mode: str
    trials: int
    best_validation_score: float | None
    test_score: float | None
    wall_time_s: float | None
    started: str
    status: str
    run_id: str
    #: how its validation scores were made: K for K-fold cross-validation, None for one validation split
    cv: int | None = None
    #: the seed of its data split (None: not recorded): sweeps of other seeds scored other rows
    seed: int | None = None
    #: an auto sweep's winning family (its best trial's), once it has one; None for any other sweep
    family: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def sweep_row(client: Any, run: Any, experiment_name: str) -> SweepRow:
    """What the table shows of one sweep's parent run."""
    tags, metrics, info = run.data.tags, run.data.metrics, run.info
    metric, mode = sweep_metric(run)
    trials, best = metrics.get(schema.NUM_TRIALS), _finite(metrics.get(schema.best_metric(metric)))
    if trials is None or best is None:  # an unfinished sweep has neither yet: its trial runs have them so far
        children = child_runs(client, run)
        trials = len(children) if trials is None else trials
        best = best if best is not None else _best_of_trials(children, schema.best_metric(metric), mode)
    end = info.end_time / 1000 if info.end_time else (time.time() if info.status == "RUNNING" else None)
    return SweepRow(
        sweep=tags.get(schema.SWEEP, info.run_name),
        experiment=experiment_name,
        recipe=tags.get(schema.RECIPE, "?"),
        dataset=tags.get(schema.DATASET, "?"),
        scheduler=tags.get(schema.SCHEDULER, "?"),
        searcher=tags.get(schema.SEARCHER, "?"),
        metric=metric,
        mode=mode,
        trials=int(trials),
        best_validation_score=best,
        test_score=_finite(metrics.get(schema.test_metric(metric))),
        wall_time_s=round(end - info.start_time / 1000, 1) if end and info.start_time else None,
        started=datetime.fromtimestamp(info.start_time / 1000, timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        status=info.status,
        run_id=info.run_id,
        cv=_whole(run.data.params.get("cv")),
        seed=_whole(run.data.params.get("seed")),
        family=run.data.params.get(schema.best_param("family")) if tags.get(schema.RECIPE) == "auto" else None,
    )


def _whole(text: Any) -> int | None:
    """A whole-number param as logged (``"3"``), None for ``"none"`` or none logged."""
    try:
        return int(str(text))
    except ValueError:
        return None


def _best_of_trials(children: list[Any], key: str, mode: str) -> float | None:
    """The best of the trials' best-so-far scores (``key``), in the metric's direction; None if no trial scored."""
    scores = [score for score in (_finite(child.data.metrics.get(key)) for child in children) if score is not None]
    if not scores:
        return None
    return max(scores) if mode == "max" else min(scores)


def _experiments(client: Any, uri: str, experiment: str | None) -> dict[str, str]:
    """Experiment id -> name of the experiments to look in (all of them without ``experiment``)."""
    if experiment is None:
        return {e.experiment_id: e.name for e in client.search_experiments(max_results=50000)}
    return named_experiments(client, uri, experiment)


def find_sweeps(client: Any, uri: str, experiment: str | None = None, dataset: str | None = None) -> list[SweepRow]:
    """The sweeps of ``experiment``, or on ``dataset`` in any experiment (by its tag), else of the newest sweep's dataset.

    An unknown experiment, or a dataset no sweep ran on, is a :class:`UserError` naming what there is.
    """
    if experiment and dataset:
        raise UserError(f"--experiment {experiment} with --dataset {dataset}: pass one of them, not both")
    names = _experiments(client, uri, experiment)
    ids = list(names)
    if not ids:
        raise UserError(f"no sweep in {uri} yet: run one with `raysweep run`, or pass the --tracking-uri a sweep logged to")
    if experiment is None and dataset is None:
        newest = client.search_runs(ids, filter_string=schema.SWEEP_RUN_FILTER, order_by=["attributes.start_time DESC"], max_results=1)
        if not newest:
            raise UserError(f"no sweep in {uri} yet: run one with `raysweep run`, or pass the --tracking-uri a sweep logged to")
        dataset = newest[0].data.tags.get(schema.DATASET)
    where = schema.SWEEP_RUN_FILTER
    if dataset is not None:
        where += f" AND tags.`{schema.DATASET}` = {_quoted(dataset)}"
    runs = client.search_runs(ids, filter_string=where, order_by=["attributes.start_time DESC"], max_results=50000)
    if not runs and dataset is not None:
        raise UserError(f"--dataset {dataset}: no sweep ran on it in {uri}; datasets there: {', '.join(_datasets(client, ids)) or '(none)'}")
    if not runs:
        raise UserError(f"--experiment {experiment}: it holds no raysweep sweeps; run one with `raysweep run ... --experiment {experiment}`")
    return rank([sweep_row(client, run, names.get(run.info.experiment_id, run.info.experiment_id)) for run in runs])


def _datasets(client: Any, ids: list[str]) -> list[str]:
    runs = client.search_runs(ids or all_experiment_ids(client), filter_string=schema.SWEEP_RUN_FILTER, max_results=1000)
    return sorted({run.data.tags.get(schema.DATASET, "?") for run in runs})


def groups(rows: list[SweepRow]) -> list[tuple[tuple[str, str], list[SweepRow]]]:
    """The rows by (metric, mode), each group best first; the group with the most sweeps first."""
    grouped: dict[tuple[str, str], list[SweepRow]] = {}
    for row in rows:
        grouped.setdefault((row.metric, row.mode), []).append(row)
    for members in grouped.values():
        # Best first in the metric's direction; sweeps without a score (failed, interrupted) last.
        members.sort(key=lambda r: (r.best_validation_score is None, -(r.best_validation_score or 0) if r.mode == "max" else (r.best_validation_score or 0)))
    return sorted(grouped.items(), key=lambda item: (-len(item[1]), item[0]))


def rank(rows: list[SweepRow]) -> list[SweepRow]:
    """The rows in table order: group by group (:func:`groups`), best first within each."""
    return [row for _, members in groups(rows) for row in members]
