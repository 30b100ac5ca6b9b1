"""The benchmarks' one door into the store: create, open, append, write.

Every benchmark that writes through the store does it with these few calls,
so when the store's internals move one edit here adapts them all. Only the
public surface is used: ``hermes_lifecycle.store.migrate``/``open_store``,
``store.append(NewEvent(...))``, ``store.writing()``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hermes_lifecycle import store as store_api
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import EventStore

__all__ = ["NewEvent", "EventStore", "home_env", "create_store", "open_store", "db_path", "append_all"]


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
    settings = Settings.from_env(env)
    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    store_api.migrate(settings)
    return settings.db_path


def open_store(env: dict[str, str]) -> EventStore:
    """The store as every writer opens it."""
    return store_api.open_store(Settings.from_env(env))


def append_all(store: EventStore, batch: list[NewEvent]) -> None:
    """Several appends in one write transaction (all or none)."""
    with store.writing() as tx:
        for new in batch:
            tx.append(new)
