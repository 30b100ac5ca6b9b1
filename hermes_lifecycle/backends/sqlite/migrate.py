"""Bring a store file to the code's schema with Alembic (imported only here)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection

from .engine import make_engine, write_transaction
from .revision import KNOWN_REVISIONS, current_revision, describe_mismatch
from ...store.revisions import migrations_dir
from .translate import translated
from ...errors import SchemaMismatch, StoreUnavailable
from ...settings import DEFAULT_BUSY_TIMEOUT_MS


@contextlib.contextmanager
def migration_transaction(path: Path | str, *, busy_timeout_ms: int) -> Iterator[Connection]:
    """One BEGIN IMMEDIATE transaction on ``path`` (created if missing) for Alembic to run in.

    A file whose revision this code does not know is refused before anything
    is written. Holding the write lock from the start makes a second migrator
    wait, then find nothing to do.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreUnavailable(f"cannot create {path.parent}: {error.strerror}") from None
    engine = make_engine(path, create=True, busy_timeout_ms=busy_timeout_ms)
    try:
        with write_transaction(engine) as conn:
            revision = current_revision(_driver(conn))
            if revision is not None and revision not in KNOWN_REVISIONS:
                raise SchemaMismatch(describe_mismatch(revision, path))
            yield conn
        _use_wal(engine, path)
    finally:
        engine.dispose()


def _use_wal(engine, path: Path) -> None:
    """WAL is persistent in the file: set once, after the file is known to be ours."""
    with translated(path):
        pooled = engine.raw_connection()  # outside any transaction, as SQLite requires
        try:
            mode = pooled.driver_connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        finally:
            pooled.close()
    if mode != "wal":
        raise StoreUnavailable(f"event store {path} cannot use WAL (journal_mode is {mode})")


def _driver(conn: Connection):
    """The DB-API connection inside ``conn``'s transaction (the revision check runs on drivers)."""
    return conn.connection.driver_connection


def migrate(path: Path | str, target: str = "head", *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> tuple[str | None, str | None]:
    """Upgrade ``path`` to ``target``; returns (revision before, revision after)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with migration_transaction(path, busy_timeout_ms=busy_timeout_ms) as conn:
        before = current_revision(_driver(conn))
        config.attributes["connection"] = conn
        with translated(path):
            command.upgrade(config, target)
        after = current_revision(_driver(conn))
    return before, after
