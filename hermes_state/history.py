"""What happened to a profile: the options of `hermes profile history`, its query and its summary.

Parsing the options and summarising the rows are pure functions; the reads
go through a ``StoreReader`` (the driver alone), because this is what a
person waits for at a prompt. Rows are dicts keyed by the ``events``
columns, ``data`` decoded.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from .errors import BadInput, NotFound
from .names import BOOT_ID_PATTERN, validate_name
from .vocabulary import TYPES, format_time, parse_time

CURRENT_BOOT = "current"

_AGE = re.compile(r"(?:\d{1,9}[smhdw])+")
_AGE_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WHEN_HELP = "expected an ISO time such as 2026-11-27T14:00 or an age such as 30m, 2h, 3d"


# -- times ------------------------------------------------------------------
def parse_when(text: str, option: str, now: datetime) -> str:
    """``--since``/``--until``: an ISO time (local when it names no zone) or an age before ``now``."""
    value = text.strip()
    if _AGE.fullmatch(value):
        seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _AGE_PART.findall(value))
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


# -- the query ----------------------------------------------------------------
class HistoryFilter(NamedTuple):
    since: str | None = None
    until: str | None = None
    types: tuple[str, ...] = ()
    boot_id: str | None = None
    limit: int | None = 50  # None: all

    def check(self) -> "HistoryFilter":
        if self.limit is not None and self.limit < 0:
            raise BadInput(f"invalid --limit {self.limit}: expected 0 (all) or more")
        if self.since and self.until and self.since > self.until:
            raise BadInput(f"--since ({self.since}) is later than --until ({self.until}): nothing can match")
        return self


def _conditions(profile: str, window: HistoryFilter) -> tuple[list[str], list[Any]]:
    conditions, parameters = ["profile = ?"], [profile]
    if window.since is not None:
        conditions.append("occurred_at >= ?")
        parameters.append(window.since)
    if window.until is not None:
        conditions.append("occurred_at <= ?")
        parameters.append(window.until)
    if window.types:
        conditions.append(f"type IN ({', '.join('?' for _ in window.types)})")
        parameters.extend(window.types)
    if window.boot_id is not None:
        conditions.append("boot_id = ?")
        parameters.append(window.boot_id)
    return conditions, parameters


def stream_sql(profile: str, window: HistoryFilter) -> tuple[str, list[Any]]:
    """The newest ``limit`` matching events, newest first (the caller reverses them)."""
    conditions, parameters = _conditions(profile, window)
    sql = f"SELECT * FROM events WHERE {' AND '.join(conditions)} ORDER BY version DESC"
    if window.limit:
        sql += " LIMIT ?"
        parameters.append(window.limit)
    return sql, parameters


def newer_sql(profile: str, window: HistoryFilter, after_position: int) -> tuple[str, list[Any]]:
    """Matching events after ``after_position``, oldest first (``--follow``)."""
    conditions, parameters = _conditions(profile, window._replace(limit=None))
    conditions.append("position > ?")
    parameters.append(after_position)
    return f"SELECT * FROM events WHERE {' AND '.join(conditions)} ORDER BY position", parameters


# The profile's row of the public `profile_status` view (held_down_by is the
# view's rule for "the supervisor holds it down"), plus what the summary
# needs from the projection.
_PROFILE_SQL = """
SELECT s.*, p.intent_actor, p.intent_reason, p.intent_at, p.run_position, p.run_ended, p.last_position
FROM profile_status s JOIN profile_projection p ON p.profile = s.profile
WHERE s.profile = ?"""

# Served by the partial index on crashed rows: cheap however long the stream.
_CRASHES_SQL = "SELECT count(*) AS crashes FROM events WHERE type = 'crashed' AND profile = ?"
_LAST_CRASH_SQL = """
SELECT occurred_at, exit_code, signal FROM events
WHERE type = 'crashed' AND profile = ? ORDER BY occurred_at DESC LIMIT 1"""


class History(NamedTuple):
    profile: dict[str, Any]  # profile_status row + projection fields
    events: list[dict[str, Any]]  # oldest first
    crashes_total: int
    last_crash: dict[str, Any] | None


def decode(row: dict[str, Any]) -> dict[str, Any]:
    """A row of ``events`` with ``data`` as an object: every column, keys named as the columns."""
    row["data"] = json.loads(row["data"]) if isinstance(row["data"], str) else dict(row["data"] or {})
    return row


def read_profile(reader, profile: str) -> dict[str, Any]:
    validate_name(profile)
    rows = reader.rows(_PROFILE_SQL, [profile])
    if not rows:
        raise NotFound(f"no profile named {profile!r} (see `hermes profile list --all`)")
    return rows[0]


def read_history(reader, profile: str, window: HistoryFilter) -> History:
    """The profile, its newest matching events (oldest first) and its crash totals, in one snapshot."""
    window.check()
    with reader.snapshot():
        state = read_profile(reader, profile)
        sql, parameters = stream_sql(profile, window)
        events = [decode(row) for row in reversed(reader.rows(sql, parameters))]
        crashes = reader.rows(_CRASHES_SQL, [profile])[0]["crashes"]
        last_crash = reader.rows(_LAST_CRASH_SQL, [profile])
    return History(state, events, crashes, last_crash[0] if last_crash else None)


def read_newer(reader, profile: str, window: HistoryFilter, after_position: int) -> list[dict[str, Any]]:
    sql, parameters = newer_sql(profile, window, after_position)
    return [decode(row) for row in reader.rows(sql, parameters)]


# -- the summary --------------------------------------------------------------
class Summary(NamedTuple):
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


def run_of(event: dict[str, Any]) -> int | None:
    run = event["data"].get("run")
    return run if isinstance(run, int) and not isinstance(run, bool) else None


def summarise(history: History, now: datetime) -> Summary:
    """Runs, crashes and the longest uptime among the events shown; crash totals and the hold
    from the whole stream. A run's end is the exit that names it (``data.run``); a run with no
    end shown counts only when the projection says it is still going."""
    state, events = history.profile, history.events
    running = state["run_position"] if state["run_position"] is not None and not state["run_ended"] else None
    ends = {run_of(e): e for e in events if e["actor"] == "supervisor" and e["type"] in ("crashed", "stopped")}
    runs = [e for e in events if e["actor"] == "supervisor" and e["type"] == "started"]
    longest: tuple[float, str, bool] | None = None
    for start in runs:
        end = ends.get(start["position"])
        if end is not None:
            uptime, is_running = (parse_time(end["occurred_at"]) - parse_time(start["occurred_at"])).total_seconds(), False
        elif start["position"] == running:
            uptime, is_running = (now - parse_time(start["occurred_at"])).total_seconds(), True
        else:
            continue  # its end lies outside what is shown, or was never recorded
        if longest is None or uptime > longest[0]:
            longest = (uptime, start["occurred_at"], is_running)
    last_crash = history.last_crash or {}
    return Summary(
        shown=len(events),
        total=state["events"],
        runs=len(runs),
        crashes=sum(1 for e in events if e["type"] == "crashed"),
        longest_uptime=longest[0] if longest else None,
        longest_run_started_at=longest[1] if longest else None,
        longest_run_running=longest[2] if longest else False,
        crashes_total=history.crashes_total,
        last_crash_at=last_crash.get("occurred_at"),
        last_crash_exit_code=last_crash.get("exit_code"),
        last_crash_signal=last_crash.get("signal"),
        deleted=state["status"] == "deleted",
        desired=state["desired"],
        held_down_by=state["held_down_by"],
        held_since=state["intent_at"] if state["held_down_by"] else None,
    )
