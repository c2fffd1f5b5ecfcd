"""The sweep record: what ``raysweep resume`` and ``raysweep sync`` need, saved beside Ray's state.

``raysweep_sweep.json`` in the sweep's folder holds the recipe as resolved, how the dataset was
named and its fingerprint, the sweep's options and its MLflow parent run. The folder may be a
local path or a cloud URI (read and written through pyarrow's filesystems).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SWEEP_FILE = "raysweep_sweep.json"


def resume_command(name: str, storage: str) -> str:
    """``raysweep resume NAME --storage STORAGE`` as a shell takes it (a name with spaces quoted)."""
    import shlex

    return f"raysweep resume {shlex.quote(name)} --storage {shlex.quote(str(storage))}"


def continue_command(plan: Any) -> str:
    """How to continue ``plan``'s sweep: ``raysweep resume``, or for data given in memory (which the
    command line cannot read again) ``raysweep.resume_sweep`` with that data."""
    if getattr(plan, "dataset_spec", None) is not None:
        return resume_command(plan.name, plan.storage)
    return f"raysweep.resume_sweep({plan.name!r}, storage={str(plan.storage)!r}, dataset=<the same data>)"


def sync_command(name: str, storage: str) -> str:
    """``raysweep sync NAME --storage STORAGE`` as a shell takes it."""
    import shlex

    return f"raysweep sync {shlex.quote(name)} --storage {shlex.quote(str(storage))}"


def is_uri(value: Any) -> bool:
    """Whether ``value`` names a cloud location (``s3://...``) rather than a local path."""
    return isinstance(value, str) and "://" in value


def write_text(path: str, text: str) -> None:
    if is_uri(path):
        import pyarrow.fs

        filesystem, inner = pyarrow.fs.FileSystem.from_uri(path)
        filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
        with filesystem.open_output_stream(inner) as stream:
            stream.write(text.encode())
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def read_text(path: str) -> str | None:
    """The file's text, or None when it cannot be read."""
    try:
        if is_uri(path):
            import pyarrow.fs

            filesystem, inner = pyarrow.fs.FileSystem.from_uri(path)
            with filesystem.open_input_stream(inner) as stream:
                return stream.read().decode()
        return Path(path).read_text()
    except (OSError, FileNotFoundError):
        return None


def save(folder: str, record: dict[str, Any]) -> None:
    """Write ``record`` as the sweep record of the sweep whose folder is ``folder``."""
    write_text(f"{folder.rstrip('/')}/{SWEEP_FILE}", json.dumps(record, indent=2, default=str))


def update(folder: str, **changes: Any) -> None:
    """Add ``changes`` to the sweep record in ``folder`` (nothing when it has none)."""
    text = read_text(f"{folder.rstrip('/')}/{SWEEP_FILE}")
    if text is not None:
        save(folder, {**json.loads(text), **changes})


def storage_base(storage: str | None) -> str:
    """Where sweeps are kept: ``storage`` (a path made absolute, or a URI), else ./raysweep_results."""
    base = storage or "raysweep_results"
    return base if is_uri(base) else str(Path(base).expanduser().resolve())


def find(name_or_path: str, storage: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """The folder and record of a sweep given by name (under ``storage``) or by its folder; None if absent."""
    candidates = [name_or_path] if ("/" in name_or_path or is_uri(name_or_path)) else []
    candidates.append(f"{storage_base(storage).rstrip('/')}/{name_or_path}")
    for candidate in candidates:
        candidate = candidate if is_uri(candidate) else str(Path(candidate).expanduser().resolve())
        text = read_text(f"{candidate.rstrip('/')}/{SWEEP_FILE}")
        if text is not None:
            return candidate, json.loads(text)
    return None


def not_found(name_or_path: str, storage: str | None, where: str) -> str:
    """What ``resume`` and ``sync`` say of a sweep they cannot find (``where``: "to resume under", "under"):
    the nearest name among the sweeps kept in the storage folder, and the newest of them."""
    import difflib

    base = storage_base(storage)
    kept: list[tuple[float, str]] = []
    if not is_uri(base) and Path(base).is_dir():
        kept = sorted(((p.stat().st_mtime, p.parent.name) for p in Path(base).glob(f"*/{SWEEP_FILE}")), reverse=True)
    names = [name for _, name in kept]
    close = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    there = f"; sweeps there, newest first: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}" if names else ""
    return (f"no sweep {name_or_path!r} {where} {base}{hint}{there}; "
            "pass the sweep's name with --storage where it ran, or its folder")


def resume_refusal(name: str, k: int | None = None) -> str:
    """What ``raysweep resume`` says of a nested validation (``--nested-cv``) whose record lacks what resuming needs."""
    flag = f" (--nested-cv {k})" if k else ""
    return f"sweep {name} is part of a nested validation{flag} started by a raysweep that kept too little to resume it: start it again with raysweep run"


def sweep_dir(plan: Any) -> str:
    """The folder of a planned sweep's state: ``<storage>/<name>``."""
    return f"{plan.storage.rstrip('/')}/{plan.name}"


def tune_state_saved(folder: str) -> bool:
    """Whether Ray Tune saved a sweep's state in ``folder`` (its ``tuner.pkl``), so that ``resume``
    has something to restore; a cloud folder is taken to have it (not looked into)."""
    return is_uri(folder) or (Path(folder) / "tuner.pkl").exists()


def refuse_a_name_in_use(plan: Any) -> None:
    """Refuse a sweep ``name`` given by the user whose folder in the storage holds a sweep already:
    the new sweep's trials would join the old one's folder (``sync`` would then log both under one
    run) and ``resume``/``report`` would reach only the newer one. A raised
    :class:`~raysweep.errors.UserError` names the fix."""
    from raysweep.errors import UserError

    folder = sweep_dir(plan)
    text = read_text(f"{folder}/{SWEEP_FILE}")
    if text is None:
        return
    try:
        record = json.loads(text)
    except ValueError:
        record = {}
    started = tune_state_saved(folder) or any(record.get(key) for key in ("stopped_by", "nested_cv", "nested_job"))
    if not started:
        return  # stopped before Ray Tune saved anything (Ctrl-C while Ray started): nothing to resume, the name is free
    if record.get("failed"):  # resume would say there is nothing to resume: no loop between the two
        raise UserError(
            f"--name {plan.name}: {folder} holds a sweep of that name that failed ({record['failed']}); "
            f"pass another --name (or --storage), or remove {folder} to use the name again"
        )
    raise UserError(
        f"--name {plan.name}: {folder} holds a sweep of that name already; pass another --name (or --storage), "
        f"or continue that one with: {resume_command(plan.name, plan.storage)}"
    )


def save_plan(plan: Any, tracker: Any, warm_start: dict[str, Any] | None = None, nested_job: str | None = None) -> None:
    """What ``raysweep resume`` needs to rebuild this sweep, next to Ray's own state."""
    from dataclasses import asdict

    from raysweep.sweep.auto import to_record
    from raysweep.tracking.store import absolute_tracking_uri

    options = asdict(plan.options)
    options["tracking_uri"] = absolute_tracking_uri(tracker.tracking_uri) if tracker else plan.tracking_uri
    # The cluster the sweep runs on, given as RAY_ADDRESS: a resume goes back to it without the variable.
    if not options.get("address") and os.environ.get("RAY_ADDRESS", "").strip():
        options["address"] = os.environ["RAY_ADDRESS"].strip()
    record = {
        "name": plan.name,
        "storage": plan.storage,
        "recipe": plan.recipe.raw,
        "recipe_source": plan.recipe.source,
        "recipe_name": plan.recipe.name,
        "dataset": plan.dataset_spec,
        "dataset_fingerprint": plan.dataset.fingerprint,
        "options": options,
        "experiment_id": tracker.experiment_id if tracker else None,
        "parent_run_id": tracker.parent_run_id if tracker else None,
        "warm_start": warm_start,
        "nested_job": nested_job,
        # True once the sweep's outcome (refit, test score, model) is logged: it is complete.
        "outcome_done": False,
        # An auto sweep's members and common scale (its recipe above names them only).
        "auto": to_record(plan.auto) if plan.auto is not None else None,
    }
    save(sweep_dir(plan), record)
