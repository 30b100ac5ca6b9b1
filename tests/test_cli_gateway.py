"""`hermes-state start | stop | restart | status | run`, as the unprivileged user, with a real s6-svscan."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from cli_support import LogWriter, json_lines, one_stderr_line
from conftest import HERMES

from hermes_lifecycle_cli.commands.gateway import observe_slot


@pytest.fixture
def alice(migrated_home):
    assert migrated_home.hermes("create", "alice").returncode == 0
    return migrated_home


def intents(home, profile="alice") -> list[tuple]:
    result = home.hermes("history", profile, "--json")
    return [(e["type"], e["actor"], e["desired"], e["reason"]) for e in json_lines(result.stdout)][1:]


def test_start_stop_restart_always_append_their_intent(alice):
    for verb in ("start", "start", "restart", "stop", "stop"):
        result = alice.hermes(verb, "alice")
        assert result.returncode == 0, result.stderr
    assert intents(alice) == [
        ("started", "cli", "up", None),
        ("started", "cli", "up", None),
        ("started", "cli", "up", "restart"),
        ("stopped", "cli", "down", None),
        ("stopped", "cli", "down", None),
    ]
    assert not alice.scandir.exists()  # nothing here touches s6


def test_the_global_profile_option_and_the_default(alice):
    assert alice.hermes("start", "alice").returncode == 0
    assert intents(alice) == [("started", "cli", "up", None)]
    result = alice.hermes("start")  # no NAME: the root profile, which boot has not made here
    assert result.returncode == 3
    assert "no profile named 'default'" in one_stderr_line(result)


@pytest.mark.parametrize("verb", ["start", "stop", "restart", "status"])
def test_an_invalid_name_is_2(migrated_home, verb):
    result = migrated_home.hermes(verb, "Alice!")
    assert result.returncode == 2
    one_stderr_line(result)


def test_status_without_s6_shows_desired_and_the_last_observed_event(alice):
    writer = LogWriter(alice)
    writer.append("alice", "started", "cli", "up")
    writer.run("alice", 4242, seconds=60, signal=9)
    writer.close()
    [row] = json_lines(alice.hermes("status", "alice", "--json").stdout)
    assert row["desired"] == "up"
    assert (row["last_event"], row["last_actor"], row["last_signal"]) == ("crashed", "supervisor", 9)
    assert row["s6"] is None and "not readable" in row["s6_unavailable"]
    text = alice.hermes("status", "alice").stdout
    assert "desired  up, set by cli" in text
    assert "last     crashed by supervisor" in text and "SIGKILL" in text
    assert "s6       unknown:" in text


@pytest.fixture(params=[False], ids=["up"])
def svscan(alice, request):
    """A real s6-svscan on the home's scan directory, run by the unprivileged user, with alice's slot
    running the built-in gateway (indirect param True: with a `down` file); stopped by its pid at the end."""
    slot = alice.scandir / "gateway-alice"
    slot.mkdir(parents=True)
    if request.param:
        (slot / "down").touch()
    (slot / "run").write_text(f"#!/bin/sh\nexec {HERMES} stand-in alice\n")
    (slot / "run").chmod(0o755)
    from conftest import give_to

    give_to(alice.path, alice.user)
    process = subprocess.Popen(
        ["s6-svscan", str(alice.scandir)], env=alice.env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        user=alice.user.uid, group=alice.user.gid, extra_groups=[],
    )
    try:
        yield slot
    finally:
        subprocess.run(["s6-svscanctl", "-t", str(alice.scandir)], check=False)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until(predicate, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_status_with_s6_shows_what_s6_reports(alice, svscan):
    lock = alice.path / "profiles" / "alice" / ".gateway.lock"

    def gateway_pid():
        text = lock.read_text().strip() if lock.exists() else ""
        return int(text) if text.isdigit() else None

    pid = wait_until(gateway_pid)
    [row] = json_lines(alice.hermes("status", "alice", "--json").stdout)
    assert row["s6"]["up"] is True and row["s6"]["pid"] == pid  # the pid s6 reports holds the lock
    assert row["desired"] == "down"
    text = alice.hermes("status", "alice").stdout
    assert "s6       up for" in text and f"pid {pid}" in text
    assert "not yet as desired" in text  # desired down, s6 has it up: the projector's job
    # Killed by a signal: s6 reports it down (until its restart) with the signal.
    subprocess.run(["s6-svc", "-d", str(svscan)], check=True)
    wait_until(lambda: not json_lines(alice.hermes("status", "alice", "--json").stdout)[0]["s6"]["up"])
    [row] = json_lines(alice.hermes("status", "alice", "--json").stdout)
    assert row["s6"]["wanted_up"] is False and row["s6"]["exit_code"] == 0  # exits 0 on SIGTERM


@pytest.mark.parametrize("svscan", [True], ids=["down"], indirect=True)
def test_status_of_a_slot_that_never_ran_names_no_exit(alice, svscan):
    """s6-svstat says "exitcode 0" for a slot that never started; status must not say "last exit: exit 0"."""
    wait_until(lambda: json_lines(alice.hermes("status", "alice", "--json").stdout)[0]["s6"])
    [row] = json_lines(alice.hermes("status", "alice", "--json").stdout)
    assert row["s6"]["up"] is False and (row["s6"]["exit_code"], row["s6"]["signal"]) == (None, None)
    text = alice.hermes("status", "alice").stdout
    assert "not started since its supervisor started" in text and "last exit" not in text
    # Once it has run and exited (0 on SIGTERM), that exit is said.
    s6 = lambda: json_lines(alice.hermes("status", "alice", "--json").stdout)[0]["s6"]  # noqa: E731
    subprocess.run(["s6-svc", "-u", str(svscan)], check=True)
    wait_until(lambda: s6()["up"])
    subprocess.run(["s6-svc", "-d", str(svscan)], check=True)
    wait_until(lambda: not s6()["up"] and s6()["exit_code"] == 0)
    text = alice.hermes("status", "alice").stdout
    assert "last exit: exit 0" in text and "not started" not in text


def test_slot_status_unavailable_reasons(tmp_path):
    assert "not readable" in observe_slot(str(tmp_path / "nowhere" / "gateway-x"))
    assert "no slot" in observe_slot(str(tmp_path / "gateway-x"))
    (tmp_path / "gateway-x").mkdir()
    assert "nothing supervises" in observe_slot(str(tmp_path / "gateway-x"))


# -- gateway run ------------------------------------------------------------------
def start_gateway(home, *args, env=None):
    process = subprocess.Popen(
        [str(HERMES), *args], env={**home.env(), **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, user=home.user.uid, group=home.user.gid, extra_groups=[],
    )
    line = process.stderr.readline()
    return process, line


def test_gateway_run_holds_the_profile_lock_and_exits_0_on_sigterm(alice):
    first, said = start_gateway(alice, "stand-in", "alice")
    try:
        assert f"running as pid {first.pid}" in said
        second = alice.hermes("stand-in", "alice", timeout=10)
        assert second.returncode == 4
        assert f"already running (pid {first.pid})" in one_stderr_line(second)
        assert first.poll() is None  # in the foreground, still there
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=5) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # The lock went with it: a new instance gets it.
    third, said = start_gateway(alice, "stand-in", env={"HERMES_PROFILE": "alice"})
    third.send_signal(signal.SIGTERM)
    assert third.wait(timeout=5) == 0 and "running as pid" in said


def test_gateway_run_of_a_missing_profile_is_78(migrated_home):
    result = migrated_home.hermes("stand-in", "nobody", timeout=10)
    assert result.returncode == 78
    assert "no such profile" in one_stderr_line(result)


def test_gateway_run_of_a_deleted_profile_is_78(alice):
    assert alice.hermes("delete", "alice", "--yes").returncode == 0
    assert alice.hermes("stand-in", "alice", timeout=10).returncode == 78
