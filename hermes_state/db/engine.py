"""The one engine factory: which driver, which pragmas, how transactions begin.

Writers start every transaction with ``BEGIN IMMEDIATE``: a deferred
transaction that later upgrades to a write gets SQLITE_BUSY without waiting
for the busy timeout, which several writing processes would hit constantly.
Read-only engines open the file with ``mode=ro`` and begin deferred.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import SingletonThreadPool

from ..errors import StoreLocked
from .driver import sqlite_module
from .paths import check_store_path  # noqa: F401  (re-exported: callers import it from here)
from .translate import translated

DEFAULT_BUSY_TIMEOUT_MS = 5000
_WRITE_OPTION = "hermes_write"


def busy_timeout_from_env(default_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> int:
    text = os.environ.get("HERMES_STATE_BUSY_TIMEOUT_MS")
    if not text:
        return default_ms
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        from ..errors import BadInput

        raise BadInput(f"invalid HERMES_STATE_BUSY_TIMEOUT_MS {text!r}: expected milliseconds")
    return value


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
    dbapi = sqlite_module()
    mode = "ro" if readonly else ("rwc" if create else "rw")
    uri = f"file:{quote(str(path.absolute()))}?mode={mode}"

    def connect():
        connection = dbapi.connect(
            uri,
            uri=True,
            timeout=timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN ourselves
            check_same_thread=False,
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
            connection.execute("PRAGMA trusted_schema = OFF")
            connection.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                # WAL is a property of the file, set once by the migration:
                # setting it here would write to a file not yet known to be ours.
                connection.execute("PRAGMA synchronous = FULL")
            else:
                # Touch the schema now so a garbage file fails at open, not later.
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except Exception:
            connection.close()
            raise
        return connection

    engine = create_engine(
        "sqlite+pysqlite://",
        module=dbapi,
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


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A ``BEGIN IMMEDIATE`` transaction, errors translated; commits on success, rolls back otherwise.

    The busy timeout already waits for the lock. SQLite can still return
    SQLITE_BUSY at once, without calling the busy handler (e.g. while another
    connection recovers the WAL), so a failed BEGIN is retried, but only
    until the busy timeout has passed: a writer never waits longer than that.
    """
    info = engine.info  # type: ignore[attr-defined]
    path = info["path"]
    deadline = time.monotonic() + info["busy_timeout_ms"] / 1000
    pause = 0.005
    with translated(path):
        conn = engine.connect().execution_options(**{_WRITE_OPTION: True})
    try:
        while True:
            try:
                with translated(path):
                    conn.begin()
                break
            except StoreLocked:
                if time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
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

    Writers begin ``IMMEDIATE`` with the same bounded retry as
    ``write_transaction``; readers begin deferred, for one consistent
    snapshot. Commits on success, rolls back otherwise; errors translated.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.005
    while True:
        try:
            with translated(path):
                driver.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            break
        except StoreLocked:
            if not write or time.monotonic() + pause >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
    try:
        with translated(path):
            yield driver
    except BaseException:
        if driver.in_transaction:
            with translated(path):
                driver.execute("ROLLBACK")
        raise
    with translated(path):
        driver.execute("COMMIT")


@contextlib.contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A deferred read transaction: one consistent snapshot, errors translated."""
    path = engine.info["path"]  # type: ignore[attr-defined]
    with translated(path):
        with engine.connect() as conn:
            with conn.begin():
                yield conn
