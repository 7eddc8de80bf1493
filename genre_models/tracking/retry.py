"""A locked SQLite store, waited out: every write (and read) of a run goes through ``store_retry``,
and every other call genre-bench makes on the store (a sweep's claims and parent run, the
registry, the report's queries, ending orphans) through ``store_client()``, which does the same.

SQLite lets one writer at a time hold the database; MLflow waits 20 s for a lock (its
``busy_timeout``) and then fails the call with "database is locked". Another process holding
the store longer (a backup, a long query, a sweep's server migrating it) would then end a
command half way and leave its run RUNNING. So a call that fails because the store is locked
is tried again, with waits of 1, 2, 4 and then 8 s, for up to ``store_wait_s()`` seconds
(``GENRE_BENCH_STORE_WAIT_S``, default 300) beyond MLflow's own 20 s per try; after that it
fails in one line. Any other error is not retried here (HTTP stores have MLflow's own retries).
"""

from __future__ import annotations

import functools
import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from genre_models.errors import TrackingError
from genre_models.settings import setting
from genre_models.util import log

T = TypeVar("T")


def store_wait_s() -> float:
    return setting("GENRE_BENCH_STORE_WAIT_S")


def store_cause(exc: BaseException) -> str | None:
    """The database's own words somewhere in ``exc``'s chain (file is not a database, attempt to
    write a readonly database, database or disk is full, database is locked, ...), or None."""
    import sqlite3

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        for err in (exc, orig):
            if isinstance(err, sqlite3.Error) and str(err).strip():
                return str(err).strip().splitlines()[0]
        exc = exc.__cause__ or exc.__context__
    return None


def is_locked(exc: BaseException) -> bool:
    cause = store_cause(exc)
    return cause is not None and "database is locked" in cause


def store_retry(fn: Callable[..., T], *args, what: str = "", **kwargs) -> T:
    """``fn(*args, **kwargs)``, tried again while the store is locked, for up to ``store_wait_s()``."""
    deadline, wait = time.monotonic() + store_wait_s(), 1.0
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if isinstance(exc, TrackingError) or not is_locked(exc):  # an inner wait already gave up: no second one
                raise
            if time.monotonic() >= deadline:
                import mlflow

                raise TrackingError(f"tracking store {mlflow.get_tracking_uri()}: database is locked (another process "
                                    f"held it for over {store_wait_s():.0f} s beyond SQLite's 20 s wait"
                                    f"{'; ' + what if what else ''})") from None
            log.warning("tracking store locked by another process: trying again in %.0f s", wait)
            time.sleep(wait)
            wait = min(wait * 2, 8.0)


class RetryingClient:
    """An ``mlflow.MlflowClient`` whose every method waits out a locked store (``store_retry``).
    Safe for writes too: a call that fails on the lock was rolled back by the store, so trying it
    again cannot write twice."""

    def __init__(self, uri: str | None = None) -> None:
        import mlflow

        self.inner = mlflow.MlflowClient(uri)

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (a copy being unpickled): no recursion through getattr
            raise AttributeError(name)
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def waiting(*args, **kwargs):
            return store_retry(attr, *args, what=f"in {name}", **kwargs)

        return waiting


def store_client(uri: str | None = None) -> RetryingClient:
    """The client for genre-bench's own bookkeeping on the store ``uri`` (default: the current one)."""
    return RetryingClient(uri)


@contextmanager
def artifact_deadline() -> Iterator[None]:
    """Artifact writes within the store's deadline: each HTTP request that gets no answer for
    ``GENRE_BENCH_STORE_TIMEOUT_S`` seconds fails, and is tried once more. An experiment whose
    artifact location is a URL that accepts and never answers (a planted one, or a dead proxy)
    otherwise held a report for minutes (MLflow's 60 s a request, five times over). A user's
    own ``MLFLOW_HTTP_REQUEST_TIMEOUT`` or ``_MAX_RETRIES`` wins."""
    keys = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(max(1.0, setting("GENRE_BENCH_STORE_TIMEOUT_S")))),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
    saved = {k: os.environ.get(k) for k in keys}
    user = {k: v for k, v in USER_HTTP_SETTINGS.items() if v is not None}
    os.environ.update({k: user.get(k, v) for k, v in keys.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: The user's own MLflow HTTP settings, as they were when this module was first imported
#: (``setup_tracking`` fills in its defaults later; those give way to the artifact deadline).
USER_HTTP_SETTINGS = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES")}
