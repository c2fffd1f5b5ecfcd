"""Which rows go where: the test split, the tuning pool, and the outer folds of a nested validation."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from raysweep.errors import UserError, plain

logger = logging.getLogger(__name__)


def encoded_target(dataset: Any) -> tuple[np.ndarray | None, np.ndarray]:
    """(the class labels, the target as class indices) for classification; (None, the target as floats) otherwise."""
    y = dataset.y
    if dataset.task != "classification":
        return None, y.to_numpy(dtype=float)
    labels = y.to_numpy()
    return np.unique(labels.astype(str) if labels.dtype == object else labels, return_inverse=True)


#: what :func:`split_rows` has said in this process (a nested validation splits every fold alike)
_said: set[str] = set()


def _say(note: str, notes: list[str] | None) -> None:
    """``note`` logged once in this process, and added to ``notes`` (a sweep's result's warnings)."""
    if note not in _said:
        _said.add(note)
        logger.warning("%s", note)
    if notes is not None and note.removeprefix("raysweep: ") not in notes:
        notes.append(note.removeprefix("raysweep: "))


def split_rows(
    rows: np.ndarray, fraction: float, labels: np.ndarray | None, seed: int, part: str = "test", classes: np.ndarray | None = None,
    notes: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` cut in two, ``fraction`` of them in the second part (the ``part`` split); stratified
    on ``labels`` (indices into ``classes``) when given, and when that cannot be done, a plain
    shuffled split, said once as a warning (and added to ``notes``)."""
    from sklearn.model_selection import train_test_split

    if labels is None:
        return train_test_split(rows, test_size=fraction, random_state=seed)
    try:
        return train_test_split(rows, test_size=fraction, random_state=seed, stratify=labels[rows])
    except ValueError:
        # A class too rare to stratify on: fall back to a plain shuffled split.
        _say(_unstratified(part, labels[rows], classes, fraction), notes)
        return train_test_split(rows, test_size=fraction, random_state=seed)


def _unstratified(part: str, labels: np.ndarray, classes: np.ndarray | None, fraction: float) -> str:
    """Why the ``part`` split (``fraction`` of rows with these class ``labels``) is not stratified, and the fix."""
    counts = np.bincount(labels)
    present = np.flatnonzero(counts)
    rarest = present[np.argmin(counts[present])]
    if counts[rarest] < 2:
        name = plain(classes[rarest] if classes is not None else rarest)
        why = f"class {name!r} has only {counts[rarest]} row (stratifying needs 2 of each class); drop or merge that class to stratify it"
    else:
        held = math.ceil(fraction * len(labels))
        rows = held if held < len(present) else len(labels) - held
        which = "its" if held < len(present) else "the other part's"
        why = f"{which} {rows} rows cannot hold one of each of the {len(present)} classes; more rows of each class would stratify it"
    return f"raysweep: the {part} split is drawn at random, not stratified: {why}"


def scored_rows(
    y_encoded: np.ndarray, classes: np.ndarray | None, pool: np.ndarray, seed: int, test_size: float, val_size: float, cv: int | None,
    notes: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]] | None]:
    """(train, validation, folds) of a tuning ``pool`` (row indices): a validation split of
    ``val_size`` of the whole data, or with ``cv`` the whole pool and its K folds (positions in
    the pool), stratified when every class has a row for each fold."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if cv is None:
        train, val = split_rows(pool, val_size / (1 - test_size), y_encoded if classes is not None else None, seed, "validation", classes, notes)
        return train, val, None
    splitter: Any = KFold(cv, shuffle=True, random_state=seed)
    if classes is not None:
        counts = np.bincount(y_encoded[pool])
        present = np.flatnonzero(counts)
        rarest = present[np.argmin(counts[present])]
        if counts[rarest] >= cv:
            splitter = StratifiedKFold(cv, shuffle=True, random_state=seed)
        else:
            name = plain(classes[rarest])
            fix = f"--cv {counts[rarest]} or fewer stratifies them" if counts[rarest] >= 2 else "drop or merge that class to stratify them"
            note = (
                f"raysweep: the {cv} cross-validation folds are drawn at random, not stratified: class {name!r} has "
                f"{counts[rarest]} row(s) in train+validation, fewer than the folds; {fix}"
            )
            _say(note, notes)
    return pool, pool[:0], [(tr, va) for tr, va in splitter.split(np.zeros(len(pool)), y_encoded[pool])]


def tuning_pool(dataset: Any, seed: int, test_size: float, notes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The row indices of (train + validation, test): the one test split every sweep of this seed makes."""
    classes, y_encoded = encoded_target(dataset)
    return split_rows(np.arange(len(y_encoded)), test_size, y_encoded if classes is not None else None, seed, "test", classes, notes)


def smallest_class(dataset: Any, seed: int, test_size: float) -> int | None:
    """How many rows the rarest class has in the tuning pool; None for regression."""
    classes, y_encoded = encoded_target(dataset)
    if classes is None:
        return None
    pool, _ = tuning_pool(dataset, seed, test_size)
    return int(np.bincount(y_encoded[pool], minlength=len(classes)).min())


def outer_folds(dataset: Any, seed: int, test_size: float, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The K outer folds of a nested validation over the tuning pool (never the test split):
    for each, the (rows its inner sweep tunes on, the held-out rows it is scored on), as row
    indices of the dataset. Stratified for classification, seeded."""
    from sklearn.model_selection import KFold, StratifiedKFold

    classes, y_encoded = encoded_target(dataset)
    pool, _ = tuning_pool(dataset, seed, test_size)
    splitter: Any = StratifiedKFold(k, shuffle=True, random_state=seed) if classes is not None else KFold(k, shuffle=True, random_state=seed)
    return [(pool[inner], pool[held_out]) for inner, held_out in splitter.split(np.zeros(len(pool)), y_encoded[pool])]


def check_outer_folds(k: int, dataset: Any, *, seed: int, test_size: float, cv: int | None) -> None:
    """Enough rows for K outer folds (each class in every fold) and for the inner split of each."""
    rarest = smallest_class(dataset, seed, test_size)
    if rarest is not None and rarest < k:
        raise UserError(
            f"--nested-cv {k}: the rarest class of {dataset.name} has {rarest} row(s) in train+validation, "
            f"and each of the {k} stratified outer folds needs one; use --nested-cv {rarest} or fewer" if rarest >= 2 else
            f"--nested-cv {k}: the rarest class of {dataset.name} has {rarest} row(s) in train+validation; nested validation needs 2 per class"
        )  # fmt: skip
    pool = len(tuning_pool(dataset, seed, test_size)[0])
    inner, needed = pool - math.ceil(pool / k), max(10, cv or 0)
    if inner < needed:
        raise UserError(
            f"--nested-cv {k}: {dataset.name} has {pool} rows in train+validation, so each outer fold tunes on {inner}; "
            f"the inner {'cross-validation' if cv else 'train/validation split'} needs at least {needed}; use "
            + " or ".join([f"--cv {inner} or fewer"] * bool(cv and cv > 10 and inner >= 10) + ["fewer outer folds"] * (k > 2) + ["more data"])
        )
