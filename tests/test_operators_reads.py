"""hermes_lifecycle.operators on a real store file: crash counts per window, and a timeline read in batches."""

from __future__ import annotations

from datetime import datetime, timezone

from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.operators import FIRST_TIMELINE_BATCH, read_fleet, read_timeline
from hermes_lifecycle.runs import CRASHED, RUNNING
from store_helpers import open_store, ticking_clock

# ticking_clock: 2026-11-27T00:00:00Z plus one second per event.
DAY_START = datetime(2026, 11, 27, tzinfo=timezone.utc)


def _run(store, name: str, *, crash: bool = True) -> int:
    start = store.append(NewEvent(name, "started", "supervisor", pid=100))
    if crash:
        store.append(NewEvent(name, "crashed", "supervisor", pid=100, exit_code=1, data={"run": start.position}))
    return start.position


def test_crash_counts_per_window_and_ever(tmp_path):
    with open_store(tmp_path, clock=ticking_clock()) as store:
        for name in ("alice", "bob", "gone"):
            store.append(NewEvent(name, "created", "cli", "down"))
            store.append(NewEvent(name, "started", "cli", "up"))
        for _ in range(3):
            _run(store, "alice")  # seconds 6-11
        store.append(NewEvent("gone", "deleted", "cli", "down"))
        # Two hours later (the clock ticks per event): bob crashes twice, alice once more, and one run is going.
        store.clock = ticking_clock(2 * 3600)
        _run(store, "bob")
        _run(store, "bob")
        _run(store, "alice")
        _run(store, "bob", crash=False)
        now = datetime(2026, 11, 27, 2, 30, tzinfo=timezone.utc)
        page = read_fleet(store, now, recent_crashes=True, crash_totals=False)
        metrics = read_fleet(store, now, recent_crashes=False, crash_totals=True)
        both = read_fleet(store, now, recent_crashes=True, crash_totals=True)
        events = store.last_position()
    counts = {g.state.profile: (g.crashes_last_hour, g.crashes_last_day, g.crashes_total) for g in page.gateways}
    assert counts == {"alice": (1, 4, None), "bob": (2, 2, None)}  # deleted profiles are not shown
    assert {g.state.profile: g.crashes_total for g in metrics.gateways} == {"alice": 4, "bob": 2}
    assert all(g.crashes_last_hour is None for g in metrics.gateways)
    assert {g.state.profile: (g.crashes_last_hour, g.crashes_total) for g in both.gateways} == {
        "alice": (1, 4), "bob": (2, 2)}
    assert page.events_total == metrics.events_total == events
    bob = next(g for g in page.gateways if g.state.profile == "bob")
    assert bob.running and bob.uptime_seconds(now) > 0


def test_a_timeline_larger_than_one_batch_is_read_whole(tmp_path):
    runs = FIRST_TIMELINE_BATCH  # twice as many exits and starts as the first batch holds
    with open_store(tmp_path, clock=ticking_clock()) as store:
        store.append(NewEvent("alice", "created", "cli", "down"))
        store.append(NewEvent("alice", "started", "cli", "up"))
        with store.writing() as tx:
            for _ in range(runs):
                start = tx.append(NewEvent("alice", "started", "supervisor", pid=7))
                tx.append(NewEvent("alice", "crashed", "supervisor", pid=7, signal=9, data={"run": start.position}))
            going = tx.append(NewEvent("alice", "started", "supervisor", pid=8)).position
        now = datetime(2026, 11, 27, 1, 0, tzinfo=timezone.utc)
        whole = read_timeline(store, "alice", since="2026-11-27T00:00:00.000Z", now=now)
        # A window that begins mid-way: the runs ended in it, the first one cut at its start.
        cut = read_timeline(store, "alice", since="2026-11-27T00:10:00.500Z", now=now)
    assert len(whole.runs) == runs + 1 and not whole.truncated
    assert [r.ended_by for r in whole.runs].count(CRASHED) == runs
    assert whole.runs[-1].position == going and whole.runs[-1].ended_by == RUNNING
    assert all(r.start_shown for r in whole.runs)
    assert cut.runs[0].started_at is None or cut.runs[0].started_at >= cut.since
    assert all(r.ended_at is None or r.ended_at >= cut.since for r in cut.runs)
    assert len(cut.runs) < len(whole.runs) and cut.runs[-1].ended_by == RUNNING
