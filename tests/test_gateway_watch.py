"""`hermes-state watch-gateways`: a gateway's own gateway_state.json into the log, the log back into the file.

Real parts: s6-svscan, the slots' hooks and the test gateway (projector_support)
give each profile a real supervised run with a real pid; the daemon runs as
the unprivileged user with real watchdog observers; its input, the
gateway_state.json a gateway keeps, is written here as the gateway user, in
hermes-agent 0.19.0's shape (gateway/status.py) and with its discipline
(temporary file, then rename). hermes-agent's own gateway writing it is
tests/test_hermes_agent_gateway.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import give_to, run_as
from projector_support import IS_ROOT, rig_for, wait_for

pytestmark = pytest.mark.slow

WITHIN = 2.0  # "within about a second", with room for a loaded machine


@pytest.fixture
def rig(world_tmp, home):
    with rig_for(world_tmp, home, booted=True, HERMES_WATCH_POLL_INTERVAL="0.5") as rig:
        rig.start_watch()
        yield rig


def running(rig, name: str) -> int:
    rig.append("create", name)
    (rig.home.path / "profiles" / name).mkdir(parents=True, exist_ok=True)
    (rig.home.path / "profiles" / name / "SOUL.md").write_text("")
    give_to(rig.home.path / "profiles", rig.user)
    rig.append("start", name)
    pid = wait_for(lambda: rig.running_pid(name), 10, f"{name} up")
    wait_for(lambda: any(r["type"] == "started" and r["actor"] == "supervisor" for r in rig.history(name)), 10,
             f"{name}'s start recorded")
    return pid


def state_path(rig, name: str) -> Path:
    return rig.home.path / "profiles" / name / "gateway_state.json"


def gateway_writes(rig, name: str, pid: int, state: str, **fields) -> float:
    """What hermes-agent's write_runtime_status does, as the gateway user: merge, temporary file, rename."""
    path = state_path(rig, name)
    content = {"pid": pid, "kind": "hermes-gateway", "argv": ["hermes", "gateway", "run"], "start_time": 1,
               "gateway_state": state, "exit_reason": None, "restart_requested": False, "active_agents": 0,
               "platforms": {}, "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), **fields}
    write_as_user(rig, path, json.dumps(content, separators=(",", ":")))
    return time.monotonic()


def write_as_user(rig, path: Path, text: str) -> None:
    code = ("import os, sys; p = sys.argv[1]; t = p + '.tmp'; open(t, 'w').write(sys.argv[2]); os.replace(t, p)")
    result = run_as(["/usr/bin/python3", "-c", code, str(path), text], rig.user, env=rig.env(), timeout=30)
    assert result.returncode == 0, result.stderr


def reports(rig, name: str) -> list[dict]:
    return [row for row in rig.history(name) if row["type"] == "reported"]


def reasons(rig, name: str) -> list[str]:
    return [row["reason"] for row in reports(rig, name)]


def test_the_gateways_transitions_land_in_the_log_within_a_second_with_its_reasons(rig):
    pid = running(rig, "alice")
    reader = rig.start_gateway_watch()
    gateway_writes(rig, "alice", pid, "starting")
    steps = [
        ("running", {}, "ready"),
        ("degraded", {}, "degraded"),
        ("running", {}, "recovered"),
        ("running", {"platforms": {"telegram": {"state": "fatal", "error_code": "unauthorized",
                                                "error_message": "bad token"}}}, "platform-fatal"),
        ("running", {"platforms": {"telegram": {"state": "connected"}}}, "platform-recovered"),
        ("draining", {}, "draining"),
        ("stopped", {"exit_reason": "planned-stop"}, "stopped"),
    ]
    for state, fields, reason in steps:
        wrote = gateway_writes(rig, "alice", pid, state, **fields)
        wait_for(lambda: reasons(rig, "alice")[-1:] == [reason], WITHIN + 5, f"{reason} in the log")
        assert time.monotonic() - wrote < WITHIN, f"{reason} took {time.monotonic() - wrote:.2f} s"
    rows = reports(rig, "alice")
    assert [row["reason"] for row in rows] == [reason for _, _, reason in steps]
    run = next(r for r in rig.history("alice") if r["type"] == "started" and r["actor"] == "supervisor")
    for row in rows:
        data = json.loads(row["data"])
        assert (row["actor"], row["desired"], row["pid"], data["run"]) == ("gateway", None, pid, run["position"])
    ready = json.loads(rows[0]["data"])
    assert 0 <= ready["seconds_to_ready"] < 60
    assert json.loads(rows[3]["data"])["error_message"] == "bad token"
    assert json.loads(rows[-1]["data"])["exit_reason"] == "planned-stop"
    # The history a person reads names them.
    table = rig.cli("history", "alice")
    assert "reported" in table and "ready in" in table and "platform-fatal: telegram" in table
    assert rig.stop_watch(reader) == 0


def test_a_restarted_reader_appends_nothing_twice_and_what_the_file_still_shows(rig):
    pid = running(rig, "alice")
    first = rig.start_gateway_watch()
    gateway_writes(rig, "alice", pid, "running")
    wait_for(lambda: reasons(rig, "alice") == ["ready"], WITHIN + 5, "ready")
    assert rig.stop_watch(first) == 0
    gateway_writes(rig, "alice", pid, "degraded")  # while no reader runs
    second = rig.start_gateway_watch()
    wait_for(lambda: reasons(rig, "alice") == ["ready", "degraded"], WITHIN + 5, "degraded caught up")
    third = rig.start_gateway_watch()  # two readers at once: the log, not memory, decides
    time.sleep(1.5)
    assert reasons(rig, "alice") == ["ready", "degraded"]
    for reader in (second, third):
        assert rig.stop_watch(reader) == 0


def test_a_file_left_by_another_process_reports_nothing(rig):
    pid = running(rig, "alice")
    reader = rig.start_gateway_watch()
    gateway_writes(rig, "alice", pid + 100000, "running")
    time.sleep(1.5)
    assert reasons(rig, "alice") == []
    gateway_writes(rig, "alice", pid, "running")
    wait_for(lambda: reasons(rig, "alice") == ["ready"], WITHIN + 5, "this run's ready")
    assert rig.stop_watch(reader) == 0


HOSTILE = {
    "a link": lambda path: os.symlink("/etc/passwd", path),
    "a fifo": lambda path: os.mkfifo(path),
    "too big": lambda path: path.write_text(json.dumps({"pid": 1, "gateway_state": "running", "x": "y" * 300_000})),
    "too deep": lambda path: path.write_text('{"pid": 1, "gateway_state": "running", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    "not json": lambda path: path.write_text("{not json"),
    "not utf-8": lambda path: path.write_bytes(b'{"pid": 1, "gateway_state": "\xff"}'),
    "a list": lambda path: path.write_text("[1, 2, 3]"),
    "an unknown state": lambda path: path.write_text('{"pid": 1, "gateway_state": "on fire"}'),
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_file_is_one_line_and_no_event_and_the_reader_goes_on(rig, kind):
    pid = running(rig, "alice")
    reader = rig.start_gateway_watch()
    path = state_path(rig, "alice")
    HOSTILE[kind](path)
    os.lchown(path, rig.user.uid, rig.user.gid)
    wait_for(lambda: "ignored" in rig.daemon_output(reader), WITHIN + 5, "the reader to say it ignores the file")
    time.sleep(0.5)
    problems = [line for line in rig.daemon_output(reader).splitlines() if "ignored" in line]
    assert len(problems) == 1, problems
    assert reasons(rig, "alice") == []
    os.unlink(path)
    gateway_writes(rig, "alice", pid, "running")
    wait_for(lambda: reasons(rig, "alice") == ["ready"], WITHIN + 5, "a good file read after a bad one")
    assert reader.poll() is None
    assert rig.stop_watch(reader) == 0


def test_without_inotify_the_polling_observer_reports_within_a_second_or_two(rig):
    pid = running(rig, "alice")
    reader = rig.start_gateway_watch("--poll-only")
    wait_for(lambda: '"observer":"polling"' in rig.daemon_output(reader), 10, "the polling observer")
    wrote = gateway_writes(rig, "alice", pid, "running")
    wait_for(lambda: reasons(rig, "alice") == ["ready"], 10, "ready by polling")
    assert time.monotonic() - wrote < 2 * WITHIN
    assert rig.stop_watch(reader) == 0


def test_a_flapping_gateway_is_bounded_per_minute_and_said_once(rig):
    pid = running(rig, "alice")
    reader = rig.start_gateway_watch()
    gateway_writes(rig, "alice", pid, "running")
    wait_for(lambda: reasons(rig, "alice") == ["ready"], WITHIN + 5, "ready")
    for number in range(40):
        gateway_writes(rig, "alice", pid, "degraded" if number % 2 == 0 else "running")
        time.sleep(0.12)
    time.sleep(1.0)
    assert len(reasons(rig, "alice")) == 30  # REPORTS_PER_MINUTE
    said = [line for line in rig.daemon_output(reader).splitlines() if "reports in a minute" in line]
    assert len(said) == 1
    assert rig.stop_watch(reader) == 0


def test_the_file_follows_the_log_for_hermes_agent(rig):
    """desired_state is the log's, every key the gateway wrote stays, and once the log says the run is
    over the file no longer claims that pid runs."""
    pid = running(rig, "alice")
    reader = rig.start_gateway_watch(HERMES_GATEWAY="hermes-agent")
    gateway_writes(rig, "alice", pid, "running", platforms={"telegram": {"state": "connected"}})
    wait_for(lambda: json.loads(state_path(rig, "alice").read_text()).get("desired_state") == "running",
             WITHIN + 5, "desired_state running")
    rig.cli("stop", "alice")
    wait_for(lambda: json.loads(state_path(rig, "alice").read_text()).get("gateway_state") == "stopped",
             WITHIN + 10, "the file to say the stopped gateway stopped")
    said = json.loads(state_path(rig, "alice").read_text())
    assert (said["desired_state"], said["pid"], said["platforms"], said["kind"]) == (
        "stopped", pid, {"telegram": {"state": "connected"}}, "hermes-gateway")
    assert "hermes-state" in said["exit_reason"]
    assert os.stat(state_path(rig, "alice")).st_uid == rig.user.uid
    rig.cli("start", "alice")
    wait_for(lambda: json.loads(state_path(rig, "alice").read_text()).get("desired_state") == "running",
             WITHIN + 5, "desired_state running again")
    assert not list(state_path(rig, "alice").parent.glob(".gateway_state.json.hermes-state-*"))
    assert rig.stop_watch(reader) == 0


def test_hermes_agents_profile_directories_are_adopted_as_created_and_deleted(rig):
    rig.append("create", "ghost")  # in the log, never a directory here: nothing concluded of it
    reader = rig.start_gateway_watch(HERMES_GATEWAY="hermes-agent")
    bob = rig.home.path / "profiles" / "bob"
    # As hermes-agent's `profile create` does it: the directory first, its SOUL.md a moment later.
    result = run_as(["/bin/sh", "-c", f"mkdir -p {bob} && sleep 1.5"], rig.user, env=rig.env(), timeout=30)
    assert result.returncode == 0, result.stderr
    assert rig.history("bob") == []
    result = run_as(["/bin/sh", "-c", f": > {bob}/SOUL.md"], rig.user, env=rig.env(), timeout=30)
    assert result.returncode == 0, result.stderr
    made = time.monotonic()
    wait_for(lambda: [(r["type"], r["actor"]) for r in rig.history("bob")] == [("created", "hermes-agent")],
             WITHIN + 5, "bob adopted")
    assert time.monotonic() - made < WITHIN
    wait_for(lambda: rig.status("bob") is not None, 10, "bob's slot")
    shutil.rmtree(bob)
    wait_for(lambda: [r["type"] for r in rig.history("bob")] == ["created", "deleted"], WITHIN + 5, "bob's deletion")
    assert rig.history("bob")[-1]["actor"] == "hermes-agent"
    assert [r["type"] for r in rig.history("ghost")] == ["created"]
    assert rig.stop_watch(reader) == 0


@pytest.mark.skipif(not IS_ROOT, reason="root's refusal needs the suite to run as root (CI does)")
def test_root_never_reads_the_gateways_files(rig):
    result = rig.hermes("watch-gateways")
    assert result.returncode == 2
    assert "root never parses" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_gateway_the_log_has_no_run_of_is_never_said_to_have_stopped_while_it_lives(rig):
    """A start the log could not record (the store locked, a fleet outage) leaves a live gateway with
    no run in the log: its file keeps saying it runs until that process is really gone."""
    rig.append("create", "alice")
    (rig.home.path / "profiles" / "alice").mkdir(parents=True)
    give_to(rig.home.path / "profiles", rig.user)
    unrecorded = subprocess.Popen(["sleep", "60"], user=rig.user.uid, group=rig.user.gid, extra_groups=[])
    try:
        reader = rig.start_gateway_watch(HERMES_GATEWAY="hermes-agent")
        gateway_writes(rig, "alice", unrecorded.pid, "running")
        wait_for(lambda: json.loads(state_path(rig, "alice").read_text()).get("desired_state") == "stopped",
                 WITHIN + 5, "desired_state written")
        time.sleep(1.0)
        assert json.loads(state_path(rig, "alice").read_text())["gateway_state"] == "running"
    finally:
        unrecorded.kill()
        unrecorded.wait()
    gateway_writes(rig, "alice", unrecorded.pid, "running")  # a write wakes the reader; now the pid is gone
    wait_for(lambda: json.loads(state_path(rig, "alice").read_text())["gateway_state"] == "stopped", WITHIN + 5,
             "the dead pid no longer said to run")
    assert rig.stop_watch(reader) == 0


def test_history_metrics_and_the_page_show_what_the_gateway_says(rig):
    pid = running(rig, "alice")
    reader = rig.start_gateway_watch()
    gateway_writes(rig, "alice", pid, "running")
    wait_for(lambda: reasons(rig, "alice") == ["ready"], WITHIN + 5, "ready")
    gateway_writes(rig, "alice", pid, "degraded", platforms={"slack": {"state": "fatal", "error_code": "auth"}})
    wait_for(lambda: reasons(rig, "alice")[-2:] == ["degraded", "platform-fatal"], WITHIN + 5, "the reports")
    metrics = rig.cli("serve", "--once", "/metrics")
    assert 'hermes_gateway_reported_state{profile="alice",state="degraded"} 1.0' in metrics
    assert 'hermes_gateway_reported_state{profile="alice",state="running"} 0.0' in metrics
    assert 'hermes_gateway_platforms_failing{profile="alice"} 1.0' in metrics
    assert 'hermes_gateway_seconds_to_ready{profile="alice"}' in metrics
    page = rig.cli("serve", "--once", "/")
    assert "degraded, ready in" in page and "failing: slack" in page
    assert "the gateway says: degraded" in rig.cli("serve", "--once", "/profiles/alice")
    table = rig.cli("history", "alice", "--type", "reported")
    assert "platform-fatal: slack (auth)" in table
    assert rig.stop_watch(reader) == 0


def test_a_log_that_stops_reading_never_stops_the_reader(rig):
    """In the container its lines go to the container's output: a full pipe there held its next line."""
    from conftest import HERMES
    from projector_support import daemon_with_a_full_log, stops_on_sigterm_within

    pid = running(rig, "alice")
    with daemon_with_a_full_log([str(HERMES), "watch-gateways"], rig.env(), rig.user) as reader:
        for state, reason in (("starting", None), ("running", "ready"), ("degraded", "degraded"),
                              ("running", "recovered"), ("draining", "draining")):
            gateway_writes(rig, "alice", pid, state)
            if reason:
                wait_for(lambda: reasons(rig, "alice")[-1:] == [reason], WITHIN + 5, f"{reason} in the log")
        stops_on_sigterm_within(reader)
