"""`hermes-state serve` for real: a subprocess as the unprivileged user, a real store, real gateways under s6.

/metrics is parsed with prometheus_client's own parser and every value is
checked against the log itself (SQL on `events`, not the projection the
server reads). The page's bad requests and a store that is missing, locked
or corrupt are answered while the server keeps running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime, timezone

import pytest

from conftest import HERMES
from projector_support import rig_for, wait_for
from serve_support import samples_by_profile, start_server
from store_helpers import operator_rows

LOG_COLUMNS = "position, profile, type, actor, desired, reason, exit_code, signal, occurred_at"


def expected_from_log(db) -> dict:
    """What each metric must say, computed from the rows of `events` alone."""
    rows = operator_rows(db, f"SELECT {LOG_COLUMNS} FROM events ORDER BY position")
    profiles: dict[str, dict] = {}
    for row in rows:
        p = profiles.setdefault(row["profile"], {"crashes": 0, "intent": None, "supervisor": None, "exit": None})
        p["last"] = row
        if row["desired"] is not None:
            p["intent"] = row
        if row["actor"] == "supervisor":
            p["supervisor"] = row
            if row["exit_code"] is not None or row["signal"] is not None:
                p["exit"] = row
        if row["type"] == "crashed":
            p["crashes"] += 1
    live = {name: p for name, p in profiles.items() if p["last"]["type"] != "deleted"}
    expected = {"events": len(rows), "profiles": set(live)}
    for name, p in live.items():
        intent = p["intent"]
        held = intent["reason"] if intent["actor"] == "supervisor" and intent["desired"] == "down" else None
        running = p["supervisor"] is not None and p["supervisor"]["type"] == "started"
        expected[name] = {
            "desired_up": 1.0 if intent["desired"] == "up" else 0.0,
            "running": 1.0 if running else 0.0,
            "crashes": float(p["crashes"]),
            "held_down": (held or "", 1.0 if held else 0.0),
            "exit_code": None if p["exit"] is None or p["exit"]["exit_code"] is None else float(p["exit"]["exit_code"]),
            "signal": None if p["exit"] is None or p["exit"]["signal"] is None else float(p["exit"]["signal"]),
            "started_at": p["supervisor"]["occurred_at"] if running else None,
        }
    return expected


def assert_metrics_match_the_log(families: dict, expected: dict, scraped_at: float) -> None:
    assert families["hermes_state_store_ok"][0].value == 1.0
    assert families["hermes_state_store_readable"][0].value == 1.0
    assert families["hermes_state_events"][0].value == expected["events"]
    profiles = expected["profiles"]
    desired = samples_by_profile(families, "hermes_gateway_desired_up")
    assert set(desired) == profiles  # one series per live profile: no deleted one, nothing else
    running = samples_by_profile(families, "hermes_gateway_running")
    crashes = samples_by_profile(families, "hermes_gateway_crashes")
    held = samples_by_profile(families, "hermes_gateway_held_down", lambda s: (s.labels["reason"], s.value))
    exit_codes = samples_by_profile(families, "hermes_gateway_last_exit_code")
    signals = samples_by_profile(families, "hermes_gateway_last_exit_signal")
    uptime = samples_by_profile(families, "hermes_gateway_uptime_seconds")
    for name in profiles:
        want = expected[name]
        assert desired[name] == want["desired_up"], name
        assert running[name] == want["running"], name
        assert crashes[name] == want["crashes"], name
        assert held[name] == want["held_down"], name
        assert exit_codes.get(name) == want["exit_code"], name
        assert signals.get(name) == want["signal"], name
        if want["started_at"] is None:
            assert uptime[name] == 0.0, name
        else:
            started = datetime.fromisoformat(want["started_at"]).timestamp()
            assert abs(uptime[name] - (scraped_at - started)) < 2.0, (name, uptime[name])
    for family in ("hermes_gateway_crashes", "hermes_gateway_held_down", "hermes_gateway_uptime_seconds"):
        assert len(families[family]) == len(profiles)  # bounded: one sample per live profile


@pytest.mark.slow
def test_metrics_match_the_log_while_real_gateways_crash_under_s6(world_tmp, home):
    with rig_for(world_tmp, home, booted=True, HERMES_WATCH_POLL_INTERVAL="0.5") as rig:
        watch = rig.start_watch()
        rig.append("create", "alice", "crashy", "config", "quits", "bob", "gone")
        rig.append("delete", "gone")
        server = start_server(rig.env(), rig.user, world_tmp / "serve.err")
        try:
            rig.append("start", "alice", "crashy", "config", "quits")
            # Scrapes while the crash loop runs: parseable every time, the counters never go back.
            seen: dict[str, float] = {}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                crashes = samples_by_profile(server.metrics(), "hermes_gateway_crashes")
                for name, value in crashes.items():
                    assert value >= seen.get(name, 0.0), name
                seen = crashes
                if rig.history("crashy")[-1]["reason"] == "crash-loop":
                    break
                time.sleep(0.2)
            assert seen, "no scrape during the crash loop"
            wait_for(lambda: rig.history("crashy")[-1]["reason"] == "crash-loop", 15, "the crash-loop breaker")
            wait_for(lambda: rig.history("config")[-1]["reason"] == "fatal-config", 10, "config held down")
            wait_for(lambda: rig.history("quits")[-1]["reason"] == "exited", 10, "quits held down")
            first_pid = wait_for(lambda: rig.running_pid("alice"), 10, "alice up")
            wait_for(lambda: any(r["type"] == "started" and r["actor"] == "supervisor" for r in rig.history("alice")),
                     5, "alice's start recorded")
            os.kill(first_pid, signal.SIGKILL)  # a crash by a signal; s6 starts it again
            wait_for(lambda: (pid := rig.running_pid("alice")) and pid != first_pid, 10, "alice up again")
            wait_for(lambda: rig.history("alice")[-1]["type"] == "started", 10, "alice's new start recorded")

            scraped_at = time.time()
            families = server.metrics()
            expected = expected_from_log(home.db)
            assert expected["profiles"] == {"default", "alice", "crashy", "config", "quits", "bob"}
            assert expected["crashy"]["held_down"] == ("crash-loop", 1.0) and expected["crashy"]["crashes"] == 5
            assert expected["alice"]["signal"] == 9.0 and expected["alice"]["running"] == 1.0
            assert_metrics_match_the_log(families, expected, scraped_at)

            page = server.get("/")
            assert page.status == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
            for name in expected["profiles"]:
                assert f'href="/profiles/{name}"' in page.body
            crashy = server.get("/profiles/crashy?since=10m")
            assert crashy.status == 200
            assert crashy.body.count("</i> crash, exit 1") == 5  # one table row per crashed run (the bars' titles say it too)
            assert "held down: crash-loop" in crashy.body
            assert crashy.body.count('class="k-crash"') + crashy.body.count('class="k-held"') >= 5  # their bars' ends
            alice = server.get("/profiles/alice")
            assert "crash, SIGKILL" in alice.body and "running" in alice.body
        finally:
            status = server.stop()
            rig.stop_watch(watch)
        assert status == 0, server.stderr()


# -- bad requests and a store in trouble ---------------------------------------------
@pytest.fixture
def served(migrated_home, world_tmp):
    migrated_home.hermes("create", "alice")
    server = start_server(migrated_home.env(), migrated_home.user, world_tmp / "serve.err")
    yield migrated_home, server
    status = server.stop()
    assert status == 0, server.stderr()


@pytest.mark.parametrize("path, status, phrase", [
    ("/profiles/nobody", 404, "no profile named &#39;nobody&#39;"),
    ("/profiles/Not%20A%20Name", 404, "no profile named"),
    ("/profiles/alice?since=yesterday", 400, "invalid since &#39;yesterday&#39;"),
    ("/profiles/alice?since=2h&since=3h", 400, "since given more than once"),
    ("/profiles/alice?since=2999-01-01T00:00", 400, "is not in the past"),
    ("/nowhere", 404, "nothing at /nowhere"),
])
def test_bad_requests_get_their_status_and_a_clear_page(served, path, status, phrase):
    _, server = served
    response = server.get(path)
    assert (response.status, response.headers["Content-Type"]) == (status, "text/html; charset=utf-8")
    assert phrase in response.body
    assert server.get("/profiles/alice?since=2h").status == 200  # and the server goes on


def test_a_missing_store_then_one_that_appears(home, world_tmp):
    server = start_server(home.env(), home.user, world_tmp / "serve.err")
    try:
        page = server.get("/")
        assert page.status == 503 and "event store unavailable" in page.body
        families = server.metrics()  # still answered: an alert on store_ok must be able to fire
        assert families["hermes_state_store_ok"][0].value == 0.0
        assert families["hermes_state_store_readable"][0].value == 0.0
        assert "hermes_gateway_desired_up" not in families
        assert home.hermes("create", "alice").returncode == 0
        assert server.get("/").status == 200
        assert samples_by_profile(server.metrics(), "hermes_gateway_desired_up") == {"alice": 0.0}
    finally:
        assert server.stop() == 0, server.stderr()


def test_a_corrupt_store_is_a_503_and_the_server_keeps_running(served):
    home, server = served
    assert server.get("/").status == 200
    original = home.db.read_bytes()
    home.db.write_bytes(b"this is not a database" * 512)
    try:
        page = server.get("/")
        assert page.status == 503 and "event store unavailable" in page.body
        assert server.get("/profiles/alice").status == 503
        assert server.metrics()["hermes_state_store_ok"][0].value == 0.0
    finally:
        home.db.write_bytes(original)
    assert server.get("/").status == 200
    assert server.alive()


def test_a_locked_store_is_a_503_within_the_busy_timeout(served):
    home, server = served
    user = home.user
    # An exclusive locking mode keeps even readers out of a WAL file while the holder's transaction lasts.
    holder = subprocess.Popen(
        ["sqlite3", str(home.db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        **({} if user.is_self else {"user": user.uid, "group": user.gid, "extra_groups": []}),
    )
    try:
        holder.stdin.write("PRAGMA locking_mode=EXCLUSIVE;\nBEGIN EXCLUSIVE;\nSELECT 'holding';\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "exclusive"
        assert holder.stdout.readline().strip() == "holding"
        page = server.get("/", timeout=15)
        assert page.status == 503 and "locked" in page.body
        assert server.metrics()["hermes_state_store_readable"][0].value == 0.0
    finally:
        holder.stdin.write("ROLLBACK;\n")
        holder.stdin.close()
        holder.wait(timeout=10)
    assert server.get("/").status == 200


def test_it_never_writes(served):
    home, server = served
    events = operator_rows(home.db, "SELECT count(*) AS n FROM events")[0]["n"]
    before = {path.name: path.stat().st_mtime_ns for path in home.db.parent.iterdir() if path.name != "profiles.db-shm"}
    for path in ("/", "/metrics", "/profiles/alice", "/profiles/alice?since=7d", "/profiles/nobody"):
        server.get(path)
    after = {path.name: path.stat().st_mtime_ns for path in home.db.parent.iterdir() if path.name != "profiles.db-shm"}
    assert after == before
    assert operator_rows(home.db, "SELECT count(*) AS n FROM events")[0]["n"] == events


# -- --once and --listen ----------------------------------------------------------------
@pytest.mark.parametrize("path, status, line", [
    ("/metrics", 0, None),
    ("/profiles/alice", 0, None),
    ("/profiles/nobody", 3, "hermes-state: 404 not found: no profile named 'nobody'"),
    ("/profiles/alice?since=soon", 2, "hermes-state: 400 bad request: invalid since 'soon'"),
])
def test_once_answers_one_path_with_the_designs_exit_status(migrated_home, path, status, line):
    migrated_home.hermes("create", "alice")
    result = migrated_home.hermes("serve", "--once", path)
    assert result.returncode == status, result.stderr
    if line is None:
        assert result.stderr == ""
    else:
        assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith(line)


def test_once_on_a_missing_store_exits_5(home):
    result = home.hermes("serve", "--once", "/")
    assert result.returncode == 5
    assert result.stderr.startswith("hermes-state: 503 event store unavailable:")


@pytest.mark.parametrize("listen", ["9130", "localhost:", ":9130", "127.0.0.1:99999", "127.0.0.1:http"])
def test_a_malformed_listen_address_is_bad_usage(migrated_home, listen):
    result = migrated_home.hermes("serve", "--listen", listen)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"hermes-state: invalid --listen {listen!r}")


def test_a_port_in_use_is_one_line_and_exit_2(served):
    home, server = served
    result = home.hermes("serve", "--listen", f"127.0.0.1:{server.port}", timeout=20)
    assert result.returncode == 2
    assert result.stderr.startswith(f"hermes-state: cannot listen on 127.0.0.1:{server.port}:")
    assert server.alive()


def test_the_default_is_loopback_and_any_other_address_is_said(migrated_home, world_tmp):
    from serve_support import free_port

    port = free_port()
    log = world_tmp / "wide.err"
    user = migrated_home.user
    process = subprocess.Popen(
        [str(HERMES), "serve", "--listen", f"0.0.0.0:{port}"],
        env=migrated_home.env(), stderr=log.open("wb"), stdout=subprocess.DEVNULL,
        **({} if user.is_self else {"user": user.uid, "group": user.gid, "extra_groups": []}),
    )
    try:
        wait_for(lambda: "http://" in log.read_text(), 10, "the server's first line")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert "not loopback: reachable from other machines" in log.read_text()
    from hermes_lifecycle_cli.main import build_parser

    assert build_parser().parse_args(["serve"]).listen == "127.0.0.1:9130"


@pytest.mark.parametrize("interval", ["0", "-5", "nan", "inf"])
def test_a_check_interval_must_be_seconds_above_zero(migrated_home, interval):
    result = migrated_home.hermes("serve", "--check-interval", interval, "--once", "/metrics")
    assert result.returncode == 2
    assert result.stderr.strip() == f"hermes-state: invalid --check-interval {float(interval)}: expected seconds above 0"
