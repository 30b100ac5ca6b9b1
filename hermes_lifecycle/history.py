"""What happened to a profile: the values `hermes-state history` takes, its reads and its summary.

Parsing the values and summarising are pure functions; the reads go
through the store like every other (its SQLite recorder imports no
SQLAlchemy, so this stays as fast as a person at a prompt needs).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from .errors import BadInput
from .events import Event
from .profile_state import ProfileState
from .names import BOOT_ID_PATTERN
from .records import Record
from .runs import RUNNING, runs_of
from .store import EventStore, StreamWindow
from .store.log import CrashRecord
from .vocabulary import TYPES, format_time

CURRENT_BOOT = "current"

# Patterns as text: re compiles (and caches) them only when --since or --until is given.
_AGE = r"(?:\d{1,9}[smhdw])+"
_AGE_PART = r"(\d+)([smhdw])"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WHEN_HELP = "expected an ISO time such as 2026-11-27T14:00 or an age such as 30m, 2h, 3d"


# -- times ------------------------------------------------------------------
def parse_when(text: str, option: str, now: datetime) -> str:
    """``--since``/``--until``: an ISO time (local when it names no zone) or an age before ``now``."""
    value = text.strip()
    if re.fullmatch(_AGE, value):
        seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in re.findall(_AGE_PART, value))
        try:
            return format_time(now - timedelta(seconds=seconds))
        except OverflowError:
            raise BadInput(f"invalid {option} {text!r}: that age reaches before year 1") from None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise BadInput(f"invalid {option} {text!r}: {_WHEN_HELP}") from None
    # A time without a zone is what the person's clock shows: local time.
    return format_time(moment if moment.tzinfo else moment.astimezone())


def parse_types(text: str) -> tuple[str, ...]:
    """``--type crashed,stopped``: known event types, in the order given, each once."""
    chosen: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if name not in TYPES:
            shown = repr(name) if name else "an empty name"
            raise BadInput(f"unknown event type {shown} in --type: expected some of {', '.join(TYPES)}")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def parse_boot(text: str) -> str:
    """``--boot``: ``current`` or a boot id as the projector writes them."""
    value = text.strip()
    if value == CURRENT_BOOT or BOOT_ID_PATTERN.fullmatch(value):
        return value
    raise BadInput(f"invalid --boot {text!r}: expected 'current' or a boot id (hex digits and '-')")


# -- the reads ----------------------------------------------------------------
class HistoryFilter(Record):
    since: str | None = None
    until: str | None = None
    types: tuple[str, ...] = ()
    boot_id: str | None = None
    limit: int | None = 50  # None: all

    def window(self, *, after_position: int = 0, newest_first: bool = False, limit: int | None = None) -> StreamWindow:
        return StreamWindow(
            after_position=after_position, since=self.since, until=self.until, types=self.types,
            boot_id=self.boot_id, limit=limit, newest_first=newest_first,
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
    longest: tuple[float, str, bool] | None = None
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
