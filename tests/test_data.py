"""Datasets: built-in sets, users' files with their quirks, task inference, the split and the
encoding, and sweeps end to end on a messy CSV."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pandas as pd
import pytest

from raysweep.data import feature_columns, load_dataset, prepare
from raysweep.errors import UserError
from raysweep.families import get_family
from raysweep.sweep.run import run_sweep


def messy_frame(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """A user's table: a text column with gaps, numbers with gaps, a yes/no column, a text target."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    city = rng.choice(["north", "south", "east", None], size=rows, p=[0.35, 0.3, 0.25, 0.1])
    income = rng.normal(50, 10, size=rows)
    income[rng.random(rows) < 0.15] = np.nan
    lift = np.where(city == "north", 1.0, np.where(city == "south", -1.0, 0.0))
    label = np.where(signal + lift + rng.normal(0, 0.4, size=rows) > 0, " good", " bad")  # leading spaces, as in adult
    return pd.DataFrame({
        "signal": signal.round(4),
        "income": income.round(2),
        "city": city,
        "member": rng.choice(["yes", "no"], size=rows),
        "label": label,
    })


@pytest.fixture
def messy_csv(tmp_path):
    frame = messy_frame()
    frame.loc[[5, 17, 101], "label"] = None  # three rows nobody labelled
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    return path


# -- built-in datasets ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, task, rows, columns, classes",
    [
        ("iris", "classification", 150, 4, 3),
        ("wine", "classification", 178, 13, 3),
        ("breast_cancer", "classification", 569, 30, 2),
        ("digits", "classification", 1797, 64, 10),
        ("diabetes", "regression", 442, 10, None),
        ("make_classification:n_samples=300,n_features=6,n_classes=3", "classification", 300, 6, 3),
        ("make_regression:n_samples=120,n_features=4,noise=0.5", "regression", 120, 4, None),
    ],
)
def test_builtin_dataset(spec, task, rows, columns, classes):
    data = load_dataset(spec)
    assert data.task == task
    assert data.X.shape == (rows, columns)
    assert len(data.y) == rows and not data.y.isna().any()
    if classes:
        assert data.y.nunique() == classes
    assert data.name == spec.split(":")[0]


def test_synthetic_data_follows_the_seed_unless_pinned():
    a, b, c = (load_dataset("make_classification:n_samples=50", seed=s) for s in (0, 0, 1))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    pinned = [load_dataset("make_classification:n_samples=50,random_state=5", seed=s).fingerprint for s in (0, 1)]
    assert pinned[0] == pinned[1]


# -- files and their quirks -------------------------------------------------------------------------------------
def test_messy_csv_loads_with_notes(messy_csv):
    data = load_dataset(str(messy_csv), target="label")
    assert data.name == "customers"
    assert data.task == "classification"
    assert len(data.y) == 237 and list(data.X.columns) == ["signal", "income", "city", "member"]
    assert set(data.y) == {"good", "bad"}, "text labels are stripped of surrounding spaces"
    assert any("dropped 3 rows with no 'label' value" in note for note in data.notes)
    assert any("task inferred from target 'label': classification" in note for note in data.notes)
    assert feature_columns(data.X) == (["signal", "income"], ["city", "member"])


def test_a_column_with_no_value_in_any_row_is_noted_once(tmp_path):
    frame = messy_frame(40)
    frame["blank"] = float("nan")
    path = tmp_path / "blank.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(str(path), target="label")
    assert [note for note in data.notes if "no value in any row" in note] == ["no value in any row of column(s) 'blank': nothing to learn from them"]
    frame.drop(columns=["blank"]).to_csv(path, index=False)
    assert not [note for note in load_dataset(str(path), target="label").notes if "no value in any row" in note]


def test_saved_index_column_is_dropped(tmp_path):
    frame = messy_frame(40)
    path = tmp_path / "with_index.csv"
    frame.to_csv(path)  # pandas writes its index as a blank-headed first column
    data = load_dataset(str(path), target="label")
    assert "Unnamed: 0" not in data.X.columns
    assert any("dropped the unnamed index column" in note for note in data.notes)


@pytest.mark.parametrize("suffix", [".csv.gz", ".tsv", ".parquet"])
def test_other_file_formats(tmp_path, suffix):
    frame = messy_frame(60)
    path = tmp_path / f"table{suffix}"
    if suffix == ".csv.gz":
        with gzip.open(path, "wt") as handle:
            frame.to_csv(handle, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    else:
        frame.to_parquet(path)
    data = load_dataset(str(path), target="label")
    assert data.X.shape == (60, 4)
    assert set(data.y) == {"good", "bad"}
    assert data.name == "table"


@pytest.mark.parametrize(
    "values, task",
    [
        ([0, 1, 2] * 10, "classification"),  # a few whole numbers: class labels
        ([True, False] * 15, "classification"),
        (list(np.linspace(0, 1, 30)), "regression"),
        (list(range(60)), "regression"),  # more whole numbers than MAX_INFERRED_CLASSES
        (["a", "b", "c"] * 10, "classification"),
    ],
)
def test_task_inferred_from_the_target(tmp_path, values, task):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": np.arange(len(values)), "y": values}).to_csv(path, index=False)
    assert load_dataset(str(path), target="y").task == task


def test_task_can_be_forced(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": np.arange(30), "y": [0, 1, 2] * 10}).to_csv(path, index=False)
    data = load_dataset(str(path), target="y", task="regression")
    assert data.task == "regression"
    assert not any("inferred" in note for note in data.notes)


# -- the split and the encoding ------------------------------------------------------------------------------------
def test_split_is_disjoint_stratified_and_seeded():
    data = load_dataset("breast_cancer")
    family = get_family("random_forest")
    prepared = prepare(data, family, seed=0)
    assert prepared.sizes == {"train": 341, "validation": 114, "test": 114}
    assert len(prepared.X_pool) == 455 and len(prepared.X_test) == 114
    assert prepared.trial.X_train.shape == (341, 30) and prepared.trial.X_val.shape == (114, 30)
    # No test row is among the rows the trials see.
    pool_rows = {tuple(row) for row in prepared.X_pool.to_numpy()}
    assert not pool_rows & {tuple(row) for row in prepared.X_test.to_numpy()}
    # Stratified: each split keeps the class balance.
    overall = data.y.mean()
    for labels in (prepared.trial.y_train, prepared.trial.y_val, prepared.y_test):
        assert abs(np.mean(labels) - overall) < 0.02
    same = prepare(data, family, seed=0)
    other = prepare(data, family, seed=1)
    assert np.array_equal(same.trial.X_val, prepared.trial.X_val)
    assert not np.array_equal(other.trial.X_val, prepared.trial.X_val)


def test_dense_encoding_is_fitted_on_training_rows_only(messy_csv):
    data = load_dataset(str(messy_csv), target="label")
    prepared = prepare(data, get_family("mlp"), seed=0)
    X_train, X_val = prepared.trial.X_train, prepared.trial.X_val
    # signal, income scaled; city one-hot (north, south, east, missing); member one-hot (yes, no)
    assert X_train.shape[1] == 2 + 4 + 2
    assert not np.isnan(X_train).any() and not np.isnan(X_val).any()
    # The scaler saw the training rows only: they, and not the validation rows, are exactly standardised.
    assert np.allclose(X_train[:, :2].mean(axis=0), 0, atol=1e-12)
    assert np.allclose(X_train[:, :2].std(axis=0), 1, atol=1e-12)
    assert not np.allclose(X_val[:, :2].mean(axis=0), 0, atol=1e-3)
    assert list(prepared.classes) == ["bad", "good"]


@pytest.mark.parametrize("family_name, keeps_nan", [("xgboost", True), ("random_forest", False)])
def test_ordinal_encoding_and_missing_values(messy_csv, family_name, keeps_nan):
    data = load_dataset(str(messy_csv), target="label")
    prepared = prepare(data, get_family(family_name), seed=0)
    X_train = prepared.trial.X_train
    assert X_train.shape[1] == 4
    assert np.isnan(X_train[:, 1]).any() == keeps_nan, "XGBoost handles missing numbers itself; forests get medians"
    # categories become integer codes, missing text its own code
    assert set(np.unique(X_train[:, 2])) <= {-1.0, 0.0, 1.0, 2.0, 3.0}


def test_regression_target_is_standardised_for_networks_only():
    data = load_dataset("diabetes")
    scaled = prepare(data, get_family("mlp"), seed=0)
    raw = prepare(data, get_family("xgboost"), seed=0)
    assert abs(np.mean(scaled.trial.y_train)) < 1e-9 and np.std(scaled.trial.y_train) == pytest.approx(1.0)
    assert scaled.y_scale == pytest.approx(np.std(raw.trial.y_train)) and scaled.trial.y_scale == scaled.y_scale
    assert raw.y_scale == 1.0 and raw.y_center == 0.0
    assert np.array_equal(scaled.y_test, raw.y_test), "the test target stays in the target's own units"


def test_cross_validation_folds_partition_the_pool():
    prepared = prepare(load_dataset("iris"), get_family("random_forest"), seed=0, cv=4)
    folds = prepared.trial.folds
    assert len(folds) == 4
    pool = len(prepared.X_pool)
    assert prepared.trial.X_train.shape[0] == pool
    assert sorted(np.concatenate([val for _, val in folds]).tolist()) == list(range(pool))
    for train, val in folds:
        assert not set(train) & set(val)
        assert np.bincount(prepared.trial.y_train[val].astype(int)).min() >= 7  # stratified: ~10 of each class


def test_prepare_refuses_more_folds_than_rows():
    with pytest.raises(UserError, match=r"--cv 200: only 120 rows remain"):
        prepare(load_dataset("iris"), get_family("random_forest"), seed=0, cv=200)


# -- end to end on a user's CSV -------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", ["xgboost", "mlp"])
def test_sweep_on_a_messy_csv(ray_local, tmp_path, messy_csv, recipe):
    overrides = {"xgboost": ["resource.per_step=25", "resource.max=50"], "mlp": ["resource.max=20"]}[recipe]
    result = run_sweep(recipe, str(messy_csv), target="label", scheduler="asha", searcher="random", num_samples=3, seed=0,
                       tracking=False, storage=str(tmp_path / "results"), overrides=overrides)
    assert result.num_trials == 3 and result.num_errors == 0
    assert result.task == "classification" and list(result.classes) == ["bad", "good"]
    assert 0.7 < result.test_score <= 1.0
    # The refit model takes the raw columns (text, gaps and all) and answers in the file's labels.
    data = load_dataset(str(messy_csv), target="label")
    prepared = prepare(data, get_family(recipe), seed=0)
    predicted = result.predict(prepared.X_test)
    assert set(predicted) <= {"bad", "good"}
    assert np.mean(predicted == prepared.classes[prepared.y_test]) == pytest.approx(result.test_score, abs=1e-9)
    proba = result.model.predict_proba(prepared.X_test)
    assert proba.shape == (len(prepared.X_test), 2) and np.allclose(proba.sum(axis=1), 1)


def test_class_missing_from_the_training_rows(ray_local, tmp_path):
    """A class with a single row can land outside the rows a trial trains on; XGBoost must cope."""
    frame = messy_frame(80)
    frame["label"] = np.where(frame["signal"] > 0, "up", "down")
    frame.loc[7, "label"] = "sideways"
    path = tmp_path / "rare.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(str(path), target="label")
    family = get_family("xgboost")
    rare = list(prepare(data, family, seed=0).classes).index("sideways")
    seed = next(s for s in range(50) if rare not in prepare(data, family, seed=s).trial.y_train)
    result = run_sweep("xgboost", str(path), target="label", scheduler="fifo", searcher="random", num_samples=2, seed=seed,
                       tracking=False, storage=str(tmp_path / "results"), overrides=["resource.per_step=25", "resource.max=50"])
    assert result.num_errors == 0, result.errors
    assert list(result.classes) == ["down", "sideways", "up"]
    assert math.isfinite(result.best_validation_score) and 0.7 < result.test_score <= 1.0
    proba = result.model.predict_proba(data.X)
    assert proba.shape == (len(data.X), 3), "one probability column per class, the unseen one included"


@pytest.mark.parametrize("encoding", ["ordinal", "dense"])
def test_text_read_without_skipping_the_space_after_each_comma_encodes_as_raysweeps_reader_read_it(encoding: str) -> None:
    """raysweep's CSV reader skips the space after each comma (adult's " Private"): a frame read by
    plain pd.read_csv gives the fitted preprocessing the same numbers, not unknown categories."""
    from raysweep.data import make_preprocessor

    as_read = pd.DataFrame({"work": ["Private", "State-gov", "Private", "Self-emp"], "hours": [40.0, 20.0, 35.0, 60.0]})
    plain = as_read.assign(work=" " + as_read["work"])
    preprocessor = make_preprocessor(encoding, ["hours"], ["work"], native_missing=False).fit(as_read)
    np.testing.assert_array_equal(preprocessor.transform(plain), preprocessor.transform(as_read))
    assert len(np.unique(preprocessor.transform(plain)[:, -1])) > 1  # the categories stay apart


def test_a_split_that_cannot_be_stratified_says_why_and_how_to_fix_it(caplog, monkeypatch) -> None:
    from raysweep import splits
    from raysweep.data import Dataset

    monkeypatch.setattr(splits, "_said", set())
    frame = messy_frame(rows=120)
    y = frame.pop("label").str.strip()
    family = get_family("random_forest")
    with caplog.at_level("WARNING", logger="raysweep.splits"):
        prepare(Dataset(name="customers", X=frame, y=y, task="classification"), family, seed=0)
    assert caplog.messages == [], "two classes of 50+ rows stratify"
    y.iloc[7] = "rare"
    with caplog.at_level("WARNING", logger="raysweep.splits"):
        prepared = prepare(Dataset(name="customers", X=frame, y=y, task="classification"), family, seed=0)
        prepare(Dataset(name="customers", X=frame, y=y, task="classification"), family, seed=0)  # said once
    assert caplog.messages[0] == (
        "raysweep: the test split is drawn at random, not stratified: class 'rare' has only 1 row "
        "(stratifying needs 2 of each class); drop or merge that class to stratify it"
    )
    assert len(caplog.messages) == len(set(caplog.messages)) <= 2
    assert prepared.sizes["test"] == 24
    # every sweep's result holds it among its warnings, said in this process before or not
    again = prepare(Dataset(name="customers", X=frame, y=y, task="classification"), family, seed=0)
    assert again.notes[0] == caplog.messages[0].removeprefix("raysweep: ")
    assert prepared.notes == again.notes
    caplog.clear()
    ten_classes = pd.Series(np.repeat([f"c{i}" for i in range(10)], 3))
    with caplog.at_level("WARNING", logger="raysweep.splits"):
        prepare(Dataset(name="tiny", X=frame.iloc[:30].reset_index(drop=True), y=ten_classes, task="classification"), family, seed=0)
    assert caplog.messages[0] == (
        "raysweep: the test split is drawn at random, not stratified: its 6 rows cannot hold one of each of the "
        "10 classes; more rows of each class would stratify it"
    )


def test_cross_validation_folds_that_cannot_be_stratified_say_so_once(caplog, monkeypatch) -> None:
    """--cv 50 on iris (40 rows of each class to tune on) fell back to plain K-fold without a word."""
    from raysweep import splits

    monkeypatch.setattr(splits, "_said", set())
    family = get_family("random_forest")
    with caplog.at_level("WARNING", logger="raysweep.splits"):
        prepare(load_dataset("iris"), family, seed=0, cv=5)
        assert caplog.messages == []
        prepare(load_dataset("iris"), family, seed=0, cv=50)
        prepare(load_dataset("iris"), family, seed=0, cv=50)  # said once
    assert caplog.messages == [
        "raysweep: the 50 cross-validation folds are drawn at random, not stratified: class 0 has 40 row(s) "
        "in train+validation, fewer than the folds; --cv 40 or fewer stratifies them"
    ]
    assert prepare(load_dataset("iris"), family, seed=0, cv=50).notes == [caplog.messages[0].removeprefix("raysweep: ")]
    assert prepare(load_dataset("iris"), family, seed=0, cv=5).notes == []


@pytest.mark.parametrize("where", ["a feature", "the target"])
def test_an_infinite_value_is_one_line_naming_the_column_and_the_row(tmp_path, where: str) -> None:
    """scikit-learn refused it as the data was encoded, after Ray started (a traceback), and
    XGBoost failed every trial."""
    frame = messy_frame(rows=40).drop(columns=["label"]).assign(label=lambda f: f["signal"] * 2)
    frame.loc[6, "income" if where == "a feature" else "label"] = np.inf
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(UserError) as raised:
        load_dataset(str(path), target="label")
    what = "column 'income'" if where == "a feature" else "target 'label'"
    assert str(raised.value) == (
        f"{path}: {what} holds an infinite value in 1 row(s) (the first is data row 7); "
        "replace it with a number, or leave the cell empty (a missing value)"
    )


@pytest.mark.parametrize("target", ["price", "order_id"])
def test_a_target_of_mostly_one_row_classes_is_refused_as_classification(tmp_path, target: str) -> None:
    """--task classification on prices ran a whole sweep of 300 one-row classes, every score 0."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    frame["price"] = (frame["a"] * 2 + rng.normal(size=300)).round(6)
    frame["order_id"] = [f"order-{i}" for i in range(300)]
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(UserError) as raised:
        load_dataset(str(path), target=target, task="classification")
    fix = "use --task regression to predict the number" if target == "price" else "choose another --target"
    assert str(raised.value) == (
        f"{path}: target {target!r} has 300 distinct values in 300 rows, most of them once: too few rows of each class "
        f"to learn from; {fix}"
    )
    assert load_dataset(str(path), target="price").task == "regression"


def test_a_column_name_the_header_repeats_is_a_note_naming_how_it_was_read(tmp_path) -> None:
    path = tmp_path / "twice.csv"
    rows = "\n".join(f"{i},{i * 2},{i % 3},{'xy'[i % 2]}" for i in range(12))
    path.write_text("a,a,b,label\n" + rows + "\n")
    dataset = load_dataset(str(path), target="label")
    assert list(dataset.X.columns) == ["a", "a.1", "b"]
    assert "the header names column 'a' 2 times: read as 'a', 'a.1'" in dataset.notes
