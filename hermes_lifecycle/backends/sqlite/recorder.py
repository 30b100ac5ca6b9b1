"""The SQLite recorder: the store's statements (``sql.py``, written by hand) run on one driver connection.

No SQLAlchemy here: the hooks and the commands a person waits for open the
store through this module, and importing SQLAlchemy would cost them several
times the interpreter's own start-up.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator

from ...errors import HermesError
from ...store.recorder import ChangeFeed, Recorder, RecorderTransaction, Row, StreamWindow
from . import sql
from .connect import StatementBound, open_connection, out_of_memory
from .driver import sqlite_module
from .paths import Identity, StoreChain, check_store_path, identity
from .revision import require_head
from .transactions import driver_transaction
from .translate import translate, translated

NO_LIMIT = -1  # SQLite's LIMIT for "all rows"
# The bound on each statement (and on the checks at open): the store's reads
# take milliseconds, so only a runaway query (a hostile view, a damaged file) reaches it.
STATEMENT_SECONDS = 10.0
QUICK_CHECK_SECONDS = 600.0  # reads every page: proportional to the file, never endless


class SqliteTransaction(RecorderTransaction):
    """The seam's statements (``sql.py``) on the driver connection, each under its own time bound."""

    __slots__ = ("_driver", "_arm")

    def __init__(self, driver: Any, arm: Callable[[], None]) -> None:
        self._driver = driver
        self._arm = arm  # starts the time bound of the statement about to run

    def _run(self, statement: str, values: Row | None = None) -> Any:
        self._arm()
        return self._driver.execute(statement, values if values is not None else {})

    def _rows(self, statement: str, values: Row | None = None) -> list[Row]:
        cursor = self._run(statement, values)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    # -- an append -------------------------------------------------------------
    def append_context(self, profile: str) -> Row:
        return self._rows(sql.APPEND_CONTEXT, {"profile": profile})[0]  # the anchor: always one row

    def event_by_key(self, key: str) -> Row | None:
        rows = self._rows(sql.EVENT_BY_KEY, {"key": key})
        return rows[0] if rows else None

    def append(self, event: Row, projection: Row, *, new_profile: bool) -> None:
        self._run(sql.INSERT_EVENT, event)
        self._run(sql.INSERT_PROJECTION if new_profile else sql.UPDATE_PROJECTION, projection)

    # -- a stream ----------------------------------------------------------------
    def stream(self, profile: str, window: StreamWindow) -> list[Row]:
        values = {
            "profile": profile,
            "after_version": window.after_version,
            "after_position": window.after_position,
            "since": window.since,
            "until": window.until,
            # A JSON array of vocabulary words (checked by the caller): json_each reads it.
            "types": '["' + '","'.join(window.types) + '"]' if window.types else None,
            "boot_id": window.boot_id,
            "limit": NO_LIMIT if window.limit is None else window.limit,
        }
        return self._rows(sql.STREAM_NEWEST_FIRST if window.newest_first else sql.STREAM_OLDEST_FIRST, values)

    def crash_times(self, profile: str, since: str, after_position: int) -> list[str]:
        cursor = self._run(sql.CRASH_TIMES, {"profile": profile, "since": since, "after_position": after_position})
        return [row[0] for row in cursor.fetchall()]

    # -- the log after a position -------------------------------------------------
    def events_after(self, position: int, limit: int | None) -> list[Row]:
        return self._rows(sql.EVENTS_AFTER, {"after": position, "limit": NO_LIMIT if limit is None else limit})

    def last_position(self) -> int:
        return int(self._run(sql.LAST_POSITION).fetchone()[0])

    # -- the projection's rows ----------------------------------------------------
    def projection(self, profile: str | None = None, *, include_deleted: bool = False) -> list[Row]:
        if profile is not None:
            return self._rows(sql.PROJECTION_ROW, {"profile": profile})
        return self._rows(sql.PROJECTION_ALL if include_deleted else sql.PROJECTION_LIVE)

    def crash_counts(self, since: str) -> list[Row]:
        return self._rows(sql.CRASH_COUNTS, {"since": since})


class SqliteRecorder(Recorder):
    """One driver connection on the store file, held for the recorder's life.

    Every statement runs under SQLite's progress handler: past ``statement_seconds``
    from its own start (or at open), or once ``interrupt()`` was called (the
    daemon's SIGTERM), SQLite stops the statement and it fails as StoreUnavailable,
    so a hostile view or a runaway query can neither hang a reader nor outlive a stop.
    The schema is read within its budget at open and again whenever it changed
    (``connect.StatementBound.schema_budget``). With a ``chain`` (the root side),
    the way to the file is checked before and after the open (``paths.StoreChain``).
    """

    def __init__(
        self,
        path: str,
        *,
        readonly: bool,
        busy_timeout_ms: int,
        chain: StoreChain | None = None,
        statement_seconds: float = STATEMENT_SECONDS,
    ) -> None:
        self.location = path
        self.readonly = readonly
        self.busy_timeout_ms = busy_timeout_ms
        self.statement_seconds = statement_seconds
        self._chain = chain
        self.bound = StatementBound()
        self.identity: Identity | None = None  # the (device, inode) opened: replaced() compares it
        if chain is not None:
            checked = chain.check()
            descriptors = set(os.listdir("/proc/self/fd"))
        else:
            check_store_path(path, must_exist=True)
        connection = None
        try:
            connection = open_connection(path, mode="ro" if readonly else "rw", timeout_ms=busy_timeout_ms,
                                         bound=self.bound)
            self.bound.arm(statement_seconds)
            require_head(connection, path)
            self._schema_version = _schema_version(connection)
            if chain is not None:
                chain.verify_opened(checked, descriptors)
                self.identity = checked[chain.path]
            else:
                self.identity = identity(path)
        except HermesError:
            if connection is not None:
                connection.close()
            raise
        except sqlite_module().Error as error:
            if connection is not None:
                connection.close()
            raise translate(error, path) from None
        except MemoryError:
            if connection is not None:
                connection.close()
            raise out_of_memory(path) from None
        finally:
            self.bound.disarm()
        self._connection = connection

    def _arm(self) -> None:
        self.bound.arm(self.statement_seconds)

    def _schema_checked(self) -> None:
        """Inside a transaction, before its statements: a schema changed since it was checked (a
        migration, or the gateway user's hand) is read again within its budget and checked again,
        never parsed by a statement of the store on the way."""
        version = _schema_version(self._connection)
        if version != self._schema_version:
            self.bound.read_schema(self._connection, self.location)
            require_head(self._connection, self.location)
            self._schema_version = version

    def interrupt(self) -> None:
        """Stop the running statement and refuse every later one (safe from a signal handler)."""
        self.bound.interrupt()
        with contextlib.suppress(Exception):
            self._connection.interrupt()

    def replaced(self) -> str | None:
        """Why the path no longer names the file this recorder has open (replaced, removed, the
        way to it changed, or its schema changed), or None while it still does."""
        now = identity(self.location)
        if now is None:
            return f"event store {self.location} was removed"
        if now != self.identity:
            return f"event store {self.location} was replaced by another file"
        try:
            with translated(self.location):
                changed = _schema_version(self._connection) != self._schema_version
        except HermesError as error:
            return str(error)
        if changed:
            # A migration, or the gateway user's hand: opened again, the schema is checked as at the start.
            return f"the schema of event store {self.location} changed"
        if self._chain is not None:
            try:
                self._chain.check()
            except HermesError as error:
                return str(error)
        return None

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[SqliteTransaction]:
        with driver_transaction(self._connection, self.location, self.busy_timeout_ms, write=write) as driver:
            # The bound starts once BEGIN holds the lock (waiting for a writer is the busy timeout's),
            # and each of the store's statements restarts it: doctor reads a long log in many
            # statements of one transaction, each bounded, none by the sum.
            self._arm()
            try:
                self._schema_checked()
                yield SqliteTransaction(driver, self._arm)
            finally:
                self.bound.disarm()

    def data_version(self) -> int:
        """``PRAGMA data_version``: moves when another connection commits."""
        with translated(self.location):
            return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def change_feed(self, *, use_notifications: bool, poll_interval: float) -> ChangeFeed:
        from .feed import SqliteChangeFeed

        return SqliteChangeFeed(
            self.location, self.data_version, use_notifications=use_notifications, poll_interval=poll_interval,
            replaced=self.replaced,
        )

    def quick_check(self) -> list[str]:
        self.bound.arm(QUICK_CHECK_SECONDS)
        try:
            with translated(self.location):
                rows = [str(row[0]) for row in self._connection.execute("PRAGMA quick_check")]
        finally:
            self.bound.disarm()
        return [] if rows == ["ok"] else rows

    def close(self) -> None:
        self._connection.close()


def _schema_version(connection: Any) -> int:
    """The file's schema cookie: read from its header, without parsing the schema."""
    return int(connection.execute("PRAGMA schema_version").fetchone()[0])
