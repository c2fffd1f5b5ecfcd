"""A new sqlite MLflow store starts as a copy of empty tables, not as MLflow's migrations run anew.

MLflow makes a new sqlite store by creating its first tables and then running every schema
migration since (alembic, 69 steps with MLflow 3.17): 1.2 s of CPU, against 0.5 s to open a
store that has its tables. A sweep opens its store while Ray starts, on the same two cores, and
the README's demo waited for it: with a copy it took 0.89x the wall time of its first run on a
machine, which makes the tables (5 alternating pairs, 0.86-1.01x, 2026-12-02; benchmarks/ANALYSIS.md).

So the first new store a machine makes also leaves its empty tables in the user's cache
(``$XDG_CACHE_HOME/raysweep``, else ``~/.cache/raysweep``), made by MLflow's own code, and each
later new store starts as a copy of them. The copy holds tables only: MLflow then opens it as
any store and adds its "Default" experiment itself, with the new store's own artifact location.
The copy is named after the installed MLflow and its list of migrations, so an upgraded MLflow
makes a new one. An existing store file is never touched.

Private API: ``mlflow.store.db.utils._initialize_tables`` (what MLflow's SQL store calls on an
empty database; checked on MLflow 3.17). Anything that fails here leaves the store to MLflow,
which then creates it as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from raysweep._cache import cache_dir

logger = logging.getLogger("raysweep.tracking")


def template_path() -> Path:
    """The empty tables of this MLflow's sqlite store (they may not exist yet)."""
    import mlflow.store.db_migrations

    from mlflow.version import VERSION

    versions = Path(next(iter(mlflow.store.db_migrations.__path__))) / "versions"
    names = sorted(p.name for p in versions.glob("*.py"))
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    return cache_dir() / f"mlflow-{VERSION}-tables-{digest}.db"


def seed_sqlite_store(path: Path | None) -> bool:
    """Make the sqlite store ``path`` (``store.sqlite_path`` of its URI) as a copy of empty tables if
    the file does not exist yet.

    True if this call made it; False when ``path`` is None (not a sqlite store), the file exists
    (made by anyone, even meanwhile: it is kept as it is), or the copy could not be made (MLflow
    then creates the store itself).
    """
    if path is None or path.exists():
        return False
    try:
        template = template_path()
        if not template.exists():
            _make_template(template)
        return _copy_new(template, path)
    except Exception as exc:  # MLflow creates the store as before
        logger.debug("raysweep: could not start %s from empty tables: %s", path, exc)
        return False


def _make_template(template: Path) -> None:
    """MLflow's own creation of a store's tables, into a file published under ``template`` at once."""
    import sqlite3

    import sqlalchemy
    from sqlalchemy.pool import NullPool

    from mlflow.store.db import utils as db_utils

    template.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=template.parent, prefix=f".{template.stem}.", suffix=".tmp")
    os.close(handle)
    try:
        engine = sqlalchemy.create_engine(f"sqlite:///{scratch}", poolclass=NullPool)
        try:
            db_utils._initialize_tables(engine)
            db_utils._verify_schema(engine)
        finally:
            engine.dispose()
        # One self-contained file (a process that made its stores write-ahead keeps a log beside it)
        with sqlite3.connect(scratch) as connection:
            connection.execute("PRAGMA journal_mode=DELETE")
        connection.close()
        os.replace(scratch, template)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)


def _copy_new(template: Path, path: Path) -> bool:
    """Copy ``template`` to ``path`` unless ``path`` exists by the time the copy is complete.

    The write-ahead log and shared-memory files (or a rollback journal) of a store file that was
    deleted are removed first: the copy has the same pages as the deleted store had when it was
    new, and SQLite would replay that store's last writes onto it (its runs reappeared in the copy
    when a writer switched it to write-ahead logging). Nothing can hold them for a file that does
    not exist.
    """
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    try:
        shutil.copyfile(template, scratch)
        # Checked again here, a moment before the link: the template may have taken a second to
        # make, and a store made meanwhile may already write its own log beside it.
        if path.exists():
            return False
        for suffix in ("-wal", "-shm", "-journal"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        os.link(scratch, path)  # fails if the file exists: a store made meanwhile wins
        return True
    except FileExistsError:
        return False
    finally:
        scratch.unlink(missing_ok=True)
