"""The seam: what a database must do for the store, and nothing of how.

A ``Backend`` opens ``Recorder``s (one database connection each), migrates,
diagnoses and offers an operator's console; a ``RecorderTransaction`` runs the
store's fixed statements inside one transaction and hands back rows as
mappings of stored values. Everything above it (``EventStore``: the stream
rules, the chain, decoding rows, every read model) is the same for every
backend, so a second backend is an implementation of these classes and its
SQL written by hand (``backends/*/sql.py``); ``docs/store.md`` walks through
it file by file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Mapping

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


# Who opens the store, said by the caller (never guessed): what it may wait for.
HOOK = "hook"  # an s6 hook, inside the supervisor's limit: waits briefly for the lock and the server
COMMAND = "command"  # a person's command or a daemon: waits the settings' busy timeout
PAGE = "page"  # serve answering a request or a scrape: well inside Prometheus' timeout
PURPOSES = (HOOK, COMMAND, PAGE)
# Well under a second: with the interpreter's start, a hook facing a locked store reports it
# within one second of starting.
HOOK_LOCK_WAIT_MS = 500
PAGE_LOCK_WAIT_MS = 1000


def lock_wait_ms(purpose: str, settings_wait_ms: int) -> int:
    """How long a store opened for ``purpose`` waits for the write lock (or a reader for a lock)."""
    if purpose == HOOK:
        return HOOK_LOCK_WAIT_MS
    if purpose == PAGE:
        return min(settings_wait_ms, PAGE_LOCK_WAIT_MS)
    if purpose == COMMAND:
        return settings_wait_ms
    raise ValueError(f"unknown purpose {purpose!r}: expected one of {', '.join(PURPOSES)}")


class StreamWindow(Record):
    """Which of a profile's events a stream read returns."""

    after_version: int = 0
    after_position: int = 0
    since: str | None = None  # occurred_at >= since
    until: str | None = None  # occurred_at <= until
    types: tuple[str, ...] = ()  # empty: every type the vocabulary knows (StoreTransaction fills them in)
    boot_id: str | None = None
    limit: int | None = None  # None: all
    newest_first: bool = False


class RecorderTransaction(ABC):
    """One open transaction: what a database does for the store, in four parts (an append, a
    stream, the log after a position, the projection's rows). Reads return stored values, read
    bounded (a value over its bound comes back NULL and is named in the row's ``oversized`` text);
    ``EventStore`` decodes and checks them, and builds every read model above this seam."""

    # -- an append -------------------------------------------------------------
    @abstractmethod
    def append_context(self, profile: str) -> Row:
        """``chain_position`` and ``chain_hash`` of the newest event (None in an empty log), and the
        profile's projection columns read whole (``profile`` None when it has no row)."""

    @abstractmethod
    def event_by_key(self, key: str) -> Row | None: ...

    @abstractmethod
    def append(self, event: Row, projection: Row, *, new_profile: bool) -> None:
        """Insert the event row and make ``projection`` the profile's row (inserted when ``new_profile``).

        A backend whose database folds the event into its row itself (PostgreSQL's trigger)
        ignores ``projection``."""

    # -- a stream ----------------------------------------------------------------
    @abstractmethod
    def stream(self, profile: str, window: StreamWindow) -> list[Row]: ...

    @abstractmethod
    def crash_times(self, profile: str, since: str, after_position: int) -> list[str]:
        """Times of the profile's ``crashed`` events at or after ``since`` and after ``after_position``,
        oldest first; from the crashes' partial index: the cost is the crashes in the window."""

    # -- the log after a position -------------------------------------------------
    @abstractmethod
    def events_after(self, position: int, limit: int | None) -> list[Row]:
        """Events after ``position``, in position order, at most ``limit`` (None: all)."""

    @abstractmethod
    def last_position(self) -> int: ...

    # -- the projection's rows ----------------------------------------------------
    @abstractmethod
    def projection(self, profile: str | None = None, *, include_deleted: bool = False) -> list[Row]:
        """The projection's rows by profile name: the one named (none or one), or every live one
        (every one with ``include_deleted``)."""

    @abstractmethod
    def crash_counts(self, since: str) -> list[Row]:
        """Every projection row's ``profile``, ``deleted`` and ``crashes_since``: its crashes at or after ``since``."""


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

    # Capabilities a database may lack: the defaults say so, never pretend to have checked.
    def quick_check(self) -> list[str] | None:
        """The database's own fast consistency check from a client: the problems found (empty when
        sound), or None when it offers none (PostgreSQL checks its pages itself: checksums, WAL)."""
        return None

    def replaced(self) -> str | None:
        """Why the store this recorder has open is no longer the one its location names, or None.
        The default is for a location that names one database for the recorder's life (a URL: a
        failover is a reconnect to the same database, not another store); a path can be replaced."""
        return None

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
    def open(self, settings: "Settings", *, readonly: bool, purpose: str) -> Recorder:
        """Check the store is at the code's schema; raise the store's errors otherwise. ``purpose``
        (HOOK, COMMAND, PAGE) bounds the waits (``lock_wait_ms``, and a backend's connect)."""

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

