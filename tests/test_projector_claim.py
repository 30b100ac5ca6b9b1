"""One volume, one live projector (hermes_lifecycle/projector/claim.py): real s6-svscan, the real
commands as the projector's uid (root under CI), the volume the unprivileged user's.

The container's two-container case runs the image's scripts: tests/test_container_volume.py.
"""

from __future__ import annotations

import os

import pytest

from projector_support import IS_ROOT, rig_for, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def rig(world_tmp, home):
    with rig_for(world_tmp, home, booted=True, HERMES_WATCH_POLL_INTERVAL="0.5") as rig:
        yield rig


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_a_second_projector_on_a_live_volume_is_refused_before_it_records_or_acts(rig):
    rig.append("create", "alice")
    rig.append("start", "alice")
    watch = rig.start_watch()
    pid = wait_for(lambda: rig.running_pid("alice"), 10, "alice up")
    wait_for(lambda: rig.history("alice")[-1]["pid"] == pid, 10, "alice's run recorded")
    boot_id = (rig.scandir / ".boot-id").read_text()
    log = rig.history("alice") + rig.history("default")
    boot_log = (rig.home.path / "logs" / "container-boot.log").read_text()

    second = rig.hermes("watch", timeout=30)
    assert second.returncode == 4 and second.stdout == ""
    assert "is in use by another projector" in one_line(second.stderr)
    again = rig.hermes("boot", timeout=30)
    assert again.returncode == 4 and again.stdout == ""
    assert "is in use by another projector" in one_line(again.stderr)
    up = rig.hermes("up", timeout=30)
    assert up.returncode == 4 and "is in use by another projector" in up.stderr

    assert (rig.scandir / ".boot-id").read_text() == boot_id
    assert rig.history("alice") + rig.history("default") == log
    assert (rig.home.path / "logs" / "container-boot.log").read_text() == boot_log  # the volume is the other's
    assert rig.running_pid("alice") == pid
    assert rig.stop_watch(watch) == 0
    # Released with the daemon: the next one claims the volume.
    rig.boot()
    watch = rig.start_watch()
    rig.append("stop", "alice")
    wait_for(lambda: rig.status("alice")["wantedup"] is False, 10, "alice brought down by the new daemon")
    assert rig.stop_watch(watch) == 0


def test_claim_keeps_the_volume_for_boot_and_watch_and_refuses_another(rig):
    """The container's start: `claim` leaves a keeper; boot and the watch daemon of the same scan
    directory hold the claim it took; a projector of another scan directory does not get it."""
    claimed = rig.hermes("claim")
    assert (claimed.returncode, claimed.stdout, claimed.stderr) == (0, "", "")
    assert (rig.scandir / ".hermes-volume-claim").exists()
    assert rig.hermes("claim").returncode == 0  # asked again: already this scan directory's
    rig.boot()
    watch = rig.start_watch()
    rig.append("create", "bob")
    rig.append("start", "bob")
    wait_for(lambda: rig.running_pid("bob"), 10, "bob up")
    other = rig.root / "other-service"
    other.mkdir()
    elsewhere = rig.hermes("boot", S6_PROFILE_GATEWAY_SCANDIR=str(other))
    assert elsewhere.returncode == 4 and "in use by another projector" in elsewhere.stderr
    assert not list(other.iterdir())
    assert rig.stop_watch(watch) == 0
    # The keeper lives as long as the scan directory's s6-svscan, and then lets go.
    rig.stop_scanner()
    wait_for(lambda: not (rig.scandir / ".hermes-volume-claim").exists(), 10, "the keeper gone with s6-svscan")
    assert rig.hermes("boot", S6_PROFILE_GATEWAY_SCANDIR=str(other)).returncode != 4


def test_claim_without_an_s6_svscan_keeps_nothing(world_tmp, home):
    with rig_for(world_tmp, home) as rig:
        result = rig.hermes("claim")
        assert result.returncode == 1 and "no s6-svscan runs on" in one_line(result.stderr)
        assert not (rig.scandir / ".hermes-volume-claim").exists()


@pytest.mark.skipif(not IS_ROOT, reason="root follows no link on the volume: the check is root's")
def test_root_claims_no_volume_through_a_link_or_a_fifo(rig, world_tmp):
    link = world_tmp / "linked-home"
    link.symlink_to(rig.home.path)
    boot_id = (rig.scandir / ".boot-id").read_text()
    for command in ("boot", "watch", "claim"):
        result = rig.hermes(command, HERMES_HOME=str(link), timeout=30)
        assert result.returncode == 5, (command, result.stderr)
        assert "is a symbolic link" in one_line(result.stderr)
    fifo = world_tmp / "fifo-home"
    os.mkfifo(fifo)
    result = rig.hermes("watch", HERMES_HOME=str(fifo), timeout=30)  # refused at once, never waited on
    assert result.returncode == 2 and "is not a directory" in one_line(result.stderr)
    assert (rig.scandir / ".boot-id").read_text() == boot_id
