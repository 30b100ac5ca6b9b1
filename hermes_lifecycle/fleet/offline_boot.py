"""Boot with a fleet's database away: whether it is unreachable, and the states boot brings up then.

A database that cannot be reached (``StoreUnreachable``) does not stop a fleet host's boot: the
slots come up from this host's snapshot (``snapshot.py``), every entry checked as a projection
row, and the watch daemon reconciles when the database returns. Any other failure stops boot,
as on a SQLite host (fail closed). ``projector/boot.py`` runs the pass; this says what it runs on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import HermesError, StoreUnavailable, StoreUnreachable
from ..records import Record
from . import snapshot as snapshots

if TYPE_CHECKING:
    from ..settings import Settings


def unreachable(settings: "Settings", error: StoreUnavailable) -> StoreUnavailable:
    """``error`` as boot must take it: StoreUnreachable when a fleet's database cannot answer.

    A write kept waiting past the busy timeout by a lock (a migration, an operator's DDL) is
    asked once more with what boot reads next, the states: a read that cannot be answered in
    time is unreachable (translate.py). Reachable, or failing another way, ``error`` stands.
    Boot's writing steps ask this where they run (the child dropped to the gateway user, which
    reports the kind: ``dropped.ERROR_KINDS``), so root opens no second connection to learn it.
    """
    if not settings.fleet or isinstance(error, StoreUnreachable):
        return error
    from ..store import open_store

    try:
        with open_store(settings, readonly=True) as store:
            store.states()
    except StoreUnreachable as probe:
        return probe
    except HermesError:
        return error
    return error


class OfflineBoot(Record):
    """The snapshot boot brings the slots up from, and its lines: ``log`` for the boot log, after
    the line that says the database is unreachable; ``warnings`` for stderr."""

    snapshot: snapshots.Snapshot
    log: list
    warnings: list


def from_snapshot(settings: "Settings", error: StoreUnreachable) -> OfflineBoot:
    """This host's snapshot, checked; StoreUnavailable (exit 5, nothing acted on) without a valid one."""
    try:
        host = settings.host_id(create=False)
        snapshot = snapshots.load(settings, host)
    except StoreUnavailable as refused:  # no host id, or the snapshot missing or refused as a whole
        raise StoreUnavailable(f"{error}; no valid snapshot of this host's profiles to boot from: {refused}") from None
    headline = f"database unreachable: {snapshots.describe(snapshot)}"
    return OfflineBoot(
        snapshot,
        log=[*snapshot.skipped, headline],
        warnings=[*(f"hermes-state: boot: {line}" for line in snapshot.skipped),
                  f"hermes-state: boot: {headline}; the watch daemon reconciles when the database returns ({error})"],
    )
