"""Datasets: load a built-in set or a user's file, infer the task, split once, encode.

Everything here runs on the driver, before Ray starts, so a bad dataset is reported as one
line naming the file or column.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raysweep.errors import UserError, plain
from raysweep.recipes.schema import _suggest

BUILTIN_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes", "make_classification", "make_regression")
_SYNTHETIC_OPTIONS = ("n_samples", "n_features", "n_informative", "n_classes", "noise", "random_state")
#: the options each generator takes (``noise`` is make_regression's, ``n_classes`` make_classification's)
_GENERATOR_OPTIONS = {
    "make_classification": ("n_samples", "n_features", "n_informative", "n_classes", "random_state"),
    "make_regression": ("n_samples", "n_features", "n_informative", "noise", "random_state"),
}
#: an integer target with at most this many distinct values is taken as class labels
MAX_INFERRED_CLASSES = 50
#: the modules :func:`prepare` imports (a sweep imports them while Ray starts)
PREPARE_MODULES = ("sklearn.model_selection", "sklearn.compose", "sklearn.impute", "sklearn.pipeline", "sklearn.preprocessing")


@dataclass
class Dataset:
    """A loaded table: the feature frame, the target and what the task is."""

    name: str
    X: Any  # pandas.DataFrame
    y: Any  # pandas.Series
    task: str
    notes: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """A short hash of the contents (features and target), to tell datasets apart in MLflow."""
        import pandas as pd

        digest = hashlib.sha256()
        digest.update(pd.util.hash_pandas_object(self.X, index=False).values.tobytes())
        digest.update(pd.util.hash_pandas_object(self.y, index=False).values.tobytes())
        digest.update(",".join(map(str, self.X.columns)).encode())
        return digest.hexdigest()[:16]


def _parse_synthetic(spec: str) -> tuple[str, dict[str, Any]]:
    name, _, options_text = spec.partition(":")
    options: dict[str, Any] = {}
    taken = _GENERATOR_OPTIONS.get(name, _SYNTHETIC_OPTIONS)
    for item in filter(None, options_text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in taken:  # one the generator does not take was left unused without a word
            known = f" ({name} does not take it)" if key in _SYNTHETIC_OPTIONS else _suggest(key, taken)
            raise UserError(f"--dataset {spec}: unknown option {key!r}{known}; use {name}:{'=...,'.join(taken)}=...")
        try:
            options[key] = float(value) if key == "noise" else int(value)
        except ValueError:
            raise UserError(f"--dataset {spec}: {key} must be a number, got {value!r}") from None
    return name, options


def _load_builtin(spec: str, seed: int) -> tuple[Any, Any, str, str | None]:
    import pandas as pd
    from sklearn import datasets

    name, options = _parse_synthetic(spec)
    if name in ("make_classification", "make_regression"):
        n_features = options.get("n_features", 20)
        kwargs = {
            "n_samples": options.get("n_samples", 1000),
            "n_features": n_features,
            "n_informative": options.get("n_informative", max(2, n_features // 2)),
            "random_state": options.get("random_state", seed),
        }
        try:
            if name == "make_classification":
                X, y = datasets.make_classification(n_classes=options.get("n_classes", 2), **kwargs)
            else:
                X, y = datasets.make_regression(noise=options.get("noise", 10.0), **kwargs)
        except ValueError as exc:
            raise UserError(f"--dataset {spec}: {exc}") from None
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        return frame, pd.Series(y, name="target"), name, _builtin_task(name)
    if options:
        raise UserError(f"--dataset {spec}: options are only for make_classification and make_regression")
    loader = getattr(datasets, f"load_{name}")
    bunch = loader(as_frame=True)
    return bunch.data, bunch.target.rename("target"), name, _builtin_task(name)


def _builtin_task(name: str) -> str:
    """The task of the built-in dataset ``name``."""
    return "regression" if name in ("diabetes", "make_regression") else "classification"


def _load_kept_builtin(spec: str, seed: int) -> tuple[Any, Any, str, str]:
    """:func:`_load_builtin`, kept in raysweep's cache after the first time (see :mod:`raysweep._cache`):
    it then needs no scikit-learn, whose import is most of a small sweep's start before Ray."""
    from raysweep import _cache

    name, options = _parse_synthetic(spec)
    synthetic = name in ("make_classification", "make_regression")
    try:
        kept_as = _cache.key("dataset", {"name": name, "options": options, "seed": seed if synthetic else None}, (__file__,))
    except (OSError, ValueError):
        kept_as = None
    kept = _cache.load_table(kept_as) if kept_as and not (options and not synthetic) else None
    if kept is not None:
        return kept[0], kept[1], name, _builtin_task(name)
    X, y, name, task = _load_builtin(spec, seed)
    if kept_as:
        _cache.save_table(kept_as, X, y)
    return X, y, name, task


def _read_table(path: Path) -> Any:
    import pandas as pd

    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes[-1:] in ([".parquet"], [".pq"]):
            return pd.read_parquet(path)
        if any(s in (".csv", ".tsv", ".txt") for s in suffixes):
            sep = "\t" if ".tsv" in suffixes else ","
            return pd.read_csv(path, sep=sep, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty; give a CSV with a header row and data rows") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: cannot read it as UTF-8 text (byte 0x{exc.object[exc.start]:02x} is not UTF-8); save it as UTF-8 (CSV UTF-8 in a spreadsheet)") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"{path}: cannot read it as {'Parquet' if 'parquet' in str(suffixes) else 'CSV'} ({first}); check the file") from None
    raise UserError(f"{path}: unsupported file type {''.join(path.suffixes) or '(none)'}; use .csv, .csv.gz, .tsv or .parquet")


def _repeated_names(path: Path, frame: Any) -> list[str]:
    """A note for each column name a CSV's header repeats: pandas reads the second ``a`` as ``a.1``."""
    import pandas as pd

    if not any(s.lower() in (".csv", ".tsv", ".txt") for s in path.suffixes):
        return []
    sep = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    header = list(pd.read_csv(path, sep=sep, skipinitialspace=True, header=None, nrows=1).iloc[0])
    if len(header) != len(frame.columns):
        return []
    seen: dict[str, list[str]] = {}
    for name, read_as in zip(header, frame.columns):
        if not pd.isna(name):  # blank names are pandas' "Unnamed: N", each its own
            seen.setdefault(str(name), []).append(str(read_as))
    return [
        f"the header names column {name!r} {len(read_as)} times: read as {', '.join(repr(r) for r in read_as)}"
        for name, read_as in seen.items() if len(read_as) > 1
    ]


def _infer_task(y: Any, source: str, target: str) -> str:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.to_numpy(dtype=float)
    integral = np.all(np.mod(values, 1) == 0)
    if integral and y.nunique() <= MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


#: column names an error lists before it says how many more there are
_LISTED_COLUMNS = 30


def _listed(columns: list[str]) -> str:
    """The columns for an error: all of them, or the first 30 and how many more."""
    shown = ", ".join(columns[:_LISTED_COLUMNS])
    more = len(columns) - _LISTED_COLUMNS
    return f"{shown} and {more} more" if more > 0 else shown


def load_dataset(spec: str, target: str | None = None, task: str | None = None, seed: int = 0) -> Dataset:
    """Load ``spec`` (a built-in name or a CSV/Parquet path) and check it can be tuned on."""
    notes: list[str] = []
    base = spec.partition(":")[0]
    if base in BUILTIN_DATASETS:
        X, y, name, builtin_task = _load_kept_builtin(spec, seed)
        if target is not None and target != "target":
            raise UserError(f"--target {target}: the built-in dataset {name} has its own target; leave --target out")
        source = name
        inferred = builtin_task
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise UserError(
                f"--dataset {spec}: no such file and not a built-in dataset{_suggest(spec, BUILTIN_DATASETS)}; "
                f"give a CSV/Parquet path or one of {', '.join(BUILTIN_DATASETS)}"
            )
        if path.is_dir():
            raise UserError(f"--dataset {spec}: is a directory; give a CSV or Parquet file")
        frame = _read_table(path)
        source = str(path)
        notes += _repeated_names(path, frame)
        if frame.shape[0] == 0:
            raise UserError(f"{source}: has a header but no data rows; add rows")
        first = frame.columns[0]
        if isinstance(first, str) and first.startswith("Unnamed: 0") and frame[first].is_unique:
            # A blank-headed first column is a saved index (pandas' to_csv), not a feature.
            frame = frame.drop(columns=[first])
            notes.append(f"dropped the unnamed index column {first!r}")
        X, y = _split_target(frame, target, source, "pass --target COLUMN")
        return _checked(X, y, path.name.split(".")[0], source, task, notes)
    return _checked(X, y, name, source, task, notes, inferred)


def dataset_from_frame(data: Any, target: str | None = None, task: str | None = None, name: str = "dataframe") -> Dataset:
    """A :class:`Dataset` from data in memory, checked as a file's is: a pandas DataFrame with its
    ``target`` column, or an ``(X, y)`` pair (a DataFrame or 2-D array of features, and a Series or
    1-D array of targets; an array's columns are named ``x0``, ``x1``, ...). ``name`` names the sweep
    and its MLflow experiment (``raysweep-NAME``)."""
    import numpy as np
    import pandas as pd

    source = f"dataset {name}"
    if isinstance(data, pd.DataFrame):
        data = _named_columns(data, source)
        X, y = _split_target(data, target, source, "pass target=COLUMN", file=False)
    elif isinstance(data, tuple) and len(data) == 2:
        if target is not None:
            raise UserError(f"target={target!r}: an (X, y) pair holds its target in y; leave target out")
        X, y = data
        if not isinstance(X, pd.DataFrame):
            X = np.asarray(X)
            if X.ndim != 2:
                raise UserError(f"{source}: X must be 2-D (rows x features), got an array of shape {X.shape}")
            X = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        if not isinstance(y, pd.Series):
            values = np.asarray(y)
            if values.ndim == 2 and values.shape[1] == 1:
                values = values.ravel()
            if values.ndim != 1:
                raise UserError(f"{source}: y must be one target per row (1-D), got an array of shape {values.shape}")
            y = pd.Series(values, name="target")
        elif y.name is None:
            y = y.rename("target")
        if len(X) != len(y):
            raise UserError(f"{source}: X has {len(X)} rows and y {len(y)}; they must be the same rows")
        X, y = _named_columns(X, source).reset_index(drop=True), y.reset_index(drop=True)
    else:
        raise UserError(
            f"dataset of type {type(data).__name__}: give a built-in name, a CSV/Parquet path, a pandas DataFrame with "
            "target=COLUMN, or an (X, y) pair"
        )
    if X.shape[0] == 0:
        raise UserError(f"{source}: has no rows")
    return _checked(X, y, name, source, task, [])


def _named_columns(frame: Any, source: str) -> Any:
    """``frame`` with its column names as text (scikit-learn's column selection takes names of one
    kind only: ``0`` beside ``'colour'`` failed once Ray had started); a repeated name is refused."""
    names = [str(column) for column in frame.columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(f"{source}: column name(s) {', '.join(map(repr, repeated))} appear more than once; give each column a name of its own")
    return frame.set_axis(names, axis=1)


def _split_target(frame: Any, target: str | None, source: str, fix: str, file: bool = True) -> tuple[Any, Any]:
    """``frame``'s features and its ``target`` column; ``file``: read from a file (whose separator may be off)."""
    if target is None:
        raise UserError(f"{source}: which column is the target? {fix} (columns: {_listed([str(c) for c in frame.columns])})")
    if target not in frame.columns:
        columns = [str(c) for c in frame.columns]
        separator = next((mark for mark in (";", "\t", "|") if file and len(columns) == 1 and mark in columns[0]), None)
        if separator is not None:  # a CSV of another separator reads as one column named after the whole header
            shown = {"\t": "tabs"}.get(separator, repr(separator))
            raise UserError(
                f"{source}: the header reads as one column, its names separated by {shown}; raysweep reads commas "
                f"(.tsv: tabs): save it with commas{', with a . for decimals' if separator == ';' else ''}, or as .tsv"
            )
        raise UserError(f"{source}: no column {target!r}{_suggest(target, columns)}; columns: {_listed(columns)}")
    return frame.drop(columns=[target]), frame[target]


def _checked(X: Any, y: Any, name: str, source: str, task: str | None, notes: list[str], inferred: str | None = None) -> Dataset:
    """The checks and clean-up every table gets (a file's, a DataFrame's); ``inferred``: a built-in dataset's own task."""
    import pandas as pd

    if inferred is None:
        target = y.name
        if y.isna().all():
            raise UserError(f"{source}: target column {target!r} is empty (all values missing); choose another --target")
        missing = int(y.isna().sum())
        if missing:
            keep = y.notna().to_numpy()
            X, y = X[keep], y[keep]
            notes.append(f"dropped {missing} rows with no {target!r} value")
        if y.dtype == object or pd.api.types.is_string_dtype(y):
            y = y.astype(str).str.strip()
        X = X.reset_index(drop=True)
        y = y.reset_index(drop=True)
        empty = [str(column) for column in X.columns if X[column].isna().all()]
        if empty:
            notes.append(f"no value in any row of column(s) {', '.join(repr(c) for c in empty)}: nothing to learn from them")
        _refuse_infinite_values(source, X, y)
        _refuse_unusable_columns(source, X)
    if X.shape[1] == 0:
        raise UserError(f"{source}: no feature columns besides the target {y.name!r}; a model needs at least one")
    chosen = task or inferred or _infer_task(y, source, str(y.name))
    if task is None and inferred is None:
        notes.append(f"task inferred from target {y.name!r}: {chosen} (override with --task)")
    if chosen == "regression" and (not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)):
        example = y.iloc[0]
        raise UserError(f"{source}: target {y.name!r} holds text ({example!r}) but the task is regression; use --task classification or a numeric target")
    if chosen == "classification":
        counts = y.value_counts()
        if len(counts) < 2:
            raise UserError(f"{source}: target {y.name!r} has a single class ({plain(counts.index[0])!r}); classification needs at least two")
        if len(counts) > 2 and int((counts == 1).sum()) * 2 > len(counts):
            # A measurement taken as classes (--task classification on prices): every score was 0.
            numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
            raise UserError(
                f"{source}: target {y.name!r} has {len(counts):,} distinct values in {len(y):,} rows, most of them once: "
                f"too few rows of each class to learn from; "
                + ("use --task regression to predict the number" if numeric else "choose another --target")
            )
    if len(y) < 10:
        raise UserError(f"{source}: only {len(y)} rows; raysweep needs at least 10 to split into train, validation and test")
    return Dataset(name=name, X=X, y=y, task=chosen, notes=notes)


def _refuse_unusable_columns(source: str, X: Any) -> None:
    """A column no model here can take: durations (Timedelta) and cells holding lists, arrays or
    mappings (a Parquet list column). The first ended the logging of the refit model; the second a
    traceback once Ray had started (the data's fingerprint hashes each cell)."""
    import pandas as pd

    for column, series in X.items():
        if pd.api.types.is_timedelta64_dtype(series):
            raise UserError(
                f"{source}: column {column!r} holds durations (timedelta); convert it to a number (e.g. seconds) or drop it"
            )
        if series.dtype == object:
            nested = series.map(lambda cell: isinstance(cell, (list, tuple, dict, set, np.ndarray)))
            if nested.any():
                first = int(np.flatnonzero(nested.to_numpy())[0])
                raise UserError(
                    f"{source}: column {column!r} holds lists or arrays in its cells (the first in data row {first + 1}); "
                    "a model takes one value per cell: spread it into columns of its own, or drop it"
                )


def _refuse_infinite_values(source: str, X: Any, y: Any) -> None:
    """A number column with ``inf`` (a CSV's ``inf``, or a division by zero upstream): scikit-learn
    refuses it as the data is encoded, after Ray started, and XGBoost fails every trial."""
    import pandas as pd

    for column, series in [*X.items(), (y.name, y)]:
        if pd.api.types.is_float_dtype(series):
            rows = np.flatnonzero(np.isinf(series.to_numpy(dtype=float, na_value=np.nan)))
            if len(rows):
                what = "target" if series is y else "column"
                raise UserError(
                    f"{source}: {what} {column!r} holds an infinite value in {len(rows)} row(s) (the first is data row "
                    f"{rows[0] + 1}); replace it with a number, or leave the cell empty (a missing value)"
                )


@dataclass
class TrialData:
    """What every trial sees: encoded training and validation arrays (never the test split).

    With cross-validation, ``X_train``/``y_train`` hold the whole tuning pool and ``folds``
    the (train, validation) index pairs; ``X_val``/``y_val`` are then empty.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    task: str
    n_classes: int
    folds: list[tuple[np.ndarray, np.ndarray]] | None = None
    #: regression targets are standardised for families that need it; errors are scaled back
    y_scale: float = 1.0

    def splits(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(X_fit, y_fit, X_score, y_score) for each fold (one pair without cross-validation)."""
        if not self.folds:
            return [(self.X_train, self.y_train, self.X_val, self.y_val)]
        if "_fold_splits" not in self.__dict__:  # the same arrays every step: XGBoost finds its matrices again
            self._fold_splits = [(self.X_train[tr], self.y_train[tr], self.X_train[va], self.y_train[va]) for tr, va in self.folds]
        return self._fold_splits

    def __getstate__(self) -> dict[str, Any]:  # the folds are cut again where the data arrives
        return {k: v for k, v in self.__dict__.items() if k != "_fold_splits"}


@dataclass
class PreparedData:
    """The split dataset: trial arrays, plus the raw tuning pool and test split for the refit."""

    trial: TrialData
    X_pool: Any  # train+validation rows, raw columns (DataFrame)
    y_pool: np.ndarray
    X_test: Any
    y_test: np.ndarray
    classes: np.ndarray | None
    y_center: float
    y_scale: float
    numeric_columns: list[str]
    categorical_columns: list[str]
    sizes: dict[str, int]
    #: what the splits said (a class too rare to stratify on): the sweep's result's warnings
    notes: list[str] = field(default_factory=list)


def feature_columns(X: Any) -> tuple[list[str], list[str]]:
    """(numeric, categorical) column names; booleans and text are categorical."""
    import pandas as pd

    numeric, categorical = [], []
    for column in X.columns:
        series = X[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numeric.append(column)
        else:
            categorical.append(column)
    return numeric, categorical


def categories_as_text(frame: Any) -> Any:
    """Category columns as strings, without leading spaces (module level so a fitted pipeline pickles).

    raysweep's CSV reader skips the spaces after each comma (pandas' ``skipinitialspace``), so a
    model refit on ``adult.csv`` knows ``Private``; a frame read with plain ``pd.read_csv`` has
    `` Private``, which was an unknown category to the saved model (its accuracy on adult fell
    from 0.884 to 0.812). Stripped here, both frames predict alike.
    """
    text = frame.astype(str)
    if not hasattr(text, "columns"):
        return np.char.lstrip(np.asarray(text, dtype=str), " ")
    for name in text.columns:
        # Looked for among the distinct values first (a category column has few): a frame with
        # nothing to strip costs 8 ms on adult instead of 58.
        if any(isinstance(value, str) and value.startswith(" ") for value in text[name].unique()):
            text[name] = text[name].str.lstrip(" ")
    return text


def make_preprocessor(encoding: str, numeric: list[str], categorical: list[str], native_missing: bool) -> Any:
    """A ColumnTransformer that turns raw columns into the numbers a family needs.

    ``ordinal`` (tree models): categories as integer codes; missing numbers kept as NaN when
    the family handles them, median-imputed otherwise. ``dense`` (SVM, MLP): numbers imputed
    and standardised, categories one-hot encoded.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    from sklearn.preprocessing import FunctionTransformer

    # Categories may mix types (numbers and text, or NaN): encode them all as text.
    as_text = FunctionTransformer(categories_as_text, feature_names_out="one-to-one")
    if encoding == "ordinal":
        number_steps = [] if native_missing else [SimpleImputer(strategy="median")]
        category = make_pipeline(
            as_text,
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1),
        )
    else:
        number_steps = [SimpleImputer(strategy="median"), StandardScaler()]
        category = make_pipeline(
            as_text,
            OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=30, sparse_output=False),
        )
    transformers = []
    if numeric:
        transformers.append(("numeric", make_pipeline(*number_steps) if number_steps else "passthrough", numeric))
    if categorical:
        transformers.append(("categorical", category, categorical))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False)


def prepare(
    dataset: Dataset,
    family: Any,
    *,
    seed: int,
    test_size: float = 0.2,
    val_size: float = 0.2,
    cv: int | None = None,
    rows: tuple[np.ndarray, np.ndarray] | None = None,
) -> PreparedData:
    """Split once into train / validation / test and encode the trial arrays.

    The test split is never shown to a trial; the encoder (and a regression target's centre and
    scale) is fitted on the rows the trials train on: the train split, so no statistic of the
    validation or test rows leaks into training. With ``cv`` it is fitted once on the whole tuning
    pool, each fold's validation rows included (scikit-learn's ``cross_val_score`` of a Pipeline
    refits it per fold); the test rows stay out either way. ``rows`` gives the
    (tuning pool, test) row indices instead of the usual test split: one outer fold of a nested
    validation, whose held-out rows take the test split's place.
    """
    from raysweep.splits import encoded_target, scored_rows, tuning_pool

    X = dataset.X
    classes, y_encoded = encoded_target(dataset)
    classification = classes is not None

    notes: list[str] = []
    pool, test = rows if rows is not None else tuning_pool(dataset, seed, test_size, notes)
    if cv is not None and cv > len(pool):
        raise UserError(f"--cv {cv}: only {len(pool)} rows remain for tuning after the test split; use fewer folds")
    train, val, folds = scored_rows(y_encoded, classes, pool, seed, test_size, val_size, cv, notes)

    numeric, categorical = feature_columns(X)
    preprocessor = make_preprocessor(family.encoding, numeric, categorical, family.native_missing)
    fit_rows = pool if cv is not None else train
    preprocessor.fit(X.iloc[fit_rows], y_encoded[fit_rows])

    def encode(rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.empty((0, 0))
        return np.ascontiguousarray(preprocessor.transform(X.iloc[rows]), dtype=np.float64)

    y_center, y_scale = 0.0, 1.0
    if not classification and family.scale_target:
        # Networks and SVR fit a target in its natural units (house prices) badly; they see it
        # standardised, and every score is reported back in the target's own units.
        y_center = float(np.mean(y_encoded[fit_rows]))
        y_scale = float(np.std(y_encoded[fit_rows])) or 1.0
    y_trial = (y_encoded - y_center) / y_scale

    trial = TrialData(
        X_train=encode(train),
        y_train=y_trial[train],
        X_val=encode(val),
        y_val=y_trial[val],
        task=dataset.task,
        n_classes=len(classes) if classes is not None else 0,
        folds=folds,
        y_scale=y_scale,
    )
    return PreparedData(
        trial=trial,
        X_pool=X.iloc[pool].reset_index(drop=True),
        y_pool=y_encoded[pool],
        X_test=X.iloc[test].reset_index(drop=True),
        y_test=y_encoded[test],
        classes=classes,
        y_center=y_center,
        y_scale=y_scale,
        numeric_columns=numeric,
        categorical_columns=categorical,
        sizes={"train": len(train), "validation": len(val), "test": len(test)},
        notes=notes,
    )
