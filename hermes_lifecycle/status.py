"""A profile's status row: the columns of the public ``profile_status`` view, computed from the projection.

`hermes-state list` and `hermes-state status` show this; operators read
the view. ``tests/test_status.py`` checks the two agree on a real store, so
"held down" and "is it running" each have one definition here in Python
(``fold.ProfileState``) that the view's SQL must match.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .fold import ProfileState
from .vocabulary import format_time

# The view's columns, in its order.
STATUS_COLUMNS = (
    "profile", "status", "desired", "held_down_by", "last_event", "last_actor", "last_reason", "last_event_at",
    "crashes_last_hour", "last_exit_code", "last_signal", "pid", "running_since", "events", "host",
)


def an_hour_ago() -> str:
    """The start of the view's ``crashes_last_hour`` window, in the log's time format."""
    return format_time(datetime.now(timezone.utc) - timedelta(hours=1))


def status_row(state: ProfileState, crashes_last_hour: int) -> dict[str, Any]:
    running = state.running_run is not None
    return {
        "profile": state.profile,
        "status": "deleted" if state.deleted else "live",
        "desired": state.desired,
        "held_down_by": state.held_down_by,
        "last_event": state.last_type,
        "last_actor": state.last_actor,
        "last_reason": state.last_reason,
        "last_event_at": state.last_at,
        "crashes_last_hour": crashes_last_hour,
        "last_exit_code": state.last_exit_code,
        "last_signal": state.last_signal,
        "pid": state.run_pid if running else None,
        "running_since": state.run_started_at if running else None,
        "events": state.version,
        "host": state.host,
    }
