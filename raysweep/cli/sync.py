"""``raysweep sync``: write to MLflow what a sweep could not log, from Ray's own results."""

from __future__ import annotations

import json

import click

from raysweep.tracking.sync import sync_sweep


@click.command("sync", short_help="Write to MLflow what a sweep could not log, from Ray's results.")
@click.argument("sweep")
@click.option("--storage", help="Where the sweep kept its state (default ./raysweep_results).")
@click.option("--tracking-uri", help="The sweep's MLflow store (default: the one it ran with).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with what was written.")
def sync_command(sweep: str, storage: str | None, tracking_uri: str | None, as_json: bool) -> None:
    """Bring SWEEP's MLflow runs up to date from Ray's results (by name, or the path of its folder).

    Writes the trial runs, metric steps and end statuses MLflow lacks (a tracking server that
    was away, a killed driver); never writes a step twice. Run it once the sweep has stopped.
    """
    import os

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    report = sync_sweep(sweep, storage=storage, tracking_uri=tracking_uri)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    ended = ", ".join(f"{name} {status}" for name, status in sorted(report.runs_ended.items())) or "none"
    click.echo(
        f"sweep {report.sweep}: {report.trials} trials in Ray's results; {report.runs_created} runs created, "
        f"{report.metrics_written} metric values written, runs ended: {ended}"
        + (f"; parent run {report.parent_status}" if report.parent_status else "")
    )
