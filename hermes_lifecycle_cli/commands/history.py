"""`hermes-state history NAME`: what happened to a profile, oldest first, and why it is down.

This is what a person waits for at a prompt: the store's SQLite recorder and
the pure history module import no SQLAlchemy (bench/history.py holds it to
1.5x the start-up of `hermes --version`); `--follow` adds the store's change
feed.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from hermes_lifecycle.errors import BadInput, NotFound, StoreCorrupt, StoreUnavailable
from hermes_lifecycle.events import Event
from hermes_lifecycle.profile_state import ProfileState
from hermes_lifecycle.history import (
    History,
    HistoryFilter,
    Summary,
    read_history,
    read_newer,
    stream_history,
    summarise,
)
from hermes_lifecycle.store import EventStore, open_store

from .. import grid, humane
from ..options import CURRENT_BOOT, MAX_LIMIT, parse_boot, parse_types, parse_when
from .common import profile_of, settings

FOLLOW_POLL_SECONDS = 0.5  # a dropped inotify event still shows within a second
MAX_BAD_ROW_LINES = 10
REASON_WIDTH = 64  # a reason is a slug of at most 64 characters; longer ones came from behind the store
PROBLEM_WIDTH = 100  # a legacy import's problem beside its reason; --json has it whole (data.problem)

_EVENT_STYLE = {
    "crashed": grid.RED,
    "stopped": grid.YELLOW,
    "started": grid.GREEN,
    "created": grid.BLUE,
    "deleted": grid.MAGENTA,
    "reported": grid.CYAN,
}


def history(args: argparse.Namespace) -> int:
    now = datetime.now(timezone.utc)
    profile = profile_of(args)
    window = _window(args, now)
    if args.follow and args.until:
        raise BadInput("--follow prints events as they come: it cannot be combined with --until")
    with open_store(settings(), readonly=True) as store:
        store.collect_bad_rows()  # shown after the readable rows, then exit 5
        if args.follow:
            return _follow(store, profile, window, args.json, now)
        if args.json and window.limit is None:
            from .. import output

            # The whole stream: each line written as its page is read, never all of it held.
            output.json_lines(e.as_json() for e in stream_history(store, profile, window))
            return _report_bad_rows(store)
        found = read_history(store, profile, window)
    if args.json:
        from .. import output

        output.json_lines(e.as_json() for e in found.events)
    else:
        summary = [grid.printable(line) for line in summary_lines(found, summarise(found, now), window, now)]
        grid.print_lines(_table(found.events, now) + [""] + summary)  # reasons come from the log: escaped
    return _report_bad_rows(store)


def _report_bad_rows(store: EventStore) -> int:
    """After the readable rows: one line per malformed row skipped (stderr), exit 5 when any was."""
    if not store.bad_row_count:
        return 0
    from .. import output

    for error in store.bad_rows[:MAX_BAD_ROW_LINES]:
        output.say(f"hermes-state: warning: {error}: skipped")
    more = store.bad_row_count - min(len(store.bad_rows), MAX_BAD_ROW_LINES)
    if more > 0:
        output.say(f"hermes-state: warning: {more} more malformed rows skipped")
    output.say(f"hermes-state: the event store {store.location} holds malformed rows: run `hermes-state doctor`")
    return StoreCorrupt.exit_status


def _window(args: argparse.Namespace, now: datetime) -> HistoryFilter:
    if not 0 <= args.limit <= MAX_LIMIT:
        raise BadInput(f"invalid --limit {args.limit}: expected 0 (all) to {MAX_LIMIT}")
    window = HistoryFilter(
        since=parse_when(args.since, "--since", now) if args.since is not None else None,
        until=parse_when(args.until, "--until", now) if args.until is not None else None,
        types=parse_types(args.type) if args.type is not None else (),
        boot_id=_boot_id(args.boot) if args.boot is not None else None,
        limit=None if args.limit == 0 else args.limit,
    )
    if window.since and window.until and window.since > window.until:
        raise BadInput(f"--since ({window.since}) is later than --until ({window.until}): nothing can match")
    return window


def _boot_id(text: str) -> str:
    boot = parse_boot(text)
    if boot != CURRENT_BOOT:
        return boot
    config = settings()
    current = config.read_boot_id()
    if current is None:
        raise NotFound(f"no current boot: {config.boot_id_file} does not exist (the projector writes it at boot)")
    return current


# -- the table ----------------------------------------------------------------
def _columns(now: datetime) -> list[grid.Column]:
    return [
        grid.Column("time", f"time ({humane.local_zone(now)})"),
        grid.Column("age", "age", right=True),
        grid.Column("type", "event"),
        grid.Column("actor", "actor"),
        grid.Column("desired", "desired"),
        grid.Column("pid", "pid", right=True),
        grid.Column("exit", "exit"),
        grid.Column("reason", "reason"),
    ]


def _display(event: Event, now: datetime) -> dict:
    return {
        "time": humane.local_time(event.occurred_at),
        "age": humane.age(event.occurred_at, now),
        "type": event.type,
        "actor": event.actor,
        "desired": event.desired,
        "pid": event.pid,
        "exit": humane.exit_text(event.exit_code, event.signal),
        "reason": _reason(event),
    }


def _reason(event: Event) -> str | None:
    """The reason, and for an imported profile whose gateway_state.json was unusable, what was wrong
    with it (docs/legacy-import.md): the operator decides from it whether to start the gateway."""
    reason = _cut(reason_text(event), REASON_WIDTH)
    problem = event.data.get("problem") if event.actor == "import" and event.type == "created" else None
    if not isinstance(problem, str) or not problem:
        return reason
    return f"{reason or ''}: {_cut(problem, PROBLEM_WIDTH)}"


def reason_text(event: Event) -> str | None:
    """The reason, and for a gateway's own report what it said with it (the log's values: shown, never obeyed)."""
    if event.type != "reported" or event.reason is None:
        return event.reason
    data = event.data
    if event.reason == "ready" and isinstance(data.get("seconds_to_ready"), (int, float)):
        return f"ready in {data['seconds_to_ready']:g}s"
    if event.reason in ("stopped", "startup-failed") and isinstance(data.get("exit_reason"), str):
        return f"{event.reason}: {data['exit_reason']}"
    if event.reason.startswith("platform-") and isinstance(data.get("platform"), str):
        code = data.get("error_code")
        return f"{event.reason}: {data['platform']}" + (f" ({code})" if isinstance(code, str) else "")
    return event.reason


def _cut(text: str | None, width: int) -> str | None:
    """At most ``width`` characters for a person (``--json`` has the whole value)."""
    if text is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


def _grid(now: datetime) -> grid.Grid:
    return grid.Grid(_columns(now), style=lambda key, value: _EVENT_STYLE.get(value) if key == "type" else None)


def _table(events: list[Event], now: datetime) -> list[str]:
    if not events:
        return ["(no events match)"]
    rows = [_display(e, now) for e in events]
    return _grid(now).fit(rows).lines(rows)


# -- the summary ----------------------------------------------------------------
def summary_lines(found: History, summary: Summary, window: HistoryFilter, now: datetime) -> list[str]:
    name = found.state.profile
    scope = f"showing the newest {summary.shown}" if window.limit and summary.shown == window.limit else (
        f"showing {summary.shown}"
    )
    filters = _describe_filter(window)
    head = f"{name}: {summary.total} events in all, {scope}"
    if filters:
        head += " matching " + ", ".join(filters)
    if window.limit and summary.shown == window.limit:
        head += " (--limit 0 for all)"
    lines = [head]

    uptime = "none shown"
    if summary.longest_uptime is not None:
        uptime = humane.duration(summary.longest_uptime)
        uptime += f" (run started {humane.local_time(summary.longest_run_started_at)}"
        uptime += ", still running)" if summary.longest_run_running else ")"
    lines.append(
        f"  shown:     {_count(summary.runs, 'run')}, {_count(summary.crashes, 'crash')}, longest uptime {uptime}"
    )

    last = "never"
    if summary.last_crash_at:
        last = humane.when(summary.last_crash_at, now)
        how = humane.exit_text(summary.last_crash_exit_code, summary.last_crash_signal)
        last += f", {how}" if how else ""
    lines.append(f"  all time:  {_count(summary.crashes_total, 'crash')}, last crash {last}")
    lines.append(f"  state:     {_state_line(found.state, summary, now)}")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}es" if noun.endswith("sh") else f"{number} {noun}s"


def _describe_filter(window: HistoryFilter) -> list[str]:
    words = []
    if window.types:
        words.append("type " + ",".join(window.types))
    if window.since:
        words.append(f"since {humane.local_time(window.since)}")
    if window.until:
        words.append(f"until {humane.local_time(window.until)}")
    if window.boot_id:
        words.append(f"boot {window.boot_id}")
    return words


_HOLD_WORDS = {
    "crash-loop": "the crash-loop breaker holds it down",
    "fatal-config": "held down after exit 78 (bad configuration)",
    "exited": "held down: the gateway exited 0 by itself",
}


def _state_line(state: ProfileState, summary: Summary, now: datetime) -> str:
    name = state.profile
    if summary.deleted:
        return f"deleted {humane.when(state.intent_at, now)}"
    if summary.held_down_by:
        words = _HOLD_WORDS.get(summary.held_down_by, f"held down by the supervisor ({summary.held_down_by})")
        return (
            f"desired down: {words}, since {humane.when(summary.held_since, now)}; "
            f"`hermes-state start {name}` asks for it again"
        )
    setter = state.intent_actor + (f" ({state.intent_reason})" if state.intent_reason else "")
    line = f"desired {summary.desired}, set by {setter} {humane.when(state.intent_at, now)}"
    if state.running_run is not None:
        line += f"; running as pid {state.run_pid} since {humane.local_time(state.run_started_at)}"
    return line


# -- --follow -------------------------------------------------------------------
def _follow(store: EventStore, profile: str, window: HistoryFilter, as_json: bool, now: datetime) -> int:
    import signal
    import sys

    from hermes_lifecycle.store.recorder import statements_stopped, stop_every_statement
    from hermes_lifecycle.store.feed import IDLE, REPLACED, STOPPED

    from .. import output

    # The feed starts before the first read, so nothing appended in between is missed.
    def bad_row(error) -> None:
        output.say(f"hermes-state: warning: {error}: skipped")

    store.on_bad_row = bad_row
    with store.change_feed(poll_interval=FOLLOW_POLL_SECONDS) as feed:
        def stop_following(*_: object) -> None:
            stop_every_statement()  # a read under way stops too: a stop is never kept waiting by the store
            feed.stop()

        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, stop_following)
        found = read_history(store, profile, window)
        last_position = found.state.last_position
        layout = _grid(now).fit([_display(e, now) for e in found.events], minimum=_FOLLOW_WIDTHS)
        if as_json:
            output.json_lines(e.as_json() for e in found.events)
        else:
            grid.print_lines(layout.lines([_display(e, now) for e in found.events]))
            print(f"following {profile}: new events appear below; Ctrl-C to stop", file=sys.stderr, flush=True)
        while (why := feed.wait(FOLLOW_POLL_SECONDS)) != STOPPED:
            if why == IDLE:
                continue
            if why == REPLACED:
                # The file followed is not the store any more: say so, never follow a deleted file.
                raise StoreUnavailable(f"{feed.replaced}: stopped following; run the command again")
            try:
                new = read_newer(store, profile, window, last_position)
            except StoreUnavailable:
                if statements_stopped():
                    break  # the stop interrupted the read: a stop, not a failure
                raise
            if not new:
                continue
            last_position = new[-1].position
            if as_json:
                output.json_lines(e.as_json() for e in new)
            else:
                moment = datetime.now(timezone.utc)
                grid.print_lines([layout.line(_display(e, moment)) for e in new])
    return 0


# Wide enough for what later rows usually hold, so followed rows stay aligned.
_FOLLOW_WIDTHS = {"time": 19, "age": 9, "type": 7, "actor": 10, "desired": 7, "pid": 7, "exit": 7}
