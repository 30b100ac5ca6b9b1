"""A gateway's own account of itself: what its gateway_state.json says, and the transitions it adds to the log.

Pure: no I/O. ``read_account`` checks the decoded file (untrusted: the gateway
user's bytes) and keeps only what the log needs; ``transitions`` compares
it with the last account the log holds for the same run and says what to
append; ``followed_file`` is the file with ``desired_state`` (and a stale
liveness claim) brought in line with the log. docs/hermes-agent.md has the
field-by-field map.
"""

from __future__ import annotations

import re
from datetime import datetime
from types import MappingProxyType
from typing import Any, Mapping

from .events import NewEvent, parse_time
from .vocabulary import Actor, EventType, is_int
from .records import Record

# hermes-agent's gateway_state values (gateway/status.py) and the transition each one reports.
GATEWAY_STATES = ("starting", "running", "degraded", "draining", "stopped", "startup_failed")
ACTIVE_STATES = ("starting", "running", "degraded", "draining")  # a process claims to be alive
# A platform's level, as the log keeps it: fatal, needing attention, or fine.
FATAL, ATTENTION, OK = "fatal", "attention", "ok"

# Bounds on what one file may make the log hold.
MAX_PLATFORMS = 32
MAX_TEXT = 200  # an exit reason or a platform's error message, as kept
_PLATFORM_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?")
MAX_READY_SECONDS = 86400.0


class BadAccount(ValueError):
    """The file says something hermes-agent's gateway never writes: one line, no event."""


class Platform(Record):
    level: str  # FATAL, ATTENTION or OK
    error_code: str | None = None
    error_message: str | None = None


class Account(Record):
    """What the log takes from one gateway_state.json."""

    pid: int
    state: str
    updated_at: str | None  # the gateway's own time of this state, as it wrote it (validated)
    exit_reason: str | None
    platforms: Mapping[str, Platform]


def read_account(said: object) -> Account | None:
    """``said`` (the decoded file) as an Account; None when no gateway has written it yet (only
    ``desired_state``, as hermes-agent's s6 manager or this package writes it first); BadAccount
    when it is not the gateway's shape."""
    if not isinstance(said, dict):
        raise BadAccount("not a JSON object")
    if "pid" not in said and "gateway_state" not in said:
        return None
    pid = said.get("pid")
    if not is_int(pid) or not 1 <= pid <= 2**31 - 1:
        raise BadAccount("no valid pid")
    state = said.get("gateway_state")
    if state not in GATEWAY_STATES:
        raise BadAccount(f"gateway_state is {_shown(state)}, not one hermes-agent writes")
    updated = said.get("updated_at")
    updated_at = updated if isinstance(updated, str) and _ISO_TIME.fullmatch(updated) else None
    platforms_said = said.get("platforms", {})
    if platforms_said is None:
        platforms_said = {}
    if not isinstance(platforms_said, dict):
        raise BadAccount("platforms is not an object")
    if len(platforms_said) > MAX_PLATFORMS:
        raise BadAccount(f"more than {MAX_PLATFORMS} platforms")
    platforms = {}
    for name, entry in platforms_said.items():
        if not isinstance(name, str) or not _PLATFORM_NAME.fullmatch(name):
            raise BadAccount(f"a platform named {_shown(name)}")
        if not isinstance(entry, dict):
            raise BadAccount(f"platform {name} is not an object")
        platforms[name] = _platform(entry)
    return Account(pid, state, updated_at, _text(said.get("exit_reason")), platforms)


def _platform(entry: Mapping[str, Any]) -> Platform:
    state = entry.get("state")
    if state == "fatal":
        level = FATAL
    elif entry.get("needs_attention") is True:
        level = ATTENTION
    else:
        level = OK
    code = entry.get("error_code")
    return Platform(level, code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else None,
                    _text(entry.get("error_message")) if level != OK else None)


def _text(value: object) -> str | None:
    """Free text from the file, kept short and printable (the log shows it to people)."""
    if not isinstance(value, str) or not value:
        return None
    kept = "".join(ch if ch.isprintable() else "?" for ch in value[:MAX_TEXT])
    return kept + ("…" if len(value) > MAX_TEXT else "")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Run(Record):
    """The run an account must belong to: the log's latest supervised start."""

    position: int
    pid: int
    started_at: str  # the supervisor's `started`, in the log's format


class Summary(Record):
    """Where the log's account of one run stands: every report's data carries it, after that report."""

    gateway_state: str | None = None
    platforms: Mapping[str, str] = MappingProxyType({})  # platform -> FATAL, ATTENTION or OK
    seconds_to_ready: float | None = None  # this run's ready, once it said so


NOTHING_YET = Summary()


def summary_of(data: Mapping[str, Any], run: int) -> Summary:
    """The summary a report's data carries, for ``run``; NOTHING_YET when that report is of another run,
    or not a summary this code wrote."""
    if data.get("run") != run:
        return NOTHING_YET
    state, levels, ready = data.get("gateway_state"), data.get("platforms"), data.get("ready_seconds")
    if state not in GATEWAY_STATES or not isinstance(levels, dict):
        return NOTHING_YET
    return Summary(
        state,
        MappingProxyType({k: v for k, v in levels.items() if isinstance(k, str) and v in (FATAL, ATTENTION, OK)}),
        float(ready) if isinstance(ready, (int, float)) and not isinstance(ready, bool) else None,
    )


def transitions(last: Summary, account: Account, run: Run, profile: str, *, now: str) -> list[NewEvent]:
    """The reports to append, in order, for the change from ``last`` to ``account``; none when nothing
    changed, or when the file is not this run's (another pid: a file left by a process since gone)."""
    if account.pid != run.pid:
        return []
    state, levels, ready = last.gateway_state, dict(last.platforms), last.seconds_to_ready
    events = []

    def report(reason: str, **details: Any) -> None:
        data: dict[str, Any] = {"run": run.position, "gateway_state": state, "platforms": dict(sorted(levels.items()))}
        if ready is not None:
            data["ready_seconds"] = ready
        if account.updated_at:
            data["reported_at"] = account.updated_at
        data.update({key: value for key, value in details.items() if value is not None})
        events.append(NewEvent(profile, EventType.REPORTED, Actor.GATEWAY, None, pid=run.pid, reason=reason, data=data))

    if account.state != state:
        before, state = state, account.state
        if state == "running":
            if before == "degraded":
                report("recovered")
            elif before in (None, "starting"):
                ready = _seconds_to_ready(account.updated_at, run.started_at, now)
                report("ready", seconds_to_ready=ready)
            # running after draining or stopped is the next run's business: the file belongs to this pid
        elif state == "degraded":
            report("degraded")
        elif state == "draining":
            report("draining")
        elif state == "stopped":
            report("stopped", exit_reason=account.exit_reason)
        elif state == "startup_failed":
            report("startup-failed", exit_reason=account.exit_reason)
        # "starting" reports nothing: the supervisor's `started` already says so
    for name, platform in sorted(account.platforms.items()):
        before_level = levels.get(name, OK)
        if platform.level == before_level:
            continue
        levels[name] = platform.level
        if platform.level == FATAL:
            report("platform-fatal", platform=name, error_code=platform.error_code, error_message=platform.error_message)
        elif platform.level == ATTENTION:
            report("platform-attention", platform=name, error_code=platform.error_code,
                   error_message=platform.error_message)
        else:
            report("platform-recovered", platform=name)
    for name in sorted(set(levels) - set(account.platforms)):
        if levels.pop(name) != OK:
            report("platform-recovered", platform=name)  # gone from the file: nothing wrong with it any more
    return events


def _seconds_to_ready(updated_at: str | None, started_at: str, now: str) -> float:
    """From the supervisor's start to the gateway saying it runs: its own time when that is plausible."""
    start = parse_time(started_at)
    ready = _parse_iso(updated_at) or parse_time(now)
    seconds = (ready - start).total_seconds()
    if not 0 <= seconds <= MAX_READY_SECONDS:
        seconds = max(0.0, min((parse_time(now) - start).total_seconds(), MAX_READY_SECONDS))
    return round(seconds, 3)


def _parse_iso(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


# -- the file follows the log ---------------------------------------------------
def followed_file(said: Mapping[str, Any], desired: str, *, dead: bool, now: int,
                  ended_as: str | None) -> dict[str, Any] | None:
    """The file's content with the log's word in it, or None when it already agrees.

    ``desired``: the log's desired state (up/down), written as hermes-agent's s6 manager writes
    it (``desired_state`` running/stopped, ``updated_at`` in seconds). ``dead``: the pid the file
    names is gone and the log says no run of it is going (the caller checks both). A file that
    still says such a process is alive gets ``gateway_state: stopped`` and ``exit_reason`` from the
    log (``ended_as``): never a dead pid written as running. Every other key stays.
    """
    wanted = "running" if desired == "up" else "stopped"
    followed = dict(said)
    if followed.get("desired_state") != wanted:
        followed["desired_state"] = wanted
    if dead and said.get("gateway_state") in ACTIVE_STATES:
        followed["gateway_state"] = "stopped"
        followed["exit_reason"] = ended_as or "ended (recorded by hermes-state)"
    if followed == dict(said):
        return None
    followed["updated_at"] = now
    return followed
