"""The store, whatever the database behind it: one way to open it, migrate it and read it.

``open_store(settings)`` is how every command, hook and daemon reaches the
log: the settings choose the backend (a SQLite file, or a fleet's PostgreSQL), which is
imported only then, so a process pays only for the backend it uses.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Callable

from ..backends import BACKENDS
from ..errors import BadInput
from ..events import utc_now
from .log import EventStore, StoreTransaction, ensure_default_profile
from .recorder import COMMAND, HOOK, PAGE, Backend, StreamWindow

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "COMMAND", "HOOK", "PAGE", "Backend", "EventStore", "StoreTransaction", "StreamWindow",
    "backend_for", "ensure_default_profile", "migrate", "open_store",
]


def backend_for(settings: "Settings") -> Backend:
    """The backend the settings name (``backends.BACKENDS``, by the scheme of ``HERMES_STATE_URL``;
    no URL: the SQLite file); its module is imported only now."""
    scheme = None if settings.store_url is None else settings.store_url.partition("://")[0]
    if scheme not in BACKENDS:  # Settings refuses it first: reached only by a caller that built its own
        raise BadInput(f"no backend for the scheme {scheme}://")
    module, name = BACKENDS[scheme]
    return getattr(import_module(module), name)()


def open_store(
    settings: "Settings",
    *,
    readonly: bool = False,
    purpose: str = COMMAND,
    clock: Callable[[], str] = utc_now,
) -> EventStore:
    """The store the settings name; it must exist and be at the code's schema.

    A writer records this host's id and the current boot id on every event; a
    read-only store needs neither (and may be opened by a user who cannot write).
    ``purpose``: who opens it (HOOK, COMMAND, PAGE), which bounds what it waits for.
    """
    recorder = backend_for(settings).open(settings, readonly=readonly, purpose=purpose)
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
