"""The pure parts of `profile history` and its helpers: table tests, no processes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from builders import alice_state, event_at

from hermes_lifecycle_cli import grid, humane
from hermes_lifecycle import events
from hermes_lifecycle.errors import BadInput
from hermes_lifecycle.history import History, summarise
from hermes_lifecycle_cli.options import parse_boot, parse_types, parse_when
from hermes_lifecycle.store.log import CrashRecord

NOW = datetime(2026, 11, 27, 12, 0, 0, 250000, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "moment, stored",
    [
        (NOW, "2026-11-27T12:00:00.250Z"),
        (datetime(1999, 1, 2, 3, 4, 5, 999999, tzinfo=timezone(timedelta(hours=-7))), "1999-01-02T10:04:05.999Z"),
        (datetime(2026, 1, 1, tzinfo=timezone.utc), "2026-01-01T00:00:00.000Z"),
    ],
)
def test_the_logs_time_format(moment, stored):
    assert events.format_time(moment) == stored
    assert events.parse_time(stored) == moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("30m", "2026-11-27T11:30:00.250Z"),
        ("2h", "2026-11-27T10:00:00.250Z"),
        ("3d", "2026-11-24T12:00:00.250Z"),
        ("1w", "2026-11-20T12:00:00.250Z"),
        ("1h30m", "2026-11-27T10:30:00.250Z"),
        ("45s", "2026-11-27T11:59:15.250Z"),
        (" 2h ", "2026-11-27T10:00:00.250Z"),
        ("2026-11-27T09:00:00Z", "2026-11-27T09:00:00.000Z"),
        ("2026-11-27T09:00:00+02:00", "2026-11-27T07:00:00.000Z"),
        ("2026-11-27 09:00:00.5+00:00", "2026-11-27T09:00:00.500Z"),
    ],
)
def test_parse_when(text, expected):
    assert parse_when(text, "--since", NOW) == expected


def test_parse_when_without_a_zone_is_local(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert parse_when("2026-11-27T09:00", "--since", NOW) == "2026-11-27T00:00:00.000Z"
        assert parse_when("2026-11-27", "--since", NOW) == "2026-11-26T15:00:00.000Z"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    "text", ["yesterdayish", "", "2 h", "-2h", "2y", "h", "2h ago", "99999999999d", "2026-13-01", "now", "1.5h"]
)
def test_parse_when_refuses(text):
    with pytest.raises(BadInput, match="--until"):
        parse_when(text, "--until", NOW)


def test_an_age_before_year_one_is_bad_input():
    with pytest.raises(BadInput, match="before year 1"):
        parse_when("999999999w", "--since", NOW)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("crashed", ("crashed",)),
        ("crashed,stopped", ("crashed", "stopped")),
        (" stopped , crashed,stopped", ("stopped", "crashed")),
    ],
)
def test_parse_types(text, expected):
    assert parse_types(text) == expected


@pytest.mark.parametrize("text", ["", "crash", "crashed,", "Crashed", "crashed;stopped"])
def test_parse_types_refuses(text):
    with pytest.raises(BadInput, match="unknown event type"):
        parse_types(text)


@pytest.mark.parametrize("text, ok", [("current", True), ("0b0e-1", True), ("a" * 64, True), ("a" * 65, False),
                                      ("../x", False), ("CURRENT", False), ("", False)])
def test_parse_boot(text, ok):
    if ok:
        assert parse_boot(text) == text
    else:
        with pytest.raises(BadInput):
            parse_boot(text)


# -- summarise ------------------------------------------------------------------
def _event(position, type, actor, at, run=None, **fields):
    return event_at(NOW, position, type, actor, at, run, **fields)


_state = alice_state


@pytest.mark.parametrize(
    "case, shown, state, expected",
    [
        ("nothing shown", [], _state(), dict(runs=0, crashes=0, longest_uptime=None)),
        (
            "an ended run and a crash",
            [_event(1, "started", "supervisor", 100), _event(2, "crashed", "supervisor", 40, run=1, exit_code=1)],
            _state(),
            dict(runs=1, crashes=1, longest_uptime=60.0, longest_run_running=False),
        ),
        (
            "the longest of two, one still running",
            [_event(1, "started", "supervisor", 500), _event(2, "stopped", "supervisor", 490, run=1),
             _event(3, "started", "supervisor", 300)],
            _state(run_position=3, run_ended=False),
            dict(runs=2, crashes=0, longest_uptime=300.0, longest_run_running=True),
        ),
        (
            "a run whose end is not shown and that is not running counts as a run, not an uptime",
            [_event(5, "started", "supervisor", 300)],
            _state(run_position=9, run_ended=False),
            dict(runs=1, longest_uptime=None),
        ),
        (
            "an exit naming an older run does not end a newer one",
            [_event(1, "started", "supervisor", 300), _event(3, "started", "supervisor", 200),
             _event(4, "crashed", "supervisor", 100, run=1, signal=9)],
            _state(),
            dict(runs=2, crashes=1, longest_uptime=200.0),
        ),
        (
            "cli intents are neither runs nor ends",
            [_event(1, "started", "cli", 300, desired="up"), _event(2, "stopped", "cli", 200, desired="down")],
            _state(),
            dict(runs=0, crashes=0, longest_uptime=None),
        ),
        (
            "held down by the breaker",
            [],
            _state(desired="down", intent_actor="supervisor", intent_reason="crash-loop"),
            dict(held_down_by="crash-loop", held_since="2026-11-27T11:00:00.000Z", desired="down"),
        ),
        ("deleted", [], _state(deleted=True, desired="down"), dict(deleted=True, held_since=None)),
    ],
)
def test_summarise(case, shown, state, expected):
    last_crash = _event(99, "crashed", "supervisor", 60, occurred_at="2026-11-27T11:59:00.000Z", signal=9)
    found = History(state, shown, CrashRecord(7, last_crash))
    summary = summarise(found, NOW)
    assert summary.crashes_total == 7 and summary.last_crash_signal == 9 and summary.total == 100
    for key, value in expected.items():
        assert getattr(summary, key) == value, (case, key)


# -- humane -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "seconds, text",
    [(None, ""), (0, "0s"), (0.42, "0.4s"), (12, "12s"), (59.9, "59s"), (61, "1m 1s"), (3600, "1h 0m"),
     (7322, "2h 2m"), (86400 * 3 + 3600 * 4 + 5, "3d 4h"), (-5, "0s")],
)
def test_duration(seconds, text):
    assert humane.duration(seconds) == text


@pytest.mark.parametrize(
    "exit_code, signal, text", [(None, None, ""), (0, None, "exit 0"), (1, None, "exit 1"), (None, 9, "SIGKILL"),
                                (None, 11, "SIGSEGV"), (None, 15, "SIGTERM"), (None, 99, "signal 99")]
)
def test_exit_text(exit_code, signal, text):
    assert humane.exit_text(exit_code, signal) == text


def test_signal_names_are_the_signal_modules():
    """humane reads the names from _signal, not the enum: they must be the enum's, aliases included."""
    import signal

    for number in range(0, 130):
        try:
            expected = signal.Signals(number).name
        except ValueError:
            expected = f"signal {number}"
        assert humane.signal_name(number) == expected, number


def test_age():
    assert humane.age("2026-11-27T11:58:00.000Z", NOW) == "2m 0s ago"
    assert humane.age("2026-11-27T12:00:05.000Z", NOW) == "in 4.8s"
    assert humane.age(None, NOW) == ""


# -- grid -------------------------------------------------------------------------
def test_grid_aligns_and_keeps_rows_on_one_line():
    columns = [grid.Column("a", "name"), grid.Column("n", "count", right=True), grid.Column("z", "note")]
    rows = [{"a": "alice", "n": 3, "z": "two\nlines"}, {"a": "bo", "n": 12345, "z": None}]
    lines = grid.Grid(columns, colour=False).fit(rows).lines(rows)
    assert lines == [
        "name   count  note",
        "alice      3  two lines",
        "bo     12345",
    ]


def test_grid_colours_only_when_asked():
    columns = [grid.Column("t", "event")]
    style = lambda key, value: grid.RED if value == "crashed" else None  # noqa: E731
    plain = grid.Grid(columns, style=style, colour=False).fit([{"t": "crashed"}]).line({"t": "crashed"})
    painted = grid.Grid(columns, style=style, colour=True).fit([{"t": "crashed"}]).line({"t": "crashed"})
    assert plain == "crashed" and painted == "\x1b[31mcrashed\x1b[0m"
