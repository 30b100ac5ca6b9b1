"""hermes_lifecycle.operators on a real store file: crash counts per window, and a timeline read in batches."""

from __future__ import annotations

from datetime import datetime, timezone

from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.operators import FIRST_TIMELINE_BATCH, read_fleet, read_timeline
from hermes_lifecycle.runs import CRASHED, RUNNING
from hermes_lifecycle.vocabulary import parse_time
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


def test_a_crash_whose_start_was_never_recorded_counts_on_the_page_as_everywhere(tmp_path):
    """Four runs that crashed, then a crash whose start was never recorded (record-start could not
    write): the page, the overview, history and the metrics all count five."""
    from hermes_lifecycle.history import HistoryFilter, read_history, summarise
    from hermes_lifecycle_cli.operators_page import render_timeline

    with open_store(tmp_path, clock=ticking_clock()) as store:
        store.append(NewEvent("alice", "created", "cli", "down"))
        store.append(NewEvent("alice", "started", "cli", "up"))
        for _ in range(4):
            _run(store, "alice")
        store.append(NewEvent("alice", "crashed", "supervisor", exit_code=3))  # names no run
        now = datetime(2026, 11, 27, 0, 5, tzinfo=timezone.utc)
        timeline = read_timeline(store, "alice", since=None, now=now)
        asked = read_timeline(store, "alice", since="2026-11-27T00:00:00.000Z", now=now)
        fleet = read_fleet(store, now, recent_crashes=True, crash_totals=True)
        history = summarise(read_history(store, "alice", HistoryFilter(limit=None)), now)
    [alice] = fleet.gateways
    assert (alice.crashes_last_hour, alice.crashes_total, history.crashes, history.crashes_total) == (5, 5, 5, 5)
    assert timeline.crashes == asked.crashes == 5
    assert [run.ended_by for run in timeline.runs].count(CRASHED) == 5
    unrecorded = timeline.runs[-1]
    assert (unrecorded.start_recorded, unrecorded.exit_code, unrecorded.ended_by) == (False, 3, CRASHED)
    page = render_timeline(timeline, since_text="", now=now)
    assert "runs: 5, crashes: 5" in page and "start not recorded" in page


def test_without_a_since_the_window_is_chosen_so_the_runs_fill_it(tmp_path):
    """Minutes of runs in a day: the window begins at the first of them, less a margin, not 24 h ago.
    A profile whose runs are all older than a day: its newest run. None at all: the last day."""
    from hermes_lifecycle_cli.operators_page import PLOT_WIDTH, _bars

    with open_store(tmp_path, clock=ticking_clock(3600)) as store:  # from 01:00:00, a second per event
        for name in ("alice", "old", "idle"):
            store.append(NewEvent(name, "created", "cli", "down"))
        store.append(NewEvent("alice", "started", "cli", "up"))
        for _ in range(30):
            _run(store, "alice")  # 01:00:04 to 01:01:03
        store.append(NewEvent("old", "started", "cli", "up"))
        _run(store, "old")
        going = _run(store, "old", crash=False)  # started 01:01:07, still going
        later = datetime(2026, 11, 27, 1, 1, 10, tzinfo=timezone.utc)
        alice = read_timeline(store, "alice", since=None, now=later)
        old = read_timeline(store, "old", since=None, now=datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc))
        idle = read_timeline(store, "idle", since=None, now=later)
    assert alice.chosen and "2026-11-27T00:59:" in alice.since  # a margin of a few seconds before 01:00:04
    assert len(alice.runs) == 30 and alice.crashes == 30
    bars = _bars(alice, parse_time(alice.since), parse_time(alice.until))
    assert bars[-1].end_x - bars[0].x > 0.8 * PLOT_WIDTH  # the runs span the plot (24 h: 0.07% of it)
    assert (old.runs[-1].position, old.runs[-1].ended_by) == (going, RUNNING) and old.since < "2026-11-27T01:01:07"
    assert old.since > "2026-11-26"  # days before it, not the whole past
    assert idle.since == "2026-11-26T01:01:10.000Z" and idle.runs == []
