"""Recipe files: the prebuilt ones shipped with raysweep, a user's own, and ``--set`` overrides."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from raysweep.errors import UserError
from raysweep.recipes.schema import _TOP_KEYS, Recipe, _KeyProblem, _related, _suggest, _where, validate_recipe_data


def bundled_recipes_dir() -> Path:
    """Where the prebuilt recipes live: inside the installed wheel, or the checkout's recipes/."""
    packaged = Path(str(resources.files("raysweep.recipes"))) / "prebuilt"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "recipes"


def bundled_recipe_names() -> list[str]:
    return sorted(p.stem for p in bundled_recipes_dir().glob("*.yaml"))


def resolve_recipe_path(name_or_path: str) -> Path:
    """A bundled recipe name (``xgboost``) or the path of a YAML file."""
    candidate = Path(name_or_path)
    # Prebuilt names in any case, as scheduler and searcher names are taken (and `run AUTO`); a
    # folder of the same name here does not hide one (a file does).
    path = bundled_recipes_dir() / f"{name_or_path.lower()}.yaml"
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file() or "/" in name_or_path or (candidate.exists() and not path.is_file()):
        if candidate.is_dir():
            raise UserError(f"{name_or_path}: a folder, not a recipe file; pass the path of a YAML file in it")
        if not candidate.is_file():
            raise UserError(f"{name_or_path}: no such recipe file; check the path, or use a prebuilt recipe: {', '.join(bundled_recipe_names())}")
        return candidate
    if not path.is_file():
        names = bundled_recipe_names()
        here = next((f"{name_or_path}{suffix}" for suffix in (".yaml", ".yml") if Path(f"{name_or_path}{suffix}").is_file()), None)
        hint = f" (did you mean the file {here}?)" if here else _suggest(name_or_path, names)
        raise UserError(
            f"unknown recipe {name_or_path!r}{hint}; prebuilt recipes: {', '.join(names)} (or pass a path to a YAML file)"
        )
    return path


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise UserError(f"--set {text}: expected KEY.PATH=VALUE, e.g. --set space.max_depth.high=12")
    key, value_text = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise UserError(f"--set {text}: the key is empty; expected KEY.PATH=VALUE, e.g. --set space.max_depth.high=12")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else ""
    except yaml.YAMLError:
        value = value_text
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply ``--set key.path=value`` overrides to raw recipe data.

    Every key on the path must already exist, except a new parameter under ``fixed``.
    """
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = _parse_override(text)
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            path = ".".join(parts[: depth + 1])
            if not isinstance(node, dict):
                raise UserError(f"--set {text}: {'.'.join(parts[:depth])} in {source} is not a mapping, so it has no key {part!r}")
            if depth == 0 and part in _TOP_KEYS and not last and node.get(part) is None:
                node[part] = {}  # a recipe without fixed parameters, early stopping or PBT settings can still be given them
            # New keys: a parameter under fixed, or an optional top-level key the recipe left out.
            new_ok = (parts[0] in ("fixed", "early_stopping", "pbt") and depth == 1 and last) or (depth == 0 and last and part in _TOP_KEYS)
            if part not in node and not new_ok:
                # At the top, the optional keys the recipe left out can be set too.
                known = [str(k) for k in node] + ([k for k in _TOP_KEYS if k not in node] if depth == 0 else [])
                raise UserError(f"--set {text}: {source} has no key {path}{_suggest(part, known)}; keys there: {', '.join(known) or '(none)'}")
            if last:
                node[part] = value
            else:
                node = node[part]
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing a key given twice in one mapping (YAML keeps the last
    without a word: a recipe's first ``max_depth`` would be dropped silently)."""

    def flatten_mapping(self, node: Any) -> None:
        # Checked before SafeLoader merges `<<: *anchor` keys into the node (the keys given beside
        # them winning), once per node: a merged mapping is flattened in place, maybe before its
        # own turn, and then holds its merged keys beside its own.
        checked = self.__dict__.setdefault("_checked_nodes", set())
        if id(node) not in checked:
            checked.add(id(node))
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: SafeLoader's own error says so
                    continue
                if first is not key_node:
                    raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice (first at line {first.start_mark.line + 1}); keep one")
        super().flatten_mapping(node)


class _DuplicateKey(yaml.YAMLError):
    pass


def read_recipe_file(path: Path) -> Any:
    """The raw YAML content of a recipe file (one line errors for unreadable or malformed files)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the recipe ({exc.__class__.__name__}: {exc}); check the file") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader: no Python objects)
    except _DuplicateKey as exc:
        raise UserError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: malformed YAML{where}: {problem}; fix the syntax") from None


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load a bundled recipe by name or a YAML file by path, apply overrides and validate it.

    An error that a ``--set`` caused names that ``--set``, not the recipe file.
    """
    path = resolve_recipe_path(str(name_or_path))
    source = str(path)
    data = read_recipe_file(path)
    if not overrides:
        recipe = validate_recipe_data(data, source, path.stem)
    else:
        if not isinstance(data, dict):
            validate_recipe_data(data, source, path.stem)
        bundled = path.parent == bundled_recipes_dir() and path.stem in bundled_recipe_names()
        changed = apply_overrides(data, overrides, f"recipe {path.stem}" if bundled else source)
        overridden = {".".join(_parse_override(text)[0]): text for text in overrides}
        try:
            recipe = validate_recipe_data(changed, source, path.stem)
        except _KeyProblem as exc:
            if any(_related(key, exc.path) for key in overridden) or not _is_valid(data, source, path.stem):
                where = _where(source, overridden, (exc.path,))
            else:
                # No --set gave this key, but the file alone passes: the flags together broke it.
                flags = " ".join(f"--set {text}" for text in overrides)
                where = f"{flags}: {exc.path}" if exc.path else flags
            raise UserError(f"{where}: {exc.problem}") from None
        recipe.overridden = overridden
    _note_a_borrowed_name(recipe, data, path)
    return recipe


def _is_valid(data: Any, source: str, default_name: str) -> bool:
    try:
        validate_recipe_data(data, source, default_name)
    except UserError:
        return False
    return True


def _note_a_borrowed_name(recipe: Recipe, data: Any, path: Path) -> None:
    """A changed copy of a prebuilt recipe that keeps its name would file its sweeps with the prebuilt's."""
    if recipe.name not in bundled_recipe_names() or path.resolve() == (bundled_recipes_dir() / f"{recipe.name}.yaml").resolve():
        return
    if data != read_recipe_file(bundled_recipes_dir() / f"{recipe.name}.yaml"):
        recipe.notes.append(
            f"name: {recipe.name} is also the prebuilt recipe's name, so this changed copy's sweeps would be named after "
            f"it and filed with its runs (MLflow experiment raysweep-DATASET); give it a name of its own"
        )
