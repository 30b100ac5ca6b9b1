"""A fleet host's snapshot of its own profiles' desired states, for a boot with the database away.

After every pass that read the states in fleet mode, the projector (its
reconciler, through a ``Keeper``) keeps the states it planned from (this host's profiles, the fold's fields as the
projection holds them), the log position they were read at and the time, in
``$HERMES_HOME/state/fleet-snapshot.json``. Boot reads it back only when the
database cannot be reached, and then treats it exactly as a projection row
(docs/reliability.md): the volume is the gateway user's, so the file is that
user's input. Each entry passes the gate a projection row passes
(``profile_state.screened``, which validates the name too), must be
this host's and appear once; a bad entry is skipped with a line, never
trusted. The file is refused as a whole (one line) when it is not a regular
file of the volume's owners reached without a symbolic link, is too big, is
not JSON of this shape, or is another host's.

Root writes it on a directory the gateway user owns, so nothing here follows
a link: the ``state`` directory is opened with ``O_NOFOLLOW`` below the home
and checked, and every later step is relative to that descriptor (a
temporary name made with ``O_EXCL``, fsync, rename over the old file, fsync
of the directory). A forged snapshot can ask for no more than the gateway
user can ask for anyway by appending a start intent (docs/fleet.md, Outages).
"""

from __future__ import annotations

import errno
import json
import os
import pwd
from dataclasses import dataclass, field
from typing import Any, Iterable

from .. import durable
from ..errors import HermesError, StoreUnavailable
from ..events import TIME_FORMAT, utc_now
from ..vocabulary import is_int
from ..fold import STATE_FIELDS, ProfileState
from ..names import shown
from ..projector import plan as planning
from ..settings import Settings
from ..profile_state import screened, state_from_row
from ..volume import open_directory, read_file

SNAPSHOT_NAME = "fleet-snapshot.json"
FORMAT = 1
MAX_BYTES = 4 * 1024 * 1024  # some 8,000 profiles; a bigger file is refused, never read whole


class SnapshotError(StoreUnavailable):
    """The snapshot cannot be read or written safely (the reason in one line)."""


class NoSuchDirectory(SnapshotError):
    """A directory of the volume that does not exist (yet)."""


@dataclass
class Snapshot:
    """What a snapshot says: this host's states as read at ``position``, ``written_at``."""

    host: str
    position: int
    written_at: str
    states: list[ProfileState]
    skipped: list[str] = field(default_factory=list)  # one line per entry refused

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "host": self.host,
            "position": self.position,
            "written_at": self.written_at,
            "states": [{name: getattr(state, name) for name in STATE_FIELDS} for state in self.states],
        }


def snapshot_path(settings: Settings) -> str:
    return os.path.join(settings.home_dir, "state", SNAPSHOT_NAME)


def _owners(settings: Settings) -> frozenset[int]:
    """Who may own the state directory and the file: root, this process, the gateway user."""
    owners = {0, os.geteuid()}
    try:
        owners.add(pwd.getpwnam(settings.gateway_user).pw_uid)
    except KeyError:
        pass
    return frozenset(owners)


def state_directory(settings: Settings) -> int:
    """A descriptor on ``$HERMES_HOME/state`` (``volume_directory``)."""
    return volume_directory(settings, "state")


def volume_directory(settings: Settings, *names: str) -> int:
    """A descriptor on a directory of the volume, reached as every file on the volume is
    (``volume.open_directory``): the home as configured, then each of ``names`` with O_NOFOLLOW;
    every directory on the way one of the volume's owners'. The spool (``spool.pending``) is
    opened the same way. NoSuchDirectory when one is missing."""
    relative = os.path.join(*names) if names else ""
    try:
        return open_directory(settings.home_dir, relative, _owners(settings), SnapshotError)
    except OSError as error:
        kind = NoSuchDirectory if error.errno == errno.ENOENT else SnapshotError
        raise kind(f"cannot open {os.path.join(settings.home_dir, relative)}: {error.strerror}") from None


# -- writing (root, after a pass) ----------------------------------------------------------
def save(settings: Settings, snapshot: Snapshot) -> None:
    """Replace the snapshot atomically and durably; SnapshotError (one line) when that fails,
    after removing the old file if it can: a stale snapshot must not outlive a failed write."""
    text = json.dumps(snapshot.as_json(), separators=(",", ":"), sort_keys=True).encode()
    if len(text) > MAX_BYTES:
        raise SnapshotError(f"snapshot {snapshot_path(settings)} would be {len(text)} bytes, over {MAX_BYTES}")
    directory = state_directory(settings)
    try:
        try:
            # O_EXCL|O_NOFOLLOW: a name the gateway user planted first (a link, anything) fails the open.
            durable.write_file(SNAPSHOT_NAME, text, mode=0o644, dir_fd=directory, owner=_owner(settings))
        except OSError as error:
            gone = _unlink(directory, SNAPSHOT_NAME)
            raise SnapshotError(
                f"cannot write snapshot {snapshot_path(settings)}: {error.strerror}"
                + ("; the old one was removed" if gone else "")
            ) from None
    finally:
        os.close(directory)


def _owner(settings: Settings) -> tuple[int, int] | None:
    """The gateway user's, as root: the volume stays its owner's, as everything on it."""
    if os.geteuid() != 0:
        return None
    try:
        account = pwd.getpwnam(settings.gateway_user)
    except KeyError:
        return None
    return account.pw_uid, account.pw_gid


def _unlink(directory: int, name: str) -> bool:
    try:
        os.unlink(name, dir_fd=directory)
        return True
    except OSError:
        return False


def current(host: str, position: int, states: Iterable[planning.Screened]) -> Snapshot:
    """The snapshot of a pass: the valid (``screened``), live states of this host it planned from."""
    kept = sorted(
        (state for state in states if isinstance(state, ProfileState) and state.live and state.host == host),
        key=lambda state: state.profile,
    )
    return Snapshot(host=host, position=position, written_at=utc_now(), states=kept)


class Keeper:
    """What the reconciler carries for the snapshot: this host's valid, live states as last read
    (None until a full pass has read them all), and what the file written last holds, so an idle
    daemon writes nothing. Each method returns a warning line, or None."""

    def __init__(self, settings: Settings, host: str) -> None:
        self.settings, self.host = settings, host
        self._kept: dict[str, ProfileState] | None = None
        self._saved: list[ProfileState] | None = None
        self._error: str | None = None  # reported once until a save succeeds

    def after_full_pass(self, position: int, states: Iterable[planning.Screened]) -> str | None:
        """Every state was read at ``position``: they are the snapshot now."""
        self._kept = {state.profile: state for state in current(self.host, position, states).states}
        return self._save(position)

    def after_catch_up(self, position: int, touched: Iterable[str], states: Iterable[planning.Screened]) -> str | None:
        """The ``touched`` profiles were read again at ``position``: those of ``states`` stay or come
        in, the others (deleted, another host's, unreadable now) go out. Nothing before a full pass."""
        if self._kept is None:
            return None
        for name in touched:
            self._kept.pop(name, None)
        self._kept.update((state.profile, state) for state in current(self.host, position, states).states)
        return self._save(position)

    def _save(self, position: int) -> str | None:
        """Keep the states on the volume when they changed. A save that fails is a warning, not the
        pass's failure (the slots are right): said once until a save succeeds, and tried again at the
        next pass; ``save`` removed the old file."""
        assert self._kept is not None
        kept = sorted(self._kept.values(), key=lambda state: state.profile)
        if kept == self._saved:
            return None
        try:
            save(self.settings, Snapshot(self.host, position, utc_now(), kept))
        except HermesError as error:
            self._saved = None
            if str(error) == self._error:
                return None
            self._error = str(error)
            return str(error)
        self._saved, self._error = kept, None
        return None


# -- reading (root, at a boot with the database away) ---------------------------------------
def load(settings: Settings, host: str) -> Snapshot:
    """The snapshot on the volume, checked; SnapshotError (one line) when it is refused as a whole.

    The entries that fail a check are left out, each with a line in ``skipped``.
    """
    path = snapshot_path(settings)
    try:
        text = read_file(path, limit=MAX_BYTES, volume_root=settings.home_dir, owners=_owners(settings),
                         what=f"snapshot {path}", error=SnapshotError)
    except FileNotFoundError:
        raise SnapshotError(f"no snapshot at {path}") from None
    except OSError as error:
        raise SnapshotError(f"cannot read snapshot {path}: {error.strerror}") from None
    return parse(text, host, path)


def parse(text: bytes, host: str, path: str) -> Snapshot:
    """The snapshot in ``text``, every entry checked as a projection row of this host."""
    try:
        document = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SnapshotError(f"snapshot {path} is not JSON: refused") from None
    if not isinstance(document, dict) or set(document) != {"format", "host", "position", "written_at", "states"}:
        raise SnapshotError(f"snapshot {path} is not a snapshot (its fields): refused")
    if document["format"] != FORMAT or isinstance(document["format"], bool):
        raise SnapshotError(f"snapshot {path} has format {shown(document['format'])}, not {FORMAT}: refused")
    if document["host"] != host:
        raise SnapshotError(f"snapshot {path} belongs to host {shown(document['host'])}, not to this host ({host}): refused")
    position, written_at = document["position"], document["written_at"]
    if not is_int(position) or position < 0:
        raise SnapshotError(f"snapshot {path} has position {shown(position)}: refused")
    if not isinstance(written_at, str) or not TIME_FORMAT.fullmatch(written_at):
        raise SnapshotError(f"snapshot {path} has time {shown(written_at)}: refused")
    if not isinstance(document["states"], list):
        raise SnapshotError(f"snapshot {path} has no list of states: refused")
    snapshot = Snapshot(host=host, position=position, written_at=written_at, states=[])
    by_name: dict[str, list[ProfileState]] = {}
    for index, entry in enumerate(document["states"]):
        state, problem = _entry(entry, host)
        if state is None:
            name = entry.get("profile") if isinstance(entry, dict) else None
            snapshot.skipped.append(f"snapshot entry {index} (profile {shown(name)}): {problem}: skipped")
            continue
        by_name.setdefault(state.profile, []).append(state)
    for name, states in sorted(by_name.items()):
        if len(states) > 1:
            snapshot.skipped.append(f"snapshot entries for profile {shown(name)}: more than one: all skipped")
            continue
        snapshot.states.append(states[0])
    return snapshot


def _entry(entry: object, host: str) -> tuple[ProfileState | None, str]:
    """One entry as a checked state, or None and why not."""
    if not isinstance(entry, dict) or set(entry) != set(STATE_FIELDS):
        return None, "not a projection row (its fields)"
    state = screened(state_from_row(entry))
    if not isinstance(state, ProfileState):
        return None, state.problem
    if state.host != host:
        return None, f"a profile of host {shown(state.host)}, not of this host"
    return state, ""


def describe(snapshot: Snapshot) -> str:
    """The line boot says: where the slots come from."""
    up = sum(1 for state in snapshot.states if state.live and state.desired == "up")
    return (f"slots from the snapshot of {snapshot.written_at}, position {snapshot.position} "
            f"({len(snapshot.states)} profile(s), {up} up)")

