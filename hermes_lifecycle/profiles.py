"""Profiles on disk and in the log together: create and delete are both-or-neither.

A profile is a directory ``$HERMES_HOME/profiles/NAME/`` (marker ``SOUL.md``)
and a stream in the log. Creating one builds the directory under a dot-name
(``.NAME.staging-PID``, which the legacy import and s6 both ignore), then, inside
the append's ``BEGIN IMMEDIATE`` transaction, renames it into place: a failed
append leaves no directory, a failed directory leaves no event.

Deleting commits ``deleted`` first, then moves the directory to
``profiles/.deleted/NAME.POSITION`` (POSITION: that of the ``deleted``
event). The log is the journal: a process killed between the commit and the
move leaves a deleted profile whose directory is still in place: the next
``profile create NAME`` or ``profile delete NAME`` moves it first, and
``doctor`` reports it until then. The other order would leave a directory
in ``.deleted/`` under a position nobody committed, with the profile still
live: nothing in the log could say it should come back.

Create and delete hold one ``flock`` on the
``profiles/`` directory itself for their whole work, so a deletion being
finished never moves a directory a concurrent create has just put in place.

If a create dies between its rename and its commit, the directory exists
without its stream (a profile from before the event store: the next boot's
legacy import gives it its ``created``) or with a deleted stream (the next
create or delete of that name moves it to ``.deleted/``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

from . import durable
from .records import Record
from .errors import Conflict, HermesError, ProfileDeleted, ProfileExists, StoreLocked
from .events import Event, NewEvent
from .vocabulary import Actor, Desired, EventType
from .names import DEFAULT_PROFILE, validate_name, validate_new_name
from .settings import SOUL_FILE, Settings
from .store import EventStore

DELETED_DIR = ".deleted"
STAGING_MARK = ".staging-"


def staging_dir(settings: Settings, name: str) -> Path:
    return settings.profiles_dir / f".{name}{STAGING_MARK}{os.getpid()}"


def is_own_entry(name: str) -> bool:
    """An entry of ``profiles/`` that this module keeps there itself: ``.deleted`` or a profile
    being built (``.NAME.staging-PID``). Neither is a profile, nor a stranger to report."""
    if name == DELETED_DIR:
        return True
    head, mark, pid = name.rpartition(STAGING_MARK)
    return bool(mark) and head.startswith(".") and pid.isdigit()


def soul_text(name: str) -> str:
    return f"# {name}\n\nThe soul of the Hermes profile {name}: who this agent is and how it speaks.\n"


def create_profile(store: EventStore, settings: Settings, name: str) -> Event:
    """Make the directory and append ``created``, both or neither. Returns the event."""
    validate_new_name(name)
    if name == DEFAULT_PROFILE:
        raise Conflict("the default profile is the root profile: boot creates it (`hermes-state boot`)")
    with profiles_lock(settings):
        _finish_deletion(store, settings, name)
        return _create(store, settings, name)


def _create(store: EventStore, settings: Settings, name: str) -> Event:
    existing = store.state(name)
    if existing is not None and existing.live:
        raise ProfileExists(f"profile {name!r} exists already")
    final = settings.profile_dir(name)
    if os.path.lexists(final):
        raise ProfileExists(
            f"{final} exists already: a profile from before the event store is imported by "
            "`hermes-state import-legacy`; otherwise choose another name"
        )
    staging = staging_dir(settings, name)
    _build(staging, name, settings.profiles_dir)
    renamed = False
    try:
        with store.writing() as tx:
            event = tx.append(NewEvent(name, EventType.CREATED, Actor.CLI, Desired.DOWN))
            # Checked again under the store's write lock: another `profile create` cannot race us.
            if os.path.lexists(final):
                raise ProfileExists(f"{final} exists already")
            _os(f"cannot move the new profile into place at {final}", lambda: os.rename(staging, final))
            renamed = True
            _os(f"cannot sync {settings.profiles_dir}", lambda: durable.fsync_directory(settings.profiles_dir))
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
            durable.create(staging / SOUL_FILE, soul_text(name).encode(), mode=0o600)
            durable.fsync_directory(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # nothing of ours to keep; the error is raised below
            raise

    _os(f"cannot create the profile directory under {profiles_dir}", build)


class Deletion(Record):
    event: Event | None  # None: the profile was deleted already (a delete that did not finish, or --purge)
    moved_to: Path | None  # None: there was no directory
    purged: bool
    position: int  # of the `deleted` event
    removed: tuple[Path, ...] = ()  # --purge of a deleted profile: what profiles/.deleted/ kept of it


def delete_profile(
    store: EventStore, settings: Settings, name: str, *, purge: bool = False,
    after_commit: Callable[[], None] | None = None,
) -> Deletion:
    """Commit ``deleted``, then move the directory to ``profiles/.deleted/`` (removed with ``purge``).

    ``after_commit`` runs between the two (the CLI's fault-injection point for tests)."""
    validate_name(name)
    if name == DEFAULT_PROFILE:
        raise Conflict("the default profile cannot be deleted")
    with profiles_lock(settings):
        earlier = store.state(name)
        if earlier is not None and earlier.deleted and os.path.lexists(settings.profile_dir(name)):
            # An earlier delete committed and was killed before its move: this one finishes it.
            event, position = None, earlier.last_position
        elif earlier is not None and earlier.deleted and purge:
            # Deleted already: --purge removes what .deleted/ keeps of it (nothing to append).
            return Deletion(None, None, True, earlier.last_position, _purge_kept(settings, name))
        else:
            event = store.append(NewEvent(name, EventType.DELETED, Actor.CLI, Desired.DOWN))  # NotFound / ProfileDeleted
            position = event.position
            if after_commit is not None:
                after_commit()
        target = _move_to_trash(settings, name, position)
    if purge and target is not None:
        _os(
            f"profile {name} is deleted, but its directory {target} could not be removed",
            lambda: shutil.rmtree(target),
        )
    return Deletion(event, target, purge and target is not None, position)


def _purge_kept(settings: Settings, name: str) -> tuple[Path, ...]:
    """Remove every ``.deleted/NAME.POSITION`` of a deleted profile (each life deleted keeps one);
    ProfileDeleted when there is none, as a second delete that does not purge says."""
    trash = settings.profiles_dir / DELETED_DIR
    try:
        entries = sorted(os.listdir(trash))
    except FileNotFoundError:
        entries = []
    except OSError as error:
        raise HermesError(f"cannot read {trash}: {error.strerror}") from None
    prefix = f"{name}."
    kept = [trash / entry for entry in entries if entry.startswith(prefix) and entry[len(prefix):].isdigit()]
    if not kept:
        raise ProfileDeleted(f"profile {name!r} was deleted, and {trash} keeps nothing of it to purge")
    for path in kept:
        _os(f"cannot remove {path}", lambda: shutil.rmtree(path) if not path.is_symlink() else path.unlink())
    return tuple(kept)


def _finish_deletion(store: EventStore, settings: Settings, name: str) -> None:
    """Finish a deletion killed after its commit, under the caller's lock."""
    state = store.state(name)
    if state is not None and state.deleted:
        _move_to_trash(settings, name, state.last_position)  # a deleted profile's last event is its `deleted`


def _move_to_trash(settings: Settings, name: str, position: int) -> Path | None:
    """Move ``profiles/NAME`` to ``.deleted/NAME.POSITION``; None when there is no directory."""
    source = settings.profile_dir(name)
    if not os.path.lexists(source):
        return None
    trash = settings.profiles_dir / DELETED_DIR
    target = trash / f"{name}.{position}"
    _os(f"profile {name} is deleted, but {trash} cannot be made", lambda: trash.mkdir(mode=0o700, exist_ok=True))
    if os.path.lexists(target):
        raise HermesError(f"profile {name} is deleted, but {target} exists already: move {source} aside by hand")
    _os(f"profile {name} is deleted, but {source} cannot be moved to {target}", lambda: os.rename(source, target))
    _os(f"cannot sync {settings.profiles_dir}", lambda: durable.fsync_directory(settings.profiles_dir))
    return target


@contextlib.contextmanager
def profiles_lock(settings: Settings) -> Iterator[None]:
    """One profile create or delete at a time on this home: a ``flock`` on the
    ``profiles/`` directory (no lock file to leave behind), waited for at most the store's
    busy timeout."""
    directory = settings.profiles_dir

    def open_directory() -> int:
        directory.mkdir(parents=True, exist_ok=True)
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    try:
        descriptor = open_directory()
    except OSError as error:
        raise HermesError(f"cannot open {directory}: {error.strerror or error}") from None
    try:
        deadline = time.monotonic() + settings.busy_timeout_ms / 1000
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise HermesError(f"cannot lock {directory}: {error.strerror}") from None
                if time.monotonic() > deadline:
                    raise StoreLocked(
                        f"another profile command holds {directory} past the busy timeout "
                        f"({settings.busy_timeout_ms} ms)"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(descriptor)  # releases the flock


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
