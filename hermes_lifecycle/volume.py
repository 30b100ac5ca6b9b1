"""Opening files on the volume: never through a link, never a special file, never read unbounded.

docs/reliability.md: "Root opens nothing on the volume without refusing links
and special files." The volume (``HERMES_HOME``) belongs to the gateway user,
so every name on it, and every directory on the way, is that user's input: a
symbolic link to another user's file, a FIFO that blocks ``open`` forever, a
link to ``/dev/zero`` that never ends. This module is the one way a process
opens something there by itself:

- ``open_directory``: as root, the volume root as configured (an operator's
  setting, as ``StoreChain`` takes it), then every directory below it with
  ``O_NOFOLLOW|O_DIRECTORY`` relative to the one above, each owned by root or
  the gateway user; the descriptor of the last one.
- ``read_file``: a file opened relative to that descriptor with
  ``O_NOFOLLOW|O_NONBLOCK|O_NOCTTY`` (a link fails, a FIFO never blocks),
  then ``fstat``: a regular file (as root: of root or the gateway user, with
  one link), at most ``limit`` bytes, read bounded (a file that grows is
  refused, never read on). Its two steps are the one bounded read the gateway
  user's own readers use too (the spool, ``gateway_files``): ``open_nofollow``
  and ``read_regular`` (regular, the caller's owner check, the limit).

A process that is not root reads its own volume: only the file itself is
checked (its form and size), the directories are its own. SQLite opens the
store by its path, so ``backends/sqlite/paths.StoreChain`` applies the same
rules (``owned``) to the same components with ``lstat`` before and after the
open, and checks the descriptors SQLite opened. What the rule refuses is one
line, exit 5 (``VolumeRefused``, or the caller's own class); a file that
cannot be read now (missing, permission denied, an I/O error) is the
``OSError`` itself, for the caller to say (the legacy import retries it).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Callable, Collection

from .errors import StoreUnavailable

READ_CHUNK = 65536


class VolumeRefused(StoreUnavailable):
    """A path on the volume that may not be opened or read (the reason in one line, exit 5)."""


def owners_for(gateway_user: str) -> frozenset[int] | None:
    """Who may own what root opens on the volume (root and the gateway user); None when this
    process is not root: it reads its own volume, and only a file's form is checked."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        return frozenset({0, pwd.getpwnam(gateway_user).pw_uid})
    except KeyError:
        return frozenset({0})  # no such user: only root's own files pass


def trusted(info: os.stat_result, owners: Collection[int] | None, *, private: bool = False,
            sticky: bool = False) -> bool:
    """The one ownership rule: ``info`` belongs to one of ``owners`` (None: anyone's, a process
    reading its own volume); ``private``: and no one else (group, others) may write it, unless it
    is a ``sticky`` directory, where others cannot rename what is not theirs (/tmp)."""
    if owners is not None and info.st_uid not in owners:
        return False
    shared = bool(info.st_mode & 0o022) and not (sticky and info.st_mode & stat.S_ISVTX)
    return not (private and shared)


def owned(path: str, info: os.stat_result, owners: frozenset[int] | None,
          error: type[StoreUnavailable] = VolumeRefused) -> None:
    """The owner rule, for directories and files alike: root or the gateway user."""
    if not trusted(info, owners):
        raise error(f"{path} belongs to uid {info.st_uid}, not to root or the gateway user: refused")


def open_directory(volume_root: str, relative: str, owners: frozenset[int] | None,
                   error: type[StoreUnavailable] = VolumeRefused) -> int:
    """A descriptor on ``volume_root/relative``, reached without following a link below the root
    (as root: every directory of an owner in ``owners``); OSError when one cannot be opened now."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    fd = os.open(volume_root, flags)
    where = volume_root
    try:
        owned(where, os.fstat(fd), owners, error)
        for part in [p for p in relative.split(os.sep) if p not in ("", ".")]:
            if part == "..":
                raise error(f"{os.path.join(volume_root, relative)}: '..' on the volume: refused")
            where = os.path.join(where, part)
            try:
                inner = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as failure:
                if failure.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                # A symbolic link (or a file) where a directory should be.
                raise error(f"cannot open {where} without following a link: {failure.strerror}") from None
            os.close(fd)
            fd = inner
            owned(where, os.fstat(fd), owners, error)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: str, *, limit: int, volume_root: str | None, owners: frozenset[int] | None,
              what: str = "", error: type[StoreUnavailable] = VolumeRefused) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit``; ``error`` (one line) when the rule
    refuses it, OSError when it cannot be read now.

    With ``owners`` (root) and ``path`` below ``volume_root``, every directory on the way is
    opened by ``open_directory``; the file itself is never followed, never blocks, and as root
    must be root's or the gateway user's with one link. ``what`` names it in messages.
    """
    name = what or path
    directory, base = os.path.split(os.path.abspath(path))
    root = os.path.abspath(volume_root) if volume_root else None
    below = root is not None and owners is not None and (directory + "/").startswith(root.rstrip("/") + "/")
    if below:
        dir_fd = open_directory(root, os.path.relpath(directory, root), owners, error)  # type: ignore[arg-type]  # below: root is set
    else:
        dir_fd = None
    try:
        try:
            fd = open_nofollow(base if dir_fd is not None else path, dir_fd=dir_fd)
        except OSError as failure:
            if failure.errno != errno.ELOOP:
                raise
            # A symbolic link ("Too many levels of symbolic links"), never followed.
            raise error(f"{name} refused: {failure.strerror}") from None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)

    def root_rule(info: os.stat_result) -> None:
        owned(name, info, owners, error)
        if owners is not None and info.st_nlink != 1:  # a hard link to someone else's file
            raise error(f"{name} has {info.st_nlink} hard links, not one: refused")

    try:
        return read_regular(fd, limit, check=root_rule)[0]
    except NotRegular:
        raise error(f"{name} is not a regular file: refused") from None
    except TooLarge as large:
        raise error(f"{name} is {large.size} bytes, over {limit}: refused" if large.size is not None
                    else f"{name} is over {limit} bytes: refused") from None
    finally:
        os.close(fd)


class NotRegular(Exception):
    """read_regular's refusal of a link's target, a directory, a FIFO, a device: the caller says it."""


class TooLarge(Exception):
    """read_regular's refusal of a file over its limit: ``size`` as fstat said, None when it grew
    while it was read."""

    def __init__(self, size: int | None) -> None:
        super().__init__(size)
        self.size = size


def open_nofollow(name: str, *, dir_fd: int | None = None) -> int:
    """A descriptor to read ``name``: a link fails (ELOOP), a FIFO never blocks, a tty is not taken."""
    return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dir_fd)


def read_regular(fd: int, limit: int,
                 check: Callable[[os.stat_result], None] | None = None) -> tuple[bytes, os.stat_result]:
    """The bytes of the file open on ``fd`` and its fstat: NotRegular unless it is a regular file,
    then ``check`` (the caller's owner rule), then TooLarge over ``limit`` bytes, before or while
    it is read (a file that grows is never read on). OSError as it comes; the caller closes ``fd``."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegular()
    if check is not None:
        check(info)
    if info.st_size > limit:
        raise TooLarge(info.st_size)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, min(READ_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), info
        size += len(chunk)
        if size > limit:  # grew after the fstat
            raise TooLarge(None)
        chunks.append(chunk)
