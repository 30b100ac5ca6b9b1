"""SIGKILL in the middle of a pass: of the watch daemon, and of the s6-svscan under `hermes-state up`.

Real s6 throughout. To kill at a known point rather than by luck, the
projector's PATH starts with a wrapper around the real ``s6-svscanctl`` that,
for one option, announces itself and waits for the test before running the
real command: the pass is then frozen between two of its steps.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from conftest import HERMES
from projector_support import processes_under, rig_for, types, wait_for

pytestmark = pytest.mark.slow

WRAPPER = """#!/bin/sh
# Test wrapper: hold `s6-svscanctl $HOLD_OPTION` while $HOLD_FILE exists, then run the real one.
if [ "$1" = "$HOLD_OPTION" ] && [ -e "$HOLD_FILE" ]; then
  : > "$HOLD_FILE.held"
  while [ -e "$HOLD_FILE" ]; do sleep 0.05; done
fi
exec {real} "$@"
"""


def _holding(rig, option: str) -> dict[str, str]:
    """Environment for a projector whose `s6-svscanctl OPTION` waits until the hold file goes."""
    bindir = rig.root / "hold-bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "s6-svscanctl"
    wrapper.write_text(WRAPPER.format(real=shutil.which("s6-svscanctl")))
    wrapper.chmod(0o755)
    hold = rig.root / "hold"
    hold.touch()
    return {"PATH": f"{bindir}:{rig.env()['PATH']}", "HOLD_OPTION": option, "HOLD_FILE": str(hold)}


def _release(rig) -> None:
    (rig.root / "hold").unlink(missing_ok=True)


def _held(rig) -> bool:
    return (rig.root / "hold.held").exists()


@pytest.fixture
def rig(world_tmp, home):
    with rig_for(world_tmp, home, booted=True, HERMES_WATCH_POLL_INTERVAL="0.5") as rig:
        yield rig


def test_watch_killed_between_moving_a_slot_out_and_pruning_its_supervisor(rig):
    rig.append("create", "alice", "bob")
    rig.append("start", "alice")
    first = rig.start_watch(**_holding(rig, "-an"))
    alice = wait_for(lambda: rig.running_pid("alice"), 10, "alice up")
    rig.cli("delete", "alice", "--yes")
    wait_for(lambda: _held(rig), 15, "the removal to reach s6-svscanctl -an")
    moved = [entry for entry in os.listdir(rig.scandir) if entry.startswith(".gateway-alice.removing-")]
    assert moved and not (rig.scandir / "gateway-alice").exists()  # out of sight, still supervised
    first.kill()
    first.wait()
    _release(rig)
    rig.append("start", "bob")  # while no daemon runs

    second = rig.start_watch()
    wait_for(lambda: rig.running_pid("bob"), 10, "bob up under the new daemon")
    wait_for(lambda: not [e for e in os.listdir(rig.scandir) if "alice" in e], 15, "the moved slot purged")
    assert not [p for p in processes_under(rig.scandir) if "alice" in p]
    assert not os.path.exists(f"/proc/{alice}")
    assert wait_for(lambda: not rig.differences_from_desired(), 10, "s6 as desired") and rig.stop_watch(second) == 0


def test_watch_killed_between_creating_a_slot_and_the_rescan(rig):
    first = rig.start_watch(**_holding(rig, "-a"))
    rig.append("create", "carol")
    rig.append("start", "carol")
    wait_for(lambda: _held(rig), 15, "the pass to reach s6-svscanctl -a")
    assert (rig.scandir / "gateway-carol").is_dir() and rig.status("carol") is None  # made, nobody supervises it
    first.kill()
    first.wait()
    _release(rig)

    second = rig.start_watch()
    wait_for(lambda: rig.running_pid("carol"), 10, "carol up under the new daemon")
    assert wait_for(lambda: not rig.differences_from_desired(), 10, "s6 as desired") and rig.stop_watch(second) == 0
    assert ("started", "supervisor", None) in types(rig.history("carol"))


@pytest.fixture
def bare_rig(world_tmp, home):
    with rig_for(world_tmp, home) as rig:
        yield rig


def test_s6_svscan_killed_in_the_middle_of_ups_pass(bare_rig):
    rig = bare_rig
    out = rig.root / "up.out"

    def start_up(**extra):
        return subprocess.Popen([str(HERMES), "up"], env=rig.env(**extra), stdout=out.open("wb"),
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    up = start_up(**_holding(rig, "-a"))
    try:
        wait_for(lambda: _held(rig), 30, "boot's pass to reach s6-svscanctl -a")
        scanner = int(next(line for line in out.read_text().splitlines() if "s6-svscan started on" in line)
                      .rsplit("(pid ", 1)[1].rstrip(")"))
        rig.append("create", "dave")
        rig.append("start", "dave")
        os.kill(scanner, signal.SIGKILL)
        _release(rig)
        status = up.wait(timeout=60)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=30)
    text = out.read_text()
    assert status == 1, text
    assert "died (killed by signal 9)" in text and "no supervisor or gateway is left running" in text
    assert not processes_under(rig.scandir)

    again = start_up()
    try:
        wait_for(lambda: "boot done" in out.read_text(), 30, "the next up to boot")
        wait_for(lambda: rig.running_pid("dave"), 10, "dave up")
        assert wait_for(lambda: not rig.differences_from_desired(), 10, "s6 as desired")
    finally:
        again.send_signal(signal.SIGINT)
        assert again.wait(timeout=30) == 0, out.read_text()
    assert not processes_under(rig.scandir)
