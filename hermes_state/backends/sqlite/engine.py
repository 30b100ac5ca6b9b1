"""The one engine factory: which driver, which pragmas, how transactions begin.

Writers start every transaction with ``BEGIN IMMEDIATE``: a deferred
transaction that later upgrades to a write gets SQLITE_BUSY without waiting
for the busy timeout, which several writing processes would hit constantly.
Read-only engines open the file with ``mode=ro`` and begin deferred.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import SingletonThreadPool

from ...errors import StoreLocked
from .connect import busy_timeout_from_env, open_connection
from .driver import sqlite_module
from .paths import check_store_path
from .translate import translated

_WRITE_OPTION = "hermes_write"


def make_engine(
    path: Path | str,
    *,
    readonly: bool = False,
    create: bool = False,
    busy_timeout_ms: int | None = None,
) -> Engine:
    """An engine on the SQLite file at ``path``.

    ``create`` allows a missing file to be made (migration only); otherwise a
    missing file is StoreMissing. The engine keeps one connection open and
    reuses it (opening one costs more than an append); ``dispose()`` closes it.
    """
    path = Path(path)
    check_store_path(path, must_exist=not create)
    timeout_ms = busy_timeout_from_env() if busy_timeout_ms is None else busy_timeout_ms
    mode = "ro" if readonly else ("rwc" if create else "rw")

    def connect():
        return open_connection(str(path), mode=mode, timeout_ms=timeout_ms)

    engine = create_engine(
        "sqlite+pysqlite://",
        module=sqlite_module(),
        creator=connect,
        poolclass=SingletonThreadPool,
        # Every transaction ends in an explicit COMMIT or ROLLBACK already.
        pool_reset_on_return=None,
    )

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    engine.info = {"path": path, "readonly": readonly, "busy_timeout_ms": timeout_ms}  # type: ignore[attr-defined]
    return engine


def begin_with_retry(begin: Callable[[], object], path: Path, busy_timeout_ms: int) -> None:
    """Begin a write transaction, retrying an immediate SQLITE_BUSY until the busy timeout.

    The busy timeout already waits for the lock. SQLite can still return
    SQLITE_BUSY at once, without calling the busy handler (e.g. while another
    connection recovers the WAL), so a failed BEGIN is retried with backoff,
    but never past the busy timeout.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.005
    while True:
        try:
            with translated(path):
                begin()
            return
        except StoreLocked:
            if time.monotonic() + pause >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A ``BEGIN IMMEDIATE`` transaction on a SQLAlchemy connection (for Alembic), errors
    translated; commits on success, rolls back otherwise."""
    info = engine.info  # type: ignore[attr-defined]
    path = info["path"]
    with translated(path):
        conn = engine.connect().execution_options(**{_WRITE_OPTION: True})
    try:
        begin_with_retry(conn.begin, path, info["busy_timeout_ms"])
        try:
            with translated(path):
                yield conn
        except BaseException:
            with translated(path):
                conn.rollback()
            raise
        with translated(path):
            conn.commit()
    finally:
        conn.close()


@contextlib.contextmanager
def driver_transaction(driver: Any, path: Path, busy_timeout_ms: int, *, write: bool) -> Iterator[Any]:
    """A transaction on a driver (DBAPI) connection: the store's fast path.

    Writers begin ``IMMEDIATE`` (``begin_with_retry``); readers begin deferred, for one consistent
    snapshot. Commits on success, rolls back otherwise; errors translated.
    """
    if write:
        begin_with_retry(lambda: driver.execute("BEGIN IMMEDIATE"), path, busy_timeout_ms)
    else:
        with translated(path):
            driver.execute("BEGIN")
    try:
        with translated(path):
            yield driver
            driver.execute("COMMIT")
    except BaseException:
        # Also after a failed COMMIT: a long-lived store's next BEGIN must not
        # find this transaction still open.
        if driver.in_transaction:
            with translated(path):
                driver.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A deferred read transaction: one consistent snapshot, errors translated."""
    path = engine.info["path"]  # type: ignore[attr-defined]
    with translated(path):
        with engine.connect() as conn:
            with conn.begin():
                yield conn
