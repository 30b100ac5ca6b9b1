"""The position a reconciler has read up to follows the log it reads, also when that log is shorter.

A fleet's failover can lose commits the old primary acknowledged (asynchronous replication); the
new primary then gives their positions to new events. A full pass reads every state as of the
log's newest position, so that position is the reconciler's afterwards, lower or not: keeping the
higher one would make the next catch-up skip the new events (docs/fleet.md, Failover).
Real stores, a real scan directory; no profile, so no s6 command is needed.
"""

from __future__ import annotations

from store_helpers import settings_for

from hermes_lifecycle import store
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.projector.reconcile import Reconciler
from hermes_lifecycle.projector.slots import ScanDir


def _log_of(home, events: int):
    settings = settings_for(home)
    store.migrate(settings)
    with store.open_store(settings) as writer:
        writer.append(NewEvent("alice", "created", "cli", "down"))
        for number in range(events - 1):
            writer.append(NewEvent("alice", "started" if number % 2 == 0 else "stopped", "cli",
                                   "up" if number % 2 == 0 else "down"))
    return settings


def test_a_full_pass_over_a_shorter_log_takes_its_position_and_catches_up_from_there(tmp_path):
    longer = _log_of(tmp_path / "primary", 6)
    shorter = _log_of(tmp_path / "promoted", 3)
    scandir = ScanDir(tmp_path / "service", container=False)
    scandir.ensure()
    with store.open_store(longer, readonly=True) as first:
        reconciler = Reconciler(longer, first, scandir=scandir)
        assert reconciler.full_pass("start").upto == 6 and reconciler.position == 6
    with store.open_store(shorter, readonly=True) as second:
        reconciler.store = second  # the same daemon, now reading the promoted server's log
        reconciler.full_pass("reconnect")
        assert reconciler.position == 3
        with store.open_store(shorter) as writer:
            writer.append(NewEvent("alice", "started", "cli", "up"))  # position 4, a position seen before
        caught = reconciler.catch_up("notified")
        assert [event.position for event in caught.events] == [4]
