"""The image built with HERMES_AGENT_VERSION: hermes-agent's `hermes`, its plugin, its gateway in the slots.

The image's own scripts on a fake root, as tests/container_sim.py runs them
(no Docker engine here); the image's environment is the one that holds
hermes-agent 0.19.0 and this package (`.venv-agent`, made by `make test`
from the package index), which the Dockerfile's RUN step makes from the same
two (tests/test_container_image.py runs that step).
"""

from __future__ import annotations

import json
import os

import pytest

from container_sim import Container
from hermes_agent_support import agent_venv
from projector_support import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the container's start runs as root (CI runs the suite as root)"),
]


@pytest.fixture
def agent_container(world_tmp, hermes_user):
    bin_dir = agent_venv() / "bin"
    box = Container(world_tmp, hermes_user, extra_env={
        "HERMES_BIN": str(bin_dir / "hermes-state"),
        "HERMES_AGENT_BIN": str(bin_dir / "hermes"),
        "HERMES_GATEWAY": "hermes-agent",  # what the Dockerfile's ENV sets when built with the argument
        "HERMES_GATEWAY_COMMAND": "",
    })
    box.build(legacy_home=None)
    yield box
    box.cleanup()


def docker_exec_hermes(box: Container, *args: str):
    """`docker exec CONTAINER hermes ...`, as root: the image's `hermes` on PATH."""
    from conftest import run_as
    from container_sim import ROOTFS

    return run_as([str(ROOTFS / "usr" / "local" / "bin" / "hermes"), *args], None, env=box.env, timeout=120)


def test_the_image_with_hermes_agent_answers_hermes_state_and_runs_its_real_gateway(agent_container):
    box = agent_container
    started = box.start()
    assert started.returncode == 0, started.stdout + started.stderr
    config = box.volume / "config.yaml"
    assert "hermes-state" in config.read_text() and os.stat(config).st_uid == box.user.uid  # enabled, as the user

    version = docker_exec_hermes(box, "--version")
    assert version.stdout.startswith("Hermes Agent v0.19.0"), version.stdout + version.stderr
    for args in (("state", "create", "alice"), ("state", "start", "alice")):
        result = docker_exec_hermes(box, *args)
        assert result.returncode == 0, result.stderr
    assert os.stat(box.volume / "profiles" / "alice").st_uid == box.user.uid  # made by the user, not root

    def gateway_running():
        pid = box.running().get("alice")
        try:
            said = json.loads((box.volume / "profiles" / "alice" / "gateway_state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return pid if pid and said.get("pid") == pid and said.get("gateway_state") == "running" else None

    pid = wait_for(gateway_running, 60, "alice's real gateway in the container")

    def history():
        shown = docker_exec_hermes(box, "state", "history", "alice", "--json")
        assert shown.returncode == 0, shown.stderr
        return [json.loads(line) for line in shown.stdout.splitlines()]

    # The gateways' reader (an s6-rc longrun, as the gateway user) put the gateway's own word in the log.
    rows = wait_for(lambda: (rows := history()) and rows[-1]["type"] == "reported" and rows, 15, "alice's ready")
    assert [(row["type"], row["actor"], row["pid"], row["reason"]) for row in rows] == [
        ("created", "cli", None, None), ("started", "cli", None, None), ("started", "supervisor", pid, None),
        ("reported", "gateway", pid, "ready")]
    said = json.loads((box.volume / "profiles" / "alice" / "gateway_state.json").read_text())
    assert said["desired_state"] == "running"
    ok = box.stop()
    assert all(result.returncode == 0 for result in ok), [(r.args, r.stdout, r.stderr) for r in ok]
