"""hermes-agent's own lifecycle commands under this project's slots agree with the log (docs/hermes-agent.md).

In an s6 container hermes-agent's `hermes gateway start|stop|restart -p NAME`
send `/command/s6-svc -u|-d|-t /run/service/gateway-NAME`, and its `hermes
profile create|delete` make and remove a profile's directory. Here they run,
as the unprivileged user, hermes-agent 0.19.0 as installed from the package
index, inside a PID namespace whose PID 1 is a real s6-svscan
(tests/s6_pid1.py), beside this project's projector (root), its gateways'
reader (the user) and the image's own `/command/s6-svc`; every slot runs
hermes-agent's real gateway. After every step of a mix of their commands
and this project's, s6 matches the log within a second, and the log says
who asked.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from hermes_agent_support import agent_venv
from projector_support import IS_ROOT, wait_for
from s6_pid1 import SCANDIR, S6Pid1

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not IS_ROOT, reason="a PID namespace and s6-svscan as PID 1 need root (CI runs as root)"),
]

WITHIN = 1.0  # "s6 matches the log within a second"


@pytest.fixture
def box(world_tmp, migrated_home):
    home = migrated_home
    agent_bin = agent_venv() / "bin"
    env = {
        "PATH": f"/command:{agent_bin}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
        "HOME": str(home.path), "HERMES_HOME": str(home.path), "HERMES_USER": home.user.name,
        "S6_PROFILE_GATEWAY_SCANDIR": SCANDIR, "HERMES_GATEWAY": "hermes-agent",
        "HERMES_BIN": str(agent_bin / "hermes-state"), "S6_SVC_REAL": "/usr/bin/s6-svc",
    }
    box = S6Pid1(world_tmp, env)
    box.home = home
    try:
        box.start()
        booted = box.run(["hermes-state", "boot"])
        assert booted.returncode == 0, booted.stdout + booted.stderr
        box.watch = box.spawn(["hermes-state", "watch"], world_tmp / "watch.out")
        box.reader = box.spawn(["hermes-state", "watch-gateways"], world_tmp / "reader.out", user=home.user)
        enabled = as_user(box, "hermes", "plugins", "enable", "hermes-state")
        assert enabled.returncode == 0, enabled.stdout + enabled.stderr
        yield box
    finally:
        box.stop()


def as_user(box, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return box.run(list(argv), user=box.home.user, timeout=timeout)


def log(box) -> list[dict]:
    result = as_user(box, "hermes-state", "sql", "SELECT profile, type, actor, desired, reason, data FROM events "
                     "WHERE type != 'reported' ORDER BY position")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def desired(box) -> dict[str, str]:
    result = as_user(box, "hermes-state", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {row["profile"]: row["desired"] for row in map(json.loads, result.stdout.splitlines())}


def wanted_up(box, name: str) -> bool | None:
    result = subprocess.run(["s6-svstat", "-o", "wantedup", str(box.path(f"{SCANDIR}/gateway-{name}"))],
                            capture_output=True, text=True, timeout=10)
    return result.stdout.strip() == "true" if result.returncode == 0 else None


def agrees(box) -> list[str]:
    """Where s6 is not as the log wants it (empty: it matches)."""
    differences = []
    wanted = desired(box)
    for name, want in wanted.items():
        if wanted_up(box, name) != (want == "up"):
            differences.append(f"{name}: log {want}, s6 {wanted_up(box, name)}")
    for entry in os.listdir(box.path(SCANDIR)):
        if entry.startswith("gateway-") and entry[len("gateway-"):] not in wanted:
            differences.append(f"{entry} has no live profile")
    return differences


def step(box, *argv: str) -> float:
    """One command as the user; then how long until s6 matched the log (at most WITHIN, with room for load)."""
    result = as_user(box, *argv)
    assert result.returncode == 0, (argv, result.stdout, result.stderr)
    done = time.monotonic()
    wait_for(lambda: not agrees(box), WITHIN + 4, f"s6 to match the log after {' '.join(argv)}")
    return time.monotonic() - done


def test_a_mix_of_hermes_agents_commands_and_this_projects_agrees_with_the_log_within_a_second(box):
    waits = [step(box, "hermes", "state", "create", "alice")]
    waits.append(step(box, "hermes", "gateway", "start", "-p", "alice"))
    assert wanted_up(box, "alice") is True
    waits.append(step(box, "hermes", "state", "stop", "alice"))
    waits.append(step(box, "hermes", "gateway", "restart", "-p", "alice"))
    waits.append(step(box, "hermes", "gateway", "stop", "-p", "alice"))
    created = as_user(box, "hermes", "profile", "create", "bob")
    assert created.returncode == 0, created.stdout + created.stderr
    wait_for(lambda: "bob" in desired(box), 10, "hermes-agent's new profile in the log")
    waits.append(step(box, "hermes", "gateway", "start", "-p", "bob"))
    waits.append(step(box, "hermes-state", "restart", "bob"))
    deleted = as_user(box, "hermes", "profile", "delete", "bob", "--yes")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    wait_for(lambda: "bob" not in desired(box), 10, "hermes-agent's deletion in the log")
    wait_for(lambda: not agrees(box), WITHIN + 4, "bob's slot gone")
    assert max(waits) <= WITHIN + 1.0, waits

    said = [(row["profile"], row["type"], row["actor"], row["desired"], row["reason"]) for row in log(box)
            if row["actor"] not in ("supervisor", "boot")]
    assert said == [
        ("alice", "created", "cli", "down", None),
        ("alice", "started", "hermes-agent", "up", None),
        ("alice", "stopped", "cli", "down", None),
        ("alice", "started", "hermes-agent", "up", "restart"),
        ("alice", "stopped", "hermes-agent", "down", None),
        ("bob", "created", "hermes-agent", "down", "profile-directory"),
        ("bob", "started", "hermes-agent", "up", None),
        ("bob", "started", "cli", "up", "restart"),
        ("bob", "stopped", "hermes-agent", "down", None),  # profile delete's own s6-svc -d
        ("bob", "deleted", "hermes-agent", "down", "profile-directory"),
    ]
    via = [json.loads(row["data"]).get("via") for row in log(box) if row["actor"] == "hermes-agent"]
    assert via == ["s6-svc -u", "s6-svc -t", "s6-svc -d", None, "s6-svc -u", "s6-svc -d", None]


def test_hermes_agents_own_status_and_file_agree_with_the_log(box):
    """hermes-agent reads its gateway_state.json and s6: both say what the log says."""
    path = box.home.path / "profiles" / "alice" / "gateway_state.json"
    step(box, "hermes-state", "create", "alice")
    step(box, "hermes-state", "start", "alice")
    said = wait_for(lambda: (s := json.loads(path.read_text())).get("gateway_state") == "running" and s, 60,
                    "alice's gateway to run")
    assert said["desired_state"] == "running"
    status = as_user(box, "hermes", "gateway", "status", "-p", "alice")
    assert f"Gateway is running (PID: {said['pid']})" in status.stdout, status.stdout + status.stderr
    step(box, "hermes-state", "stop", "alice")
    # The gateway exits 1 on a SIGTERM it did not plan and leaves `running` behind; the log knows better.
    said = wait_for(lambda: (s := json.loads(path.read_text())).get("gateway_state") == "stopped" and s, 10,
                    "the file to say alice stopped")
    assert (said["desired_state"], said["exit_reason"]) == ("stopped", "stopped as asked by cli (hermes-state)")
    status = as_user(box, "hermes", "gateway", "status", "-p", "alice")
    assert "Gateway is not running" in status.stdout and "stopped as asked by cli" in status.stdout, status.stdout


def test_the_gateway_user_gains_no_command_over_s6(box):
    """Its s6-svc is the log's (an intent); s6's own control of a slot and any other use stay root's."""
    step(box, "hermes-state", "create", "alice")
    step(box, "hermes-state", "start", "alice")
    slot = f"{SCANDIR}/gateway-alice"
    real = as_user(box, "/usr/bin/s6-svc", "-d", slot)
    assert real.returncode != 0 and "ermission denied" in real.stderr
    for argv in (["-k", slot], ["-d", "-u", slot], ["-u", f"{SCANDIR}/.s6-svscan"], ["-u", "/tmp/gateway-alice"],
                 ["-u", f"{SCANDIR}/gateway-Alice!"]):
        refused = as_user(box, "/command/s6-svc", *argv)
        assert refused.returncode == 2, (argv, refused.stderr)
        assert len(refused.stderr.splitlines()) == 1 and "s6 follows the event log" in refused.stderr
    assert wanted_up(box, "alice") is True
    assert [row["actor"] for row in log(box)][-1] != "hermes-agent"  # nothing refused reached the log
