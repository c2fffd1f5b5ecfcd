"""``raysweep compare``: the sweeps of an experiment or of a dataset in one table, best first."""

from __future__ import annotations

import json
import os

import click

from raysweep.cli.summary import json_ready
from raysweep.tracking.comparison import find_sweeps, groups


@click.command("compare", short_help="One table of the sweeps of an experiment or a dataset, best first.")
@click.option("--experiment", help="The sweeps of this MLflow experiment.")
@click.option("--dataset", help="The sweeps on this dataset (its name, as `raysweep run --dataset` gave it), in any experiment.")
@click.option("--tracking-uri", help="The MLflow store (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the sweeps in table order.")
def compare_command(experiment: str | None, dataset: str | None, tracking_uri: str | None, as_json: bool) -> None:
    """List the sweeps of --experiment, or on --dataset in any experiment (default: the newest sweep's dataset).

    One row per sweep: recipe, scheduler, searcher, trials, best validation score, test score of
    the refit model, wall time and start, best first in the metric's direction. Sweeps scored by
    different metrics get a table per metric.
    """
    from rich.console import Console
    from rich.table import Table

    from raysweep.tracking.queries import open_store
    from raysweep.tracking.store import resolve_tracking_uri

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    uri = resolve_tracking_uri(tracking_uri)
    rows = find_sweeps(open_store(uri), uri, experiment=experiment, dataset=dataset)
    grouped = groups(rows)
    if as_json:
        scope = {"experiment": experiment} if experiment else {"dataset": dataset or rows[0].dataset}
        click.echo(json.dumps(json_ready({**scope, "metrics": [metric for (metric, _), _ in grouped], "sweeps": [r.to_dict() for r in rows]}),
                              allow_nan=False))
        return
    console = Console(highlight=False)
    if not console.is_terminal:  # a file or a pipe: each row on one line, nothing folded or cut (a table is as wide as its text)
        console = Console(highlight=False, width=100_000)
    scope = f"experiment {experiment}" if experiment else f"dataset {dataset or rows[0].dataset}"
    console.print(f"{len(rows)} sweep{'s' * (len(rows) != 1)} of {scope}", markup=False)
    if len(grouped) > 1:
        console.print(
            f"the sweeps score by {len(grouped)} different metrics ({', '.join(m for (m, _), _ in grouped)}): "
            "one table per metric, scores of different tables are not comparable",
            markup=False,
        )
    several_experiments = len({r.experiment for r in rows}) > 1
    for (metric, mode), members in grouped:
        table = Table(title=f"{metric}: {'highest' if mode == 'max' else 'lowest'} best validation score first")
        # Sweeps of other seeds split the data otherwise, and cross-validation scores other rows than one
        # split: shown, and said, only when the table holds both kinds.
        scored_apart = len({(row.cv, row.seed) for row in members}) > 1
        columns = ["sweep"] + ["experiment"] * several_experiments + [
            "recipe", "scheduler", "searcher", "trials", f"best val_{metric}", f"test {metric}", "wall time", "started", "status",
        ] + ["validation", "seed"] * scored_apart  # fmt: skip
        # In a terminal the columns fold to its width, a sweep's name last (it is what `report` takes).
        longest = max(len(row.sweep) for row in members)
        for column in columns:
            table.add_column(column, overflow="fold", min_width=min(longest, console.width // 3) if column == "sweep" else None)
        for row in members:
            cells = [row.sweep] + [row.experiment] * several_experiments + [
                f"{row.recipe} ({row.family})" if row.family else row.recipe, row.scheduler, row.searcher, str(row.trials),
                _score(row.best_validation_score),
                _score(row.test_score), _duration(row.wall_time_s), row.started, row.status,
            ] + [f"{row.cv}-fold cv" if row.cv else "split", "?" if row.seed is None else str(row.seed)] * scored_apart  # fmt: skip
            table.add_row(*cells)
        console.print(table)
        if scored_apart:
            console.print(
                f"note: these {metric} sweeps differ in seed or validation: their scores were not made on the same rows",
                markup=False,
            )


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.5g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"
