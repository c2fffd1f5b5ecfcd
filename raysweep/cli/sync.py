"""``raysweep sync``: write to MLflow what a sweep could not log, from Ray's own results."""

from __future__ import annotations

import json
import shlex
from typing import Any

import click

from raysweep.tracking.sync import SyncReport, sync_sweep


@click.command("sync", short_help="Write to MLflow what a sweep could not log, from Ray's results.")
@click.argument("sweep")
@click.option("--storage", help="Where the sweep kept its state (default: ./raysweep_results).")
@click.option("--tracking-uri", help="The sweep's MLflow store (default: the one it ran with).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with what was written.")
def sync_command(sweep: str, storage: str | None, tracking_uri: str | None, as_json: bool) -> None:
    """Bring SWEEP's MLflow runs up to date from Ray's results (by name, or the path of its folder).

    Writes the trial runs, metric steps and end statuses MLflow lacks (a tracking server that
    was away, a killed driver); never writes a step twice. Run it once the sweep has stopped.
    A nested validation (--nested-cv) is synced sweep by sweep.
    """
    import os

    from raysweep.sweep import record as sweep_record

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    found = None if sweep_record.is_uri(sweep) or sweep_record.is_uri(storage) else sweep_record.find(sweep, storage)
    if found is not None and found[1].get("parts"):
        _sync_job(found[1], storage, tracking_uri, as_json)
        return
    report = sync_sweep(sweep, storage=storage, tracking_uri=tracking_uri)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    _say(report)


def _sync_job(record: dict[str, Any], storage: str | None, tracking_uri: str | None, as_json: bool) -> None:
    """Each sweep of a nested validation that got as far as a record, then the job's own run."""
    from raysweep.sweep import record as sweep_record
    from raysweep.sweep.nested_resume import JOB_DONE
    from raysweep.tracking.sync import end_job_run

    where = record.get("storage") or storage
    reports, never_started = [], []
    for part in record["parts"]:
        if sweep_record.find(part, where) is None:
            never_started.append(part)
        else:
            reports.append(sync_sweep(part, storage=where, tracking_uri=tracking_uri))
    status = end_job_run(record, bool(record.get(JOB_DONE)), tracking_uri)
    if as_json:
        click.echo(json.dumps({"nested_job": record["name"], "sweeps": [r.to_dict() for r in reports],
                               "never_started": never_started, "job_status": status}))
        return
    for report in reports:
        _say(report)
    if never_started:
        click.echo(f"never started, nothing to sync: {', '.join(never_started)}")
    if status == "KILLED":
        click.echo(f"nested validation {record['name']}: its run is closed as KILLED; raysweep resume {shlex.quote(record['name'])} finishes it")
    elif status:
        click.echo(f"nested validation {record['name']}: its run is closed as {status}")


def _say(report: SyncReport) -> None:
    ended = ", ".join(f"{name} {status}" for name, status in sorted(report.runs_ended.items())) or "none"
    click.echo(
        f"sweep {report.sweep}: {report.trials} trials in Ray's results; {report.runs_created} runs created, "
        f"{report.metrics_written} metric values written, runs ended: {ended}"
        + (f"; parent run {report.parent_status}" if report.parent_status else "")
    )
