"""Finding the trials of earlier sweeps a warm start learns from, by tags, across all experiments.

A trial counts when its sweep had the same recipe name, dataset fingerprint, metric and search
space (its hash), it ended with a validation score (completed or stopped early, not failed, not
cut off), and neither it nor its sweep belongs to one fold of a nested validation. The split's
seed may differ: earlier scores are a prior for the searcher, never compared with today's. Every
name read here comes from :mod:`raysweep.tracking.schema`; the caller passes the MLflow client.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from raysweep import space as dsl
from raysweep.tracking import schema
from raysweep.tracking.queries import _quoted, all_experiment_ids

#: how a trial that ended with a score is tagged
_SCORED = (schema.OUTCOME_COMPLETED, schema.OUTCOME_STOPPED)


@dataclass(frozen=True)
class EarlierTrials:
    """What earlier sweeps offer a warm start."""

    #: ``(config, validation score)`` of each usable trial, best first
    points: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    #: the earlier sweeps that gave at least one trial, oldest first
    sweeps: list[str] = field(default_factory=list)
    #: trials left out because their config falls outside today's space
    outside_space: int = 0


def sweeps_filter(recipe: str, dataset_fingerprint: str, metric: str, space_hash: str) -> str:
    """The search filter that selects the sweeps (parent runs) a warm start may learn from."""
    return " AND ".join([
        f"tags.`{schema.RECIPE}` = {_quoted(recipe)}",
        f"tags.`{schema.DATASET_FINGERPRINT}` = {_quoted(dataset_fingerprint)}",
        f"tags.`{schema.METRIC}` = {_quoted(metric)}",
        f"tags.`{schema.SPACE_HASH}` = {_quoted(space_hash)}",
        f"tags.`{schema.NESTED_FOLD}` IS NULL",
    ])  # fmt: skip


def earlier_trials(
    client: Any, *, recipe: str, dataset_fingerprint: str, metric: str, space: dict[str, dict[str, Any]], mode: str
) -> EarlierTrials:
    """The trials of earlier sweeps like this one (see the module's docstring), best first by ``mode``."""
    ids = all_experiment_ids(client)
    if not ids:
        return EarlierTrials()
    metric_key = schema.validation_metric(metric)
    sweeps = client.search_runs(
        ids, filter_string=sweeps_filter(recipe, dataset_fingerprint, metric, dsl.space_hash(space)),
        order_by=["attributes.start_time ASC"], max_results=50000,
    )  # fmt: skip
    found_points: list[tuple[dict[str, Any], float, float]] = []
    names: list[str] = []
    outside = 0
    for sweep in sweeps:
        if _population_scheduler(sweep.data.tags.get(schema.SCHEDULER)):
            continue  # a PBT member's score belongs to a schedule of configs, not to its final one
        children = client.search_runs(
            [sweep.info.experiment_id],
            filter_string=f"tags.`{schema.PARENT_RUN_ID}` = '{sweep.info.run_id}' AND tags.`{schema.NESTED_FOLD}` IS NULL",
            max_results=50000,
        )
        found = 0
        for child in children:
            value = scored(child, metric_key)
            if value is None:
                continue
            config = trial_config(child, space)
            if config is None:
                outside += 1
                continue
            # Ranked by its best score at any step, as the leaderboard ranks trials; the searcher
            # learns the final score, what Tune told it when the trial ended.
            best = child.data.metrics.get(schema.best_of(metric_key))
            found_points.append((config, value, float(best) if best is not None and math.isfinite(best) else value))
            found += 1
        if found:
            names.append(sweep.data.tags.get(schema.SWEEP, sweep.info.run_name))
    found_points.sort(key=lambda point: -point[2] if mode == "max" else point[2])
    return EarlierTrials([(config, value) for config, value, _ in found_points], names, outside)


def _population_scheduler(name: str | None) -> bool:
    from raysweep.strategies.registry import SCHEDULERS

    strategy = SCHEDULERS.get(name or "")
    return strategy is not None and strategy.population


def scored(run: Any, metric_key: str) -> float | None:
    """The final validation score of a trial run that ended with one; None for one that did not
    (failed, still running, cut off by an interruption, or no finite score)."""
    if run.info.status != "FINISHED" or run.data.tags.get(schema.OUTCOME) not in _SCORED:
        return None
    value = run.data.metrics.get(metric_key)
    return float(value) if value is not None and math.isfinite(value) else None


def trial_config(run: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """A trial run's config over ``space``'s parameters, or None when it falls outside the space.

    The run's final config (a JSON tag, types kept) wins; else its params, each read as JSON
    where it parses (numbers) and as text where not (a categorical string).
    """
    final = run.data.tags.get(schema.FINAL_CONFIG)
    try:
        source = json.loads(final) if final else None
    except ValueError:
        source = None
    if not isinstance(source, dict):
        source = {name: _param_value(text) for name, text in run.data.params.items()}
    config = {}
    for name, spec in space.items():
        value = source.get(name)
        if "int" in spec["type"] and isinstance(value, float) and value.is_integer():
            value = int(value)
        config[name] = value
    return config if dsl.contains(space, config) else None


def _param_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
