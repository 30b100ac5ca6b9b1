"""What operators watch, read through the store seam: the fleet at a glance and one profile's runs over time.

``hermes state serve`` turns these values into Prometheus metrics and HTML;
here they are plain values, read in one snapshot each, so the same reads
work on any backend behind ``open_store``. Every count of crashes comes from
the overview read, which the partial index on crashed rows serves: the cost
is the crashes counted, never the length of the log.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from .fold import ProfileState
from .names import validate_name
from .runs import Run, runs_of
from .store import EventStore, StreamWindow
from .vocabulary import format_time, parse_time

# Every crash ever: the log's times all sort after the empty text.
SINCE_THE_START = ""
# A profile page reads at most this many of the window's newest events (a bar each, at most).
TIMELINE_EVENT_LIMIT = 5000
EXIT_TYPES = ("started", "crashed", "stopped")


class GatewayReading(NamedTuple):
    """One live profile as an operator sees it."""

    state: ProfileState
    crashes_last_hour: int
    crashes_last_day: int
    crashes_total: int | None  # None when not asked for (the page does not show it)

    @property
    def desired_up(self) -> bool:
        return self.state.desired == "up"

    @property
    def running(self) -> bool:
        return self.state.running_run is not None

    @property
    def held_down_by(self) -> str | None:
        return self.state.held_down_by

    def uptime_seconds(self, now: datetime) -> float:
        """How long the run the log believes is going has lived; 0 when none is."""
        if not self.running or self.state.run_started_at is None:
            return 0.0
        return max(0.0, (now - parse_time(self.state.run_started_at)).total_seconds())


class FleetReading(NamedTuple):
    gateways: list[GatewayReading]  # live profiles, by name
    events_total: int  # the newest position: positions are dense, the log append-only
    read_at: datetime


def read_fleet(store: EventStore, now: datetime, *, crash_totals: bool) -> FleetReading:
    """Every live profile with its crashes in the last hour and day (and ever, when asked), in one snapshot."""
    with store.reading() as tx:
        hour = tx.overview(format_time(now - timedelta(hours=1)))
        day = tx.overview(format_time(now - timedelta(days=1)))
        ever = tx.overview(SINCE_THE_START) if crash_totals else None
        events_total = tx.last_position()
    totals = {item.state.profile: item.crashes_since for item in ever} if ever is not None else {}
    day_counts = {item.state.profile: item.crashes_since for item in day}
    gateways = [
        GatewayReading(
            state=item.state,
            crashes_last_hour=item.crashes_since,
            crashes_last_day=day_counts.get(item.state.profile, item.crashes_since),
            crashes_total=totals.get(item.state.profile) if crash_totals else None,
        )
        for item in hour
    ]
    return FleetReading(gateways, events_total, now)


class Timeline(NamedTuple):
    """One profile's runs between ``since`` and ``until``."""

    state: ProfileState
    since: str
    until: str
    runs: list[Run]
    truncated: bool  # the window held more events than were read: the oldest runs are left out


def read_timeline(store: EventStore, profile: str, *, since: str, now: datetime) -> Timeline:
    """``profile``'s runs that began or ended at or after ``since`` (and the one going, whenever it began)."""
    name = validate_name(profile)
    window = StreamWindow(since=since, types=EXIT_TYPES, newest_first=True, limit=TIMELINE_EVENT_LIMIT)
    with store.reading() as tx:
        state = tx.require_state(name)
        events = tx.stream(name, window)
    events.reverse()
    return Timeline(state, since, format_time(now), runs_of(events, state), len(events) >= TIMELINE_EVENT_LIMIT)
