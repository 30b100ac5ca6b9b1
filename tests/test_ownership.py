"""volume.trusted, the one ownership rule (volume.owned, StoreChain, the scan directory, the
checkpoint, the spool's refused/), on real files and directories."""

from __future__ import annotations

import os

from hermes_lifecycle.volume import trusted


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
