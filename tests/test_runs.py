"""The one run lookup (hermes_lifecycle.runs) against the gateway_runs view, and how the page names each end.

runs_of must pair starts and exits as the public view does: the view is
what operators query, the function what the page and `profile history`
show. The comparison runs on a real store that the real hooks' vocabulary
filled (through the store, as the hooks append).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hermes_lifecycle_cli.operators_page import _ticks, end_kind, end_text
from hermes_lifecycle import events
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.runs import CRASHED, RUNNING, STOPPED, UNKNOWN, runs_of
from builders import alice_state, event_at
from store_helpers import open_store, operator_rows, ticking_clock

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def _event(position, type, actor, at, run=None, **fields):
    return event_at(NOW, position, type, actor, at, run, **fields)


_state = alice_state


def test_the_breakers_crash_ends_the_run_and_its_stop_holds_it():
    shown = [
        _event(1, "started", "supervisor", 60, pid=7),
        _event(2, "crashed", "supervisor", 50, run=1, exit_code=1),
        _event(3, "stopped", "supervisor", 50, run=1, desired="down", reason="crash-loop"),
    ]
    (run,) = runs_of(shown, _state())
    assert (run.ended_by, run.exit_code, run.held_down_by, run.pid) == (CRASHED, 1, "crash-loop", 7)
    assert run.uptime_seconds(NOW) == 10.0
    assert (end_kind(run), end_text(run)) == ("held", "crash, exit 1; held down: crash-loop")


def test_runs_cut_by_the_window_still_show():
    shown = [_event(5, "crashed", "supervisor", 100, run=2, signal=9, pid=40)]
    state = _state(run_position=8, run_ended=False, run_pid=41, run_started_at=events.format_time(NOW - timedelta(seconds=50)))
    older, going = runs_of(shown, state)
    assert (older.position, older.started_at, older.start_shown, older.ended_by) == (2, None, False, CRASHED)
    assert older.uptime_seconds(NOW) is None
    assert (going.position, going.pid, going.start_shown, going.ended_by) == (8, 41, False, RUNNING)
    assert going.uptime_seconds(NOW) == 50.0
    assert end_text(older) == "crash, SIGKILL"


@pytest.mark.parametrize("reason, desired, kind, text", [
    ("requested", None, "requested", "stop requested"),
    ("restart", None, "restart", "restart"),
    ("shutdown", None, "shutdown", "shutdown"),
    ("fatal-config", "down", "held", "held down: fatal-config (exit 78)"),
    ("exited", "down", "held", "held down: exited (exit 0)"),
])
def test_how_a_stop_is_named(reason, desired, kind, text):
    exit_code = {"fatal-config": 78, "exited": 0}.get(reason)
    shown = [_event(1, "started", "supervisor", 60),
             _event(2, "stopped", "supervisor", 30, run=1, reason=reason, desired=desired, exit_code=exit_code)]
    (run,) = runs_of(shown, _state())
    assert (run.ended_by, end_kind(run), end_text(run)) == (STOPPED, kind, text)


def test_a_start_without_an_exit_and_not_going_is_unknown():
    (run,) = runs_of([_event(1, "started", "supervisor", 60)], _state(run_position=3, run_ended=False,
                                                                        run_started_at="2026-11-27T11:59:00.000Z"))[:1]
    assert (run.ended_by, end_kind(run), end_text(run)) == (UNKNOWN, "unknown", "end not recorded")


def test_runs_agree_with_the_gateway_runs_view(tmp_path):
    store = open_store(tmp_path, clock=ticking_clock())
    with store:
        appended = []
        for new in [
            NewEvent("alice", "created", "cli", "down"),
            NewEvent("alice", "started", "cli", "up"),
            NewEvent("alice", "started", "supervisor", None, pid=10),
        ]:
            appended.append(store.append(new))
        run1 = appended[-1].position
        store.append(NewEvent("alice", "crashed", "supervisor", None, pid=10, exit_code=3, data={"run": run1}))
        run2 = store.append(NewEvent("alice", "started", "supervisor", None, pid=11)).position
        run3 = store.append(NewEvent("alice", "started", "supervisor", None, pid=12)).position  # run2's end lost
        store.append(NewEvent("alice", "stopped", "supervisor", None, pid=12, reason="shutdown", data={"run": run3}))
        store.append(NewEvent("alice", "started", "supervisor", None, pid=13))
        history = store.stream("alice")
        state = store.require_state("alice")
    found = runs_of(history, state)
    view = operator_rows(tmp_path / "state" / "profiles.db",
                         "SELECT run, pid, started_at, ended_at, ended_by, reason, exit_code, signal "
                         "FROM gateway_runs WHERE profile = 'alice' ORDER BY run")
    assert [(r.position, r.pid, r.started_at, r.ended_at, r.ended_by, r.reason, r.exit_code, r.signal) for r in found] \
        == [tuple(row.values()) for row in view]
    assert [r.ended_by for r in found] == [CRASHED, UNKNOWN, STOPPED, RUNNING]
    assert run2 in [r.position for r in found]


def test_ticks_fit_the_window():
    since = NOW - timedelta(minutes=1)
    ticks = _ticks(since, NOW)
    assert 2 <= len(ticks) <= 8 and ticks[-1].label == "12:00:00"
    assert [t.x for t in ticks] == sorted(t.x for t in ticks) and 0 <= ticks[0].x and ticks[-1].x <= 1000
    day = _ticks(NOW - timedelta(days=1), NOW)
    assert [t.label for t in day] == ["12:00", "15:00", "18:00", "21:00", "00:00", "03:00", "06:00", "09:00", "12:00"]

