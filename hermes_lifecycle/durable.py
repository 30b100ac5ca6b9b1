"""Writing a file durably: the one way this package puts bytes on disk that must survive a crash.

A new file is created exclusively (``O_EXCL|O_NOFOLLOW``: a name someone planted
first, a symbolic link above all, fails the open instead of being written
through), written whole, given its mode (``fchmod``: the umask does not decide)
and owner, and fsync'd. ``write_file`` writes it under a temporary dot-name and
then renames it over ``name`` (``replace``) or links it to ``name`` (never
replacing: ``FileExistsError`` when another process came first), then fsyncs
the directory so the name itself survives. Relative to ``dir_fd`` where the
caller holds the directory open (the volume's descriptors, volume.py), else by
path. On any failure the temporary is removed and the OSError raised, for the
caller to say in its own words.
"""

from __future__ import annotations

import os

CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def create(name: str | os.PathLike[str], data: bytes, *, mode: int, dir_fd: int | None = None,
           owner: tuple[int, int] | None = None, sync: bool = True) -> None:
    """A new file ``name`` holding ``data`` (mode ``mode``, ``owner`` as (uid, gid)), fsync'd
    unless ``sync`` is False; removed again when any step fails."""
    fd = os.open(name, CREATE_FLAGS, mode, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            if owner is not None:
                os.fchown(fd, *owner)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _remove(name, dir_fd)  # a full disk fails the write after the create: no half file lingers
        raise


def write_file(name: str | os.PathLike[str], data: bytes, *, mode: int, dir_fd: int | None = None,
               replace: bool = True, temporary: str | None = None,
               owner: tuple[int, int] | None = None, sync: bool = True) -> None:
    """``data`` at ``name``, whole or not at all, the name fsync'd in its directory.

    ``sync`` False: whole or not at all still, but not forced to the disk: for files derived
    again from the log after a crash (the slots: every boot makes them anew), where a sync per
    file would make boot's time grow with the number of profiles.

    ``replace``: rename over what is there; else link, and FileExistsError when ``name`` exists.
    ``temporary``: the staging name in the same directory (default ``.NAME.<random>``)."""
    directory, base = os.path.split(os.fspath(name))
    staging = os.path.join(directory, temporary or f".{base}.{os.urandom(8).hex()}")
    create(staging, data, mode=mode, dir_fd=dir_fd, owner=owner, sync=sync)
    try:
        if replace:
            os.rename(staging, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            os.link(staging, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        _remove(staging, dir_fd)
        raise
    if not replace:
        os.unlink(staging, dir_fd=dir_fd)
    if not sync:
        return
    if dir_fd is not None:
        os.fsync(dir_fd)
    else:
        fsync_directory(directory or ".")


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Make the names in ``path`` (a rename, a new file) survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(name: str | os.PathLike[str], dir_fd: int | None) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass  # gone already, or nothing more can be done: the original error is the one to say
