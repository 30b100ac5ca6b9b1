"""The seam: what a database must do for the store, and nothing of how.

A ``Backend`` opens ``Recorder``s (one database connection each), migrates,
diagnoses and offers an operator's console; a ``RecorderTransaction`` runs the
store's fixed statements inside one transaction and hands back rows as
mappings of stored values. Everything above it (``EventStore``: the stream
rules, the chain, decoding rows) is the same for every backend, so a second
backend is an implementation of these three classes and a dialect for
``store.generate``; ``docs/store.md`` walks through it file by file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Iterator, Mapping

from ..records import Record

if TYPE_CHECKING:
    from ..checks import Report
    from ..settings import Settings
    from .feed import FeedResult

Row = Mapping[str, Any]

# What ChangeFeed.wait says: ``store.feed.FeedResult``.


# The process is stopping (a daemon's SIGTERM): every backend stops the statement it runs and
# refuses the next, whichever connection runs it, also one still being opened
# (docs/reliability.md, "Root bounds time and memory"). Set from a signal handler: a plain flag.
_stopping = False


def stop_every_statement() -> None:
    """From now on, every statement of this process stops at its backend's next look (signal-safe)."""
    global _stopping
    _stopping = True


def statements_stopped() -> bool:
    return _stopping


class StreamWindow(Record):
    """Which of a profile's events a stream read returns."""

    after_version: int = 0
    after_position: int = 0
    since: str | None = None  # occurred_at >= since
    until: str | None = None  # occurred_at <= until
    types: tuple[str, ...] = ()  # empty: every type
    boot_id: str | None = None
    limit: int | None = None  # None: all
    newest_first: bool = False


class RecorderTransaction(ABC):
    """One open transaction. Reads return stored values; ``EventStore`` decodes them."""

    # -- the projection ------------------------------------------------------
    @abstractmethod
    def state_row(self, profile: str) -> Row | None: ...

    @abstractmethod
    def state_rows(self, include_deleted: bool) -> list[Row]: ...

    @abstractmethod
    def overview_rows(self, include_deleted: bool, crashes_since: str) -> list[Row]:
        """Projection rows, each with ``crashes_since``: the profile's crashes at or after that time."""

    @abstractmethod
    def crash_count_rows(self, crashes_since: str) -> list[Row]:
        """Each live profile's ``profile`` and ``crashes_since`` (its crashes at or after that time)."""

    # -- an append -------------------------------------------------------------
    @abstractmethod
    def row_by_key(self, key: str) -> Row | None: ...

    @abstractmethod
    def append_context(self, profile: str) -> Row:
        """``chain_position`` and ``chain_hash`` of the newest event (None in an empty log), and the
        profile's projection columns (``profile`` None when it has no row)."""

    @abstractmethod
    def insert_event(self, row: Row) -> None: ...

    @abstractmethod
    def insert_state(self, values: Row) -> None: ...

    @abstractmethod
    def update_state(self, values: Row) -> None: ...

    # -- the log -----------------------------------------------------------------
    @abstractmethod
    def rows_after(self, position: int, limit: int | None) -> list[Row]:
        """Events after ``position``, in position order, at most ``limit`` (None: all)."""

    @abstractmethod
    def events_after(self, position: int, limit: int | None) -> list[Row]:
        """As ``rows_after``, read bounded: a value over its bound (``statements.EVENT_READ_BOUNDS``)
        comes back NULL and its column is named in the row's ``oversized`` text."""

    @abstractmethod
    def last_position(self) -> int: ...

    @abstractmethod
    def stream_rows(self, profile: str, window: StreamWindow) -> list[Row]: ...

    # -- crashes -------------------------------------------------------------------
    @abstractmethod
    def crash_times(self, profile: str, after_position: int, since: str) -> list[str]: ...

    @abstractmethod
    def crashes_row(self, profile: str) -> Row | None:
        """``crashes``: how many the profile has (its projection row's count; ``oversized`` names it
        when too long to read); with the newest one's columns (``position`` None when there is
        none). None when the profile has no row."""


class ChangeFeed(ABC):
    """Wakes a reader when the log may have grown: a hint, checked against the database.

    ``wait`` returns NOTIFIED or POLLED only when the log really changed since the
    previous ``wait`` returned (or since the feed opened), IDLE after ``timeout``,
    REPLACED as soon as it sees the store's path name another file (``replaced`` says why).
    """

    replaced: str | None = None  # why wait returned REPLACED

    notification_name: str = "notified"  # how the backend's own trigger is named in the daemon's log

    def __enter__(self) -> "ChangeFeed":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @abstractmethod
    def wait(self, timeout: float) -> FeedResult: ...

    @abstractmethod
    def stop(self) -> None:
        """Make ``wait`` return STOPPED now; safe from a signal handler."""

    @abstractmethod
    def close(self) -> None: ...


class Recorder(ABC):
    """One connection to the log."""

    location: str  # what messages call the store: a path, or a URL without its password
    readonly: bool

    @abstractmethod
    def transaction(self, *, write: bool) -> ContextManager[RecorderTransaction]:
        """Commits on success, rolls back otherwise; a write transaction holds the log's write lock."""

    @abstractmethod
    def change_feed(self, *, use_notifications: bool, poll_interval: float) -> ChangeFeed: ...

    @abstractmethod
    def quick_check(self) -> list[str]:
        """The database's own fast consistency check: the problems found, empty when sound."""

    @abstractmethod
    def replaced(self) -> str | None:
        """Why the store this recorder has open is no longer the one its location names, or None."""

    @abstractmethod
    def interrupt(self) -> None:
        """Stop the running statement and every later one (a daemon's stop; signal-safe)."""

    @abstractmethod
    def close(self) -> None: ...


class Console(ABC):
    """``hermes-state sql``: the store read-only, for an operator."""

    @abstractmethod
    def rows(self, sql: str) -> Iterable[dict[str, Any]]:
        """One statement's rows (SQLite streams them as they are taken); a mistake in it is BadInput,
        a write is refused as one."""

    @abstractmethod
    def interactive(self, show: Callable[[Iterable[dict[str, Any]]], None], say: Callable[[str], None]) -> int:
        """An interactive session on the store, read-only; its exit status. A console that reads
        statements itself hands each one's rows to ``show`` and each failure's line to ``say``
        (the CLI renders); one that runs the database's own shell (psql) uses neither."""


class Backend(ABC):
    """One database technology: opens recorders, migrates, diagnoses."""

    @abstractmethod
    def open(self, settings: "Settings", *, readonly: bool, busy_timeout_ms: int | None) -> Recorder:
        """Check the store is at the code's schema; raise the store's errors otherwise."""

    @abstractmethod
    def exists(self, settings: "Settings") -> bool: ...

    @abstractmethod
    def migrate(self, settings: "Settings") -> tuple[str | None, str | None]:
        """Create the store or bring it to the code's schema: (revision before, revision after)."""

    @abstractmethod
    def diagnose(self, settings: "Settings", report: "Report", *, expected_owner: str | None) -> bool:
        """Add the backend's own findings to ``report``; False when the log cannot be read further."""

    @abstractmethod
    def console(self, settings: "Settings") -> Console: ...


def batches(transaction: RecorderTransaction, size: int = 5000) -> Iterator[list[Row]]:
    """The whole log in position order, ``size`` rows at a time, within one transaction."""
    position = 0
    while True:
        rows = transaction.rows_after(position, size)
        if not rows:
            return
        yield rows
        position = rows[-1]["position"]
