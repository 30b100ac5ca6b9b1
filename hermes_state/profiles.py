"""Profiles on disk and in the log together: create and delete are both-or-neither.

A profile is a directory ``$HERMES_HOME/profiles/NAME/`` (marker ``SOUL.md``)
and a stream in the log. Creating one builds the directory under a dot-name
(``.NAME.staging-PID``, which the legacy import and s6 both ignore), then, inside
the append's ``BEGIN IMMEDIATE`` transaction, renames it into place: a failed
append leaves no directory, a failed directory leaves no event. Deleting
appends ``deleted`` and, in the same transaction, moves the directory to
``profiles/.deleted/NAME.POSITION`` (POSITION: that of the ``deleted`` event).

If the process dies between the rename and the commit, the directory exists
without its stream, which is exactly a profile from before the event store:
the next boot's legacy import gives it its ``created``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import Conflict, HermesError, ProfileExists
from .events import Event, NewEvent
from .names import DEFAULT_PROFILE, validate_name, validate_new_name
from .settings import SOUL_FILE, Settings
from .store import EventStore

DELETED_DIR = ".deleted"


def staging_dir(settings: Settings, name: str) -> Path:
    return settings.profiles_dir / f".{name}.staging-{os.getpid()}"


def soul_text(name: str) -> str:
    return f"# {name}\n\nThe soul of the Hermes profile {name}: who this agent is and how it speaks.\n"


def create_profile(store: EventStore, settings: Settings, name: str) -> Event:
    """Make the directory and append ``created``, both or neither. Returns the event."""
    validate_new_name(name)
    if name == DEFAULT_PROFILE:
        raise Conflict("the default profile is the root profile: boot creates it (`hermes state boot`)")
    existing = store.state(name)
    if existing is not None and existing.live:
        raise ProfileExists(f"profile {name!r} exists already")
    final = settings.profile_dir(name)
    if os.path.lexists(final):
        raise ProfileExists(
            f"{final} exists already: a profile from before the event store is imported by "
            "`hermes state import-legacy`; otherwise choose another name"
        )
    staging = staging_dir(settings, name)
    _build(staging, name, settings.profiles_dir)
    renamed = False
    try:
        with store.writing() as tx:
            event = tx.append(NewEvent(name, "created", "cli", "down"))
            # Checked again under the store's write lock: another `profile create` cannot race us.
            if os.path.lexists(final):
                raise ProfileExists(f"{final} exists already")
            _os(f"cannot move the new profile into place at {final}", lambda: os.rename(staging, final))
            renamed = True
            _os(f"cannot sync {settings.profiles_dir}", lambda: _fsync_dir(settings.profiles_dir))
        return event
    except BaseException as failure:
        if renamed:  # the commit failed after the rename: take the directory back
            _undo(failure, f"{final} could not be taken back", lambda: os.rename(final, staging))
        raise
    finally:
        if os.path.lexists(staging):
            _os(f"cannot remove the staging directory {staging}", lambda: shutil.rmtree(staging))


def _build(staging: Path, name: str, profiles_dir: Path) -> None:
    def build() -> None:
        profiles_dir.mkdir(parents=True, exist_ok=True)
        os.mkdir(staging, 0o700)  # a profile holds the agent's secrets: owner only
        try:
            descriptor = os.open(staging / SOUL_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(descriptor, soul_text(name).encode())
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            _fsync_dir(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # nothing of ours to keep; the error is raised below
            raise

    _os(f"cannot create the profile directory under {profiles_dir}", build)


@dataclass(frozen=True)
class Deletion:
    event: Event
    moved_to: Path | None  # None: there was no directory
    purged: bool


def delete_profile(store: EventStore, settings: Settings, name: str, *, purge: bool = False) -> Deletion:
    """Append ``deleted`` and move the directory to ``profiles/.deleted/`` (removed with ``purge``)."""
    validate_name(name)
    if name == DEFAULT_PROFILE:
        raise Conflict("the default profile cannot be deleted")
    source = settings.profile_dir(name)
    trash = settings.profiles_dir / DELETED_DIR
    target: Path | None = None
    moved = False
    try:
        with store.writing() as tx:
            event = tx.append(NewEvent(name, "deleted", "cli", "down"))  # NotFound / ProfileDeleted
            if os.path.lexists(source):
                target = trash / f"{name}.{event.position}"
                _os(f"cannot make {trash}", lambda: trash.mkdir(mode=0o700, exist_ok=True))
                _os(f"cannot move {source} to {target}", lambda: os.rename(source, target))
                moved = True
                _os(f"cannot sync {settings.profiles_dir}", lambda: _fsync_dir(settings.profiles_dir))
    except BaseException as failure:
        if moved and target is not None:
            _undo(failure, f"{target} could not be put back at {source}", lambda: os.rename(target, source))
        raise
    if purge and target is not None:
        _os(
            f"profile {name} is deleted, but its directory {target} could not be removed",
            lambda: shutil.rmtree(target),
        )
    return Deletion(event, target, purge and target is not None)


def _os(message: str, action) -> None:
    """Run a filesystem step; its failure is one line: ``message`` and why."""
    try:
        action()
    except OSError as error:
        raise HermesError(f"{message}: {error.strerror or error}") from None


def _undo(failure: BaseException, message: str, action) -> None:
    """Undo a filesystem step after ``failure``; if that fails too, say both."""
    try:
        action()
    except OSError as error:
        raise HermesError(f"{failure}; and {message}: {error.strerror or error}: fix it by hand") from None


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
