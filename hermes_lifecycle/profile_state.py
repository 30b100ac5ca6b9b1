"""A profile's state: one row of the inline projection, the fold's result, and its one gate.

Apart from the fold (``fold.py``: the stream rules, which only an append and
doctor run), so that readers (`profile history`, `list`) can hold and check a
state without importing the writer's half. ``state_problem`` is the one check
of a projection row's values: the store's readers take rows through it
(``checked_state``), and what acts on a row (the planner, the fleet snapshot,
boot) through ``screened``, which asks a valid profile name first. The row
belongs to a less privileged user (and can be damaged): nothing in it is
trusted before it passes.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import InvalidName
from .events import TIME_FORMAT, MalformedRow
from .names import validate_name
from .records import Record
from .vocabulary import ACTOR_OF, ACTORS, DESIRED, DESIRED_OF, TYPE_OF, TYPES, Actor, Desired, EventType, is_int


class ProfileState(Record):
    """Current state of one profile: one row of the inline projection."""

    profile: str
    version: int
    deleted: bool
    desired: Desired
    created_position: int
    last_position: int
    last_type: EventType
    last_actor: Actor
    last_reason: str | None
    last_at: str
    intent_position: int
    intent_actor: Actor
    intent_reason: str | None
    intent_at: str
    start_intent_position: int | None = None
    restart_position: int | None = None
    run_position: int | None = None
    run_pid: int | None = None
    run_started_at: str | None = None
    run_boot_id: str | None = None
    run_ended: bool = False
    last_exit_code: int | None = None
    last_signal: int | None = None
    host: str | None = None  # the host of the created event: the profile's own (docs/fleet.md)
    # Every crash of the name, all lives: history's summary reads one row, not the crash index.
    crashes: int = 0
    last_crash_position: int | None = None  # the newest crash by position (a clock set back cannot reorder)
    # The newest report the gateway made of itself (migration 0006): the page and /metrics read its row.
    last_report_position: int | None = None

    @property
    def live(self) -> bool:
        return not self.deleted

    @property
    def held_down_by(self) -> str | None:
        """Why the supervisor holds the profile down, or None when it does not.

        The one definition of "held down": the last intent is a supervisor's
        ``stopped`` with desired ``down`` (``finish`` decided it: crash-loop,
        fatal-config, exited), and no start has been asked since. A person's
        stop is not a hold. The ``profile_status`` view's column of the same
        name must agree (tests/test_fold.py checks it on a migrated store).
        """
        if self.desired == "down" and self.intent_actor == "supervisor":
            return self.intent_reason
        return None

    @property
    def running_run(self) -> int | None:
        """Position of the run the log believes is still going, if any."""
        return self.run_position if self.run_position is not None and not self.run_ended else None


# The projection's columns, in the state's order.
STATE_FIELDS = ProfileState._fields


class RefusedRow(Record):
    """A projection row ``screened`` refused: its name and host as stored (maybe not text), and why."""

    profile: object
    host: object
    problem: str


def state_from_row(row: Mapping[str, Any]) -> ProfileState:
    """A projection row as the fold's state, values as stored (SQLite stores the flags as 0/1),
    unchecked: ``screened`` checks it. A flag that is neither 0 nor 1 is kept as it is, never
    coerced: the check must see what the row really holds."""
    values = {name: row[name] for name in STATE_FIELDS}
    if row.get("oversized"):
        # A value too long to read came back NULL: the desired state says so, which the check
        # does not take for a valid one, so the row is refused, never half-read.
        values["desired"] = f"oversized {row['oversized'].strip()}"
    for flag in ("deleted", "run_ended"):
        if values[flag] in (0, 1) and not isinstance(values[flag], float):
            values[flag] = bool(values[flag])
    return ProfileState(**values)


def _position(value: object, *, optional: bool = False) -> bool:
    if value is None:
        return optional
    return is_int(value) and value >= 1


def _time(value: object, *, optional: bool = False) -> bool:
    if value is None:
        return optional
    return isinstance(value, str) and TIME_FORMAT.fullmatch(value) is not None


def state_problem(state: ProfileState) -> str | None:
    """What is wrong with a projection row's values, or None: every field, checked before use."""
    if not isinstance(state.profile, str):
        return "profile is not text"
    if not isinstance(state.deleted, bool) or not isinstance(state.run_ended, bool):
        return "deleted or run_ended is not a flag"
    if state.desired not in DESIRED:
        desired: object = state.desired
        return desired if isinstance(desired, str) and desired.startswith("oversized ") else "invalid desired state"
    for name in ("version", "created_position", "last_position", "intent_position"):
        if not _position(getattr(state, name)):
            return f"{name} is not a positive integer"
    for name in ("start_intent_position", "restart_position", "run_position", "run_pid", "last_report_position"):
        if not _position(getattr(state, name), optional=True):
            return f"{name} is not a positive integer"
    if state.last_type not in TYPES or state.last_actor not in ACTORS or state.intent_actor not in ACTORS:
        return "invalid last type or actor"
    if not _time(state.last_at) or not _time(state.intent_at) or not _time(state.run_started_at, optional=True):
        return "a time is not in the log's format"
    for name in ("last_reason", "intent_reason", "run_boot_id", "host"):
        if getattr(state, name) is not None and not isinstance(getattr(state, name), str):
            return f"{name} is not text"
    if not (is_int(state.crashes) and state.crashes >= 0):
        return "crashes is not a count"
    if not _position(state.last_crash_position, optional=True) or (state.crashes > 0) != (
            state.last_crash_position is not None):
        return "last_crash_position does not match crashes"
    for name, high in (("last_exit_code", 255), ("last_signal", 128)):
        value = getattr(state, name)
        if value is not None and not (is_int(value) and 0 <= value <= high):
            return f"{name} is not an integer from 0 to {high}"
    return None


def _with_members(state: ProfileState) -> ProfileState:
    """A state that passed ``state_problem``, its words as members."""
    return state._replace(
        desired=DESIRED_OF[state.desired], last_type=TYPE_OF[state.last_type],
        last_actor=ACTOR_OF[state.last_actor], intent_actor=ACTOR_OF[state.intent_actor],
    )


def checked_state(row: Mapping[str, Any]) -> ProfileState:
    """A projection row through the gate, for a reader that shows it; MalformedRow (exit 5) when
    it does not pass. A name that is text but no valid name is shown (quoted) and counted by its
    reader, never acted on: acting on one is what ``screened`` refuses."""
    state = state_from_row(row)
    problem = state_problem(state)
    if problem is not None:
        raise MalformedRow("profile_projection", row["profile"], problem)
    return _with_members(state)


def screened(state: ProfileState) -> ProfileState | RefusedRow:
    """The gate for a row something is done about (the planner, the fleet snapshot, boot): a valid
    profile name first (a slot, a directory are named after it), then ``state_problem``. The state
    with its words as members, or a ``RefusedRow`` saying why not."""
    try:
        validate_name(state.profile)
    except InvalidName:
        return RefusedRow(state.profile, state.host, "invalid profile name")
    problem = state_problem(state)
    if problem is not None:
        return RefusedRow(state.profile, state.host, problem)
    return _with_members(state)
