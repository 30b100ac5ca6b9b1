"""The SQLAlchemy engine on a store file: what Alembic (and the schema tests) run on.

Nothing on a hot path uses it: the recorder runs its own SQL (``sql.py``) on the driver.
Its write transactions begin ``IMMEDIATE``, like the recorder's.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import SingletonThreadPool

from .connect import open_connection
from .driver import sqlite_module
from .paths import check_store_path
from .transactions import begin_with_retry
from .translate import translated

_WRITE_OPTION = "hermes_write"


def make_engine(path: Path | str, *, busy_timeout_ms: int, readonly: bool = False, create: bool = False) -> Engine:
    """An engine on the SQLite file at ``path``; ``create`` allows a missing file to be made."""
    path = Path(path)
    check_store_path(path, must_exist=not create)
    mode = "ro" if readonly else ("rwc" if create else "rw")

    def connect():
        return open_connection(str(path), mode=mode, timeout_ms=busy_timeout_ms)

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

    engine.info = {"path": path, "busy_timeout_ms": busy_timeout_ms}  # type: ignore[attr-defined]  # our note, for write_transaction
    return engine


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A ``BEGIN IMMEDIATE`` transaction on a SQLAlchemy connection (for Alembic), errors
    translated; commits on success, rolls back otherwise."""
    info = engine.info  # type: ignore[attr-defined]  # make_engine's note
    path = info["path"]
    with translated(path):
        conn = engine.connect().execution_options(**{_WRITE_OPTION: True})
    try:
        begin_with_retry(conn.begin, str(path), info["busy_timeout_ms"])
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
