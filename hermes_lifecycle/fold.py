"""The pure fold: (state of a profile, event) -> next state, with the stream rules.

``apply`` is the single authority on what may be appended: the store calls it
before every insert and stores its result as the inline projection, and
``doctor`` folds the whole log with it to check that projection.
"""

from __future__ import annotations

from typing import Any

from .errors import BadInput, Conflict, NotFound, ProfileDeleted, ProfileExists, VersionConflict
from .events import Event
from .names import DEFAULT_PROFILE, validate_new_name
from .profile_state import STATE_FIELDS, ProfileState
from .vocabulary import ALLOWED, Actor, Desired, EventType

__all__ = ["ALLOWED", "STATE_FIELDS", "ProfileState", "apply", "check_shape"]  # the fold's state, its rules

def check_shape(event: Event) -> None:
    """Reject a (type, actor, desired) combination nobody appends."""
    allowed = ALLOWED.get((event.type, event.actor))
    if allowed is None:
        raise BadInput(f"actor '{event.actor}' does not append '{event.type}' events")
    if event.desired not in allowed:
        shown = " or ".join(sorted("none" if d is None else d for d in allowed))
        raise BadInput(f"{event.actor} '{event.type}' events carry desired {shown}, not {event.desired or 'none'}")
    if (event.type == EventType.STOPPED and event.actor == Actor.SUPERVISOR and event.desired == Desired.DOWN
            and not event.reason):
        raise BadInput("a supervisor stop that holds a gateway down needs a reason")
    if event.type == EventType.REPORTED and not event.reason:
        raise BadInput("a gateway's report needs a reason: the transition it reports")


def apply(state: ProfileState | None, event: Event) -> ProfileState:
    """The state after ``event``; raises when the stream rules refuse it."""
    check_shape(event)
    expected_version = 1 if state is None else state.version + 1
    if event.version != expected_version:
        raise VersionConflict(
            f"profile {event.profile!r} is at version {expected_version - 1}, not {event.version - 1}"
        )
    if state is not None and state.profile != event.profile:
        raise BadInput(f"event for {event.profile!r} folded into {state.profile!r}")

    if event.type == EventType.CREATED:
        if state is not None and state.live:
            raise ProfileExists(f"profile {event.profile!r} exists already")
        validate_new_name(event.profile)
        return ProfileState(
            profile=event.profile,
            version=event.version,
            deleted=False,
            desired=Desired.DOWN,
            created_position=event.position,
            last_position=event.position,
            last_type=event.type,
            last_actor=event.actor,
            last_reason=event.reason,
            last_at=event.occurred_at,
            intent_position=event.position,
            intent_actor=event.actor,
            intent_reason=event.reason,
            intent_at=event.occurred_at,
            host=event.host,
            # A name's crashes are counted over all its lives, as `history` shows them.
            crashes=state.crashes if state is not None else 0,
            last_crash_position=state.last_crash_position if state is not None else None,
            last_report_position=state.last_report_position if state is not None else None,
        )

    if state is None:
        raise NotFound(f"no profile named {event.profile!r}")
    if state.deleted:
        raise ProfileDeleted(f"profile {event.profile!r} was deleted")
    if event.type == EventType.DELETED and event.profile == DEFAULT_PROFILE:
        raise Conflict("the default profile cannot be deleted")

    changes: dict[str, Any] = {
        "version": event.version,
        "last_position": event.position,
        "last_type": event.type,
        "last_actor": event.actor,
        "last_reason": event.reason,
        "last_at": event.occurred_at,
    }
    if event.desired is not None:
        changes.update(
            desired=event.desired,
            intent_position=event.position,
            intent_actor=event.actor,
            intent_reason=event.reason,
            intent_at=event.occurred_at,
        )
        if event.type == EventType.STARTED:
            changes["start_intent_position"] = event.position
            if event.reason == "restart":
                changes["restart_position"] = event.position

    if event.type == EventType.CRASHED:
        changes.update(crashes=state.crashes + 1, last_crash_position=event.position)
    if event.type == EventType.REPORTED:
        changes["last_report_position"] = event.position
    if event.type == EventType.DELETED:
        # Deleting a profile ends its run: the projector removes the slot, and
        # finish records nothing for a deleted profile (docs/design.md section 2).
        changes.update(deleted=True, run_ended=state.run_position is not None)
    elif event.actor == Actor.SUPERVISOR:
        if event.type == EventType.STARTED:
            changes.update(
                run_position=event.position,
                run_pid=event.pid,
                run_started_at=event.occurred_at,
                run_boot_id=event.boot_id,
                run_ended=False,
            )
        else:
            # crashed / stopped: an exit. It ends the run only when it names the
            # run that is going; a late exit of an older run is a fact, not a state.
            # A second event about the same exit (the breaker's stop) may carry
            # no status: the last status seen stays.
            if event.exit_code is not None or event.signal is not None:
                changes.update(last_exit_code=event.exit_code, last_signal=event.signal)
            if event.run is not None and event.run == state.run_position and not state.run_ended:
                changes["run_ended"] = True
    return state._replace(**changes)
