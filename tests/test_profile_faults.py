"""`hermes-state delete` killed half-way (issue 11, item 6): both-or-neither, finished later, seen by doctor.

The kill lands exactly between the commit of `deleted` and the move of the
directory: the command, run with HERMES_TEST_PAUSE_AFTER_DELETE_COMMIT set
(read by hermes_lifecycle_cli/commands/profile.py only; unset in production), creates
that file there and waits while it exists, and the test SIGKILLs it then.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from cli_support import LogWriter, json_lines, one_stderr_line

from conftest import HERMES


def events_of(home, profile: str) -> list[dict]:
    result = home.hermes("history", profile, "--json", "--limit", "0")
    assert result.returncode == 0, result.stderr
    return json_lines(result.stdout)


def doctor_directories(home) -> dict:
    result = home.hermes("doctor", "--json")
    assert result.returncode == 0, result.stdout + result.stderr  # directories are warnings: the store is sound
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    return checks["profile directories"]


def kill_delete_after_its_commit(home, name: str) -> None:
    marker = home.path / "delete-paused"
    user = {} if home.user.is_self else {"user": home.user.uid, "group": home.user.gid, "extra_groups": []}
    process = subprocess.Popen(
        [str(HERMES), "delete", name, "--yes"],
        env=home.env(HERMES_TEST_PAUSE_AFTER_DELETE_COMMIT=str(marker)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **user,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert process.poll() is None, f"delete ended without pausing: {process.communicate()}"
            assert time.monotonic() < deadline, "delete never reached the point after its commit"
            time.sleep(0.01)
    finally:
        process.kill()
        process.communicate()
    marker.unlink()


def test_a_delete_killed_after_its_commit_is_deleted_with_its_directory_in_place(migrated_home):
    assert migrated_home.hermes("create", "alice").returncode == 0
    assert migrated_home.hermes("start", "alice").returncode == 0
    kill_delete_after_its_commit(migrated_home, "alice")

    profiles = migrated_home.path / "profiles"
    deleted = events_of(migrated_home, "alice")[-1]
    assert deleted["type"] == "deleted"
    # Never the other disagreement: a directory in .deleted/ while the log has the profile live.
    assert (profiles / "alice" / "SOUL.md").is_file()
    assert not (profiles / ".deleted").exists() or os.listdir(profiles / ".deleted") == []

    finding = doctor_directories(migrated_home)
    assert finding["status"] == "warning"
    assert "alice is deleted" in finding["detail"] and "did not finish" in finding["detail"]

    # The next delete of that name finishes the move, under the position of the committed `deleted`.
    again = migrated_home.hermes("delete", "alice", "--yes")
    assert again.returncode == 0, again.stderr
    assert "deleted already" in again.stdout
    assert (profiles / ".deleted" / f"alice.{deleted['position']}" / "SOUL.md").is_file()
    assert not (profiles / "alice").exists()
    assert events_of(migrated_home, "alice")[-1]["position"] == deleted["position"]  # nothing appended
    assert doctor_directories(migrated_home)["status"] == "ok"


def test_recreating_after_a_killed_delete_moves_the_old_directory_first(migrated_home):
    assert migrated_home.hermes("create", "alice").returncode == 0
    (migrated_home.path / "profiles" / "alice" / "old-life").write_text("kept")
    kill_delete_after_its_commit(migrated_home, "alice")
    deleted = events_of(migrated_home, "alice")[-1]

    created = migrated_home.hermes("create", "alice")
    assert created.returncode == 0, created.stderr
    profiles = migrated_home.path / "profiles"
    assert (profiles / ".deleted" / f"alice.{deleted['position']}" / "old-life").read_text() == "kept"
    assert not (profiles / "alice" / "old-life").exists()
    assert [e["type"] for e in events_of(migrated_home, "alice")][-2:] == ["deleted", "created"]
    assert doctor_directories(migrated_home)["status"] == "ok"


def test_doctor_names_a_directory_moved_by_a_delete_that_never_committed(migrated_home):
    """The state an older `profile delete` left when killed before its commit."""
    assert migrated_home.hermes("create", "alice").returncode == 0
    profiles = migrated_home.path / "profiles"
    head = events_of(migrated_home, "alice")[-1]["position"]
    (profiles / ".deleted").mkdir()
    os.rename(profiles / "alice", profiles / ".deleted" / f"alice.{head + 1}")
    finding = doctor_directories(migrated_home)
    assert finding["status"] == "warning"
    assert f"alice.{head + 1} is from a delete that never committed" in finding["detail"]


def test_a_live_profile_without_its_directory_is_a_warning(migrated_home):
    writer = LogWriter(migrated_home)
    writer.append("bob", "created", "cli", "down")
    writer.close()
    finding = doctor_directories(migrated_home)
    assert finding["status"] == "warning" and "bob is live" in finding["detail"]


def test_a_delete_waits_for_a_create_and_gives_up_after_the_busy_timeout(migrated_home):
    """The profiles lock: a second profile command waits, then fails with 5, one line."""
    assert migrated_home.hermes("create", "alice").returncode == 0
    marker = migrated_home.path / "delete-paused"
    user = {} if migrated_home.user.is_self else {
        "user": migrated_home.user.uid, "group": migrated_home.user.gid, "extra_groups": []}
    holder = subprocess.Popen(
        [str(HERMES), "delete", "alice", "--yes"],
        env=migrated_home.env(HERMES_TEST_PAUSE_AFTER_DELETE_COMMIT=str(marker)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **user,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        blocked = migrated_home.hermes("create", "bob", env={"HERMES_STATE_BUSY_TIMEOUT_MS": "300"})
        assert blocked.returncode == 5
        assert "another profile command" in one_stderr_line(blocked)
        marker.unlink()  # let the holder go on: it moves alice's directory and exits 0
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
    assert migrated_home.hermes("create", "bob").returncode == 0
