"""`hermes-state create | delete | list`, run as the unprivileged user against real files."""

from __future__ import annotations

import os
import subprocess

import pytest
from cli_support import LogWriter, json_lines, one_stderr_line, tree

HOSTILE_NAMES = ["../x", "A", "a b", "a;rm -rf", "x" * 65, "", "élan", "alice\n", "-alice", ".hidden"]


def events_of(home, profile: str) -> list[dict]:
    result = home.hermes("history", profile, "--json", "--limit", "0")
    assert result.returncode == 0, result.stderr
    return json_lines(result.stdout)


def test_create_makes_the_directory_and_the_event(migrated_home):
    result = migrated_home.hermes("create", "alice")
    assert result.returncode == 0, result.stderr
    directory = migrated_home.path / "profiles" / "alice"
    assert (directory / "SOUL.md").read_text().startswith("# alice\n")
    assert directory.stat().st_uid == migrated_home.user.uid
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    [created] = events_of(migrated_home, "alice")
    assert (created["type"], created["actor"], created["desired"]) == ("created", "cli", "down")
    assert [p for p in tree(migrated_home.path / "profiles")] == ["alice", "alice/SOUL.md"]


def test_the_first_create_on_a_fresh_home_makes_the_store(home):
    assert not home.db.exists()
    result = home.hermes("create", "alice")
    assert result.returncode == 0, result.stderr
    assert "created the event store" in result.stderr
    assert home.db.stat().st_uid == home.user.uid
    assert [e["type"] for e in events_of(home, "alice")] == ["created"]
    # Nothing else: `default` and the legacy import stay boot's job.
    listing = json_lines(home.hermes("list", "--json").stdout)
    assert [row["profile"] for row in listing] == ["alice"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_refused_with_2_and_nothing_is_made(migrated_home, name):
    before = list(tree(migrated_home.path))
    result = migrated_home.hermes("create", "--", name)  # `--`: even "-alice" reaches the name check
    assert result.returncode == 2
    assert "invalid profile name" in one_stderr_line(result)
    assert list(tree(migrated_home.path)) == before


@pytest.mark.parametrize("name", ["hermes", "test", "tmp", "root", "sudo"])
def test_reserved_names_are_refused_with_2(migrated_home, name):
    result = migrated_home.hermes("create", name)
    assert result.returncode == 2
    assert "reserved" in one_stderr_line(result)


def test_creating_twice_is_a_conflict(migrated_home):
    assert migrated_home.hermes("create", "alice").returncode == 0
    again = migrated_home.hermes("create", "alice")
    assert again.returncode == 4
    assert "exists already" in one_stderr_line(again)
    assert len(events_of(migrated_home, "alice")) == 1


def test_a_directory_without_a_stream_is_not_taken_over(migrated_home):
    (migrated_home.path / "profiles" / "bob").mkdir(parents=True)
    result = migrated_home.hermes("create", "bob")
    assert result.returncode == 4
    assert "import-legacy" in one_stderr_line(result)


def test_default_cannot_be_created_or_deleted(migrated_home):
    writer = LogWriter(migrated_home)
    writer.append("default", "created", "boot", "down")
    writer.close()
    assert migrated_home.hermes("create", "default").returncode == 4
    for args in (["default"], ["default", "--yes"]):
        result = migrated_home.hermes("delete", *args)
        assert result.returncode == 4
        assert "cannot be deleted" in one_stderr_line(result)
    assert [e["type"] for e in events_of(migrated_home, "default")] == ["created"]


def test_delete_needs_yes(migrated_home):
    migrated_home.hermes("create", "alice")
    result = migrated_home.hermes("delete", "alice")
    assert result.returncode == 2
    assert "--yes" in one_stderr_line(result)
    assert (migrated_home.path / "profiles" / "alice" / "SOUL.md").exists()
    assert [e["type"] for e in events_of(migrated_home, "alice")] == ["created"]


def test_delete_moves_the_directory_and_keeps_the_history(migrated_home):
    migrated_home.hermes("create", "alice")
    (migrated_home.path / "profiles" / "alice" / "notes.txt").write_text("kept\n")
    result = migrated_home.hermes("delete", "alice", "--yes")
    assert result.returncode == 0, result.stderr
    history = events_of(migrated_home, "alice")
    assert [e["type"] for e in history] == ["created", "deleted"]
    moved = migrated_home.path / "profiles" / ".deleted" / f"alice.{history[-1]['position']}"
    assert (moved / "notes.txt").read_text() == "kept\n"
    assert not (migrated_home.path / "profiles" / "alice").exists()
    # Deleted: further deletes and intents are conflicts; list hides it unless --all.
    assert migrated_home.hermes("delete", "alice", "--yes").returncode == 4
    assert migrated_home.hermes("start", "alice").returncode == 4
    assert json_lines(migrated_home.hermes("list", "--json").stdout) == []
    [row] = json_lines(migrated_home.hermes("list", "--json", "--all").stdout)
    assert (row["profile"], row["status"]) == ("alice", "deleted")
    # The name can be used again, in the same stream.
    assert migrated_home.hermes("create", "alice").returncode == 0
    assert [e["version"] for e in events_of(migrated_home, "alice")] == [1, 2, 3]


def test_delete_purge_removes_the_directory(migrated_home):
    migrated_home.hermes("create", "alice")
    result = migrated_home.hermes("delete", "alice", "--yes", "--purge")
    assert result.returncode == 0, result.stderr
    assert list(tree(migrated_home.path / "profiles")) == [".deleted"]


def test_purging_a_deleted_profile_removes_what_deleted_keeps_of_it(migrated_home):
    """Deleted normally (its directory kept in .deleted/), then `delete --yes --purge`: that removes
    what was kept of every life of it, appends nothing, exits 0; with nothing left it is 4 again."""
    trash = migrated_home.path / "profiles" / ".deleted"
    for args in (("create", "alice"), ("delete", "alice", "--yes"), ("create", "alice"), ("delete", "alice", "--yes"),
                 ("create", "bob"), ("delete", "bob", "--yes")):
        assert migrated_home.hermes(*args).returncode == 0
    assert len(list(trash.glob("alice.*"))) == 2
    count = len(events_of(migrated_home, "alice"))
    result = migrated_home.hermes("delete", "alice", "--yes", "--purge")
    assert result.returncode == 0, result.stderr
    assert "deleted already" in result.stdout and "removed" in result.stdout
    assert [path.name for path in trash.iterdir()] == [f"bob.{events_of(migrated_home, 'bob')[-1]['position']}"]
    assert len(events_of(migrated_home, "alice")) == count  # nothing appended
    again = migrated_home.hermes("delete", "alice", "--yes", "--purge")
    assert again.returncode == 4 and "keeps nothing of it" in one_stderr_line(again)


def test_unknown_profile_is_3(migrated_home):
    result = migrated_home.hermes("delete", "nobody", "--yes")
    assert result.returncode == 3
    assert "no profile named 'nobody'" in one_stderr_line(result)


# -- both or neither ----------------------------------------------------------
def test_a_failed_append_leaves_no_directory_read_only_store(migrated_home):
    migrated_home.db.chmod(0o444)
    result = migrated_home.hermes("create", "alice")
    assert result.returncode == 5
    assert "read-only" in one_stderr_line(result)
    assert list(tree(migrated_home.path / "profiles")) == []


def test_a_failed_append_leaves_no_directory_locked_store(migrated_home, hermes_user):
    holder = subprocess.Popen(
        ["sqlite3", str(migrated_home.db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        user=hermes_user.uid, group=hermes_user.gid, extra_groups=[],
    )
    try:
        holder.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "locked"
        result = migrated_home.hermes("create", "alice", env={"HERMES_STATE_BUSY_TIMEOUT_MS": "200"})
    finally:
        holder.stdin.write("ROLLBACK;\n")
        holder.stdin.close()
        holder.wait(timeout=10)
    assert result.returncode == 5
    assert "locked" in one_stderr_line(result)
    assert list(tree(migrated_home.path / "profiles")) == []
    assert migrated_home.hermes("history", "alice").returncode == 3


def test_a_failed_directory_leaves_no_event(migrated_home):
    profiles = migrated_home.path / "profiles"
    profiles.mkdir()
    os.chown(profiles, migrated_home.user.uid, migrated_home.user.gid)
    profiles.chmod(0o555)  # the owner too is refused new entries
    try:
        result = migrated_home.hermes("create", "alice")
    finally:
        profiles.chmod(0o755)
    assert result.returncode == 1
    assert "cannot create the profile directory" in one_stderr_line(result)
    assert list(tree(profiles)) == []
    assert migrated_home.hermes("history", "alice").returncode == 3


def test_a_stale_staging_directory_does_not_block_create(migrated_home):
    """The staging directory is private to its create: a crashed one (the legacy fixture's
    `.november.staging-1234`) neither blocks a new create nor shows up in the list."""
    stale = migrated_home.path / "profiles" / ".november.staging-1234"
    stale.mkdir(parents=True)
    (stale / "SOUL.md").write_text("# november\n")
    os.chown(stale.parent, migrated_home.user.uid, migrated_home.user.gid)
    result = migrated_home.hermes("create", "november")
    assert result.returncode == 0, result.stderr
    assert (migrated_home.path / "profiles" / "november" / "SOUL.md").exists()
    assert stale.exists()  # not ours to remove: another process may still own it


# -- list ---------------------------------------------------------------------
def test_list_shows_desired_last_event_and_recent_crashes(migrated_home):
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    writer = LogWriter(migrated_home, start=now - timedelta(hours=3))
    writer.append("alice", "created", "cli", "down")
    writer.append("alice", "started", "cli", "up")
    writer.run("alice", 101, seconds=5, exit_code=1)  # three hours ago: not in the last hour
    writer.at(now - timedelta(minutes=20))
    writer.run("alice", 102, seconds=5, signal=9)
    writer.run("alice", 103, seconds=5, exit_code=2)
    writer.append("bob", "created", "cli", "down")
    writer.close()
    rows = {row["profile"]: row for row in json_lines(migrated_home.hermes("list", "--json").stdout)}
    assert rows["alice"]["desired"] == "up"
    assert rows["alice"]["last_event"] == "crashed"
    assert rows["alice"]["crashes_last_hour"] == 2
    assert rows["alice"]["last_exit_code"] == 2
    assert rows["bob"]["desired"] == "down" and rows["bob"]["crashes_last_hour"] == 0
    table = migrated_home.hermes("list")
    assert table.returncode == 0, table.stderr
    alice_line = next(line for line in table.stdout.splitlines() if line.startswith("alice"))
    assert "crashed by supervisor (exit 2)" in alice_line
    assert alice_line.split()[-1] == "2"  # crashes in the last hour, the last column (no pid: not running)


def test_list_before_any_store_says_how_to_make_one(home):
    result = home.hermes("list")
    assert result.returncode == 5
    assert "hermes-state migrate" in one_stderr_line(result)
