"""The store, whatever the database behind it: one way to open it, migrate it and read it.

``open_store(settings)`` is how every command, hook and daemon reaches the
log: the settings choose the backend (a SQLite file, or a fleet's PostgreSQL), which is
imported only then, so a process pays only for the backend it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..events import utc_now
from .log import EventStore, StoreTransaction, ensure_default_profile
from .recorder import Backend, StreamWindow

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "Backend", "EventStore", "StoreTransaction", "StreamWindow",
    "backend_for", "ensure_default_profile", "migrate", "open_store",
]


def backend_for(settings: "Settings") -> Backend:
    """The backend the settings name: PostgreSQL for a ``HERMES_STATE_URL``, else the SQLite file."""
    if settings.store_url is not None:
        from ..backends.postgresql.backend import PostgresBackend

        return PostgresBackend()
    from ..backends.sqlite.backend import SqliteBackend

    return SqliteBackend()


def open_store(
    settings: "Settings",
    *,
    readonly: bool = False,
    busy_timeout_ms: int | None = None,
    clock: Callable[[], str] = utc_now,
) -> EventStore:
    """The store the settings name; it must exist and be at the code's schema.

    A writer records this host's id and the current boot id on every event; a
    read-only store needs neither (and may be opened by a user who cannot write).
    """
    recorder = backend_for(settings).open(settings, readonly=readonly, busy_timeout_ms=busy_timeout_ms)
    try:
        host = None if readonly else settings.host_id()
        boot_id = None if readonly else settings.read_boot_id()
    except BaseException:
        recorder.close()
        raise
    return EventStore(recorder, host=host, boot_id=boot_id, clock=clock)


def migrate(settings: "Settings") -> tuple[str | None, str | None]:
    """Create the store or bring it to the code's schema: (revision before, revision after)."""
    return backend_for(settings).migrate(settings)
