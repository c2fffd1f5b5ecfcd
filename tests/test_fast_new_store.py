"""A new sqlite store made from a copy of empty tables is the store MLflow would have made.

Real MLflow on sqlite files in a temporary folder; the cache of empty tables is a temporary
folder too (``XDG_CACHE_HOME``).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from raysweep.tracking.new_store import seed_sqlite_store, template_path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


def _open(path: Path) -> list[tuple[str, str]]:
    """Open the store with MLflow (as a sweep does) and list its experiments."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{path}")
    return sorted((e.name, e.artifact_location) for e in client.search_experiments())


def _schema(path: Path) -> tuple[dict[str, list[str]], list[tuple[str, ...]]]:
    """Each table's and index's definition (its lines sorted: MLflow's own order of constraints
    changes from one Python process to the next) and the schema revision."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    connection.close()
    return {f"{kind} {name}": sorted(line.strip().rstrip(",") for line in sql.splitlines()) for kind, name, sql in rows}, revision


def test_a_new_store_from_the_copy_has_mlflows_own_tables_and_its_default_experiment_here(cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    copied, made = tmp_path / "copied.db", tmp_path / "made.db"

    assert seed_sqlite_store(copied) is True
    assert template_path().parent == cache / "raysweep" and template_path().exists()
    # MLflow's store adds its Default experiment, with this folder's artifact location, to both
    assert _open(copied) == _open(made) == [("Default", str(tmp_path / "mlruns" / "0"))]
    assert _schema(copied) == _schema(made)
    # The template holds tables only
    with sqlite3.connect(template_path()) as connection:
        assert connection.execute("SELECT COUNT(*) FROM experiments").fetchone() == (0,)
    connection.close()


def test_the_tables_are_made_once_and_an_existing_store_is_never_touched(cache, tmp_path):
    assert seed_sqlite_store(tmp_path / "first.db") is True
    made_at = template_path().stat().st_mtime_ns
    assert seed_sqlite_store(tmp_path / "second.db") is True
    assert template_path().stat().st_mtime_ns == made_at
    assert (tmp_path / "second.db").read_bytes() == template_path().read_bytes()

    existing = tmp_path / "existing.db"
    existing.write_bytes(b"not a copy")
    assert seed_sqlite_store(existing) is False
    assert existing.read_bytes() == b"not a copy"
    assert seed_sqlite_store(None) is False  # not a sqlite store
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no scratch file left


def test_without_a_usable_cache_mlflow_makes_the_store_as_before(tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # the cache folder cannot be made under a file
    store = tmp_path / "mlflow.db"
    assert seed_sqlite_store(store) is False
    assert not store.exists()
    assert [name for name, _ in _open(store)] == ["Default"]


def test_the_write_ahead_log_of_a_deleted_store_does_not_come_back_in_the_new_one(cache, tmp_path):
    store = tmp_path / "mlflow.db"
    # A sweep's writer process logs in write-ahead mode; killed, it leaves its log beside the store.
    script = textwrap.dedent(f"""
        import os
        from raysweep.tracking.store import write_sqlite_lightly
        write_sqlite_lightly()
        from mlflow.tracking import MlflowClient
        client = MlflowClient("sqlite:///{store}")
        experiment = client.create_experiment("deleted sweeps")
        for _ in range(3):
            client.create_run(experiment)
        os.kill(os.getpid(), 9)
    """)
    assert seed_sqlite_store(store) is True
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, timeout=120)
    assert (tmp_path / "mlflow.db-wal").exists()
    store.unlink()  # the user starts over

    assert seed_sqlite_store(store) is True
    assert not (tmp_path / "mlflow.db-wal").exists()
    reopen = textwrap.dedent(f"""
        from raysweep.tracking.store import write_sqlite_lightly
        write_sqlite_lightly()
        from mlflow.tracking import MlflowClient
        print(sorted(e.name for e in MlflowClient("sqlite:///{store}").search_experiments()))
    """)
    done = subprocess.run([sys.executable, "-c", reopen], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "['Default']", done.stderr[-2000:]


def test_a_store_made_while_the_tables_were_being_made_keeps_its_write_ahead_log(cache, tmp_path, monkeypatch):
    from raysweep.tracking import new_store

    store = tmp_path / "mlflow.db"
    make = new_store._make_template

    def slow_make(template: Path) -> None:
        # Meanwhile another sweep made the store and its writer logs ahead beside it
        store.write_bytes(b"another sweep's store")
        (tmp_path / "mlflow.db-wal").write_bytes(b"its last writes")
        make(template)

    monkeypatch.setattr(new_store, "_make_template", slow_make)
    assert seed_sqlite_store(store) is False
    assert store.read_bytes() == b"another sweep's store"
    assert (tmp_path / "mlflow.db-wal").read_bytes() == b"its last writes"
    assert template_path().exists()  # made all the same, for the next new store
