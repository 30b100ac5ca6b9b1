"""Shared by the CLI tests: a writer that appends through the real store, and output checks.

``LogWriter`` appends through the real ``EventStore`` with a clock the test
sets, so fixtures can hold events hours or days apart.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from conftest import Home, give_to

from hermes_lifecycle.events import Event, NewEvent, format_time
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import EventStore, open_store


class LogWriter:
    """Appends through the real store, as root, with a settable clock; ``close()`` hands the files back."""

    def __init__(self, home: Home, start: datetime | None = None) -> None:
        self.home = home
        self.now = start or datetime.now(timezone.utc) - timedelta(days=3)
        self.store = open_store(Settings.from_env(home.env()), clock=lambda: format_time(self.now))

    def at(self, moment: datetime) -> "LogWriter":
        self.now = moment
        return self

    def after(self, **delta: float) -> "LogWriter":
        self.now += timedelta(**delta)
        return self

    def boot(self, boot_id: str | None) -> "LogWriter":
        self.store.boot_id = boot_id
        return self

    def append(self, profile: str, type: str, actor: str, desired: str | None = None, **fields) -> Event:
        return self.store.append(NewEvent(profile, type, actor, desired, **fields))

    def run(self, profile: str, pid: int, *, seconds: float, ended_by: str = "crashed", **exit_fields) -> Event:
        """A supervised run: its ``started``, ``seconds`` later its exit (naming the run); returns the exit."""
        started = self.append(profile, "started", "supervisor", pid=pid)
        self.after(seconds=seconds)
        return self.append(profile, ended_by, "supervisor", pid=pid, data={"run": started.position}, **exit_fields)

    def close(self) -> None:
        self.store.close()
        give_to(self.home.path, self.home.user)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def one_stderr_line(result) -> str:
    """Bad input gets exactly one line on stderr, and nothing on stdout."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == "", result.stdout
    assert "Traceback" not in result.stderr
    return lines[0]


def tree(path: Path) -> Iterator[str]:
    """Every entry under ``path``, relative, for before/after comparisons."""
    for entry in sorted(path.rglob("*")):
        yield str(entry.relative_to(path))
