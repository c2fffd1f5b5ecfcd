"""The ``raysweep`` command: a thin shell over the Python API.

Only ``run`` (and commands that need them) import Ray or MLflow, so ``--help`` and
``recipes list`` stay fast.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from raysweep import __version__
from raysweep.errors import SweepFailed, SweepInterrupted, TrackingIncomplete, UserError


class _Group(click.Group):
    """Turns raysweep's own errors into one line on stderr and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except SweepFailed as exc:
            click.echo(f"sweep failed: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except SweepInterrupted as exc:
            click.echo(str(exc), err=True)
            ctx.exit(exc.exit_code)
        except TrackingIncomplete as exc:
            click.echo(f"raysweep: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="raysweep")
def main() -> None:
    """Hyperparameter sweeps on Ray Tune from prebuilt recipes, every trial tracked in MLflow.

    \b
    raysweep recipes list
    raysweep run xgboost --dataset breast_cancer --scheduler asha --searcher hyperopt
    raysweep run my_recipe.yaml --dataset data.csv --target label
    """


# -- recipes -------------------------------------------------------------------------------------
@main.group()
def recipes() -> None:
    """List and show the prebuilt recipes."""


@recipes.command("list")
def recipes_list() -> None:
    """The prebuilt recipes, with their family, tasks and default strategy."""
    from rich.console import Console
    from rich.table import Table

    from raysweep.recipes import bundled_recipe_names, load_recipe

    table = Table("recipe", "family", "tasks", "default metric", "resource", "scheduler", "searcher", "description")
    for name in bundled_recipe_names():
        recipe = load_recipe(name)
        res = recipe.resource
        table.add_row(
            name,
            recipe.family,
            ", ".join(recipe.tasks),
            ", ".join(f"{m}" for m in recipe.metric.values()),
            f"{res.name} ({res.per_step:g}/step, max {res.max:g})",
            recipe.scheduler,
            recipe.searcher,
            recipe.description,
        )
    console = Console()
    Console(width=max(160, console.width) if not console.is_terminal else None).print(table)


def _describe(spec: dict[str, Any]) -> str:
    """One search-space entry as the Ray Tune domain it becomes."""
    kind = spec["type"]
    if "values" in spec:
        return f"tune.{'grid_search' if kind == 'grid' else 'choice'}({spec['values']!r})"
    args = [spec["low"], spec["high"]] + ([spec["q"]] if "q" in spec else [])
    return f"tune.{kind}({', '.join(map(str, args))})" + (f"  grid: {spec['grid']}" if "grid" in spec else "")


@recipes.command("show")
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field.")
def recipes_show(recipe: str, overrides: tuple[str, ...]) -> None:
    """Print a recipe's YAML, with its resolved search space as comments.

    The output is a recipe of its own: `raysweep recipes show mlp > my_mlp.yaml` starts one.
    """
    from raysweep.recipes import load_recipe

    loaded = load_recipe(recipe, list(overrides))
    comments = ["resolved search space (Ray Tune domains)"]
    comments += [f"{name}: {_describe(spec)}" for name, spec in loaded.space.items()]
    if loaded.fixed:
        comments.append("fixed: " + ", ".join(f"{k}={v!r}" for k, v in loaded.fixed.items()))
    res = loaded.resource
    comments.append(f"resource: {res.name}, {res.per_step:g} per step, {res.max_steps} steps up to {res.max:g}")
    click.echo(f"# {loaded.source}")
    click.echo(loaded.to_yaml())
    # Comments, so that the output loads as the recipe it shows (one comment line per line).
    click.echo("\n".join(f"# {line}" for text in comments for line in text.splitlines()))


@main.command()
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field.")
def validate(recipe: str, overrides: tuple[str, ...]) -> None:
    """Check a recipe file (or prebuilt recipe) without running anything.

    It runs every check of `raysweep run` that needs no data, for every task of the recipe.
    """
    from raysweep.recipes import load_recipe
    from raysweep.runner import check_recipe

    loaded = load_recipe(recipe, list(overrides))
    check_recipe(loaded)
    for note in loaded.notes:
        click.echo(f"{loaded.source}: {note}", err=True)
    click.echo(f"{loaded.source}: ok ({loaded.family}; {', '.join(loaded.tasks)}; {len(loaded.space)} parameter{'s' if len(loaded.space) != 1 else ''} searched)")


# -- run -----------------------------------------------------------------------------------------
def _run_options(func: Any) -> Any:
    options = [
        click.option("--dataset", required=True, help="A built-in name (iris, wine, breast_cancer, digits, diabetes, make_classification[:n_samples=N,...], make_regression[:...]) or a CSV/Parquet path."),
        click.option("--target", help="The target column of a CSV/Parquet dataset."),
        click.option("--task", help="classification or regression: override the task inferred from the target."),
        click.option("--metric", help="accuracy, roc_auc, log_loss, f1_macro | rmse, mae, r2 (default: the recipe's)."),
        click.option("--scheduler", help="fifo, asha, hyperband or pbt: when to stop trials (default: the recipe's)."),
        click.option("--searcher", help="random, grid or hyperopt: what to try next (default: the recipe's)."),
        click.option("--num-samples", type=int, help="How many trials (with grid: how many passes over the grid)."),
        click.option("--time-budget", type=float, help="Stop starting and running trials after this many seconds."),
        click.option("--max-concurrent", type=int, help="Trials at once (default: one per CPU in the cluster)."),
        click.option("--cv", type=int, help="Score each trial by K-fold cross-validation instead of one validation split."),
        click.option("--seed", type=int, default=0, show_default=True, help="Makes the split, the configs and the models reproducible."),
        click.option("--name", help="The sweep's name (default: RECIPE-DATASET-TIMESTAMP)."),
        click.option("--storage", help="Where Ray keeps results and checkpoints (a path or a cloud URI; default ./raysweep_results)."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field, e.g. space.max_depth.high=12."),
        click.option("--address", help="A Ray cluster to join (GCS address, 'auto' or ray://...); default: an embedded local Ray, or RAY_ADDRESS."),
        click.option("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."),
        click.option("--experiment", help="MLflow experiment (default: raysweep-RECIPE-DATASET)."),
        click.option("--max-failures", type=int, default=0, show_default=True, help="Retry a failed trial this many times."),
        click.option("--checkpoint-every", type=float, metavar="SECONDS", help="Checkpoint a running trial at most this often, for resume and retries; 0: after every step (default 10)."),
        click.option("--register-model", help="Register the refit best model in the MLflow Model Registry under this name."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the outcome on stdout."),
        click.option("--verbose", is_flag=True, help="Show Ray's own output instead of the live view."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@click.argument("recipe")
@_run_options
def run(recipe: str, as_json: bool, verbose: bool, **options: Any) -> None:
    """Run a sweep of RECIPE (a prebuilt name or a YAML path) on a dataset."""
    from raysweep.runner import plan_sweep

    options["overrides"] = list(options["overrides"])
    plan = plan_sweep(recipe, options.pop("dataset"), **options)
    _execute(plan, as_json=as_json, verbose=verbose)


@main.command()
@click.argument("sweep")
@click.option("--storage", help="Where the sweep kept its state (default ./raysweep_results).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the outcome on stdout.")
@click.option("--verbose", is_flag=True, help="Show Ray's own output instead of the live view.")
def resume(sweep: str, storage: str | None, as_json: bool, verbose: bool) -> None:
    """Continue an interrupted or killed sweep (by name, or the path of its folder)."""
    from rich.console import Console

    from raysweep.runner import resume_sweep

    Console(stderr=True, highlight=False).print(f"raysweep: resuming {sweep}")
    _report_when_done(lambda: resume_sweep(sweep, storage=storage, verbose=verbose, progress=True), as_json)


def _execute(plan: Any, *, as_json: bool, verbose: bool) -> None:
    from rich.console import Console
    from rich.markup import escape

    from raysweep.runner import run_planned

    from raysweep.tracking.store import check_reachable, resolve_tracking_uri

    check_reachable(resolve_tracking_uri(plan.tracking_uri))
    err = Console(stderr=True, highlight=False)
    for where, note in [(plan.recipe.source, n) for n in plan.recipe.notes] + [(plan.dataset.name, n) for n in plan.dataset.notes]:
        err.print(f"[dim]{escape(f'{where}: {note}')}[/]")
    err.print(
        f"raysweep: {plan.recipe.name} on {plan.dataset.name} ({plan.task}, {len(plan.dataset.y)} rows), "
        f"{plan.scheduler} + {plan.searcher}, {plan.num_samples} {'grid pass(es)' if plan.searcher == 'grid' else 'trials'}, "
        f"metric {plan.metric} ({plan.mode})"
    )
    _report_when_done(lambda: run_planned(plan, verbose=verbose, progress=True), as_json)


def _report_when_done(sweep: Any, as_json: bool) -> None:
    """Run the sweep and print its result, also when MLflow lacks part of it (then exit 1)."""
    try:
        result = sweep()
    except TrackingIncomplete as exc:
        _report(exc.result, as_json)
        raise
    _report(result, as_json)


def _report(result: Any, as_json: bool) -> None:
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


#: commands that live in their own modules: (module, attribute, command name). Those modules
#: keep heavy imports inside the commands, so --help stays fast.
_COMMANDS = (
    ("raysweep.cluster", "cluster_group", "cluster"),
    ("raysweep.review", "ui_command", "ui"),
    ("raysweep.review", "report_command", "report"),
    ("raysweep.tracking.sync", "sync_command", "sync"),
)


def _attach_optional_commands() -> None:
    import importlib

    for module_name, attribute, name in _COMMANDS:
        try:
            command = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            continue
        main.add_command(command, name)


_attach_optional_commands()


if __name__ == "__main__":
    sys.exit(main())
