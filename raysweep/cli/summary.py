"""What a finished sweep prints: its leaderboard, best config, scores and where to review it."""

from __future__ import annotations

import json
from typing import Any

import click


def report(result: Any, as_json: bool) -> None:
    from rich.console import Console

    if as_json:
        click.echo(json.dumps(result.to_dict(), default=str))
        return
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    _print_summary(result, console)


def _print_summary(result: Any, console: Any) -> None:
    from rich.table import Table

    board = result.leaderboard
    key = f"val_{result.metric}"
    table = Table(title=f"leaderboard (top {min(10, len(board))} of {result.num_trials})")
    config_columns = [c for c in board.columns if c.startswith("config/")]
    columns = ["trial", key, "resource", "outcome", *config_columns]
    for column in columns:
        table.add_column(column.removeprefix("config/"))
    for _, row in board.head(10).iterrows():
        table.add_row(*[_fmt(row[c]) for c in columns])
    console.print(table)
    console.print(f"best config: {json.dumps(result.best_config, default=str)}")
    console.print(f"validation {result.metric}: {result.best_validation_score:.5g} (at resource {result.best_resource})")
    console.print(f"test {result.metric} of the refit model: [bold]{result.test_score:.5g}[/]")
    console.print(
        f"trials: {result.num_trials} ({result.num_stopped_early} stopped early, {result.num_errors} failed) in {result.elapsed_s:.1f}s"
    )
    if result.tracking_uri:
        console.print(f"MLflow: {result.tracking_uri}, parent run {result.parent_run_id}")
        if result.model_uri:
            console.print(f"model: {result.model_uri}")
        if result.tracking_uri.startswith(("http://", "https://")):
            from raysweep.review import experiment_runs_url

            console.print(f"runs: {experiment_runs_url(result.tracking_uri, result.experiment_id)}")
        else:
            console.print(f"review with: raysweep ui --tracking-uri {result.tracking_uri}")
        console.print(f"in a terminal: raysweep report {result.name} --tracking-uri {result.tracking_uri}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
