"""durable.py, the one way a file is written to survive a crash: on real files in a temp directory.

The callers' own messages and modes are held by their suites (test_fleet_wing, test_pg_projector,
test_projector_*, test_cli_profiles, test_root_reads); here, what every caller now relies on."""

from __future__ import annotations

import os
import stat

import pytest

from hermes_lifecycle import durable


@pytest.mark.parametrize("sync", [True, False], ids=["synced", "unsynced (the slots)"])
def test_write_file_replaces_whole_with_its_mode_and_leaves_no_temporary(tmp_path, sync):
    target = tmp_path / "file"
    target.write_bytes(b"old")
    old_umask = os.umask(0o077)
    try:
        durable.write_file(target, b"new\n", mode=0o644, sync=sync)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # fchmod: the umask does not decide
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_write_file_relative_to_a_directory_descriptor(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        durable.write_file("kept", b"fact", mode=0o600, dir_fd=fd, temporary=".kept.tmp")
    finally:
        os.close(fd)
    assert (tmp_path / "kept").read_bytes() == b"fact"
    assert sorted(os.listdir(tmp_path)) == ["kept"]


def test_without_replace_the_first_writer_wins_and_no_temporary_is_left(tmp_path):
    target = tmp_path / "host_id"
    durable.write_file(target, b"first\n", mode=0o644, replace=False)
    with pytest.raises(FileExistsError):
        durable.write_file(target, b"second\n", mode=0o644, replace=False)
    assert target.read_bytes() == b"first\n"
    assert sorted(os.listdir(tmp_path)) == ["host_id"]


def test_a_planted_link_at_the_temporary_name_is_never_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    os.symlink(victim, tmp_path / ".target.tmp")
    with pytest.raises(FileExistsError):  # O_EXCL|O_NOFOLLOW: the planted name fails the open
        durable.write_file(tmp_path / "target", b"data", mode=0o644, temporary=".target.tmp")
    assert victim.read_bytes() == b"untouched"
    assert not (tmp_path / "target").exists()
    with pytest.raises(OSError):
        durable.create(tmp_path / ".target.tmp", b"data", mode=0o644)
    assert victim.read_bytes() == b"untouched"


def test_a_failed_rename_removes_the_temporary(tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "inside").write_bytes(b"")  # a non-empty directory: rename over it fails
    with pytest.raises(OSError):
        durable.write_file(tmp_path / "target", b"data", mode=0o644)
    assert sorted(os.listdir(tmp_path)) == ["target"]


def test_the_host_id_is_never_written_through_a_link_at_a_guessable_staging_name(tmp_path):
    """It was staged at ``.host-id.PID`` with write_text, which followed a link planted there: the
    id went into the link's target (and that file was made 0644). Now the staging name is random
    and opened O_EXCL|O_NOFOLLOW."""
    from hermes_lifecycle.settings import Settings

    state = tmp_path / "state"
    state.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    victim.chmod(0o600)
    os.symlink(victim, state / f".host-id.{os.getpid()}")
    settings = Settings.from_env({"HERMES_HOME": str(tmp_path)})
    host_id = settings.host_id()
    assert (state / "host-id").read_text() == host_id + "\n"
    assert victim.read_bytes() == b"untouched"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
