"""A SQLite store's schema, made and waited for without racing another process.

MLflow migrates a new store in whichever process opens it first, with no lock, and SQLite runs
its DDL outside a transaction. Two processes opening a fresh store together (a sweep and the
MLflow UI, a report, a colleague's script) both migrate it: the later one fails ("table ...
already exists", "duplicate column name", alembic finding no version row), and the two can
leave the store half-migrated for good (an ``_alembic_tmp_*`` table that every later migration
trips on). So genre-bench never migrates a store another process can see: a new store is built
in a private temporary file beside it and linked into place whole; a store that exists but is
not at MLflow's schema head is left alone while its file keeps changing (someone is migrating
it), and opened once it is at head or has been quiet for ``QUIET_S``. What is still raced (a
process that opens the store with MLflow itself at the same moment) is waited out for up to
``MIGRATION_WAIT_S``.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import tempfile
import time
from pathlib import Path

from genre_models.errors import TrackingError
from genre_models.tracking.retry import store_cause, store_retry, store_wait_s
from genre_models.util import log

#: How long a first open waits for another process to finish migrating the store (seconds);
#: a new store's migrations take a few seconds.
MIGRATION_WAIT_S = 60.0
#: A store not at the schema head whose file has not changed for this long is migrated by
#: no one: this process opens it (MLflow upgrades an old store, or fails in words).
QUIET_S = 3.0

#: SQLite's and MLflow's words for a schema another process is changing under this one.
MIGRATION_RACE = re.compile(r"already exists|duplicate column name|no such (column|table)|out-of-date database schema")


def schema_head() -> str | None:
    """The schema revision this MLflow migrates a store to; None if its layout is not the
    expected one (then nothing is waited for)."""
    import mlflow

    try:
        from alembic.script import ScriptDirectory

        return ScriptDirectory(os.path.join(os.path.dirname(mlflow.__file__), "store", "db_migrations")).get_current_head()
    except Exception:  # another MLflow layout or alembic version: fall back to opening at once
        return None


def schema_revision(path: str | Path) -> str | None:
    """The store's schema revision, read without writing; None for an empty or unreadable file."""
    try:
        con = sqlite3.connect(f"file:{os.path.abspath(path)}?mode=ro", uri=True, timeout=1.0)
        try:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def last_change(path: str | Path) -> float:
    """When the store (its file, journal or WAL) last changed (epoch seconds)."""
    times = []
    for p in (str(path), f"{path}-journal", f"{path}-wal"):
        try:
            times.append(os.stat(p).st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


def first_open(uri: str, what: str = "") -> None:
    """Open the store ``uri`` through MLflow, which migrates it if it is new; a lock waited out."""
    import mlflow

    store_retry(lambda: mlflow.MlflowClient(uri).search_experiments(max_results=1), what=what)


def create_store(path: Path) -> bool:
    """Make the SQLite store ``path`` at the schema head in one step: MLflow migrates a private
    (0600) temporary file beside it, which is then hard-linked to ``path``. False when ``path``
    appeared first (another process's store, kept as it is). A file system without hard links
    gets the old way: an empty private file that MLflow migrates in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(fd)
    try:
        first_open(f"sqlite:///{tmp}")
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        return True
    finally:
        for leftover in (tmp, f"{tmp}-journal", f"{tmp}-wal", f"{tmp}-shm"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


def looks_like_sqlite(path: Path) -> bool:
    """Empty (a store being created) or starting with SQLite's header."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    return head in (b"", b"SQLite format 3\x00")


def wait_for_migration(path: Path, limit: float) -> None:
    """Return once the store at ``path`` is at the schema head, or its file has been quiet for
    ``QUIET_S`` (no one is migrating it), or ``limit`` seconds have passed."""
    if not looks_like_sqlite(path):
        return  # a planted or damaged file: no one is migrating it, and opening it says what it is
    head = schema_head()
    deadline, said = time.monotonic() + limit, False
    while head is not None and schema_revision(path) != head and time.monotonic() < deadline:
        if time.time() - last_change(path) >= QUIET_S:
            return
        if not said:
            log.warning("tracking store %s is being migrated by another process: waiting for it", path)
            said = True
        time.sleep(0.2)


def is_migration_race(exc: BaseException) -> bool:
    """``exc`` is what opening a store while another process migrates it raises: alembic's own
    error, or the database's or MLflow's words for a schema half way through a change."""
    if MIGRATION_RACE.search(store_cause(exc) or str(exc)):
        return True
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__module__.startswith("alembic"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def sqlite_path(uri: str) -> str | None:
    """The file behind a ``sqlite:///`` store URI (relative to the working folder), or None. The
    URI form SQLAlchemy passes on to SQLite (``sqlite:///file:/path/m.db?mode=ro&uri=true``)
    names ``/path/m.db``: taken as a path it was a folder ``file:`` made in the working folder."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///"):]
    if rest.startswith("file:") and "uri=true" in rest.partition("?")[2].split("&"):
        rest = rest[len("file:"):].partition("?")[0]
    return rest or None


def open_store(uri: str) -> None:
    """Open the SQLite store ``uri`` once, creating it whole if it is missing (``create_store``)
    and waiting for another process's migration (``wait_for_migration``), so no later call of
    this command migrates it. A store that stays broken fails as it did, in the database's words."""
    file = sqlite_path(uri)
    if file in (None, ":memory:"):
        return
    path = Path(file)
    limit = min(store_wait_s(), MIGRATION_WAIT_S)
    read_only = "mode=ro" in uri.partition("?")[2].split("&")
    if path.exists() or read_only or not create_store(path):
        wait_for_migration(path, limit)
    deadline, wait = time.monotonic() + limit, 0.5
    while True:
        try:
            first_open(uri, what="opening it")
            return
        except Exception as exc:
            if isinstance(exc, TrackingError) or not is_migration_race(exc) or time.monotonic() >= deadline:
                raise
            log.warning("tracking store %s changed under this process by another one: trying again in %.1f s", path, wait)
            time.sleep(wait)
            wait = min(wait * 2, 4.0)
