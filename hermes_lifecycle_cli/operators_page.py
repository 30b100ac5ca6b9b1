"""The operators' page as HTML and SVG: the fleet at a glance (`/`) and one profile's runs over time.

Server-rendered, no script: a page an operator reads when paged, in any
browser, with JavaScript off. Every value from the log (names, reasons,
boot ids) is untrusted: Jinja2 escapes every interpolation (autoescape on,
for every template), and links carry names URL-encoded.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote

import jinja2

from hermes_lifecycle.names import NAME_PATTERN
from hermes_lifecycle.operators import FleetReading, GatewayReading, Timeline
from hermes_lifecycle.records import Record
from hermes_lifecycle.reports import OK, Summary
from hermes_lifecycle.runs import CRASHED, RUNNING, UNKNOWN, Run
from hermes_lifecycle.vocabulary import parse_time

from .humane import duration, exit_text

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("hermes_lifecycle_cli", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    auto_reload=False,  # the templates ship with the package: no stat() of them at every request
    trim_blocks=True,
    lstrip_blocks=True,
)

# The timeline's drawing area, in SVG user units (it scales to the window's width).
PLOT_WIDTH = 1000.0
MIN_BAR_WIDTH = 2.0  # a run of a few milliseconds stays visible
TICK_STEPS = tuple(
    timedelta(seconds=s)
    for s in (5, 10, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400,
              30 * 86400, 365 * 86400)
)
MAX_TICKS = 8
PLAIN_NAME = NAME_PATTERN


def short_utc(stored: str) -> str:
    """A stored time (``2026-12-01T16:02:11.123Z``) as the page shows it, without parsing it: it is
    already UTC, and the overview shows a thousand of them."""
    return f"{stored[:10]} {stored[11:19]}Z"


def utc_text(stored: str | None) -> str:
    """A stored time as ``2026-12-01 16:02:11Z``: the page's reader may be in any zone."""
    if not stored:
        return ""
    return parse_time(stored).strftime("%Y-%m-%d %H:%M:%SZ")


def end_kind(run: Run) -> str:
    """How a run ended, as the page's legend names it (also its CSS class)."""
    if run.held_down_by:
        return "held"
    if run.ended_by == CRASHED:
        return "crash"
    if run.ended_by in (RUNNING, UNKNOWN):
        return run.ended_by
    return {"requested": "requested", "shutdown": "shutdown", "restart": "restart",
            "self-restart": "restart"}.get(run.reason or "", "stopped")


def end_text(run: Run) -> str:
    """``crash, exit 1``, ``crash, SIGKILL; held down: crash-loop``, ``stop requested``, ``shutdown``…"""
    if run.ended_by == CRASHED:
        text = f"crash, {exit_text(run.exit_code, run.signal) or 'no status'}"
    elif run.ended_by == RUNNING:
        text = "running"
    elif run.ended_by == UNKNOWN:
        text = "end not recorded"
    elif run.reason == "requested":
        text = "stop requested"
    elif run.reason in ("shutdown", "restart"):
        text = run.reason
    elif run.reason == "self-restart":
        text = "restart asked by the gateway"
    elif run.held_down_by:
        status = exit_text(run.exit_code, run.signal)
        return f"held down: {run.held_down_by}" + (f" ({status})" if status else "")
    else:
        text = f"stopped ({run.reason or 'no reason'})"
    if run.held_down_by:
        text += f"; held down: {run.held_down_by}"
    return text


class Bar(Record):
    x: float
    width: float
    end_x: float
    kind: str
    title: str
    open_start: bool  # began before the window


class Tick(Record):
    x: float
    label: str


def _ticks(since: datetime, until: datetime) -> list[Tick]:
    span = (until - since).total_seconds()
    step = next((s for s in TICK_STEPS if span / s.total_seconds() <= MAX_TICKS), TICK_STEPS[-1])
    seconds = int(step.total_seconds())
    first = datetime.fromtimestamp(-(-since.timestamp() // seconds) * seconds, since.tzinfo)
    label = "%H:%M:%S" if step < timedelta(minutes=1) else "%H:%M" if step < timedelta(days=1) else "%m-%d"
    ticks, moment = [], first
    while moment <= until:
        ticks.append(Tick(round((moment - since).total_seconds() / span * PLOT_WIDTH, 2), moment.strftime(label)))
        moment += step
    return ticks


def _bars(timeline: Timeline, since: datetime, until: datetime) -> list[Bar]:
    span = (until - since).total_seconds()

    def x_of(moment: datetime) -> float:
        return min(PLOT_WIDTH, max(0.0, (moment - since).total_seconds() / span * PLOT_WIDTH))

    bars = []
    for run in timeline.runs:
        end = parse_time(run.ended_at) if run.ended_at else until
        # An exit whose start was never recorded is a mark at its end, not a bar from the window's start.
        start = parse_time(run.started_at) if run.started_at else since if run.start_recorded else end
        if end < since:
            continue
        x, end_x = x_of(start), x_of(end)
        kind = end_kind(run)
        title = (
            f"run {run.position}, pid {run.pid if run.pid is not None else '?'}: "
            f"{started_text(run)} to {utc_text(run.ended_at) or 'now'}, {end_text(run)}"
        )
        bars.append(Bar(round(x, 2), round(max(MIN_BAR_WIDTH, end_x - x), 2), round(end_x, 2), kind, title,
                        run.start_recorded and (run.started_at is None or start < since)))
    return bars


def started_text(run: Run) -> str:
    if not run.start_recorded:
        return "start not recorded"
    return utc_text(run.started_at) or "before the window"


class TimelineRow(Record):
    run: Run
    kind: str
    end: str
    started: str
    ended: str
    uptime: str


def profile_href(name: str) -> str:
    """``/profiles/NAME``, the name URL-encoded unless it is a valid one (which needs no encoding)."""
    return f"/profiles/{name if PLAIN_NAME.fullmatch(name) else quote(name, safe='')}"


def _overview_row(gateway: GatewayReading, now: datetime) -> dict:
    state = gateway.state
    running = state.running_run is not None
    held_down_by = state.held_down_by
    reason = state.last_reason
    return {
        "name": state.profile,
        "href": profile_href(state.profile),
        "desired": state.desired,
        "running": running,
        "pid": state.run_pid if running else None,
        "uptime": duration(gateway.uptime_seconds(now)) if running else "",
        "held_down_by": held_down_by,
        "crashes_hour": gateway.crashes_last_hour,
        "crashes_day": gateway.crashes_last_day,
        "last_exit": exit_text(state.last_exit_code, state.last_signal),
        "last_event": f"{state.last_type} ({state.last_actor}{', ' + reason if reason else ''})",
        "last_at": short_utc(state.last_at),
        "says": account_text(gateway.account),
        "trouble": bool(held_down_by) or (state.desired == "up" and not running) or troubled(gateway.account),
    }


def account_text(account: Summary) -> str:
    """What the gateway last said of its latest run, in a few words ('' when it said nothing)."""
    if account.gateway_state is None:
        return ""
    words = [account.gateway_state.replace("_", " ")]
    if account.seconds_to_ready is not None:
        words.append(f"ready in {duration(account.seconds_to_ready)}")
    failing = sorted(name for name, level in account.platforms.items() if level != OK)
    if failing:
        words.append(f"failing: {', '.join(failing)}")
    return ", ".join(words)


def troubled(account: Summary) -> bool:
    return account.gateway_state in ("degraded", "startup_failed") or any(
        level != OK for level in account.platforms.values())


def render_overview(fleet: FleetReading, *, refresh_seconds: int) -> str:
    now = fleet.read_at
    rows = [_overview_row(gateway, now) for gateway in fleet.gateways]
    counts = {
        "profiles": len(rows),
        "desired_up": sum(1 for row in rows if row["desired"] == "up"),
        "running": sum(1 for row in rows if row["running"]),
        "held_down": sum(1 for row in rows if row["held_down_by"]),
        "crashes_hour": sum(row["crashes_hour"] or 0 for row in rows),
    }
    return _ENVIRONMENT.get_template("overview.html").render(
        title="hermes-state: profiles", rows=rows, counts=counts, read_at=now.strftime("%Y-%m-%d %H:%M:%SZ"),
        events_total=fleet.events_total, refresh_seconds=refresh_seconds, host=fleet.host,
    )


def render_timeline(timeline: Timeline, *, since_text: str, now: datetime) -> str:
    """``since_text``: the window as asked for (empty when chosen from the data)."""
    since, until = parse_time(timeline.since), parse_time(timeline.until)
    bars = _bars(timeline, since, until)
    newest_first = list(reversed(timeline.runs))
    rows = [
        TimelineRow(run, end_kind(run), end_text(run), started_text(run), utc_text(run.ended_at),
                    duration(run.uptime_seconds(now)))
        for run in newest_first
    ]
    state = timeline.state
    return _ENVIRONMENT.get_template("profile.html").render(
        title=f"hermes-state: {state.profile}", state=state, bars=bars, ticks=_ticks(since, until), rows=rows,
        plot_width=PLOT_WIDTH, since_text=since_text, since=utc_text(timeline.since), until=utc_text(timeline.until),
        truncated=timeline.truncated, held_down_by=state.held_down_by, running=state.running_run is not None,
        crashes=timeline.crashes, chosen=timeline.chosen, says=account_text(timeline.account),
    )


def render_problem(status: int, heading: str, detail: str) -> str:
    return _ENVIRONMENT.get_template("problem.html").render(title=f"hermes-state: {heading}", status=status,
                                                            heading=heading, detail=detail)
