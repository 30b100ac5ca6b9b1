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
from .records import Record
from .reports import NOTHING_YET, Summary, summary_of
from .runs import Run, exits_without_run, runs_of
from .store import EventStore, StreamWindow
from .vocabulary import format_time, parse_time

# Every crash ever: the log's times all sort after the empty text.
SINCE_THE_START = ""
# A profile page reads at most this many of the window's newest events (a bar each, at most).
TIMELINE_EVENT_LIMIT = 5000
FIRST_TIMELINE_BATCH = 500
EXIT_TYPES = ("started", "crashed", "stopped")
# With no window asked for, a page begins with the oldest run of the last day, or with the newest
# run when none is that recent, and a margin before it, so the runs fill the plot.
RECENT = timedelta(days=1)
MARGIN = 0.05  # of the window's span
MIN_MARGIN = timedelta(seconds=1)


class GatewayReading(Record):
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


class FleetReading(Record):
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


class Timeline(Record):
    """One profile's runs between ``since`` and ``until``."""

    state: ProfileState
    since: str
    until: str
    runs: list[Run]  # runs_of's, and the exits that name no run (exits_without_run), in log order
    truncated: bool  # the window held more events than were read: the oldest runs are left out
    account: Summary = NOTHING_YET  # what the gateway last said of its latest run
    crashes: int = 0  # crashed events in the window: what the overview, history and metrics count
    chosen: bool = False  # the window was chosen from the data (no ``since`` asked for)


def window_from(events: list, now: datetime) -> str:
    """Where a page with no ``since`` begins, from ``events`` (starts and exits, newest first): the
    oldest of the last day's, else the newest run's start (or its newest event), less a margin."""
    recent = format_time(now - RECENT)
    inside = [event for event in events if event.occurred_at >= recent]
    if inside:
        first = inside[-1].occurred_at
    elif events:
        first = next((e.occurred_at for e in events if e.type == "started" and e.actor == "supervisor"),
                     events[0].occurred_at)
    else:
        return recent
    begins = parse_time(first)
    margin = max((now - begins) * MARGIN, MIN_MARGIN)
    return format_time(begins - margin)


def read_timeline(store: EventStore, profile: str, *, since: str | None, now: datetime) -> Timeline:
    """``profile``'s runs that began or ended at or after ``since`` (and the one going, whenever it began);
    ``since`` None: the window is chosen from the data (``window_from``).

    Nothing indexes a profile's events by time, and a time filter in the
    statement would walk the whole stream to find the window's edge. So the
    newest exits and starts are read in growing batches by version (the
    stream's index) until a batch reaches past ``since``: the cost follows
    the events in the window, not the profile's whole history.
    """
    name = validate_name(profile)
    batch = FIRST_TIMELINE_BATCH
    chosen = since is None
    with store.reading() as tx:
        state = tx.require_state(name)
        account = account_of(tx, state)
        while True:
            events = tx.stream(name, StreamWindow(types=EXIT_TYPES, newest_first=True, limit=batch))
            if since is None:
                since = window_from(events, now)
            reached_since = len(events) < batch or events[-1].occurred_at < since
            if reached_since or batch >= TIMELINE_EVENT_LIMIT:
                break
            batch = min(batch * 4, TIMELINE_EVENT_LIMIT)
    shown = [event for event in reversed(events) if event.occurred_at >= since]
    runs = sorted(runs_of(shown, state) + exits_without_run(shown), key=lambda run: run.position)
    crashes = sum(1 for event in shown if event.type == "crashed")
    return Timeline(state, since, format_time(now), runs, not reached_since, account, crashes, chosen)
