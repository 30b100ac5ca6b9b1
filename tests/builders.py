"""Events and states built in memory, for the pure tests of history and runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from hermes_lifecycle import events
from hermes_lifecycle.fold import ProfileState


def event_at(now: datetime, position: int, type: str, actor: str, seconds_ago: float, run=None, **fields) -> events.Event:
    """An event of profile alice, ``seconds_ago`` before ``now`` (``run``: the started it ends)."""
    base = {name: None for name in events.COLUMNS}
    base.update(position=position, version=position, type=type, actor=actor, profile="alice",
                occurred_at=events.format_time(now - timedelta(seconds=seconds_ago)),
                data={} if run is None else {"run": run})
    base.update(fields)
    return events.Event(**base)


def alice_state(**fields) -> ProfileState:
    """alice, desired up by the cli, no run going; ``fields`` override."""
    values = dict(
        profile="alice", version=100, deleted=False, desired="up", created_position=1, last_position=100,
        last_type="started", last_actor="cli", last_reason=None, last_at="2026-11-27T11:00:00.000Z",
        intent_position=100, intent_actor="cli", intent_reason=None, intent_at="2026-11-27T11:00:00.000Z",
        run_position=None, run_ended=True,
    )
    values.update(fields)
    return ProfileState(**values)
