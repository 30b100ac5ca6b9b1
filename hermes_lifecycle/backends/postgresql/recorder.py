"""The PostgreSQL recorder: the store's statements (``sql.py``, written by hand) on one psycopg connection.

Appends are serialised by one transaction-scoped advisory lock, taken before
the chain's head is read and held until COMMIT: positions are assigned in
commit order, so a reader that tails the log after a position never skips a
transaction that committed late (docs/fleet.md says why this way and what it
costs). The ``events_serialize`` trigger takes the same lock and refuses a
position that is not the next one, so a writer that skips the recorder
cannot break the order either. The lock is taken through ``append_lock``
(migration 0007), which ends a session that holds it without appending.
Readers take one REPEATABLE READ snapshot.

The projection is written by the database (the ``events_project`` trigger,
migration 0007), not by the recorder: the writer role has no INSERT or UPDATE
on it, so no host can change another host's profile without an event.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from ...store.recorder import ChangeFeed, Recorder, RecorderTransaction, Row, StreamWindow
from . import sql
from .connect import CONNECT_SECONDS, STATEMENT_SECONDS, connect
from .revision import require_head
from .translate import translated

# The advisory lock every append holds (and the events_serialize trigger, migration 0004).
APPEND_LOCK = 0x68657276  # "herv": any constant no other application on the database uses


class PostgresTransaction(RecorderTransaction):
    """The seam's statements (``sql.py``) on the psycopg connection (LIMIT NULL: every row)."""

    __slots__ = ("_driver",)

    def __init__(self, driver: Any) -> None:
        self._driver = driver

    def _rows(self, statement: str, values: Row | None = None) -> list[Row]:
        cursor = self._driver.execute(statement, values)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    # -- an append -------------------------------------------------------------
    def append_context(self, profile: str) -> Row:
        return self._rows(sql.APPEND_CONTEXT, {"profile": profile})[0]  # the anchor: always one row

    def event_by_key(self, key: str) -> Row | None:
        rows = self._rows(sql.EVENT_BY_KEY, {"key": key})
        return rows[0] if rows else None

    def append(self, event: Row, projection: Row, *, new_profile: bool) -> None:
        # The events_project trigger folds the event into its row, as the owner (migration 0007):
        # a host's role has no write on the projection, so ``projection`` is not ours to write.
        self._driver.execute(sql.INSERT_EVENT, event)

    # -- a stream ----------------------------------------------------------------
    def stream(self, profile: str, window: StreamWindow) -> list[Row]:
        values = {
            "profile": profile,
            "after_version": window.after_version,
            "after_position": window.after_position,
            "since": window.since,
            "until": window.until,
            "types": list(window.types) if window.types else None,
            "boot_id": window.boot_id,
            "limit": window.limit,
        }
        return self._rows(sql.STREAM_NEWEST_FIRST if window.newest_first else sql.STREAM_OLDEST_FIRST, values)

    def crash_times(self, profile: str, since: str, after_position: int) -> list[str]:
        cursor = self._driver.execute(sql.CRASH_TIMES,
                                      {"profile": profile, "since": since, "after_position": after_position})
        return [row[0] for row in cursor.fetchall()]

    # -- the log after a position -------------------------------------------------
    def events_after(self, position: int, limit: int | None) -> list[Row]:
        return self._rows(sql.EVENTS_AFTER, {"after": position, "limit": limit})

    def last_position(self) -> int:
        return int(self._driver.execute(sql.LAST_POSITION).fetchone()[0])

    # -- the projection's rows ----------------------------------------------------
    def projection(self, profile: str | None = None, *, include_deleted: bool = False) -> list[Row]:
        if profile is not None:
            return self._rows(sql.PROJECTION_ROW, {"profile": profile})
        return self._rows(sql.PROJECTION_ALL if include_deleted else sql.PROJECTION_LIVE)

    def crash_counts(self, since: str) -> list[Row]:
        return self._rows(sql.CRASH_COUNTS, {"since": since})


class PostgresRecorder(Recorder):
    """One connection to the fleet's database, made again after it was lost.

    A transaction that meets a lost connection fails (the store's error, exit 5);
    the next one connects anew, so a daemon outlives a restart or a failover of
    the database without being restarted itself.
    """

    def __init__(self, url: str, location: str, *, readonly: bool, lock_timeout_ms: int,
                 statement_seconds: float = STATEMENT_SECONDS, connect_seconds: int = CONNECT_SECONDS) -> None:
        self.url = url
        self.connect_seconds = connect_seconds
        self.location = location
        self.readonly = readonly
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_seconds = statement_seconds
        self._interrupted = False
        self._connection: Any = None
        self._connect()

    def _connect(self) -> Any:
        connection = connect(self.url, self.location, readonly=self.readonly,
                             lock_timeout_ms=self.lock_timeout_ms, statement_seconds=self.statement_seconds,
                             connect_seconds=self.connect_seconds)
        try:
            with translated(self.location):
                require_head(connection, self.location)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _live(self) -> Any:
        if self._interrupted:
            from ...errors import StoreUnavailable

            raise StoreUnavailable(f"event store {self.location}: the process is stopping")
        connection = self._connection
        if connection is None or connection.closed or connection.broken:
            if connection is not None:
                connection.close()
            self._connection = None
            connection = self._connect()
        return connection

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[PostgresTransaction]:
        driver = self._live()
        with translated(self.location):
            if write:
                driver.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            else:
                # One snapshot for every statement of the transaction (doctor, a stream and its crashes).
                driver.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            with translated(self.location, locked_is_unreachable=not write):
                if write:
                    # Waits at most the busy timeout, then StoreLocked (exit 5); a holder that
                    # is not appending is ended meanwhile (append_lock, migration 0007).
                    driver.execute("SELECT append_lock(%s::integer)", (self.lock_timeout_ms,))
                yield PostgresTransaction(driver)
                driver.execute("COMMIT")
        except BaseException:
            if not driver.closed and not driver.broken:
                with contextlib.suppress(Exception):  # the error that got us here is the one to raise
                    driver.execute("ROLLBACK")
            raise

    def current_position(self) -> int:
        """The newest position now, outside any transaction (the change feed's check)."""
        with translated(self.location):
            return int(self._live().execute(sql.LAST_POSITION).fetchone()[0])

    def change_feed(self, *, use_notifications: bool, poll_interval: float) -> ChangeFeed:
        from .feed import PostgresChangeFeed

        return PostgresChangeFeed(self, use_notifications=use_notifications, poll_interval=poll_interval)

    # No quick_check (PostgreSQL checks its own pages: checksums, WAL) and never replaced (a URL
    # names one database for the recorder's life): the seam's defaults say so.

    def interrupt(self) -> None:
        self._interrupted = True
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.cancel()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
