"""What happened to a profile: a typed query (``HistoryFilter``), its reads and its summary.

The summary is a pure function; the reads go through the store like every
other (its SQLite recorder imports no SQLAlchemy, so this stays as fast as a
person at a prompt needs). The command line's values become a query in the
CLI (``hermes_lifecycle_cli.options``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator

from .events import Event
from .profile_state import ProfileState
from .records import Record
from .runs import RUNNING, runs_of
from .store import EventStore, StreamWindow
from .store.log import CrashRecord
from .vocabulary import EventType

# -- the reads ----------------------------------------------------------------
class HistoryFilter(Record):
    since: str | None = None
    until: str | None = None
    types: tuple[EventType, ...] = ()  # none: every type
    boot_id: str | None = None
    limit: int | None = 50  # None: all

    def window(self, *, after_position: int = 0, after_version: int = 0, newest_first: bool = False,
               limit: int | None = None) -> StreamWindow:
        return StreamWindow(
            after_version=after_version, after_position=after_position, since=self.since, until=self.until,
            types=self.types, boot_id=self.boot_id, limit=limit, newest_first=newest_first,
        )


class History(Record):
    state: ProfileState
    events: list[Event]  # oldest first
    crashes: CrashRecord  # the whole stream's


def read_history(store: EventStore, profile: str, window: HistoryFilter) -> History:
    """The profile, its newest matching events (oldest first) and its crash totals, in one snapshot."""
    with store.reading() as tx:
        state = tx.require_state(profile)
        events = tx.stream(profile, window.window(newest_first=True, limit=window.limit))
        crashes = tx.crashes(profile)
    events.reverse()
    return History(state, events, crashes)


STREAM_PAGE = 2000  # rows a page of ``stream_history`` reads: the first are shown while the rest wait


def stream_history(store: EventStore, profile: str, window: HistoryFilter, page: int = STREAM_PAGE) -> Iterator[Event]:
    """Every matching event, oldest first, a page at a time (``--limit 0 --json``): each is shown
    as soon as its page is read, memory stays one page, and no read transaction is held while
    the reader of the output is slow (a long-open snapshot keeps SQLite's WAL from being reset).

    The log only grows, so a page that starts after the previous page's last version misses
    nothing and repeats nothing; an event appended meanwhile may show at the end, as with
    ``--follow``. Versions are unique in a stream (``UNIQUE (profile, version)``) and the order
    is by version, so a page's last version is an exact key, whatever type a row written behind
    the store's back gave it; when it cannot be read (over its bound), the rest is read at once.
    """
    with store.reading() as tx:
        tx.require_state(profile)
    after: Any = 0  # a stored version, of whatever type a row written behind the store's back gave it
    while True:
        with store.reading() as tx:
            events, count, last = tx.stream_page(profile, window.window(after_version=after, limit=page))
        yield from events
        if count < page:
            return
        if last is None:  # the same order again, past the rows shown
            with store.reading() as tx:
                rest = tx.stream_page(profile, window.window(after_version=after), skip=count)[0]
            yield from rest
            return
        after = last


def read_newer(store: EventStore, profile: str, window: HistoryFilter, after_position: int) -> list[Event]:
    """Matching events after ``after_position``, oldest first (``--follow``)."""
    with store.reading() as tx:
        return tx.stream(profile, window.window(after_position=after_position))


# -- the summary --------------------------------------------------------------
class Summary(Record):
    shown: int
    total: int  # events in the whole stream
    runs: int  # supervisor starts among the events shown
    crashes: int  # crashes among the events shown
    longest_uptime: float | None  # seconds, among the runs shown
    longest_run_started_at: str | None
    longest_run_running: bool
    crashes_total: int
    last_crash_at: str | None
    last_crash_exit_code: int | None
    last_crash_signal: int | None
    deleted: bool
    desired: str
    held_down_by: str | None  # crash-loop, fatal-config, exited: the supervisor holds it down
    held_since: str | None


def summarise(history: History, now: datetime) -> Summary:
    """Runs, crashes and the longest uptime among the events shown; crash totals and the hold
    from the whole stream. A run's end is the exit that names it (``data.run``); a run with no
    end shown counts only when the projection says it is still going."""
    state, events = history.state, history.events
    shown = [run for run in runs_of(events, state) if run.start_shown]
    longest: tuple[float, str | None, bool] | None = None
    for run in shown:
        uptime = run.uptime_seconds(now)
        if uptime is None:
            continue  # its end lies outside what is shown, or was never recorded
        uptime = max(0.0, uptime)  # a clock set back during the run: no negative uptime
        if longest is None or uptime > longest[0]:
            longest = (uptime, run.started_at, run.ended_by == RUNNING)
    last_crash = history.crashes.last
    held_down_by = state.held_down_by
    return Summary(
        shown=len(events),
        total=state.version,
        runs=len(shown),
        crashes=sum(1 for e in events if e.type == "crashed"),
        longest_uptime=longest[0] if longest else None,
        longest_run_started_at=longest[1] if longest else None,
        longest_run_running=longest[2] if longest else False,
        crashes_total=history.crashes.total,
        last_crash_at=last_crash.occurred_at if last_crash else None,
        last_crash_exit_code=last_crash.exit_code if last_crash else None,
        last_crash_signal=last_crash.signal if last_crash else None,
        deleted=state.deleted,
        desired=state.desired,
        held_down_by=held_down_by,
        held_since=state.intent_at if held_down_by else None,
    )
