"""``raysweep recipes list|show`` and ``raysweep validate``: recipes, without Ray or MLflow."""

from __future__ import annotations

from typing import Any

import click

from raysweep.cli._group import RaysweepGroup
from raysweep.errors import UserError


@click.group(cls=RaysweepGroup)
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

    _refuse_auto(recipe)
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


@click.command()
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field.")
@click.option("--scheduler", help="Check it with this scheduler, as `raysweep run --scheduler` would (default: the recipe's).")
@click.option("--searcher", help="Check it with this searcher, as `raysweep run --searcher` would (default: the recipe's).")
def validate(recipe: str, overrides: tuple[str, ...], scheduler: str | None, searcher: str | None) -> None:
    """Check a recipe file (or prebuilt recipe) without running anything.

    It runs every check of `raysweep run` that needs no data, for every task of the recipe, with
    the recipe's scheduler and searcher or the ones given.
    """
    from raysweep.recipes import load_recipe
    from raysweep.sweep.options import check_recipe, grace_note

    _refuse_auto(recipe)
    loaded = load_recipe(recipe, list(overrides))
    check_recipe(loaded, scheduler=scheduler.lower() if scheduler else None, searcher=searcher.lower() if searcher else None)
    for note in loaded.notes:
        click.echo(f"{loaded.source}: {note}", err=True)
    grace = grace_note(loaded, (scheduler or loaded.scheduler).lower())
    if grace:  # as `raysweep run` says it
        click.echo(f"note: {grace}", err=True)
    click.echo(f"{loaded.source}: ok ({loaded.family}; {', '.join(loaded.tasks)}; {len(loaded.space)} parameter{'s' if len(loaded.space) != 1 else ''} searched)")


def _refuse_auto(recipe: str) -> None:
    """``auto`` names no recipe file: ``raysweep run auto`` runs several."""
    if recipe.lower() == "auto":
        raise UserError(
            "auto is not a recipe: `raysweep run auto` runs several (every prebuilt one, or --recipes); "
            "validate each of them by its name or file"
        )
