"""The container's opt-in `hermes-state serve` longrun, run by real s6 in the simulated container
(tests/container_sim.py says what is simulated: no Docker engine here).

Off by default: the service exits once and s6 does not start it again. With
HERMES_STATE_SERVE=1 it serves the container's store as the gateway user.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from container_sim import S6_RC, Container
from projector_support import wait_for
from serve_support import Server, free_port

pytestmark = pytest.mark.slow

SERVICE = "hermes-state-serve"


def add_service(box: Container) -> Path:
    """What s6-rc does with the longrun at start: a service directory under the supervision tree."""
    service = box.scandir / SERVICE
    service.mkdir()
    words = " ".join(f"'{word}'" for word in box.argv(S6_RC / SERVICE / "run"))
    (service / "run").write_text(f"#!/bin/sh\nexec {words}\n")
    (service / "run").chmod(0o755)
    subprocess.run(["s6-svscanctl", "-a", str(box.scandir)], check=True, timeout=10)
    wait_for(lambda: (service / "supervise" / "status").exists(), 10, "the service supervised")
    return service


def svstat(service: Path, fields: str) -> list[str]:
    result = subprocess.run(["s6-svstat", "-o", fields, str(service)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.fixture
def booted(world_tmp, hermes_user, request):
    box = Container(world_tmp, hermes_user, extra_env=dict(request.param))
    box.build(legacy_home=None)
    try:
        start = box.start()
        assert start.returncode == 0, start.stdout + start.stderr
        yield box
        box.stop()
    finally:
        box.cleanup()


def test_the_longrun_is_in_the_user_bundle():
    assert (S6_RC / "user" / "contents.d" / SERVICE).exists()
    assert (S6_RC / SERVICE / "type").read_text().strip() == "longrun"
    assert (S6_RC / SERVICE / "dependencies.d" / "base").exists()


@pytest.mark.parametrize("booted", [{}, {"HERMES_STATE_SERVE": "yes"}], indirect=True, ids=["unset", "malformed"])
def test_off_unless_asked_it_exits_once_and_stays_down(booted):
    service = add_service(booted)
    wait_for(lambda: svstat(service, "up,wantedup") == ["false", "false"], 10, "the service down, not wanted up")
    time.sleep(2.5)  # s6 would have restarted it twice by now
    assert svstat(service, "up,wantedup,exitcode") == ["false", "false", "0"]


def test_asked_for_it_serves_the_containers_store_as_the_gateway_user(world_tmp, hermes_user):
    port = free_port()
    box = Container(world_tmp, hermes_user,
                    extra_env={"HERMES_STATE_SERVE": "1", "HERMES_STATE_SERVE_LISTEN": f"127.0.0.1:{port}"})
    box.build(legacy_home=None)
    try:
        start = box.start()
        assert start.returncode == 0, start.stdout + start.stderr
        service = add_service(box)
        pid = int(wait_for(lambda: (p := svstat(service, "up,pid"))[0] == "true" and p[1], 10, "the server up"))
        # s6 says up from its fork, while the run script is still root: wait for the drop itself
        # (s6-setuidgid to the gateway user, then the exec of hermes-state serve in the same process).
        wait_for(lambda: _uids(pid) == [hermes_user.uid] * 4 and _program(pid) == "serve", 10,
                 "the server running as the gateway user")
        server = Server(process=None, port=port, log=box.base / "svscan.log")  # s6 owns the process
        # store_ok is 0 until the server's first quick check (in the background) has finished.
        families = wait_for(lambda: _checked(_scrape(server)), 15, "/metrics answering, the store checked")
        assert families["hermes_state_store_ok"][0].value == 1.0
        assert {s.labels["profile"] for s in families["hermes_gateway_desired_up"]} == {"default"}
        subprocess.run(["s6-svc", "-dwD", "-T", "10000", str(service)], check=True, timeout=15)
        assert svstat(service, "up,exitcode") == ["false", "0"]  # SIGTERM: a clean stop
        box.stop()
    finally:
        box.cleanup()


def _uids(pid: int) -> list[int]:
    """Real, effective, saved and file-system uid of ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    return [int(value) for value in next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]]


def _program(pid: int) -> str:
    """The word after the executable that runs as ``pid`` (``serve`` once hermes-state serve runs)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return next((word.decode() for before, word in zip(argv, argv[1:]) if before.endswith(b"hermes-state")), "")


def _checked(families):
    return families if families and families["hermes_state_store_ok"][0].value == 1.0 else None


def _scrape(server: Server):
    try:
        return server.metrics()
    except OSError:
        return None
