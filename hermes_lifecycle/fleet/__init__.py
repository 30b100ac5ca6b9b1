"""The fleet wing: what a host does because its store is a PostgreSQL it shares and can lose.

One job per module:

- ``spool``: the starts and exits the hooks kept while the database was unavailable, and their replay;
- ``snapshot``: this host's desired states on the volume, for a boot with the database away;
- ``outage``: the hooks in an outage: the deadline, what they keep, the offline breaker;
- ``offline_boot``: whether boot's database is unreachable, and the states it boots from then.

The store knows nothing of the wing. A writer on a fleet host opens the store through
``open_writer``, which appends what the spool holds before anything newer; a long-lived writer
calls ``replay_kept`` before each write. On a SQLite host both cost nothing.
docs/fleet.md, "Outages", has the reasoning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import EventStore


def open_writer(
    settings: "Settings", *, say: Callable[[str], None], busy_timeout_ms: int | None = None,
) -> "EventStore":
    """The store for writing, with this host's kept facts appended first (on a fleet host).

    ``say`` gets one line per spool file the replay set aside: the caller decides where it goes
    (the CLI's stderr, boot's log, a daemon's JSON lines)."""
    from ..store import open_store

    store = open_store(settings, busy_timeout_ms=busy_timeout_ms)
    try:
        replay_kept(store, settings, say=say)
    except BaseException:
        store.close()
        raise
    return store


def replay_kept(store: "EventStore", settings: "Settings", *, say: Callable[[str], None]) -> int:
    """Append the facts this host's hooks kept in the spool; how many. Nothing on a SQLite host
    (it has no spool) nor as root (the files are the gateway user's: ``spool.replay``)."""
    if not settings.fleet:
        return 0
    from . import spool

    replayed = spool.replay(store, settings)
    for line in replayed.refused:
        say(line)
    return replayed.appended
