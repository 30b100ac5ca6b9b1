"""What `hermes-state doctor` verified last time, kept by root outside the store (docs/store.md, Doctor).

The chain has no secret: whoever can write the store can rewrite any row and
recompute every hash after it, and a check from the genesis hash still
passes. What root can keep is its own memory of the log: after a doctor
whose chain and fold were sound, the position and hash of the last row it
verified and the fold of every row up to it. The next doctor checks that
the row at that position still holds that hash and still hashes to it, then
verifies and folds only the rows after it. A rewrite of earlier rows that
recomputes the chain changes the hash at the checkpoint: caught. A row
removed from the end: caught (the log ends before the checkpoint). A row
before the checkpoint changed without its hash recomputed is not seen by the
short check (its own hash no longer verifies, but nothing reads it):
``doctor --full`` reads every row, and also compares the checkpoint.

Kept only by root, in a directory root owns that nobody else can write
(``/run/hermes-state-doctor``: the container's ``/run`` is a tmpfs, so the
first doctor after a start reads everything). A doctor run as another user
keeps none: a checkpoint the store's owner could write would let it hide
exactly the rewrite the checkpoint is for. One file per store location.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from .digest import sha256
from .errors import HermesError
from .profile_state import STATE_FIELDS, ProfileState
from .records import Record
from . import durable
from .volume import NotRegular, TooLarge, open_nofollow, read_regular, trusted

DEFAULT_DIRECTORY = "/run/hermes-state-doctor"
DIRECTORY_VARIABLE = "HERMES_STATE_DOCTOR_DIR"
FORMAT = 1
MAX_BYTES = 256 * 1024 * 1024  # ~600 bytes a profile: far beyond any fleet, yet a bound


class CheckpointRefused(HermesError):
    """The checkpoint's directory or file is not root's alone, or its content is not a checkpoint."""


class Checkpoint(Record):
    position: int  # the last row verified
    hash: str  # its hash
    states: dict  # profile -> ProfileState: the fold of rows 1..position
    verified_at: str  # when that doctor ran
    full_at: str  # when a doctor last read every row (the prefix's content is as sound as then)


def directory_for(environ) -> Path | None:
    """Where this process keeps checkpoints: root's directory, or None (any other user keeps none)."""
    if os.geteuid() != 0:
        return None
    return Path(environ.get(DIRECTORY_VARIABLE) or DEFAULT_DIRECTORY)


def file_name(location: str) -> str:
    return sha256(location.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".json"


def _open_directory(directory: Path, create: bool) -> int | None:
    """A descriptor on ``directory``, checked to be this user's and writable by nobody else."""
    if create:
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CheckpointRefused(f"cannot open {directory}: {error.strerror}") from None
    info = os.fstat(fd)
    if not trusted(info, {os.geteuid()}, private=True):
        os.close(fd)
        raise CheckpointRefused(f"{directory} is not this user's alone (owner uid {info.st_uid}, "
                                f"mode {stat.S_IMODE(info.st_mode):04o})")
    return fd


def load(directory: Path, location: str) -> Checkpoint | None:
    """The checkpoint kept for ``location``; None when there is none. CheckpointRefused when it
    cannot be trusted or read."""
    fd = _open_directory(directory, create=False)
    if fd is None:
        return None
    name = file_name(location)

    def alone(info: os.stat_result) -> None:
        if not trusted(info, {os.geteuid()}, private=True):
            raise NotRegular()

    try:
        try:
            file = open_nofollow(name, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise CheckpointRefused(f"cannot open {directory / name}: {error.strerror}") from None
        try:
            text = read_regular(file, MAX_BYTES, alone)[0]
        except NotRegular:
            raise CheckpointRefused(f"{directory / name} is not a file of this user's alone") from None
        except TooLarge:
            raise CheckpointRefused(f"{directory / name} is not a checkpoint of {location}: too large") from None
        finally:
            os.close(file)
    finally:
        os.close(fd)
    try:
        return _decode(text, location)
    except (ValueError, TypeError, KeyError) as error:
        raise CheckpointRefused(f"{directory / name} is not a checkpoint of {location}: {error}") from None


def _decode(text: bytes, location: str) -> Checkpoint:
    content = json.loads(text)
    if content["format"] != FORMAT or content["store"] != location:
        raise ValueError("another format or store")
    position, hash_ = content["position"], content["hash"]
    if type(position) is not int or position < 1 or not isinstance(hash_, str):
        raise ValueError("no position and hash")
    if content["fields"] != list(STATE_FIELDS):
        raise ValueError("kept by another version")  # the fold's state changed: verify it all again
    states = {}
    for values in content["states"]:
        state = ProfileState(*values)
        states[state.profile] = state
    return Checkpoint(position, hash_, states, str(content["verified_at"]), str(content["full_at"]))


def save(directory: Path, location: str, checkpoint: Checkpoint) -> Path:
    """Replace the checkpoint for ``location`` (created 0600 in a 0700 directory)."""
    fd = _open_directory(directory, create=True)
    if fd is None:
        raise CheckpointRefused(f"{directory} vanished")
    name = file_name(location)
    content = {
        "format": FORMAT, "store": location, "position": checkpoint.position, "hash": checkpoint.hash,
        "verified_at": checkpoint.verified_at, "full_at": checkpoint.full_at, "fields": list(STATE_FIELDS),
        "states": [list(state) for state in checkpoint.states.values()],
    }
    try:
        durable.write_file(name, json.dumps(content, separators=(",", ":")).encode(), mode=0o600, dir_fd=fd)
    finally:
        os.close(fd)
    return directory / name
