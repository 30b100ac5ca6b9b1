"""One volume, one live projector: the volume's claim.

Two containers on one volume (a second `docker run`, a new image started
before the old one stopped) both projected the same profiles: the second's
gateways exited 4 on the first's locks, each exit was recorded as a crash,
the breaker wrote desired down into the shared log, and the first obeyed.
So a projector claims the volume before it records or starts anything, and
holds the claim for as long as it is live; a second one gets one line and
exit 4 (``VolumeClaimed``), and records nothing.

The claim is ``flock(LOCK_EX | LOCK_NB)`` on the volume's root directory
(``HERMES_HOME``), the one thing both containers share. The kernel releases
it when the last descriptor of it closes, so a projector killed with SIGKILL
leaves no stale claim, and nothing is written on the volume. As root the
directory is opened with ``O_NOFOLLOW`` (root follows no link on the volume),
``O_DIRECTORY`` and ``O_NONBLOCK`` (a FIFO there is refused, never waited on),
and only ``LOCK_NB`` is ever asked: the gateway user, who owns the directory
and can take the lock itself, can keep its own gateways from starting and
nothing more, as it can by damaging its store.

In the container, boot (the stage-2 hook) and the watch daemon (an s6-rc
longrun) are separate processes, and the claim must not lapse between
them. ``hermes-state claim``, the hook's first step, takes it and hands it to
a keeper: a small process that holds the same open directory for as long as
the scan directory's s6-svscan lives (the container's life) and gives it,
over a socket in that root-only scan directory, to the projector processes
of the same uid that ask. ``take`` asks the keeper first: the descriptor it
gets is the claim itself (``flock`` on it succeeds, and only on it), so boot
and every restart of the watch daemon hold the claim the container took.
Without a keeper (``hermes-state up``, a boot or watch run by hand) ``take``
claims the volume itself, for the life of the process.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

from ..errors import BadInput, Conflict, HermesError, StoreUnavailable
from ..settings import Settings

KEEPER_SOCKET = ".hermes-volume-claim"  # in the scan directory: s6-svscan ignores dot-names
ASK_TIMEOUT = 2.0
KEEPER_READY_TIMEOUT = 10.0
SCANNER_PROBE_SECONDS = 1.0


class VolumeClaimed(Conflict):
    """Another live projector holds this volume."""


class Claim:
    """The claim on one volume: an open descriptor of its root directory that holds the lock."""

    def __init__(self, fd: int, home: str, *, kept: bool) -> None:
        self.fd = fd
        self.home = home
        self.kept = kept  # adopted from this scan directory's keeper

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # never LOCK_UN: a keeper's copy keeps holding it
            self.fd = -1

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def take(settings: Settings) -> Claim:
    """This scan directory's claim on the volume (its keeper's, when it has one), or the volume
    claimed now; VolumeClaimed when another projector holds it."""
    home = settings.home_dir
    home_fd = open_home(home)
    try:
        kept = ask_keeper(settings.scandir)
        if kept is not None:
            if _same_file(kept, home_fd) and _lock(kept):
                os.close(home_fd)
                return Claim(kept, home, kept=True)
            os.close(kept)  # a keeper of another volume, or of none: this one is claimed afresh
        if not _lock(home_fd):
            raise VolumeClaimed(
                f"the volume {home} is in use by another projector (a second container on it, or `hermes-state up` "
                "there): nothing was recorded and no gateway started here; stop the other one first"
            )
    except BaseException:
        os.close(home_fd)
        raise
    return Claim(home_fd, home, kept=False)


def open_home(home: str) -> int:
    """The volume's root directory, opened without following a link as root, never waiting on a FIFO."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC
    if os.geteuid() == 0:
        flags |= os.O_NOFOLLOW
    try:
        return os.open(home, flags)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(home):  # O_DIRECTORY says ENOTDIR first
            raise StoreUnavailable(f"HERMES_HOME {home} is a symbolic link: root follows no link on the volume") from None
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise BadInput(f"HERMES_HOME {home} is not a directory") from None
        raise StoreUnavailable(f"cannot open HERMES_HOME {home}: {error.strerror}") from None


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        raise StoreUnavailable(f"cannot lock the volume: {error.strerror}") from None
    return True


def _same_file(one: int, two: int) -> bool:
    first, second = os.fstat(one), os.fstat(two)
    return stat.S_ISDIR(first.st_mode) and (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


# -- the keeper ---------------------------------------------------------------------------
def ask_keeper(scandir: Path) -> int | None:
    """The descriptor this scan directory's keeper holds, or None when no keeper answers."""
    path = Path(scandir) / KEEPER_SOCKET
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(ASK_TIMEOUT)
        try:
            sock.connect(str(path))
            _, fds, _, _ = socket.recv_fds(sock, 16, 1)
        except OSError:
            return None  # no keeper (none started, or its s6-svscan is gone): not an error
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return None
    os.set_inheritable(fds[0], False)
    return fds[0]


def keep(claim: Claim, settings: Settings) -> int:
    """Hand ``claim`` to a keeper for the scan directory's s6-svscan's life; its pid."""
    scandir = Path(settings.scandir)
    ready_read, ready_write = os.pipe()
    try:
        keeper = subprocess.Popen(
            [sys.executable, "-m", __name__, str(claim.fd), str(ready_write), str(scandir)],
            pass_fds=(claim.fd, ready_write), start_new_session=True, cwd=scandir,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(ready_write)
    try:
        said = _read_until_closed(ready_read, KEEPER_READY_TIMEOUT)
    finally:
        os.close(ready_read)
    if said != b"ready":
        keeper.kill()
        keeper.wait()
        why = said.decode(errors="replace") or f"it did not say it was ready within {KEEPER_READY_TIMEOUT:g} s"
        raise HermesError(f"cannot keep the claim on {claim.home}: {why}")
    return keeper.pid


def _read_until_closed(fd: int, timeout: float) -> bytes:
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def _scanner_running(scandir: Path) -> bool:
    from .s6 import S6, S6Error

    try:
        return S6.scanner_running(scandir)
    except S6Error:
        return True  # cannot tell: keep holding


def _serve_claim(claim_fd: int, ready_fd: int, scandir: Path) -> int:
    """The keeper: listen on the scan directory's socket, give the claim to each asker of this uid,
    exit once that directory's s6-svscan is gone (the kernel then releases the claim)."""
    if not _scanner_running(scandir):
        os.write(ready_fd, f"no s6-svscan runs on {scandir}: nothing to keep the claim for".encode())
        return 1
    final = scandir / KEEPER_SOCKET
    staging = scandir / f"{KEEPER_SOCKET}.tmp-{secrets.token_hex(8)}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket is 0600: only this uid may connect
    try:
        listener.bind(str(staging))
    finally:
        os.umask(old_mask)
    listener.listen(16)
    os.replace(staging, final)  # a dead keeper's socket is replaced; no asker ever meets half of one
    own = os.stat(final)
    os.write(ready_fd, b"ready")
    os.close(ready_fd)
    listener.settimeout(SCANNER_PROBE_SECONDS)
    while _scanner_running(scandir):
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            try:
                _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
                if uid == os.geteuid():
                    socket.send_fds(conn, [b"claim"], [claim_fd])
            except OSError:
                continue
    try:
        if os.stat(final).st_ino == own.st_ino:
            final.unlink()
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(_serve_claim(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])))
