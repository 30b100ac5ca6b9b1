"""The log's words (one enum per kind of word, each member's value the text stored) and its time
format, importing nothing heavy.

Defining an enum costs about 0.15 ms at import, paid by every hook: the enums
the hooks need live here (event types, actors, desired states, and who appends
what); the others live beside their only readers (``exits.ExitOutcome``,
``store.feed.FeedResult``, ``checks.FindingStatus``).

Kept apart from ``events.py`` (dataclasses, json) so that the commands a
person waits for at a prompt (`hermes-state history`) can use the same
definitions without paying for more than ``datetime``.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from enum import StrEnum
from typing import Mapping, TypeGuard


class EventType(StrEnum):
    """The five lifecycle types, then the gateway's own account of itself (migration 0006)."""

    CREATED = "created"
    STARTED = "started"
    CRASHED = "crashed"
    STOPPED = "stopped"
    DELETED = "deleted"
    REPORTED = "reported"


class Actor(StrEnum):
    """Who appends an event (docs/design.md section 2, "Who appends what")."""

    CLI = "cli"
    SUPERVISOR = "supervisor"
    BOOT = "boot"
    IMPORT = "import"
    API = "api"
    GATEWAY = "gateway"  # the gateway itself, through its gateway_state.json
    HERMES_AGENT = "hermes-agent"  # hermes-agent's own commands (docs/hermes-agent.md)


class Desired(StrEnum):
    UP = "up"
    DOWN = "down"


# The members, in order, for membership tests and messages (a member is its value as text).
TYPES: tuple[EventType, ...] = tuple(EventType)
ACTORS: tuple[Actor, ...] = tuple(Actor)
DESIRED: tuple[Desired, ...] = tuple(Desired)
# Stored text -> member: how a row read from the store gets its words (an unknown text is absent).
TYPE_OF: Mapping[str, EventType] = {member.value: member for member in EventType}
ACTOR_OF: Mapping[str, Actor] = {member.value: member for member in Actor}
DESIRED_OF: Mapping[str, Desired] = {member.value: member for member in Desired}

# Who appends what: (type, actor) -> the desired values it may carry. The fold's first rule
# (``fold.check_shape``); docs/design.md section 2's table says the same.
_INTENT_ACTORS = (Actor.CLI, Actor.API, Actor.HERMES_AGENT)
ALLOWED: Mapping[tuple[EventType, Actor], frozenset[Desired | None]] = {
    **{(EventType.CREATED, actor): frozenset({Desired.DOWN}) for actor in (*_INTENT_ACTORS, Actor.IMPORT, Actor.BOOT)},
    **{(EventType.STARTED, actor): frozenset({Desired.UP}) for actor in (*_INTENT_ACTORS, Actor.IMPORT)},
    (EventType.STARTED, Actor.SUPERVISOR): frozenset({None}),
    (EventType.CRASHED, Actor.SUPERVISOR): frozenset({None}),
    **{(EventType.STOPPED, actor): frozenset({Desired.DOWN}) for actor in _INTENT_ACTORS},
    (EventType.STOPPED, Actor.SUPERVISOR): frozenset({None, Desired.DOWN}),
    **{(EventType.DELETED, actor): frozenset({Desired.DOWN}) for actor in _INTENT_ACTORS},
    # What a gateway says of itself: an observation, never an intent, never the end of a run.
    (EventType.REPORTED, Actor.GATEWAY): frozenset({None}),
}

# Columns of `events`, in table order: a public interface (docs/design.md section 2).
COLUMNS = (
    "position",
    "profile",
    "version",
    "type",
    "actor",
    "desired",
    "occurred_at",
    "host",
    "boot_id",
    "pid",
    "exit_code",
    "signal",
    "reason",
    "data",
    "idempotency_key",
    "hash",
    "chain_version",
)


def is_int(value: object) -> TypeGuard[int]:
    """An integer, and not a bool (which Python counts as one): the form every stored number has."""
    return isinstance(value, int) and not isinstance(value, bool)


def format_time(moment: datetime) -> str:
    """UTC with milliseconds and a ``Z`` (``YYYY-MM-DDTHH:MM:SS.sssZ``): sorts as text, SQLite's date functions read it."""
    text = moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return text[:-6] + "Z"  # "+00:00" -> "Z"


def parse_time(text: str) -> datetime:
    """A stored time as an aware UTC datetime."""
    return datetime.fromisoformat(text)


def utc_now() -> str:
    """The current time in the log's format (every append asks: kept cheap)."""
    return format_ns(time.time_ns())


def format_ns(ns: int) -> str:
    """A time in nanoseconds since the epoch in the log's format: the one formatter of a clock
    reading (``format_time`` formats a datetime the same way)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % (rest // 1_000_000)
