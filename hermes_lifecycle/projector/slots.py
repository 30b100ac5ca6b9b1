"""The scan directory and its slots: the files the projector writes, and nothing else.

A slot is ``<scandir>/gateway-<name>`` holding ``run`` and ``finish`` (the
same bytes in every slot: the profile comes from the service name s6 passes
them), ``timeout-kill`` (a gateway that ignores SIGTERM gets SIGKILL from s6
that many milliseconds after it was asked to go down), a ``down`` file while the profile's desired state is down, and
``data/restart-applied`` (the last restart intent the projector applied to
it; s6 never touches ``data/``). Every other entry of the scan directory
belongs to someone else (inside the container, s6-overlay's own services)
and is never touched. Names are validated here again, whatever the caller
did: a path is only ever built from a valid profile name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from typing import Iterator

from .. import durable
from ..errors import BadInput, HermesError
from ..names import NAME_PATTERN, SLOT_PREFIX, profile_of_slot, slot_name
from ..settings import BOOT_ID_NAME
from ..volume import trusted

LOCK_NAME = ".hermes-projector.lock"
RESTART_APPLIED = "data/restart-applied"

# Dot-names the projector itself leaves behind when it dies mid-action:
# a slot being built, or one moved out of s6-svscan's sight to be removed.
_LEFTOVER = re.compile(r"\." + SLOT_PREFIX + "(" + NAME_PATTERN.pattern + r")\.(tmp|removing)-[0-9a-f]{16}")

EMBEDDED_SHEBANG = "#!/bin/sh\n"
CONTAINER_SHEBANG = "#!/command/with-contenv sh\n"

# s6-supervise reads ``timeout-kill`` when it is told to bring the service
# down: SIGTERM, then SIGKILL after this long. Generous for a clean shutdown,
# short enough that a stubborn gateway cannot keep its slot (or a removal) forever.
KILL_AFTER_MS = 10_000
KILL_AFTER = f"{KILL_AFTER_MS}\n".encode()

_RUN_BODY = """\
# hermes-state slot `run`: the same bytes in every slot. s6 passes the
# service name (gateway-<profile>) as $1. record-start appends `started`
# and execs the gateway in this same process, so the recorded pid is the
# gateway's. As root it first drops to the gateway user: the hermes user
# only ever appends to the log.
if [ "$(id -u)" = 0 ]; then
  exec s6-setuidgid "${HERMES_USER:-hermes}" hermes-state record-start "$1"
fi
exec hermes-state record-start "$1"
"""

_FINISH_BODY = """\
# hermes-state slot `finish`: the same bytes in every slot. s6 passes the
# exit code ($1, 256 when killed by a signal), the signal number ($2) and
# the service name ($3); the working directory is the slot. s6's own
# intent is read first, while still root (supervise/ is root-only); then
# record-exit classifies the exit, and its exit status is this script's,
# so 125 (do not restart) reaches s6.
wantedup=$(s6-svstat -o wantedup .)
if [ "$(id -u)" = 0 ]; then
  exec s6-setuidgid "${HERMES_USER:-hermes}" hermes-state record-exit "$3" "$1" "$2" ${wantedup:+"$wantedup"}
fi
exec hermes-state record-exit "$3" "$1" "$2" ${wantedup:+"$wantedup"}
"""


# The gateways' own accounts into the log (`hermes-state watch-gateways`): a service beside the slots
# in `up`'s private scan directory, as the gateway user (the container runs it as an s6-rc longrun).
READER_SERVICE = "hermes-state-gateways"
_READER_RUN = """\
#!/bin/sh
# hermes-state: the gateways' own gateway_state.json into the log, and the log's word back into them
# (`hermes-state watch-gateways`). Those files are the gateway user's: root never reads them.
if [ "$(id -u)" = 0 ]; then
  exec s6-setuidgid "${HERMES_USER:-hermes}" hermes-state watch-gateways
fi
exec hermes-state watch-gateways
"""


class ScanDirError(HermesError):
    """The scan directory cannot be used or changed as asked."""


class UnsafeScanDir(BadInput):
    """As root, a scan directory another user could redirect is refused."""


def run_script(container: bool) -> bytes:
    return ((CONTAINER_SHEBANG if container else EMBEDDED_SHEBANG) + _RUN_BODY).encode()


ROOT_ONLY = frozenset({0})


def finish_script(container: bool) -> bytes:
    return ((CONTAINER_SHEBANG if container else EMBEDDED_SHEBANG) + _FINISH_BODY).encode()


def check_scandir_safe(path: Path) -> None:
    """As root, refuse a scan directory that another user could redirect.

    Root writes slots and scripts there: if a directory on the way belonged
    to (or were writable by) another user, that user could swap a component
    for a symbolic link and have root write anywhere. Every component of the
    path, as written and as resolved, must be root's and not writable by
    others, except a sticky ancestor such as /tmp, where others cannot rename
    what is not theirs.
    """
    if os.geteuid() != 0:
        return
    for top in (Path(os.path.abspath(path)), Path(os.path.realpath(path))):
        for component in (top, *top.parents):
            try:
                info = os.lstat(component)
            except FileNotFoundError:
                continue  # made later by root, 0755
            # A link's own mode means nothing; an ancestor may be sticky (/tmp), the directory itself not.
            unsafe = not trusted(info, ROOT_ONLY, private=not stat.S_ISLNK(info.st_mode), sticky=component != top)
            if unsafe:
                raise UnsafeScanDir(
                    f"scan directory {path} is unsafe for root: {component} belongs to uid {info.st_uid} "
                    f"with mode {stat.S_IMODE(info.st_mode):04o}; use a root-owned directory "
                    "(S6_PROFILE_GATEWAY_SCANDIR)"
                )


class ScanDir:
    """The slots under one scan directory."""

    def __init__(self, path: Path, *, container: bool) -> None:
        self.path = Path(path)
        self.container = container
        self.run_bytes = run_script(container)
        self.finish_bytes = finish_script(container)

    # -- the directory ---------------------------------------------------
    def ensure(self) -> None:
        """Check it is safe (as root) and make it when missing."""
        check_scandir_safe(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as error:
            raise ScanDirError(f"cannot create scan directory {self.path}: {error.strerror}") from None
        if self.path.is_symlink() or not self.path.is_dir():
            raise ScanDirError(f"scan directory {self.path} is not a directory")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One projector pass at a time on this scan directory (boot and watch may overlap)."""
        lock_path = self.path / LOCK_NAME
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise ScanDirError(f"cannot open {lock_path}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def slot_path(self, profile: str) -> Path:
        return self.path / slot_name(profile)

    def profiles(self) -> list[str]:
        """Profiles that have a slot here: real directories named gateway-<valid name>."""
        found = []
        for entry in self._entries():
            profile = profile_of_slot(entry.name)
            if profile is not None and entry.is_dir(follow_symlinks=False):
                found.append(profile)
        return sorted(found)

    def leftovers(self) -> list[str]:
        """Dot-directories a projector that died mid-action left behind."""
        return sorted(
            entry.name for entry in self._entries()
            if _LEFTOVER.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
        )

    def _entries(self) -> list[os.DirEntry]:
        try:
            with os.scandir(self.path) as entries:
                return list(entries)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise ScanDirError(f"cannot read scan directory {self.path}: {error.strerror}") from None

    # -- what a slot holds -------------------------------------------------
    def has_down_file(self, profile: str) -> bool:
        return os.path.lexists(self.slot_path(profile) / "down")

    def scripts_current(self, profile: str) -> bool:
        """``run``, ``finish`` and ``timeout-kill`` are this version's."""
        slot = self.slot_path(profile)
        return (_holds(slot / "run", self.run_bytes) and _holds(slot / "finish", self.finish_bytes)
                and _holds(slot / "timeout-kill", KILL_AFTER, executable=False))

    def restart_applied(self, profile: str) -> int | None:
        """The last restart intent applied to this slot (None: none, or unreadable)."""
        try:
            text = (self.slot_path(profile) / RESTART_APPLIED).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise ScanDirError(f"cannot read {self.slot_path(profile) / RESTART_APPLIED}: {error.strerror}") from None
        text = text.strip()
        return int(text) if text.isdigit() else None

    # -- changes -------------------------------------------------------------
    def create(self, profile: str, *, up: bool, restart_applied: int | None = None) -> Path:
        """Build the slot as a dot-directory, then rename it into place (s6-svscan never sees half a slot)."""
        target = self.slot_path(profile)
        staging = self.path / f".{target.name}.tmp-{secrets.token_hex(8)}"
        try:
            staging.mkdir(mode=0o755)
            _make_status_public(staging)
            _write(staging / "run", self.run_bytes, 0o755)
            _write(staging / "finish", self.finish_bytes, 0o755)
            _write(staging / "timeout-kill", KILL_AFTER, 0o644)
            if restart_applied is not None:
                (staging / "data").mkdir(mode=0o755)
                _write(staging / RESTART_APPLIED, f"{int(restart_applied)}\n".encode(), 0o644)
            if not up:
                _write(staging / "down", b"", 0o644)
            if os.path.lexists(target):
                raise FileExistsError(target)
            os.rename(staging, target)  # an existing non-empty target makes this fail, never merges
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            exists = isinstance(error, FileExistsError) or error.errno in (errno.EEXIST, errno.ENOTEMPTY)
            reason = "it exists already" if exists else error.strerror
            raise ScanDirError(f"cannot create slot {target}: {reason}") from None
        return target

    def set_down_file(self, profile: str, present: bool) -> None:
        """The ``down`` file mirrors the desired state, for the next time a supervisor starts."""
        path = self.slot_path(profile) / "down"
        try:
            if present:
                durable.write_file(path, b"", mode=0o644, sync=False)  # over one already there: never O_EXCL
            else:
                path.unlink(missing_ok=True)
        except OSError as error:
            raise ScanDirError(f"cannot {'create' if present else 'remove'} {path}: {error.strerror}") from None

    def repair_scripts(self, profile: str) -> None:
        """Replace ``run``/``finish``/``timeout-kill`` that are not this code's (an older install);
        s6 reads the scripts at each start, ``timeout-kill`` at each down."""
        slot = self.slot_path(profile)
        for name, content, mode in (("run", self.run_bytes, 0o755), ("finish", self.finish_bytes, 0o755),
                                    ("timeout-kill", KILL_AFTER, 0o644)):
            if not _holds(slot / name, content, executable=mode & 0o111 != 0):
                _replace(slot / name, content, mode)

    def record_restart_applied(self, profile: str, position: int) -> None:
        slot = self.slot_path(profile)
        try:
            (slot / "data").mkdir(mode=0o755, exist_ok=True)
        except OSError as error:
            raise ScanDirError(f"cannot create {slot / 'data'}: {error.strerror}") from None
        _replace(slot / RESTART_APPLIED, f"{int(position)}\n".encode(), 0o644)

    def move_out(self, profile: str) -> Path:
        """Rename the slot to a dot-name: s6-svscan no longer sees it (same file system, atomic)."""
        source = self.slot_path(profile)
        hidden = self.path / f".{source.name}.removing-{secrets.token_hex(8)}"
        try:
            os.rename(source, hidden)
        except OSError as error:
            raise ScanDirError(f"cannot move {source} out of the scan directory: {error.strerror}") from None
        return hidden

    def delete_hidden(self, name: str) -> None:
        """Delete a dot-directory this module made (a staging or removed slot), nothing else."""
        if not _LEFTOVER.fullmatch(name):
            raise ScanDirError(f"refusing to delete {name!r}: not a directory the projector made")
        path = self.path / name
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise ScanDirError(f"cannot delete {path}: {error.strerror}") from None

    def ensure_reader_service(self) -> bool:
        """The reader's service directory, made (built aside, renamed in) when missing or not this
        code's; True when it changed, so s6-svscan must rescan."""
        target = self.path / READER_SERVICE
        run = _READER_RUN.encode()
        if _holds(target / "run", run):
            return False
        staging = self.path / f".{READER_SERVICE}.tmp-{secrets.token_hex(8)}"
        try:
            staging.mkdir(mode=0o755)
            _write(staging / "run", run, 0o755)
            if os.path.lexists(target):
                _replace(target / "run", run, 0o755)
                shutil.rmtree(staging)
            else:
                os.rename(staging, target)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise ScanDirError(f"cannot create {target}: {error.strerror}") from None
        return True

    def write_boot_id(self, boot_id: str) -> None:
        _replace(self.path / BOOT_ID_NAME, f"{boot_id}\n".encode(), 0o644)


def _make_status_public(slot: Path) -> None:
    """``supervise/`` made ahead, 0711: anyone may read the slot's status, only its owner may control it.

    s6-supervise keeps an existing ``supervise/`` as it is (seen with s6
    2.11) and makes its ``control`` FIFO 0600 there; this is what
    ``s6-svperms -o`` sets. So `hermes-state status`, as the hermes user,
    reads what s6 sees without any way to command s6 (s6 alone makes
    ``supervise/`` 0700).
    """
    supervise = slot / "supervise"
    supervise.mkdir()
    os.chmod(supervise, 0o711)  # explicit: mkdir's mode is cut by the umask


def _holds(path: Path, content: bytes, *, executable: bool = True) -> bool:
    try:
        return path.read_bytes() == content and (not executable or os.access(path, os.X_OK))
    except OSError:
        return False


# A slot is the log projected: every boot checks each slot's files and writes anew what differs, so they are written whole
# (a temporary, a rename) but never forced to the disk: a sync per file would make boot's time
# grow with the number of profiles.
def _write(path: Path, content: bytes, mode: int) -> None:
    """A new file in a slot being built (a fresh dot-directory, renamed into place whole)."""
    durable.create(path, content, mode=mode, sync=False)


def _replace(path: Path, content: bytes, mode: int) -> None:
    """Write beside, then rename over: a reader sees the old bytes or the new, never half."""
    try:
        durable.write_file(path, content, mode=mode, sync=False)
    except OSError as error:
        raise ScanDirError(f"cannot write {path}: {error.strerror}") from None
