"""Whether the store's path may be opened, without pathlib: every short-lived reader imports it.

The store's side of the rule ``hermes_lifecycle/volume.py`` keeps for every
other file on the volume (root opens nothing there without refusing links
and special files): SQLite takes a path, not a descriptor, so the same
owner rule (``volume.owned``) is applied here with ``lstat``. Two levels. ``check_store_path`` (everyone): the file itself is a regular
file, not a symbolic link. ``StoreChain`` (the root side: boot, watch, any
process whose effective uid is 0): every component below the volume root
(``HERMES_HOME``) is checked with ``lstat``: no symbolic link, directories
owned by root or the gateway user, the file and its ``-wal``/``-shm`` by the
gateway user (or root), with one link. Because SQLite resolves a path as text (and opens ``-wal`` and
``-shm`` by appending to it), a descriptor-relative ``/proc/self/fd/N/...``
path would not pin the directory; so the chain is checked before the open,
the descriptors SQLite opened are checked after it (``verify_opened``: the
very inodes checked, or refused), and the watch daemon compares the path's
identity with the open file's at every wake-up (``identity``).
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pathlib costs a few ms at import: annotations only
    from pathlib import Path

from ...errors import StoreMissing, StoreUnavailable
from ...volume import owned, trusted

Identity = tuple[int, int]  # (st_dev, st_ino)


def check_store_path(path: "Path | str", *, must_exist: bool) -> None:
    """Refuse a path that is a symbolic link or not a regular file.

    The projector runs as root and reads a file a less privileged user owns:
    following a link there would let that user point it anywhere.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if must_exist:
            raise StoreMissing(
                f"no event store at {path}: run `hermes-state migrate` to create it"
            ) from None
        return
    except OSError as error:
        raise StoreUnavailable(f"cannot reach event store {path}: {error.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise StoreUnavailable(f"event store {path} is a symbolic link: refused")
    if not stat.S_ISREG(info.st_mode):
        raise StoreUnavailable(f"event store {path} is not a regular file: refused")


def identity(path: str) -> Identity | None:
    """The (device, inode) the path names now, without following a final link; None when gone."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


class StoreChain:
    """The checked way from the volume root to the store file, for a process that runs as root.

    (A plain class: a NamedTuple's class creation costs every hook that imports this module.)
    """

    __slots__ = ("path", "volume_root", "directory_owners", "file_owners")

    def __init__(self, path: str, volume_root: str, directory_owners: frozenset, file_owners: frozenset) -> None:
        self.path = path  # the store file, absolute
        self.volume_root = volume_root  # where the checked chain starts (HERMES_HOME, or the file's grandparent)
        self.directory_owners = directory_owners  # uids a directory on the way may belong to
        self.file_owners = file_owners  # uids the file and its -wal/-shm may belong to

    @classmethod
    def for_root(cls, path: str, home: str, gateway_user: str) -> "StoreChain":
        """The chain for ``path``: the gateway user's files below ``home`` (or below the file's
        grandparent, for a ``HERMES_STATE_DB`` outside the home)."""
        import pwd

        path = os.path.abspath(path)
        home = os.path.abspath(home)
        if not path.startswith(home.rstrip("/") + "/"):
            home = os.path.dirname(os.path.dirname(path))
        try:
            gateway = pwd.getpwnam(gateway_user).pw_uid
        except KeyError:
            gateway = 0  # no such user: only root's own files pass
        # Root's own file is no threat to root (doctor warns about it); a hard link is refused by st_nlink.
        return cls(path, home, frozenset({0, gateway}), frozenset({0, gateway}))

    def components(self) -> list[str]:
        """Every path below the volume root, down to the file: each is checked."""
        relative = os.path.relpath(self.path, self.volume_root)
        parts = relative.split(os.sep)
        return [os.path.join(self.volume_root, *parts[: index + 1]) for index in range(len(parts))]

    def check(self, *, must_exist: bool = True) -> dict[str, Identity]:
        """Check the chain now; the identity of each checked component (the file's under its path).

        Raises StoreMissing when the file is not there (unless ``must_exist`` is false: a
        migration creates it, and the components that do exist are checked), StoreUnavailable
        (one line) otherwise.
        """
        try:
            return self._check()
        except StoreMissing:
            if must_exist:
                raise
            return {}

    def _check(self) -> dict[str, Identity]:
        try:
            root = os.stat(self.volume_root)
        except FileNotFoundError:
            raise StoreMissing(f"no event store at {self.path}: run `hermes-state migrate` to create it") from None
        except OSError as error:
            raise StoreUnavailable(f"cannot reach {self.volume_root}: {error.strerror}") from None
        self._owned(self.volume_root, root, self.directory_owners, "directory")
        seen: dict[str, Identity] = {}
        *directories, store = self.components()
        for component in directories:
            info = self._lstat(component)
            if not stat.S_ISDIR(info.st_mode):
                raise StoreUnavailable(f"{component} (on the way to event store {self.path}) is not a directory: refused")
            self._owned(component, info, self.directory_owners, "directory")
            seen[component] = (info.st_dev, info.st_ino)
        info = self._lstat(store)
        if not stat.S_ISREG(info.st_mode):
            raise StoreUnavailable(f"event store {store} is not a regular file: refused")
        self._owned(store, info, self.file_owners, "file")
        if info.st_nlink != 1:
            raise StoreUnavailable(f"event store {store} has {info.st_nlink} hard links, not one: refused")
        seen[store] = (info.st_dev, info.st_ino)
        for suffix in ("-wal", "-shm"):
            try:
                side = os.lstat(store + suffix)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(side.st_mode):
                raise StoreUnavailable(f"{store}{suffix} is a symbolic link or not a regular file: refused")
            self._owned(store + suffix, side, self.file_owners, "file")
        return seen

    def verify_opened(self, checked: dict[str, Identity], descriptors_before: set[str]) -> None:
        """After SQLite opened the file: the chain is still what was checked, and every descriptor
        SQLite opened on the store or its -wal/-shm is the checked file's, or one in its directory
        owned by the gateway user. Closes the window between the check and the open."""
        again = self.check()
        if again != checked:
            raise StoreUnavailable(f"the way to event store {self.path} changed while it was opened: refused")
        store_identity = checked[self.path]
        directory = checked.get(os.path.dirname(self.path))
        names = {os.path.basename(self.path) + suffix for suffix in ("", "-wal", "-shm")}
        found_store = False
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
                info = os.stat(f"/proc/self/fd/{fd}")
            except OSError:
                continue  # closed meanwhile (another thread's)
            if not stat.S_ISREG(info.st_mode) or os.path.basename(target) not in names:
                continue
            if (info.st_dev, info.st_ino) == store_identity:
                found_store = True  # (SQLite may reuse a descriptor an earlier connection left open)
            elif fd not in descriptors_before and (
                not trusted(info, self.file_owners) or (directory is not None and info.st_dev != directory[0])
            ):
                raise StoreUnavailable(f"event store {self.path}: SQLite opened {target}, not the file checked: refused")
        if not found_store:
            raise StoreUnavailable(f"event store {self.path}: the file SQLite opened is not the one checked: refused")

    def _lstat(self, component: str) -> os.stat_result:
        try:
            info = os.lstat(component)
        except FileNotFoundError:
            raise StoreMissing(f"no event store at {self.path}: run `hermes-state migrate` to create it") from None
        except OSError as error:
            raise StoreUnavailable(f"cannot reach event store {self.path}: {component}: {error.strerror}") from None
        if stat.S_ISLNK(info.st_mode):
            raise StoreUnavailable(
                f"{component} is a symbolic link (on the way to event store {self.path}): refused"
            )
        return info

    def _owned(self, component: str, info: os.stat_result, owners: frozenset[int], what: str) -> None:
        owned(component if what == "directory" else f"event store {component}", info, owners, StoreUnavailable)
