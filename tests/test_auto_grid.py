"""``raysweep run auto`` with a member recipe that has a ``grid`` parameter: refused in one line.

Grid search walks a grid, and auto refuses grid search; any other searcher would only ever take
the grid's first value. Nothing starts and nothing is written to MLflow.
"""

from __future__ import annotations

from pathlib import Path

from conftest import invoke_cli

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_an_auto_member_with_a_grid_parameter_is_refused_in_one_line_naming_it(tmp_path):
    text = (RECIPES / "random_forest.yaml").read_text().replace("name: random_forest", "name: gridded_forest")
    text = text.replace("max_depth: {type: randint, low: 4, high: 33, grid: [8, 16, 32]}", "max_depth: {type: grid, values: [8, 16, 32]}")
    (tmp_path / "gridded_forest.yaml").write_text(text)
    done = invoke_cli(
        "run", "auto", "--recipes", f"xgboost,{tmp_path / 'gridded_forest.yaml'}", "--dataset", "breast_cancer",
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "recipe 'gridded_forest' has space.max_depth of type grid, which auto cannot search; make it a choice" in lines[0]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "raysweep_results").exists()
