"""`hermes-state up`: its own s6-svscan, boot, watch in the foreground; Ctrl-C stops what it started only."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from conftest import HERMES
from projector_support import IS_ROOT, rig_for, processes_under, types, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def rig(world_tmp, home):
    with rig_for(world_tmp, home) as rig:
        yield rig


def _start_up(rig, **extra):
    out = (rig.root / "up.out").open("wb")
    return subprocess.Popen([str(HERMES), "up"], env=rig.env(**extra), stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def _stop(up: subprocess.Popen, how: signal.Signals) -> int:
    """Signal `hermes-state up` and wait for it; killed if it hangs (the rig then kills its s6-svscan)."""
    up.send_signal(how)
    try:
        return up.wait(timeout=30)
    except subprocess.TimeoutExpired:
        up.kill()
        raise


def _output(rig) -> str:
    return (rig.root / "up.out").read_text()


def test_up_runs_its_own_scanner_and_ctrl_c_stops_everything_it_started(rig):
    # A slot left from an earlier run, with no s6-svscan: up clears it, as a container's tmpfs starts empty.
    stale = rig.scandir / "gateway-stale"
    stale.mkdir(parents=True)
    (stale / "run").write_text("#!/bin/sh\nexec sleep 1000\n")
    (stale / "run").chmod(0o755)
    up = _start_up(rig)
    try:
        wait_for(lambda: "boot done" in _output(rig), 20, "up to boot")
        rig.append("create", "alice")
        rig.append("start", "alice")
        wait_for(lambda: rig.running_pid("alice"), 5, "alice up")
        wait_for(lambda: "by supervisor" in _output(rig), 5, "the supervisor's start printed")
    finally:
        status = _stop(up, signal.SIGINT)
    text = _output(rig)
    assert status == 0, text
    assert "s6-svscan started on" in text and "cleared 1 slot(s)" in text
    assert "alice started by cli desired up" in text and "-> up alice" in text
    assert "stopped; every gateway is down" in text
    assert not processes_under(rig.scandir)
    assert not stale.exists()
    assert types(rig.history("alice"))[-1] == ("stopped", "supervisor", "shutdown")


def test_up_leaves_a_running_scanner_alone(rig):
    rig.start_scanner()
    up = _start_up(rig)
    try:
        wait_for(lambda: "boot done" in _output(rig), 20, "up to boot")
    finally:
        status = _stop(up, signal.SIGTERM)
    assert status == 0, _output(rig)
    assert "already runs" in _output(rig)
    assert rig.scanner.poll() is None  # still running: not ours to stop
    assert rig.status("default") is not None


@pytest.mark.skipif(not IS_ROOT, reason="only root refuses a scan directory the user could redirect")
def test_root_refuses_a_scan_directory_inside_the_users_volume(rig):
    env = rig.env()
    del env["S6_PROFILE_GATEWAY_SCANDIR"]  # the embedded default: $HERMES_HOME/run/service
    result = subprocess.run([str(HERMES), "up"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "unsafe for root" in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_embedded_default_as_one_ordinary_user(home):
    """What `make run` does on a laptop: everything as one unprivileged user, under one HERMES_HOME."""
    kwargs = {} if home.user.is_self else {"user": home.user.uid, "group": home.user.gid, "extra_groups": []}
    output = home.path / "up.out"
    with output.open("wb") as out:
        up = subprocess.Popen([str(HERMES), "up"], env=home.env(), stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, **kwargs)
    try:
        wait_for(lambda: "boot done" in output.read_text(), 30, "up to boot")
        assert home.hermes("create", "alice").returncode == 0
        assert home.hermes("start", "alice").returncode == 0
        wait_for(lambda: "running as pid" in home.hermes("status", "alice").stdout, 10, "alice up")
    finally:
        try:
            status = _stop(up, signal.SIGINT)
        finally:
            for line in processes_under(home.scandir):
                os.kill(int(line.split()[0]), signal.SIGKILL)
    assert status == 0, output.read_text()
    assert not processes_under(home.scandir)
    owners = {path.stat().st_uid for path in [home.db, home.scandir, home.scandir / "gateway-alice"]}
    assert owners == {home.user.uid}  # nothing made by or for root
    history = [(e["type"], e["actor"], e["reason"]) for e in
               map(json.loads, home.hermes("history", "alice", "--json").stdout.splitlines())]
    assert history[-1] == ("stopped", "supervisor", "shutdown")


# -- issue 11, item 7: the s6-svscan dies under `up` ------------------------------------------
def _scanner_pid(rig) -> int:
    line = wait_for(lambda: [l for l in _output(rig).splitlines() if "s6-svscan started on" in l], 20, "up's s6-svscan")
    return int(line[0].rsplit("(pid ", 1)[1].rstrip(")"))


def _supervisors_and_gateways(rig) -> list[int]:
    """The long-lived processes in the scan directory (not a hook or an s6-svstat passing through)."""
    return [int(line.split()[0]) for line in processes_under(rig.scandir) if line.split()[1] in ("s6-supervise", "gateway")]


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _up_with_gateways(rig, names, **extra):
    up = _start_up(rig, **extra)
    wait_for(lambda: "boot done" in _output(rig), 30, "up to boot")
    rig.append("create", *names)
    rig.append("start", *names)
    for name in names:
        wait_for(lambda: rig.running_pid(name), 10, f"{name} up")
        wait_for(lambda: ("started", "supervisor", None) in types(rig.history(name)), 10, f"{name}'s start recorded")
    return up


def test_up_notices_its_scanner_killed_brings_everything_down_and_the_next_up_starts(rig):
    names = ["alice", "bob", "stubborn"]  # stubborn ignores SIGTERM: only the slot's timeout-kill ends it
    up = _up_with_gateways(rig, names)
    try:
        scanner = _scanner_pid(rig)
        running = _supervisors_and_gateways(rig)
        assert len(running) >= 2 * len(names) + 1  # a supervisor and a gateway each, and default's supervisor
        os.kill(scanner, signal.SIGKILL)
        status = up.wait(timeout=60)  # the slot's timeout-kill (10 s) bounds the stubborn one
    finally:
        if up.poll() is None:
            _stop(up, signal.SIGINT)
    text = _output(rig)
    assert status == 1, text
    assert f"s6-svscan (pid {scanner})" in text and "died (killed by signal 9)" in text
    assert "no supervisor or gateway is left running" in text and "every gateway is down" not in text
    assert not [pid for pid in running if _alive(pid)], processes_under(rig.scandir)
    for name in ["alice", "bob"]:
        assert types(rig.history(name))[-1] == ("stopped", "supervisor", "shutdown")  # through their finish

    # The next `up` starts, and boot brings back what is desired up.
    (rig.root / "up.out").unlink()
    again = _start_up(rig)
    try:
        wait_for(lambda: "boot done" in _output(rig), 30, "the next up to boot")
        for name in names:
            wait_for(lambda: rig.running_pid(name), 10, f"{name} up again")
    finally:
        assert _stop(again, signal.SIGINT) == 0, _output(rig)
    assert not processes_under(rig.scandir)


def test_up_killed_with_its_scanner_the_next_up_brings_the_orphans_down_and_starts(rig):
    up = _up_with_gateways(rig, ["alice"])
    scanner = _scanner_pid(rig)
    orphans = _supervisors_and_gateways(rig)
    up.kill()
    up.wait()
    os.kill(scanner, signal.SIGKILL)
    wait_for(lambda: not _alive(scanner), 5, "s6-svscan gone")
    assert all(_alive(pid) for pid in orphans)  # supervisors and gateways run on, nobody to stop them

    (rig.root / "up.out").unlink()
    again = _start_up(rig)
    try:
        wait_for(lambda: "boot done" in _output(rig), 40, "the next up to boot")
        assert "brought down 3 service(s) still supervised with no s6-svscan" in _output(rig)
        assert not [pid for pid in orphans if _alive(pid)]
        wait_for(lambda: rig.running_pid("alice"), 10, "alice up again")
    finally:
        assert _stop(again, signal.SIGINT) == 0, _output(rig)
    assert not processes_under(rig.scandir)
    alice = types(rig.history("alice"))
    assert ("stopped", "supervisor", "shutdown") in alice and alice[-1] == ("stopped", "supervisor", "shutdown")
