"""What a finished sweep prints: its leaderboard, best config, scores and where to review it."""

from __future__ import annotations

import json
import math
import shlex
from typing import Any

import click

from raysweep.tracking import schema


def report(result: Any, as_json: bool) -> None:
    from rich.console import Console

    if as_json:
        click.echo(json.dumps(json_ready(result.to_dict()), default=str, allow_nan=False))
        return
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    _print_summary(result, console)


def json_ready(value: Any) -> Any:
    """``value`` with each NaN or infinite float as None: JSON has no NaN (``json.dumps`` writes a bare
    ``NaN`` that strict parsers, JavaScript's ``JSON.parse`` among them, refuse)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def print_leaderboard(console: Any, board: Any, metric_key: str, *, top: int, total: int | None = None) -> None:
    """The leaderboard's ``top`` rows as a table, one line per trial: trial, score, resource,
    outcome, the config, then why it was stopped early (when any trial was).

    In a terminal the table keeps to its width: the trial's name, score, resource and outcome are
    never cut, the stop reasons wrap in the width left to them, and the config columns that do not
    fit are left out and named under the table (the best config is printed in full, and MLflow and
    ``raysweep report`` have every trial's). Too narrow for that (under 80 columns), the
    table loses the stop reasons, then its rules; a terminal narrower than the first four columns
    wraps their lines. Elsewhere (a file, a pipe) nothing is cut or wrapped.
    """
    from rich.table import Table

    from raysweep.tracking.schema import STOP_DETAIL_RESULT

    total = len(board) if total is None else total
    name_column = "trial" if "trial" in board.columns else "trial_id"  # sweeps before readable names
    config_columns = [c for c in board.columns if c.startswith("config/")]
    stopped = STOP_DETAIL_RESULT in board.columns and board[STOP_DETAIL_RESULT].fillna("").astype(str).str.len().gt(0).any()
    if stopped:
        board = board.fillna({STOP_DETAIL_RESULT: ""})  # a CSV read back holds NaN where there is none
    shown = board.head(top)
    base = [c for c in [name_column, "family", metric_key, "resource", "outcome"] if c in board.columns]
    detail = [STOP_DETAIL_RESULT] * bool(stopped)
    # A parameter a trial does not have (another family's, in an auto sweep) is blank, not nan.
    cells = {c: ["" if c in config_columns and _missing(value) else _fmt(value) for value in shown[c]] for c in [*base, *config_columns, *detail]}
    natural = {c: max([len(_header(c)), *(len(value) for value in values)]) for c, values in cells.items()}

    # Each column takes its text, a space either side and a rule: 3 characters; the table 1 more.
    # A terminal too narrow for the first columns with rules gets the table without them (a space
    # between columns), and without the stop reasons when even their narrowest does not fit.
    fit = console.is_terminal
    boxed = not fit or 1 + sum(natural[c] + 3 for c in base) <= console.width
    per_column, edge = (3, 1) if boxed else (1, -1)
    used = first_columns = edge + sum(natural[c] + per_column for c in base)
    left_out = []
    if stopped and fit and used + min(natural[STOP_DETAIL_RESULT], _STOP_DETAIL_NARROWEST) + per_column > console.width:
        detail, left_out = [], [STOP_DETAIL_RESULT]
    used += min(natural[STOP_DETAIL_RESULT], _STOP_DETAIL_MIN) + per_column if detail else 0
    configs, skipped = [], False
    for column in config_columns:
        if fit and (skipped or used + natural[column] + per_column > console.width):
            skipped = True  # the columns after one left out are left out too: the table keeps their order
            left_out.append(column)
            continue
        configs.append(column)
        used += natural[column] + per_column

    title = f"leaderboard (top {min(top, len(board))} of {total})"
    table = Table(title=title) if boxed else Table(title=title, box=None, padding=(0, 1), pad_edge=False, collapse_padding=True)
    for column in [*base, *configs]:
        table.add_column(_header(column), no_wrap=True, min_width=natural[column])
    if detail:
        table.add_column(STOP_DETAIL_RESULT, no_wrap=not fit)
    for index in range(len(shown)):
        table.add_row(*[cells[c][index] for c in [*base, *configs, *detail]])
    if left_out:
        table.caption = f"not shown for want of width: {', '.join(_header(c) for c in left_out)}"
    if fit and first_columns <= console.width:  # the stop reasons wrap in what is left
        console.print(table)
        return
    # Outside a terminal the table is as wide as its text, whatever the console's width.
    width = console.width
    console.width = max(width, 1 + sum(natural[c] + 3 for c in cells))
    try:
        console.print(table)
    finally:
        console.width = width


#: the narrowest the stop reasons' column gets in a terminal (they wrap within it) beside config columns
_STOP_DETAIL_MIN = 24
#: narrower than this, the stop reasons are left out (``asha: rung 1 (100`` takes 18)
_STOP_DETAIL_NARROWEST = 16


def _header(column: str) -> str:
    return column.removeprefix("config/")


def _print_summary(result: Any, console: Any) -> None:
    from rich.markup import escape

    print_leaderboard(console, result.leaderboard, schema.validation_metric(result.metric), top=10, total=result.num_trials)
    console.print(f"best config: {json.dumps(result.best_config, default=str)}")
    console.print(f"validation {result.metric}: {result.best_validation_score:.5g} (at resource {result.best_resource})")
    console.print(f"test {result.metric} of the refit model: [bold]{result.test_score:.5g}[/]")
    if getattr(result, "nested", None) is not None:
        print_nested(result.nested, result.test_score, console)
    console.print(
        f"trials: {result.num_trials} ({result.num_stopped_early} stopped early, {result.num_errors} failed) in {result.elapsed_s:.1f}s"
    )
    if getattr(result, "budget_ran_out", None):
        console.print(result.budget_ran_out)
    print_families(console, getattr(result, "families", None) or {}, result.metric)
    if result.warm_start_trials is not None:
        source = f" from {', '.join(result.warm_start_from)}" if result.warm_start_from else " (no earlier sweep: cold)"
        console.print(f"warm start: {result.warm_start_trials} earlier trials{source}")
    for warning in getattr(result, "warnings", []):
        console.print(f"[yellow]warning: {escape(warning)}[/]", soft_wrap=True)  # an MLflow error's text may hold [brackets]
    if getattr(result, "stopped_by", None):
        console.print(f"sweep stopped early: {result.stopped_by}", soft_wrap=True)
    if result.tracking_uri:
        console.print(f"MLflow: {result.tracking_uri}, parent run {result.parent_run_id}")
        if result.model_uri:
            console.print(f"model: {result.model_uri}")
        if result.tracking_uri.startswith(("http://", "https://")):
            for label, url in _ui_links(result):
                console.print(f"{label}: {url}", soft_wrap=True)
        else:
            console.print(f"review with: raysweep ui --tracking-uri {shlex.quote(result.tracking_uri)}", markup=False)
        from raysweep.tracking.store import report_command

        # As a shell takes it (a name with spaces quoted), its brackets printed, not read as Rich's markup.
        console.print(f"in a terminal: {report_command(result.name, result.tracking_uri)}", markup=False, soft_wrap=True)


def print_families(console: Any, families: dict[str, dict[str, Any]], metric: str) -> None:
    """An auto sweep's families, a line each: trials and best validation score (:func:`raysweep.best.family_bests`)."""
    for family, counts in families.items():
        best = "no score" if counts["best"] is None else f"best validation {metric} {counts['best']:.5g}"
        console.print(f"family {family}: {counts['trials']} trial{'s' * (counts['trials'] != 1)}, {best}")


def print_nested(nested: Any, test_score: float | None, console: Any) -> None:
    """The nested estimate beside the test score, then each fold's score, inner best and config."""
    from rich.table import Table

    table = Table(title=f"nested validation ({nested.k} outer folds)")
    for column in ("fold", nested.metric, "inner best", "config"):
        table.add_column(column)
    for fold in nested.folds:
        table.add_row(str(fold.fold), _fmt(fold.score), _fmt(fold.inner_best), json.dumps(fold.config, default=str))
    console.print(table)
    from rich.text import Text

    beside = "" if test_score is None else f" beside the test {nested.metric} {test_score:.5g}"
    plus_minus = "±" if (console.encoding or "").lower().replace("-", "").startswith("utf") else "+/-"
    # Text, not markup: ``raysweep report`` prints with markup off (names and configs hold brackets).
    console.print(Text.assemble(
        f"nested estimate of {nested.metric} (unbiased): ", (f"{nested.mean:.5g} {plus_minus} {nested.std:.3g}", "bold"),
        f"{beside}; optimism of the inner bests {nested.optimism:+.3g}",
    ))  # fmt: skip


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _ui_links(result: Any) -> list[tuple[str, str]]:
    """The sweep's links into the MLflow UI of a tracking server (see :func:`raysweep.tracking.views.sweep_links`)."""
    from mlflow.tracking import MlflowClient

    from raysweep.tracking.views import sweep_links

    client = MlflowClient(result.tracking_uri)
    try:
        return sweep_links(client, result.tracking_uri.rstrip("/"), client.get_run(result.parent_run_id))
    except Exception:  # links are an extra: a server gone away at the very end costs them, not the summary
        from raysweep.tracking.views import experiment_runs_url

        return [("runs", experiment_runs_url(result.tracking_uri, result.experiment_id))]
