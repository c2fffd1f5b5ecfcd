"""The ``raysweep`` command: a thin shell over the Python API.

Only ``run`` (and the commands that need them) import Ray or MLflow, so ``--help`` and
``recipes list`` stay fast. Every command is attached here by a plain import: a command that
cannot be imported is an error, not a missing command.
"""

from __future__ import annotations

import sys

import click

from raysweep._version import __version__
from raysweep.cli._group import RaysweepGroup
from raysweep.cli.cluster import cluster_group
from raysweep.cli.compare import compare_command
from raysweep.cli.recipes import recipes, validate
from raysweep.cli.run import resume, run
from raysweep.cli.review import report_command, ui_command
from raysweep.cli.sync import sync_command


@click.group(cls=RaysweepGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="raysweep")
def main() -> None:
    """Hyperparameter sweeps on Ray Tune from prebuilt recipes, every trial tracked in MLflow.

    \b
    raysweep recipes list
    raysweep run xgboost --dataset breast_cancer --scheduler asha --searcher hyperopt
    raysweep run my_recipe.yaml --dataset data.csv --target label
    """


for command, name in (
    (recipes, "recipes"), (validate, "validate"), (run, "run"), (resume, "resume"), (cluster_group, "cluster"),
    (ui_command, "ui"), (report_command, "report"), (compare_command, "compare"), (sync_command, "sync"),
):  # fmt: skip
    main.add_command(command, name)


if __name__ == "__main__":
    sys.exit(main())
