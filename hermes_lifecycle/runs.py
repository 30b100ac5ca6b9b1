"""A profile's gateway runs, from its events: the one run lookup of the library.

A run is a supervisor ``started`` and the exit events whose ``data.run`` names
its position (docs/design.md section 2), as the ``gateway_runs`` view pairs
them in SQL. ``history.summarise`` and the operators' page read runs from
here; pure: events in, runs out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from .events import Event
from .profile_state import ProfileState
from .records import Record
from .vocabulary import parse_time

# How a run ended (the gateway_runs view's ended_by).
CRASHED = "crashed"
STOPPED = "stopped"
RUNNING = "running"
UNKNOWN = "unknown"  # a later run began, or the profile was deleted, with no exit recorded


class Run(Record):
    position: int  # of its supervisor `started`
    pid: int | None
    boot_id: str | None
    started_at: str | None  # None: its start lies before the events read
    start_shown: bool  # its `started` is among the events read
    ended_by: str  # CRASHED, STOPPED, RUNNING, UNKNOWN
    ended_at: str | None
    reason: str | None  # of the exit
    exit_code: int | None
    signal: int | None
    held_down_by: str | None  # the reason of a supervisor stop (desired down) that names this run
    start_recorded: bool = True  # False: an exit that names no run (its start was never recorded)

    def uptime_seconds(self, now: datetime) -> float | None:
        """From start to end (to ``now`` while running); None when either end is unknown."""
        if self.started_at is None:
            return None
        if self.ended_at is not None:
            return (parse_time(self.ended_at) - parse_time(self.started_at)).total_seconds()
        if self.ended_by == RUNNING:
            return (now - parse_time(self.started_at)).total_seconds()
        return None


def _is_exit(event: Event) -> bool:
    return event.actor == "supervisor" and event.type in (CRASHED, STOPPED)


def runs_of(events: Iterable[Event], state: ProfileState) -> list[Run]:
    """Every run the events (oldest first) show, in start order.

    A run's end is the first exit naming it; a later supervisor stop with
    desired down naming it (the breaker's, after the crash) is its hold. An
    exit whose start lies before the events read still makes a run (its
    ``started_at`` None), and so does the run ``state`` says is going when its
    start was not read: the page draws a window of the log, not all of it.
    """
    starts: dict[int, Event] = {}
    ends: dict[int, Event] = {}
    holds: dict[int, str] = {}
    for event in events:
        if event.actor != "supervisor":
            continue
        if event.type == "started":
            starts[event.position] = event
        elif _is_exit(event) and event.run is not None:
            ends.setdefault(event.run, event)
            if event.type == STOPPED and event.desired == "down" and event.reason:
                holds[event.run] = event.reason
    running = state.running_run
    positions = set(starts) | set(ends)
    if running is not None:
        positions.add(running)
    runs = []
    for position in sorted(positions):
        start = starts.get(position)
        end = ends.get(position)
        ended_by: str
        ended_at: str | None
        pid: int | None
        boot_id: str | None
        started_at: str | None
        if end is not None:
            ended_by, ended_at = str(end.type), end.occurred_at
        elif position == running:
            ended_by, ended_at = RUNNING, None
        else:
            ended_by, ended_at = UNKNOWN, None
        if start is not None:
            pid, boot_id, started_at = start.pid, start.boot_id, start.occurred_at
        elif position == running:
            pid, boot_id, started_at = state.run_pid, state.run_boot_id, state.run_started_at
        elif end is not None:
            pid, boot_id, started_at = end.pid, end.boot_id, None
        else:  # not reached: a position is a start's, an end's or the running run's
            pid, boot_id, started_at = None, None, None
        runs.append(Run(
            position=position, pid=pid, boot_id=boot_id, started_at=started_at, start_shown=start is not None,
            ended_by=ended_by, ended_at=ended_at,
            reason=end.reason if end is not None else None,
            exit_code=end.exit_code if end is not None else None,
            signal=end.signal if end is not None else None,
            held_down_by=holds.get(position),
        ))
    return runs


def exits_without_run(events: Iterable[Event]) -> list[Run]:
    """The exits (oldest first) that name no run: their start was never recorded (``record-start``
    could not write, or the store was set up by hand). ``runs_of`` and the gateway_runs view pair
    starts with exits and so leave them out; a page that counts crashes must not. Each becomes a
    run of its own, at its exit's position, with no start; the breaker's stop appended right after
    such a crash (the next position, one transaction) is that crash's hold, as ``runs_of`` pairs it."""
    found: list[Run] = []
    for event in events:
        if not _is_exit(event) or event.run is not None:
            continue
        previous = found[-1] if found else None
        if (previous is not None and previous.ended_by == CRASHED and previous.held_down_by is None
                and event.type == STOPPED and event.desired == "down" and event.position == previous.position + 1):
            found[-1] = previous._replace(held_down_by=event.reason)
            continue
        found.append(Run(
            position=event.position, pid=event.pid, boot_id=event.boot_id, started_at=None, start_shown=False,
            ended_by=str(event.type), ended_at=event.occurred_at, reason=event.reason, exit_code=event.exit_code,
            signal=event.signal, held_down_by=event.reason if event.type == STOPPED and event.desired == "down" else None,
            start_recorded=False,
        ))
    return found
