"""In-process stores on real files, for tests of library logic (not of permissions)."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

from typing import Iterable

from hermes_lifecycle import store
from hermes_lifecycle.events import Event
from hermes_lifecycle.fold import ProfileState, apply
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import EventStore


def settings_for(home: Path, **extra: str) -> Settings:
    return Settings.from_env({"HERMES_HOME": str(home), "HERMES_HOST_ID": "00000000-0000-4000-8000-000000000001", **extra})


def ticking_clock(start_seconds: int = 0):
    """A clock that advances one second per event: deterministic times for window tests."""
    counter = itertools.count(start_seconds)

    def clock() -> str:
        seconds = next(counter)
        return f"2026-11-27T{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.000Z"

    return clock


def open_store(home: Path, *, clock=None, readonly: bool = False, **extra: str) -> EventStore:
    settings = settings_for(home, **extra)
    if not readonly:
        store.migrate(settings)
    kwargs = {"clock": clock} if clock else {}
    return store.open_store(settings, readonly=readonly, **kwargs)


def operator_rows(db: Path, sql: str, *params) -> list[dict]:
    """Rows read from the file read-only, the way an operator's own sqlite3 would."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute(sql, params)]
    finally:
        connection.close()


def fold(events: Iterable[Event]) -> dict[str, ProfileState]:
    """Every profile's state after ``events`` (in position order): the tests' oracle for the projection."""
    states: dict[str, ProfileState] = {}
    for event in events:
        states[event.profile] = apply(states.get(event.profile), event)
    return states
