"""volume.py's shared rules, on real files: ``trusted``, the one ownership rule (volume.owned,
StoreChain, the scan directory, the checkpoint, the spool's refused/), and ``read_regular``, the one
bounded read (volume.read_file, the spool, gateway_files)."""

from __future__ import annotations

import errno
import os

import pytest

from hermes_lifecycle.volume import NotRegular, TooLarge, open_nofollow, read_regular, trusted


def test_owner_in_the_set_or_any_owner_for_a_process_reading_its_own_volume(tmp_path):
    info = os.stat(tmp_path)
    assert trusted(info, {info.st_uid})
    assert not trusted(info, {info.st_uid + 1})
    assert trusted(info, None)


def test_private_refuses_group_or_other_write_unless_sticky(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    info = os.stat(shared)
    assert trusted(info, {info.st_uid})
    assert not trusted(info, {info.st_uid}, private=True)
    assert not trusted(info, {info.st_uid}, private=True, sticky=True)  # not sticky yet
    os.chmod(shared, 0o1777)
    assert trusted(os.stat(shared), {info.st_uid}, private=True, sticky=True)
    os.chmod(shared, 0o755)
    assert trusted(os.stat(shared), {info.st_uid}, private=True)


def _read(path, limit, **kwargs):
    fd = open_nofollow(str(path))
    try:
        return read_regular(fd, limit, **kwargs)
    finally:
        os.close(fd)


def test_read_regular_reads_up_to_its_limit_and_refuses_more(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"x" * 10)
    data, info = _read(path, 10)
    assert data == b"x" * 10 and info.st_size == 10
    with pytest.raises(TooLarge) as large:
        _read(path, 9)
    assert large.value.size == 10


def test_read_regular_refuses_a_fifo_without_blocking_and_open_refuses_a_link(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(NotRegular):
        _read(tmp_path / "fifo", 10)
    os.symlink("/dev/zero", tmp_path / "link")
    with pytest.raises(OSError) as failure:
        open_nofollow(str(tmp_path / "link"))
    assert failure.value.errno == errno.ELOOP


def test_read_regular_runs_the_callers_check_before_the_size(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"x" * 10)

    def refuse(info):
        raise PermissionError("not yours")

    with pytest.raises(PermissionError):
        _read(path, 1, check=refuse)
