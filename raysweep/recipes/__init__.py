"""Recipes: YAML files that say what to tune, checked against one schema (no Ray, MLflow or scikit-learn)."""

from raysweep.families._resource import Resource
from raysweep.metrics import METRICS
from raysweep.recipes.files import (
    apply_overrides,
    bundled_recipe_names,
    bundled_recipes_dir,
    load_recipe,
    read_recipe_file,
    resolve_recipe_path,
)
from raysweep.recipes.schema import SPACE_TYPES, TASKS, Recipe, highest, quantized_bounds, validate_recipe_data

__all__ = [
    "METRICS", "SPACE_TYPES", "TASKS", "Recipe", "Resource", "apply_overrides", "bundled_recipe_names",
    "bundled_recipes_dir", "highest", "load_recipe", "quantized_bounds", "read_recipe_file", "resolve_recipe_path", "validate_recipe_data",
]
