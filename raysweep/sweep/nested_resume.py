"""Resuming a nested validation: ``raysweep resume`` of a ``--nested-cv`` job, or of one of its sweeps.

Each sweep of the job has a Tune folder and a sweep record of its own, so each is resumed as a
plain sweep is: its saved state mended, what a killed driver had not written to MLflow written
from Ray's results, then ``run_planned(..., resume=record)``. A fold that had finished is not run
again: its outcome (the score on its held-out rows, its inner best, its config) is read back from
its record. A sweep killed before Ray saved anything of it starts again.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from raysweep.errors import NothingToResume, UserError
from raysweep.sweep import record as sweep_record

#: a fold's outcome in its sweep record, written when its sweep ends: what resume reads back
FOLD_OUTCOME = "fold_outcome"
#: in the job's record: its outcome is written (the top-level run, the model)
JOB_DONE = "done"


@dataclass(frozen=True)
class PartResume:
    """How one sweep of a resumed job goes on: read back, resumed, or started again (neither)."""

    #: a fold that had finished: ``{"score", "inner_best", "config"}``
    done: dict[str, Any] | None = None
    #: its sweep record, ready for ``run_planned(..., resume=...)``
    record: dict[str, Any] | None = None


def resumable_job(candidate: str, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The folder and record of the job that ``raysweep resume`` continues, given the job's or one of
    its sweeps'. Raises :class:`NothingToResume` when the job's outcome is written already."""
    job = record.get("nested_job")
    if job:
        found = sweep_record.find(job, record.get("storage"))
        if found is None:
            raise UserError(
                f"sweep {record['name']} is part of the nested validation {job}, whose record is not in {record.get('storage')}; "
                f"resume the job with raysweep resume {shlex.quote(job)} --storage where it ran"
            )
        candidate, record = found
    if record.get("recipe") is None:
        raise UserError(sweep_record.resume_refusal(record["name"], record.get("nested_cv")))
    if record.get(JOB_DONE):
        from raysweep.tracking.store import report_command

        raise NothingToResume(
            f"raysweep: nested validation {record['name']} is complete; nothing to resume. "
            f"Its result: {report_command(record['name'], record.get('options', {}).get('tracking_uri'))}"
        )
    return candidate, record


def save_job(plan: Any, top: Any, names: list[str]) -> None:
    """The job's record: what ``raysweep resume`` rebuilds the job from, and the names of its sweeps."""
    sweep_record.save_plan(plan, top)
    sweep_record.update(sweep_record.sweep_dir(plan), nested_cv=plan.nested_cv, parts=names)


def save_fold_outcome(part_plan: Any, result: Any) -> None:
    """Note in a fold's record what resume reads back instead of running the fold again."""
    config = json.loads(json.dumps(result.best_config, default=lambda value: value.item() if hasattr(value, "item") else str(value)))
    outcome = {"score": float(result.test_score), "inner_best": float(result.best_validation_score), "config": config}
    sweep_record.update(sweep_record.sweep_dir(part_plan), **{FOLD_OUTCOME: outcome})


def resume_parts(names: list[str], storage: str, k: int, top: Any) -> list[PartResume]:
    """How each sweep of the job goes on (the K folds, then the final sweep), each made ready.

    A sweep that is resumed gets the plain sweep's treatment first: a cut saved state mended and
    MLflow brought up to Ray's results. One that starts again loses the MLflow run its first try
    opened (``top``: the job's tracker, None when untracked), so the job keeps one run per sweep.
    """
    from pathlib import Path

    from raysweep.sweep.saved_state import has_saved_state, mend

    states = []
    for index, name in enumerate(names):
        found = sweep_record.find(name, storage)
        record = found[1] if found else None
        if record is not None and index < k and record.get(FOLD_OUTCOME):
            states.append(PartResume(done=record[FOLD_OUTCOME]))
            continue
        folder = found[0] if found else None
        if folder is None or not (sweep_record.is_uri(folder) or has_saved_state(Path(folder))):
            if top is not None:
                _drop_runs(top, name)
            states.append(PartResume())
            continue
        if not sweep_record.is_uri(folder):
            mend(folder, name)
        if record.get("parent_run_id"):
            from raysweep.tracking.sync import sync_sweep

            sync_sweep(folder)
        states.append(PartResume(record={**record, "path": folder}))
    return states


def _drop_runs(top: Any, name: str) -> None:
    """Delete the MLflow run of the job's sweep ``name`` and the trial runs under it, if it has one."""
    from raysweep.tracking import schema

    client = top.client
    runs = client.search_runs(
        [top.experiment_id], filter_string=f"tags.`{schema.PARENT_RUN_ID}` = '{top.parent_run_id}' AND tags.`{schema.SWEEP}` = '{name}'"
    )
    for run in runs:
        children = client.search_runs([top.experiment_id], filter_string=f"tags.`{schema.PARENT_RUN_ID}` = '{run.info.run_id}'", max_results=10000)
        for child in [*children, run]:
            client.delete_run(child.info.run_id)
