"""The benchmarks' one door into the store: create, open, append, write.

Every benchmark that writes through the store does it with these few calls,
so when the store's internals move (a backend seam, ``open_store``) one edit
here adapts them all. Only the public surface is used:
``EventStore.open(Settings.from_env(env))``, ``store.append(NewEvent(...))``,
``store.writing()``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hermes_state.events import NewEvent
from hermes_state.migrate import migrate
from hermes_state.settings import Settings
from hermes_state.store import EventStore

__all__ = ["NewEvent", "EventStore", "home_env", "create_store", "open_store", "db_path"]


def home_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment a `hermes` command (or ``Settings.from_env``) needs for ``home``."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "HERMES_HOME": str(home),
        "S6_PROFILE_GATEWAY_SCANDIR": str(home / "run" / "service"),
    }
    env.update(extra)
    return env


def db_path(env: dict[str, str]) -> Path:
    return Settings.from_env(env).db_path


def create_store(env: dict[str, str]) -> Path:
    """A new, migrated store file for ``env``; returns its path."""
    path = db_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    migrate(path)
    return path


def open_store(env: dict[str, str]) -> EventStore:
    """The store as every writer opens it."""
    return EventStore.open(Settings.from_env(env))
