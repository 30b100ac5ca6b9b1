"""hermes-agent's real gateway under this project's slots (HERMES_GATEWAY=hermes-agent).

Real parts throughout: hermes-agent 0.19.0 from the package index, its
`hermes -p NAME gateway run --replace` exec'd by the slot's `run` hook as the
unprivileged user, a real s6-svscan and the real watch daemon as the
projector's uid (root under CI), every intent appended by the unprivileged
user. What the gateway itself reports is read from its own
`gateway_state.json`; what happened is read from the log.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import urllib.request
from pathlib import Path

import pytest

from conftest import give_to
from hermes_agent_support import agent_venv
from projector_support import Rig, types, wait_for

pytestmark = pytest.mark.slow

# Generous: hermes-agent imports a great deal before its gateway says it runs (about a second idle).
STARTS_WITHIN = 60


@pytest.fixture
def agent_rig(world_tmp, migrated_home):
    """A rig whose slots run hermes-agent's gateway; the watch daemon started; alice created."""
    rig = Rig(home=migrated_home, root=world_tmp, scandir=world_tmp / "service", gateway_command=None,
              extra_env={"HERMES_GATEWAY": "hermes-agent", "PATH": f"{agent_venv() / 'bin'}:/usr/bin:/bin"})
    try:
        rig.start_scanner()
        rig.boot()
        rig.start_watch()
        rig.reader = rig.start_gateway_watch()
        yield rig
    finally:
        rig.cleanup()


def state_file(rig: Rig, name: str) -> dict:
    """The gateway's own account, as hermes-agent writes it ({} while there is none, or mid-write)."""
    try:
        return json.loads((rig.home.path / "profiles" / name / "gateway_state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def running_as_it_says(rig: Rig, name: str) -> int | None:
    """The pid s6 runs, once the gateway's own file says it runs as that pid."""
    pid = rig.running_pid(name)
    said = state_file(rig, name)
    return pid if pid and said.get("pid") == pid and said.get("gateway_state") == "running" else None


def owner_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])  # effective
    raise AssertionError(f"no Uid line for {pid}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def api_server_env(rig: Rig, name: str, port: int) -> None:
    """hermes-agent's HTTP platform for one profile, in that profile's own .env (it needs nothing outside)."""
    env_file = rig.home.path / "profiles" / name / ".env"
    env_file.write_text(f"API_SERVER_ENABLED=true\nAPI_SERVER_HOST=127.0.0.1\nAPI_SERVER_PORT={port}\n"
                        f"API_SERVER_KEY={secrets.token_hex(32)}\n")
    give_to(env_file.parent, rig.user)


def test_the_real_gateway_starts_crashes_restarts_and_stops_under_its_slot(agent_rig):
    rig = agent_rig
    rig.cli("create", "alice")
    port = free_port()
    api_server_env(rig, "alice", port)
    rig.cli("start", "alice")
    first = wait_for(lambda: running_as_it_says(rig, "alice"), STARTS_WITHIN, "alice's real gateway to run")
    assert owner_of(first) == rig.user.uid
    assert state_file(rig, "alice")["kind"] == "hermes-gateway"
    health = wait_for(lambda: _health(port), 30, "alice's gateway to answer HTTP")
    assert health == 200
    # It is hermes-agent's gateway, run as its own s6 service runs it.
    argv = Path(f"/proc/{first}/cmdline").read_bytes().split(b"\0")
    assert [b"-p", b"alice", b"gateway", b"run", b"--replace"] == argv[-6:-1]
    environ = Path(f"/proc/{first}/environ").read_bytes().split(b"\0")
    assert b"HERMES_S6_SUPERVISED_CHILD=1" in environ and b"HERMES_PROFILE=alice" in environ

    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: (pid := running_as_it_says(rig, "alice")) and pid != first and pid,
                      STARTS_WITHIN, "s6 to run alice's gateway again")
    rig.cli("stop", "alice")
    wait_for(lambda: any((r["type"], r["actor"], r["reason"]) == ("stopped", "supervisor", "requested")
                         for r in rig.history("alice")), 30, "alice's stop to be recorded")
    assert not Path(f"/proc/{second}").exists()
    history = [row for row in rig.history("alice") if row["type"] != "reported"]
    assert types(history) == [
        ("created", "cli", None), ("started", "cli", None), ("started", "supervisor", None),
        ("crashed", "supervisor", None), ("started", "supervisor", None), ("stopped", "cli", None),
        ("stopped", "supervisor", "requested"),
    ]
    runs = [row for row in history if row["type"] == "started" and row["actor"] == "supervisor"]
    assert [row["pid"] for row in runs] == [first, second]
    crash = history[3]
    assert (crash["pid"], crash["signal"], crash["exit_code"]) == (first, 9, None)
    assert rig.differences_from_desired() == []
    # The gateway's own account: each run said it was ready, once, as its own pid, about its own run.
    ready = [row for row in rig.history("alice") if (row["type"], row["reason"]) == ("reported", "ready")]
    assert [(row["pid"], json.loads(row["data"])["run"]) for row in ready] == [
        (run["pid"], run["position"]) for run in runs]
    assert all(0 < json.loads(row["data"])["seconds_to_ready"] < STARTS_WITHIN for row in ready)
    # Its file follows the log: the stop is in it, and the pid s6 stopped is not said to run.
    wait_for(lambda: state_file(rig, "alice").get("desired_state") == "stopped"
             and state_file(rig, "alice").get("gateway_state") == "stopped", 10, "the file to agree with the log")
    assert state_file(rig, "alice")["kind"] == "hermes-gateway"


def _health(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return answer.status
    except OSError:
        return None


def test_a_fatal_configuration_of_the_real_gateway_is_held_down(agent_rig):
    """Its HTTP platform's port is taken, the only platform it has: hermes-agent gives up with
    startup_failed and exit 78, which the slot holds down as fatal-config, never restarted."""
    rig = agent_rig
    rig.cli("create", "bob")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        api_server_env(rig, "bob", taken.getsockname()[1])
        rig.cli("start", "bob")
        wait_for(lambda: any(row["reason"] == "fatal-config" for row in rig.history("bob")), STARTS_WITHIN,
                 "bob's gateway to exit 78")
    said = state_file(rig, "bob")
    assert said["gateway_state"] == "startup_failed" and "already in use" in said["exit_reason"]
    wait_for(lambda: {"startup-failed", "platform-fatal"} <= {r["reason"] for r in rig.history("bob")
                                                              if r["type"] == "reported"}, 10, "bob's own account")
    fatal = next(r for r in rig.history("bob") if r["reason"] == "platform-fatal")
    assert json.loads(fatal["data"])["platform"] == "api_server"
    stop = rig.history("bob")[-1]
    assert (stop["type"], stop["actor"], stop["desired"], stop["exit_code"]) == ("stopped", "supervisor", "down", 78)
    wait_for(lambda: rig.status("bob") and not rig.status("bob")["wantedup"], 10, "s6 to hold bob down")
    assert sum(row["type"] == "started" and row["actor"] == "supervisor" for row in rig.history("bob")) == 1


def test_a_real_crash_loop_is_held_down_by_the_breaker_and_hermes_agents_ledger_stays_out_of_it(agent_rig):
    """Killed each time it runs (as an OOM killer would), the real gateway is held down at the
    breaker's fifth crash. hermes-agent's own respawn ledger would have slept before this start
    (more than 5 starts in 120 s): under the slots it is off, so no start waits on it and the
    breaker alone decides (docs/hermes-agent.md)."""
    rig = agent_rig
    rig.cli("create", "carol")
    ledger = rig.home.path / "profiles" / "carol" / "gateway-starts.log"
    import time

    now = time.time()
    ledger.write_text("".join(f"{now - seconds!r}\n" for seconds in range(10)))
    give_to(ledger.parent, rig.user)
    before = ledger.read_text()
    rig.cli("start", "carol")
    killed: list[int] = []
    started = time.monotonic()
    while not any(row["reason"] == "crash-loop" for row in rig.history("carol")):
        assert time.monotonic() - started < 5 * STARTS_WITHIN, f"no crash-loop after {len(killed)} kills"
        pid = rig.running_pid("carol")
        if pid and pid not in killed and state_file(rig, "carol").get("pid") == pid:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(0.05)
    history = [row for row in rig.history("carol") if row["type"] != "reported"]
    crashes = [row for row in history if row["type"] == "crashed"]
    assert [row["pid"] for row in crashes] == killed == [row["pid"] for row in history
                                                        if row["type"] == "started" and row["actor"] == "supervisor"]
    assert len(crashes) == 5
    assert (history[-1]["type"], history[-1]["desired"], history[-1]["reason"]) == ("stopped", "down", "crash-loop")
    wait_for(lambda: not rig.status("carol")["up"] and not rig.status("carol")["wantedup"], 10, "carol held down")
    assert ledger.read_text() == before  # hermes-agent's ledger was neither read for a backoff nor written
