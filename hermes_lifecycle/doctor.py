"""`hermes-state doctor`: every check of a store, as findings.

The backend checks what only it can (for SQLite: the library, the file, its
owners and file system, ``integrity_check``, the schema and its objects);
then, the same for every backend, the log is read once to verify the hash
chain and to fold it, and the fold must equal the stored projection. Run by
root, only the rows after root's checkpoint are read (``checkpoint.py``:
the row at it must be the one verified then); ``full`` reads every row.
Errors (corruption, a broken chain, projection not equal to the fold, a
schema mismatch) make the store unhealthy; warnings are reported and leave
it healthy. Last, the profile directories are compared with the log
(``profiles.py``: a delete killed after its commit, a directory moved away
by hand or by an older delete that never committed; in a fleet, this host's
profiles only): a disagreement is a warning, since the store itself is
sound. A fleet host's spool is looked at too (by name only): kept starts
and exits not in the log yet, and files set aside, are warnings.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import checkpoint
from .chain import GENESIS, verifies
from .checks import ERROR, OK, WARNING, Report
from .errors import HermesError
from .events import Event
from .fold import ProfileState, apply
from .names import DEFAULT_PROFILE, NAME_PATTERN
from .profiles import DELETED_DIR
from .settings import Settings
from .store import backend_for, open_store
from .store.log import state_from_row
from .vocabulary import format_time
from .volume import VolumeRefused, open_directory, owners_for

Progress = Callable[[int], Callable[[int], None]]  # total -> advance(n)


def diagnose(settings: Settings, *, expected_owner: str | None = None, progress_factory: Progress | None = None,
             checkpoints: Path | None = None, full: bool = False) -> Report:
    """Run every check on the store ``settings`` name; never raises for a store problem.

    ``checkpoints``: root's directory of checkpoints (``checkpoint.py``): the chain and the fold are
    checked from this store's checkpoint on, and a new one kept; None keeps none and reads every
    row. ``full``: read every row even so (the checkpoint is still compared)."""
    report = Report(settings.store_location)
    if not backend_for(settings).diagnose(settings, report, expected_owner=expected_owner):
        check_spool(report, settings)
        return report
    try:
        with open_store(settings, readonly=True) as store, store.recorder.transaction(write=False) as tx:
            _check_chain_and_projection(report, tx, progress_factory, checkpoints, settings.store_location, full)
            states = [state_from_row(row) for row in tx.projection(include_deleted=True)]
    except HermesError as error:
        report.add("database", ERROR, str(error))
        return report
    check_directories(report, settings, _this_hosts(report, settings, states))
    check_spool(report, settings)
    return report


def _this_hosts(report: Report, settings: Settings, states: list[ProfileState]) -> list[ProfileState]:
    """The profiles whose directories are on this volume: every one on a SQLite file; in a fleet, this
    host's (another host's profiles live on its own volume, docs/fleet.md)."""
    if not settings.fleet:
        return states
    try:
        here = settings.host_id(create=False)
    except HermesError as error:
        report.add("profile directories", WARNING, f"not checked: this host's profiles are unknown ({error})")
        return []
    return [state for state in states if state.host == here]


def check_spool(report: Report, settings: Settings) -> None:
    """A fleet host's kept starts and exits not in the log yet, and files set aside (docs/fleet.md,
    Outages): counted by name only, so root reads none of the gateway user's files."""
    if not settings.fleet:
        return
    from .fleet import spool

    try:
        held = spool.pending(settings)
    except HermesError as error:
        report.add("spool", WARNING, f"cannot look at {settings.spool_dir}: {error}")
        return
    problems = []
    if held.names:
        seen = spool.observed_time(held.oldest_ns) if held.oldest_ns is not None else "?"
        problems.append(f"{len(held.names)} start(s) and exit(s) kept in {settings.spool_dir} are not in the log "
                        f"yet (the oldest seen {seen}): appended at this host's next write, or by its watch daemon "
                        "once the database answers")
    if held.refused:
        problems.append(f"{held.refused} file(s) set aside in {settings.spool_dir}/{spool.REFUSED}/, never appended: "
                        "look at them")
    if problems:
        report.add("spool", WARNING, "; ".join(problems))
    else:
        report.add("spool", OK, f"nothing kept in {settings.spool_dir}")


def check_directories(report: Report, settings: Settings, states: list[ProfileState]) -> None:
    """Each profile's directory where the log says it is: in place while live, in ``.deleted/``
    once deleted. Only names and ``lstat``, relative to ``profiles/`` opened as the volume's
    directories are: nothing under it is opened or followed."""
    profiles = settings.profiles_dir
    try:
        directory = _profiles_directory(settings)
    except (OSError, VolumeRefused) as error:
        report.add("profile directories", WARNING,
                   f"cannot open {profiles}: {error.strerror if isinstance(error, OSError) else error}")
        return
    try:
        _compare_directories(report, profiles, directory, states)
    finally:
        if directory is not None:
            os.close(directory)


def _profiles_directory(settings: Settings) -> int | None:
    """A descriptor on ``profiles/`` (None: there is none yet); as root, reached as every directory
    on the volume is (``volume.open_directory``: never through a link)."""
    owners = owners_for(settings.gateway_user)
    try:
        if owners is None:
            return os.open(settings.profiles_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return open_directory(settings.home_dir, "profiles", owners)
    except FileNotFoundError:
        return None


def _trash(directory: int | None) -> list[str]:
    """The names in ``profiles/.deleted`` (never through a link); empty when there is none."""
    if directory is None:
        return []
    try:
        trash = os.open(DELETED_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
    except FileNotFoundError:
        return []
    try:
        return os.listdir(trash)
    finally:
        os.close(trash)


def _compare_directories(report: Report, profiles, directory: int | None, states: list[ProfileState]) -> None:
    try:
        trash = _trash(directory)
    except OSError as error:
        report.add("profile directories", WARNING, f"cannot list {profiles / DELETED_DIR}: {error.strerror}")
        return
    problems = []
    for state in sorted(states, key=lambda s: repr(s.profile)):
        name = state.profile
        if not isinstance(name, str) or name == DEFAULT_PROFILE or not NAME_PATTERN.fullmatch(name):
            continue  # the default profile is the home itself; a bad name is the fold's finding
        in_place = directory is not None and _exists(name, directory)
        if state.deleted and in_place:
            problems.append(
                f"{name} is deleted (position {state.last_position}) but {profiles / name} is still in place: "
                f"the deletion did not finish; `hermes-state delete {name} --yes` finishes it"
            )
        elif state.live and not in_place:
            # .deleted/NAME.P with P after this life's `created`: no committed `deleted` has that position.
            uncommitted = sorted(
                (int(position), entry) for entry in trash
                for stem, _, position in [entry.rpartition(".")]
                if stem == name and position.isascii() and position.isdigit() and int(position) > state.created_position
            )
            where = (f"; {profiles / DELETED_DIR / uncommitted[-1][1]} is from a delete that never committed: "
                     f"move it back to {profiles / name}") if uncommitted else ""
            problems.append(f"{name} is live but {profiles / name} does not exist{where}")
    if problems:
        report.add("profile directories", WARNING, "; ".join(problems))
    else:
        report.add("profile directories", OK, "every profile's directory is where the log says")


def _exists(name: str, directory: int) -> bool:
    """Like ``os.path.lexists``, relative to ``directory``."""
    try:
        os.stat(name, dir_fd=directory, follow_symlinks=False)
    except OSError:
        return False
    return True


def _check_chain_and_projection(report: Report, tx, progress_factory: Progress | None,
                                checkpoints: Path | None, location: str, full: bool) -> None:
    last = tx.last_position()
    kept = _kept_checkpoint(report, checkpoints, location)
    moved = _checkpoint_problem(tx, kept, last) if kept is not None else None
    if moved is not None:
        report.add("checkpoint", ERROR, f"{moved}: the log up to it was rewritten, or another store is in its place "
                                        f"(restored on purpose? remove {checkpoints / checkpoint.file_name(location)})")  # type: ignore[operator]  # a checkpoint was read: checkpoints is set
    start = kept if kept is not None and moved is None and not full else None
    advance = progress_factory(last - (start.position if start else 0)) if progress_factory else (lambda n: None)
    previous = start.hash if start else GENESIS
    folded: dict[str, ProfileState] = dict(start.states) if start else {}
    broken: int | None = None
    refused: str | None = None
    count = 0
    for rows in _batches_after(tx, start.position if start else 0):
        for row in rows:
            if broken is None and not verifies(previous, row):
                broken = row["position"]
            previous = row["hash"]
            if refused is None:
                try:
                    event = Event.from_row(row)
                    folded[event.profile] = apply(folded.get(event.profile), event)
                except (HermesError, ValueError, TypeError) as error:
                    refused = f"position {row['position']}: {error}"
        count += len(rows)
        advance(len(rows))

    if broken is not None:
        report.add("hash chain", ERROR, f"broken at position {broken}: that row was changed, removed or inserted")
    elif start is None:
        report.add("hash chain", OK, f"{count} events verified")
    else:
        report.add("hash chain", OK, f"{count} events verified after position {start.position}, whose row is the "
                                     f"one verified {start.verified_at}; every row last read {start.full_at} "
                                     "(`hermes-state doctor --full` reads them all)")
    if refused is not None:
        report.add("fold", ERROR, f"the log breaks the stream rules at {refused}")
        return
    if checkpoints is not None and broken is None and moved is None and last > 0:
        _keep_checkpoint(report, checkpoints, location, start, last, previous, folded)
    stored = {row["profile"]: state_from_row(row) for row in tx.projection(include_deleted=True)}
    # A name that is not text (a BLOB written behind the store's back) sorts and shows by its repr.
    differing = sorted((name for name in set(stored) | set(folded) if stored.get(name) != folded.get(name)), key=repr)
    if differing:
        shown = ", ".join(n if isinstance(n, str) else repr(n) for n in differing[:10]) + (
            " ..." if len(differing) > 10 else "")
        report.add("projection", ERROR, f"projection differs from the fold of the log for: {shown}")
    else:
        report.add("projection", OK, f"{len(stored)} profiles equal the fold of the log")


def _batches_after(tx, position: int, size: int = 5000):
    """The log after ``position`` in position order, ``size`` rows at a time, in the one transaction."""
    while rows := tx.events_after(position, size):
        yield rows
        position = rows[-1]["position"]


def _kept_checkpoint(report: Report, checkpoints: Path | None, location: str) -> checkpoint.Checkpoint | None:
    """Root's checkpoint for this store; one it cannot trust is a warning, and every row is read."""
    if checkpoints is None:
        return None
    try:
        return checkpoint.load(checkpoints, location)
    except checkpoint.CheckpointRefused as refused:
        report.add("checkpoint", WARNING, f"{refused}: every row verified instead")
        return None


def _checkpoint_problem(tx, kept: checkpoint.Checkpoint, last: int) -> str | None:
    """What no longer agrees with the checkpoint: the row at its position must still be there, hold
    its hash and hash to it after the row before it. None when all of that holds."""
    position = kept.position
    verified = f"position {position}, verified {kept.verified_at}"
    if last < position:
        return f"the log ends at position {last}, before {verified}"
    rows = tx.events_after(max(position - 2, 0), 2 if position > 1 else 1)
    if position > 1 and (len(rows) < 2 or rows[0]["position"] != position - 1):
        return f"the row before {verified} is gone"
    row = rows[-1]
    previous = rows[0]["hash"] if position > 1 else GENESIS
    if row["position"] != position or row["hash"] != kept.hash or not verifies(previous, row):
        return f"the row at {verified} is not the one verified then"
    return None


def _keep_checkpoint(report: Report, checkpoints: Path, location: str, start: checkpoint.Checkpoint | None,
                     last: int, last_hash: str, folded: dict[str, ProfileState]) -> None:
    now = format_time(datetime.now(timezone.utc))
    kept = checkpoint.Checkpoint(last, last_hash, folded, now, start.full_at if start else now)
    try:
        checkpoint.save(checkpoints, location, kept)
    except (checkpoint.CheckpointRefused, OSError) as error:
        report.add("checkpoint", WARNING, f"not kept ({error}): the next doctor verifies every row again")
        return
    report.add("checkpoint", OK, f"position {last} kept in {checkpoints}: the next doctor verifies only the rows after it")
