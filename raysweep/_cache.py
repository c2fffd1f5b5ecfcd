"""raysweep's cache folder, and two checks it remembers so that a sweep's start imports less.

A sweep checks its recipe and loads its dataset before Ray starts, so that bad input is one line
and nothing else. For a shipped recipe on a built-in dataset both steps import scikit-learn, and
the recipe check XGBoost: 1.2 s of the README demo's 1.5 s before Ray starts (2 cores), for an
answer that is the same every time on the same installation. So:

* a recipe check that passed is remembered (:func:`remembered` and :func:`remember`), keyed by
  everything the check reads (the family, the task, the recipe's fixed values, space and step)
  and by what could change its answer (the versions of raysweep, scikit-learn, XGBoost, NumPy and
  pandas, and the size and time of the checking code's files). A check that fails is never
  remembered: it runs, and says why, every time;
* a built-in dataset is kept as its columns (:func:`load_table` and :func:`save_table`), keyed by
  its name, its options and seed, and the versions of scikit-learn, NumPy and pandas.

scikit-learn and XGBoost still load in the driver, in the thread that imports the trainable's
modules while Ray starts (:mod:`raysweep.sweep.early`). Anything that goes wrong with the cache
(no folder, a damaged file) falls back to doing the work, as on a first run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

#: the distributions whose versions key every remembered answer
_VERSIONED = ("scikit-learn", "xgboost", "numpy", "pandas")


def cache_dir() -> Path:
    """Where raysweep keeps what it makes once per machine (``$XDG_CACHE_HOME/raysweep``, else ``~/.cache/raysweep``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "raysweep"


@functools.cache  # 28 ms the first time: a sweep's start asks for a key several times
def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    from raysweep._version import __version__

    found: dict[str, str | None] = {"raysweep": __version__}
    for name in _VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _code_stamp(files: list[str]) -> list[tuple[str, int, int]]:
    """Each file's name, size and modification time: an edited checker does not reuse old answers."""
    stamps = []
    for file in files:
        stat = os.stat(file)
        stamps.append((os.path.basename(file), stat.st_size, stat.st_mtime_ns))
    return stamps


def key(kind: str, parts: Any, code: tuple[str, ...] = ()) -> str:
    """A file name for ``parts`` (JSON-able data; anything else is taken by its ``repr``)."""
    text = json.dumps([kind, parts, _versions(), _code_stamp(list(code))], sort_keys=True, default=repr)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def _folder(name: str) -> Path | None:
    """The cache's subfolder ``name``, or None when there is no home folder to put it in."""
    try:
        return cache_dir() / name
    except RuntimeError:  # no $HOME and no passwd entry: nothing is kept
        return None


def remembered(name: str) -> bool:
    """Whether a check named ``name`` (from :func:`key`) passed before."""
    folder = _folder("checked")
    return folder is not None and (folder / name).is_file()


def remember(name: str) -> None:
    """Note that the check ``name`` passed (nothing happens when the folder cannot be written)."""
    folder = _folder("checked")
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()
    except OSError:
        pass


def save_table(name: str, frame: Any, target: Any) -> None:
    """Keep ``frame`` and ``target`` (pandas, numeric columns) as ``name``; silently skipped when they cannot be kept."""
    folder = _folder("datasets")
    if folder is None:
        return
    arrays = {f"c{i}": frame[column].to_numpy() for i, column in enumerate(frame.columns)}
    arrays["target"] = target.to_numpy()
    if any(array.dtype == object for array in arrays.values()):
        return  # kept without pickle, so numbers only
    meta = {"columns": [str(c) for c in frame.columns], "target": str(target.name)}
    arrays["meta"] = np.array(json.dumps(meta))
    partial = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.npz"  # the sweeps of a nested job load on threads
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as out:
            np.savez(out, **arrays)
        os.replace(partial, folder / f"{name}.npz")  # whole or not at all, for a run reading it meanwhile
    except OSError:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass


def load_table(name: str) -> tuple[Any, Any] | None:
    """The frame and target kept as ``name``, or None when there are none (or they cannot be read)."""
    folder = _folder("datasets")
    path = folder / f"{name}.npz" if folder is not None else None
    if path is None or not path.is_file():
        return None
    import pandas as pd

    try:
        with np.load(path, allow_pickle=False) as kept:
            meta = json.loads(str(kept["meta"]))
            frame = pd.DataFrame({column: kept[f"c{i}"] for i, column in enumerate(meta["columns"])})
            target = pd.Series(kept["target"], name=meta["target"])
    except Exception:  # damaged, or not one of these: the caller loads the dataset afresh
        return None
    return frame, target
