"""What operators watch, read through the store seam: the fleet at a glance and one profile's runs over time.

``hermes-state serve`` turns these values into Prometheus metrics and HTML;
here they are plain values, read in one snapshot each, so the same reads
work on any backend behind ``open_store``. Every count of crashes comes from
the overview read, which the partial index on crashed rows serves: the cost
is the crashes counted, never the length of the log.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .fold import ProfileState
from .names import NAME_PATTERN, validate_name
from .records import record
from .reports import NOTHING_YET, Summary, summary_of
from .runs import Run, runs_of
from .store import EventStore, StreamWindow
from .vocabulary import format_time, parse_time

# Every crash ever: the log's times all sort after the empty text.
SINCE_THE_START = ""
# A profile page reads at most this many of the window's newest events (a bar each, at most).
TIMELINE_EVENT_LIMIT = 5000
FIRST_TIMELINE_BATCH = 500
EXIT_TYPES = ("started", "crashed", "stopped")


@record
class GatewayReading:
    """One live profile as an operator sees it; each count None when it was not asked for."""

    state: ProfileState
    crashes_last_hour: int | None
    crashes_last_day: int | None
    crashes_total: int | None
    # What the gateway last said of its latest run (its newest report, reports.Summary), if it said anything.
    account: Summary = NOTHING_YET

    @property
    def desired_up(self) -> bool:
        return self.state.desired == "up"

    @property
    def named_as_a_profile(self) -> bool:
        """The row's name is a profile name. The overview read checks every other column; a name
        that is none (a row written behind the store's back) is no gateway to export as one."""
        name = self.state.profile
        return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None

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


@record
class FleetReading:
    gateways: list[GatewayReading]  # live profiles, by name
    events_total: int  # the newest position: positions are dense, the log append-only
    read_at: datetime
    host: str | None = None  # in a fleet, the host whose profiles these are; None: a SQLite file's, all


def read_fleet(store: EventStore, now: datetime, *, recent_crashes: bool, crash_totals: bool,
               host: str | None = None) -> FleetReading:
    """Every live profile, in one snapshot, with its crashes in the last hour and day (the page) and/or
    ever (the metrics' counter): each count is one overview read, so only what is asked for is read.
    ``host``: a fleet host's own profiles only (each host serves its own, so a fleet's series are each
    exported once); None: every profile (a SQLite file's are all this host's)."""
    hour, day = format_time(now - timedelta(hours=1)), format_time(now - timedelta(days=1))
    with store.reading() as tx:
        # The states come with one count (an overview); a second count is a lighter read beside it.
        first = tx.overview(hour if recent_crashes else SINCE_THE_START)
        day_counts = tx.crash_counts(day) if recent_crashes else {}
        totals = tx.crash_counts(SINCE_THE_START) if recent_crashes and crash_totals else {}
        events_total = tx.last_position()
        accounts = {item.state.profile: account_of(tx, item.state) for item in first}
    gateways = []
    for item in first:
        if host is not None and item.state.host != host:
            continue
        name = item.state.profile
        gateways.append(GatewayReading(
            state=item.state,
            crashes_last_hour=item.crashes_since if recent_crashes else None,
            crashes_last_day=day_counts[name] if recent_crashes else None,
            crashes_total=(totals[name] if recent_crashes else item.crashes_since) if crash_totals else None,
            account=accounts[name],
        ))
    return FleetReading(gateways, events_total, now, host)


def account_of(tx, state: ProfileState) -> Summary:
    """What the gateway's newest report says of the profile's latest run: one row by its position."""
    position = state.last_report_position
    if position is None or state.run_position is None:
        return NOTHING_YET
    newest = tx.log_after(position - 1, limit=1)
    return summary_of(newest[0].data, state.run_position) if newest and newest[0].type == "reported" else NOTHING_YET


@record
class Timeline:
    """One profile's runs between ``since`` and ``until``."""

    state: ProfileState
    since: str
    until: str
    runs: list[Run]
    truncated: bool  # the window held more events than were read: the oldest runs are left out
    account: Summary = NOTHING_YET  # what the gateway last said of its latest run


def read_timeline(store: EventStore, profile: str, *, since: str, now: datetime) -> Timeline:
    """``profile``'s runs that began or ended at or after ``since`` (and the one going, whenever it began).

    Nothing indexes a profile's events by time, and a time filter in the
    statement would walk the whole stream to find the window's edge. So the
    newest exits and starts are read in growing batches by version (the
    stream's index) until a batch reaches past ``since``: the cost follows
    the events in the window, not the profile's whole history.
    """
    name = validate_name(profile)
    batch = FIRST_TIMELINE_BATCH
    with store.reading() as tx:
        state = tx.require_state(name)
        account = account_of(tx, state)
        while True:
            events = tx.stream(name, StreamWindow(types=EXIT_TYPES, newest_first=True, limit=batch))
            reached_since = len(events) < batch or events[-1].occurred_at < since
            if reached_since or batch >= TIMELINE_EVENT_LIMIT:
                break
            batch = min(batch * 4, TIMELINE_EVENT_LIMIT)
    shown = [event for event in reversed(events) if event.occurred_at >= since]
    return Timeline(state, since, format_time(now), runs_of(shown, state), not reached_since, account)
