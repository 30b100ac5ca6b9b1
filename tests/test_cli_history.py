"""`hermes-state history`, run as the unprivileged user against real store files."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
from cli_support import LogWriter, json_lines, one_stderr_line
from conftest import HERMES

from hermes_lifecycle.backends.sqlite.driver import sqlite_module
from hermes_lifecycle.events import COLUMNS

NOW = datetime.now(timezone.utc)


@pytest.fixture
def alice(migrated_home):
    """alice: 9 events over two boots: a run ended by a shutdown, two crashes, then the breaker."""
    writer = LogWriter(migrated_home, start=NOW - timedelta(days=2))
    writer.boot("0b0e-1")
    writer.append("alice", "created", "cli", "down")
    writer.after(minutes=1).append("alice", "started", "cli", "up", idempotency_key="ui-42")
    writer.after(seconds=1).run("alice", 4101, seconds=7200, ended_by="stopped", reason="shutdown")
    writer.boot("0b0e-2").at(NOW - timedelta(hours=5))
    writer.run("alice", 4102, seconds=30, signal=9)
    writer.after(seconds=2).run("alice", 4103, seconds=3, exit_code=1)
    writer.after(seconds=1).append(
        "alice", "stopped", "supervisor", "down", reason="crash-loop", data={"crashes": 2, "window_seconds": 60}
    )
    writer.close()
    return migrated_home


def history(home, *args, **kwargs):
    return home.hermes("history", *args, **kwargs)


# -- bad input ------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, status, words",
    [
        (["nobody"], 3, "no profile named 'nobody'"),
        (["Alice"], 2, "invalid profile name"),
        (["--", "../x"], 2, "invalid profile name"),
        (["alice", "--since", "yesterdayish"], 2, "invalid --since 'yesterdayish'"),
        (["alice", "--until", "2h ago"], 2, "invalid --until"),
        (["alice", "--type", "crashed,exploded"], 2, "unknown event type 'exploded'"),
        (["alice", "--type", ""], 2, "unknown event type an empty name"),
        (["alice", "--boot", "../../etc"], 2, "invalid --boot"),
        (["alice", "--limit", "-1"], 2, "invalid --limit"),
        (["alice", "--limit", "many"], 2, "invalid int value"),
        (["alice", "--since", "1h", "--until", "3h"], 2, "later than --until"),
        (["alice", "--follow", "--until", "1h"], 2, "--follow"),
    ],
)
def test_bad_input_is_one_line_and_its_status(migrated_home, args, status, words):
    writer = LogWriter(migrated_home)
    writer.append("alice", "created", "cli", "down")
    writer.close()
    result = history(migrated_home, *args)
    assert result.returncode == status
    assert words in one_stderr_line(result)


def test_no_store_is_5_with_the_command_to_run(home):
    result = history(home, "alice")
    assert result.returncode == 5
    assert "hermes-state migrate" in one_stderr_line(result)


# -- --json ---------------------------------------------------------------------
def test_json_round_trips_every_column(alice):
    result = history(alice, "alice", "--json")
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)  # every line of stdout is one JSON object
    connection = sqlite_module().connect(f"file:{alice.db}?mode=ro", uri=True)
    connection.row_factory = sqlite_module().Row
    stored = [dict(row) for row in connection.execute("SELECT * FROM events WHERE profile = 'alice' ORDER BY position")]
    connection.close()
    assert len(lines) == len(stored) == 9
    for line, row in zip(lines, stored):
        assert list(line) == list(COLUMNS) == list(row)
        row["data"] = __import__("json").loads(row["data"])
        assert line == row
    # Every nullable column is exercised with a value somewhere.
    for column in COLUMNS:
        assert any(line[column] not in (None, {}) for line in lines), column
    assert all(line["occurred_at"].endswith("Z") for line in lines)


def test_limit_is_the_newest_n_shown_oldest_first(alice):
    every = json_lines(history(alice, "alice", "--json", "--limit", "0").stdout)
    newest = json_lines(history(alice, "alice", "--json", "--limit", "3").stdout)
    assert newest == every[-3:]
    assert [e["version"] for e in newest] == sorted(e["version"] for e in newest)


def test_filters_since_until_type_and_boot(alice):
    def versions(*args):
        result = history(alice, "alice", "--json", *args)
        assert result.returncode == 0, result.stderr
        return [e["version"] for e in json_lines(result.stdout)]

    assert versions("--since", "6h") == [5, 6, 7, 8, 9]
    assert versions("--until", "1d") == [1, 2, 3, 4]
    two_days_ago = (NOW - timedelta(days=2) + timedelta(seconds=30)).isoformat()
    assert versions("--since", "3d", "--until", two_days_ago) == [1]
    assert versions("--type", "crashed") == [6, 8]
    assert versions("--type", "stopped,crashed", "--since", "1d") == [6, 8, 9]
    assert versions("--boot", "0b0e-1") == [1, 2, 3, 4]
    assert versions("--boot", "0b0e-3") == []


def test_boot_current_reads_the_scan_directorys_boot_id(alice):
    assert history(alice, "alice", "--boot", "current").returncode == 3  # no boot id yet
    alice.scandir.mkdir(parents=True)
    (alice.scandir / ".boot-id").write_text("0b0e-2\n")
    result = history(alice, "alice", "--json", "--boot", "current")
    assert [e["boot_id"] for e in json_lines(result.stdout)] == ["0b0e-2"] * 5


# -- the table ------------------------------------------------------------------
def test_table_shows_local_times_signal_names_and_the_summary(alice):
    result = history(alice, "alice", env={"TZ": "Asia/Tokyo"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["time", "(JST)", "age"]
    first = lines[1]
    created_local = (NOW - timedelta(days=2)).astimezone(timezone(timedelta(hours=9)))
    assert first.startswith(created_local.strftime("%Y-%m-%d %H:%M:%S"))
    assert "2d 0h ago" in first and "created" in first
    assert any("crashed" in line and "SIGKILL" in line and "4102" in line for line in lines)
    assert any("crashed" in line and "exit 1" in line for line in lines)
    assert "stopped  supervisor  down" in lines[9] and lines[9].endswith("crash-loop")
    assert lines[10] == ""
    summary = "\n".join(lines[11:])
    assert "alice: 9 events in all, showing 9" in summary
    assert "3 runs, 2 crashes, longest uptime 2h 0m" in summary
    assert "last crash" in summary and "exit 1" in summary
    assert "crash-loop breaker holds it down" in summary
    assert "hermes-state start alice" in summary


def test_summary_counts_a_running_run(migrated_home):
    # From the clock now, not the module's NOW: a long run reaches this test minutes after import.
    writer = LogWriter(migrated_home, start=datetime.now(timezone.utc) - timedelta(hours=3))
    writer.append("bob", "created", "cli", "down")
    writer.append("bob", "started", "cli", "up")
    writer.append("bob", "started", "supervisor", pid=777)
    writer.close()
    summary = history(migrated_home, "bob").stdout
    assert "1 run, 0 crashes, longest uptime 3h 0m" in summary
    assert "still running" in summary
    assert "running as pid 777" in summary


def test_history_of_a_deleted_profile_still_works(alice):
    assert alice.hermes("delete", "alice", "--yes").returncode == 0  # no directory: only the event
    result = history(alice, "alice")
    assert result.returncode == 0, result.stderr
    assert "deleted" in result.stdout.splitlines()[10]
    assert "state:     deleted" in result.stdout
    assert len(json_lines(history(alice, "alice", "--json").stdout)) == 10


def test_reading_needs_no_write_access_to_the_store(alice):
    alice.db.chmod(0o444)
    before = alice.db.read_bytes()
    try:
        result = history(alice, "alice", "--json")
    finally:
        alice.db.chmod(0o644)
    assert result.returncode == 0, result.stderr
    assert len(json_lines(result.stdout)) == 9
    assert alice.db.read_bytes() == before


# -- --follow -------------------------------------------------------------------
class LineReader:
    """Lines from a pipe as they arrive, with a deadline (no buffering that select cannot see)."""

    def __init__(self, pipe) -> None:
        self.fd = pipe.fileno()
        self.pending = b""

    def line(self, deadline: float) -> str | None:
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()


@pytest.mark.parametrize("output", ["--json", "--table"])
def test_follow_prints_an_event_appended_by_another_process_within_a_second(alice, output):
    args = ["history", "alice", "--follow", "--limit", "2"] + (["--json"] if output == "--json" else [])
    follower = subprocess.Popen(
        [str(HERMES), *args], env=alice.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        user=alice.user.uid, group=alice.user.gid, extra_groups=[],
    )
    reader = LineReader(follower.stdout)
    try:
        expected_backlog = 2 if output == "--json" else 3  # a header above the table's rows
        backlog = [reader.line(time.monotonic() + 10) for _ in range(expected_backlog)]
        assert all(backlog), follower.stderr.read() if follower.poll() is not None else backlog
        time.sleep(0.3)  # let it settle into waiting
        assert alice.hermes("start", "alice").returncode == 0  # another process appends
        appended = time.monotonic()
        line = reader.line(appended + 5)
        seen = time.monotonic() - appended
        assert line, "no line for the appended event"
        if output == "--json":
            event = json_lines(line)[0]
            assert (event["type"], event["actor"], event["desired"]) == ("started", "cli", "up")
        else:
            assert "started" in line and "cli" in line and "up" in line
        assert seen < 1.0, f"the event showed after {seen:.2f} s"
        follower.send_signal(signal.SIGINT)  # Ctrl-C ends it, cleanly
        assert follower.wait(timeout=5) == 0
        assert b"Traceback" not in follower.stderr.read()
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_follow_of_an_unknown_profile_is_3(migrated_home):
    result = history(migrated_home, "nobody", "--follow", timeout=10)
    assert result.returncode == 3
    one_stderr_line(result)


def test_times_given_without_a_zone_are_local(alice):
    """--since 2026-01-01T09:00 means nine on the person's clock."""
    tokyo = timezone(timedelta(hours=9))
    crash_local = (NOW - timedelta(hours=5) + timedelta(seconds=31)).astimezone(tokyo).replace(tzinfo=None)
    since = (crash_local - timedelta(seconds=2)).isoformat(timespec="seconds")
    result = history(alice, "alice", "--json", "--type", "crashed", "--since", since, env={"TZ": "Asia/Tokyo"})
    assert [e["pid"] for e in json_lines(result.stdout)] == [4102, 4103]
