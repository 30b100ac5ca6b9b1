"""Two containers on one volume: the image's scripts on two fake roots sharing one `opt/data`, each with its
own real s6-svscan (tests/container_sim.py says what is simulated: no Docker engine here).

A second `docker run` on a live volume, or a new image started before the old
one stopped, used to project the same profiles: its gateways exited 4 on the
first's locks, each exit was recorded as a crash, the breaker wrote desired
down into the shared log and the first container's watch daemon obeyed it,
while the log recorded the second's pids as running. The rule now: one
volume, one live projector; the second start says so in one line, exits 4,
and changes nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from container_sim import IMAGE_ID, Container
from projector_support import wait_for
from store_helpers import operator_rows
from test_container_boot import check_running, cli, ok, owner

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the container's start runs as root (CI runs the suite as root)"),
]


def log_rows(box: Container) -> list[dict]:
    return operator_rows(box.volume / "state" / "profiles.db", "SELECT * FROM events ORDER BY position")


def owners(top: Path) -> dict[str, tuple[int, int]]:
    found = {".": owner(top)}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            found[os.path.relpath(os.path.join(root, name), top)] = owner(Path(root, name))
    return found


@pytest.fixture(params=["same-ids", "other-ids"])
def two(world_tmp, hermes_user, request):
    """Two containers of the image, the second mounting the first's volume: with the same `-e HERMES_UID`,
    or with the image's own ids, for which its account step would re-own the whole shared volume."""
    (world_tmp / "first").mkdir()
    (world_tmp / "second").mkdir()
    first = Container(world_tmp / "first", hermes_user)
    first.build(legacy_home=None)
    ids = {"HERMES_UID": str(IMAGE_ID), "HERMES_GID": str(IMAGE_ID)} if request.param == "other-ids" else {}
    second = Container(world_tmp / "second", hermes_user, shared_volume=first.volume, extra_env=ids)
    second.build(legacy_home=None)
    try:
        yield first, second
    finally:
        second.cleanup()
        first.cleanup()


def refused(second: Container) -> None:
    """The second start: one line, exit 4, and nothing of it anywhere."""
    passwd = (second.root / "etc" / "passwd").read_text()
    start = second.start()
    assert (start.returncode, start.stdout) == (4, ""), start.stdout + start.stderr
    [line] = start.stderr.splitlines()
    assert line.startswith(f"hermes-state: the volume {second.volume} is in use by another projector"), line
    assert second.exit_code() == 4
    assert not second.slots() and not (second.scandir / "hermes-state-watch").exists()
    assert not (second.scandir / ".boot-id").exists()
    assert (second.root / "etc" / "passwd").read_text() == passwd  # its account step did not run
    ok(second.stop())


def test_a_second_container_on_a_live_volume_records_nothing_and_starts_nothing(two):
    first, second = two
    ok(first.start())
    cli(first, "start", "default")
    pid = check_running(first, {"default"})["default"]
    log, volume = log_rows(first), owners(first.volume)

    refused(second)
    assert log_rows(first) == log and owners(first.volume) == volume
    assert first.running() == {"default": pid}

    # Between boot and the watch daemon, or while s6 restarts the daemon, the volume stays claimed.
    watch = first.scandir / "hermes-state-watch"
    subprocess.run(["s6-svc", "-dwD", "-T", "10000", str(watch)], check=True, timeout=15)
    refused(second)
    subprocess.run(["s6-svc", "-uwu", "-T", "10000", str(watch)], check=True, timeout=15)
    # The first container's daemon, restarted, holds the claim its container took, and acts.
    cli(first, "create", "bravo")
    cli(first, "start", "bravo")
    check_running(first, {"default", "bravo"})
    assert not [row for row in log_rows(first) if row["type"] == "crashed"]

    # Once the first container has stopped, the volume is free: the second starts on it.
    ok(first.stop())
    wait_for(lambda: not (first.scandir / ".hermes-volume-claim").exists(), 10, "the first keeper gone")
    second.extra_env.pop("HERMES_UID", None)
    second.extra_env.pop("HERMES_GID", None)
    ok(second.start())
    check_running(second, {"default", "bravo"})
    ok(second.stop())
