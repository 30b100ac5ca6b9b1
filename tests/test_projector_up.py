"""`hermes state up`: its own s6-svscan, boot, watch in the foreground; Ctrl-C stops what it started only."""

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
    return subprocess.Popen([str(HERMES), "state", "up"], env=rig.env(**extra), stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def _stop(up: subprocess.Popen, how: signal.Signals) -> int:
    """Signal `hermes state up` and wait for it; killed if it hangs (the rig then kills its s6-svscan)."""
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
    result = subprocess.run([str(HERMES), "state", "up"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "unsafe for root" in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_embedded_default_as_one_ordinary_user(home):
    """What `make run` does on a laptop: everything as one unprivileged user, under one HERMES_HOME."""
    kwargs = {} if home.user.is_self else {"user": home.user.uid, "group": home.user.gid, "extra_groups": []}
    output = home.path / "up.out"
    with output.open("wb") as out:
        up = subprocess.Popen([str(HERMES), "state", "up"], env=home.env(), stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, **kwargs)
    try:
        wait_for(lambda: "boot done" in output.read_text(), 30, "up to boot")
        assert home.hermes("profile", "create", "alice").returncode == 0
        assert home.hermes("gateway", "start", "-p", "alice").returncode == 0
        wait_for(lambda: "running as pid" in home.hermes("gateway", "status", "-p", "alice").stdout, 10, "alice up")
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
               map(json.loads, home.hermes("profile", "history", "alice", "--json").stdout.splitlines())]
    assert history[-1] == ("stopped", "supervisor", "shutdown")
