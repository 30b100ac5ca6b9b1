"""`hermes-state doctor`: healthy files pass; tampered, corrupt and foreign ones are named precisely."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from hermes_lifecycle.backends.sqlite.driver import has_wal_reset_bug
from hermes_lifecycle.backends.sqlite.checks import filesystem_type
from hermes_lifecycle.checks import ERROR, OK, WARNING
from hermes_lifecycle.doctor import diagnose
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store

from conftest import HERMES, give_to, run_on_terminal


def fill(home, events: int = 6) -> None:
    """A few events appended through the store, as the unprivileged user would."""
    with open_store(Settings.from_env(home.env())) as store:
        store.append(NewEvent("alice", "created", "cli", "down"))
        for number in range(events - 1):
            store.append(NewEvent("alice", "started" if number % 2 == 0 else "stopped", "cli",
                                  "up" if number % 2 == 0 else "down"))
    give_to(home.path, home.user)


def doctor_json(home):
    result = home.hermes("doctor", "--json")
    assert len(result.stdout.splitlines()) == 1
    return result.returncode, {c["check"]: c for c in json.loads(result.stdout)["checks"]}, result.stderr


def raw(db, *statements: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.close()


def test_a_healthy_store(migrated_home):
    fill(migrated_home)
    status, checks, stderr = doctor_json(migrated_home)
    assert status == 0 and stderr == ""
    for name in ("integrity", "schema", "schema objects", "hash chain", "projection"):
        assert checks[name]["status"] == OK, checks[name]
    assert checks["hash chain"]["detail"].startswith("6 events")
    assert checks["journal"]["detail"] == "journal_mode=wal"


def test_the_human_output_is_a_table_and_says_healthy_by_its_status(migrated_home):
    fill(migrated_home)
    result = migrated_home.hermes("doctor")
    assert result.returncode == 0
    assert "hash chain" in result.stdout and "FAIL" not in result.stdout


def test_piped_the_table_is_not_folded_at_80_columns(migrated_home):
    """A store path longer than 80 characters stays on one line in `doctor | grep`."""
    deep = migrated_home.path / ("a-directory-with-a-long-name-" * 3)
    deep.mkdir()
    moved = deep / "profiles.db"
    migrated_home.db.rename(moved)
    give_to(migrated_home.path, migrated_home.user)
    result = migrated_home.hermes("doctor", env={"HERMES_STATE_DB": str(moved), "COLUMNS": ""})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(str(moved)) > 80 and lines[0].rstrip() == str(moved)
    assert any(line.startswith("ok") and "integrity" in line for line in lines)


def test_a_row_changed_behind_the_triggers_is_found_by_position(migrated_home):
    fill(migrated_home)
    raw(migrated_home.db,
        "DROP TRIGGER events_refuse_update",
        "UPDATE events SET reason = 'forged' WHERE position = 4")
    status, checks, stderr = doctor_json(migrated_home)
    assert status == 5
    assert checks["hash chain"]["status"] == ERROR and "position 4" in checks["hash chain"]["detail"]
    assert checks["schema objects"]["status"] == ERROR and "events_refuse_update" in checks["schema objects"]["detail"]
    assert stderr.count("\n") == 1 and "unhealthy" in stderr


def test_a_change_hidden_by_restored_triggers_is_still_found(migrated_home):
    fill(migrated_home)
    raw(migrated_home.db,
        "DROP TRIGGER events_refuse_update",
        "UPDATE events SET desired = 'up', type = 'started' WHERE position = 3",
        "CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events BEGIN "
        "SELECT RAISE(ABORT, 'events is append-only: UPDATE refused'); END")
    status, checks, _ = doctor_json(migrated_home)
    assert status == 5
    assert "position 3" in checks["hash chain"]["detail"]
    assert checks["schema objects"]["status"] == OK


def test_a_deleted_row_breaks_the_chain_at_the_next_one(migrated_home):
    fill(migrated_home)
    raw(migrated_home.db, "DROP TRIGGER events_refuse_delete", "DELETE FROM events WHERE position = 5")
    status, checks, _ = doctor_json(migrated_home)
    assert status == 5 and "position 6" in checks["hash chain"]["detail"]
    assert checks["fold"]["status"] == ERROR  # versions no longer follow


def test_a_projection_out_of_step_with_the_log(migrated_home):
    fill(migrated_home, events=2)
    raw(migrated_home.db, "UPDATE profile_projection SET desired = 'down', version = 2 WHERE profile = 'alice'",
        "UPDATE profile_projection SET run_pid = 99 WHERE profile = 'alice'")
    status, checks, _ = doctor_json(migrated_home)
    assert status == 5
    assert checks["projection"]["status"] == ERROR and "alice" in checks["projection"]["detail"]
    assert checks["hash chain"]["status"] == OK


def test_a_file_of_garbage(home):
    home.db.parent.mkdir(parents=True)
    home.db.write_bytes(os.urandom(8192))
    give_to(home.path, home.user)
    before = home.db.read_bytes()
    status, checks, stderr = doctor_json(home)
    assert status == 5
    assert any(c["status"] == ERROR and "not a SQLite database" in c["detail"] for c in checks.values())
    assert home.db.read_bytes() == before


def test_a_missing_store(home):
    status, checks, _ = doctor_json(home)
    assert status == 5 and "no event store" in checks["file"]["detail"]


def test_a_symlinked_store_is_refused(migrated_home):
    real = migrated_home.db.with_name("real.db")
    migrated_home.db.rename(real)
    migrated_home.db.symlink_to(real)
    status, checks, _ = doctor_json(migrated_home)
    assert status == 5 and "symbolic link" in checks["file"]["detail"]


def test_ownership_is_checked_against_the_gateway_user_when_root(migrated_home):
    if os.geteuid() != 0:
        pytest.skip("the expected owner is only checked when doctor runs as root")
    fill(migrated_home)
    result = migrated_home.hermes("doctor", "--json", as_root=True)
    ownership = [c for c in json.loads(result.stdout)["checks"] if c["check"] == "ownership"]
    assert ownership and all(c["status"] == OK for c in ownership)
    os.chown(migrated_home.db, 0, 0)
    result = migrated_home.hermes("doctor", "--json", as_root=True)
    ownership = [c for c in json.loads(result.stdout)["checks"] if c["check"] == "ownership"]
    assert any(c["status"] == WARNING and "expected owner" in c["detail"] for c in ownership)
    assert result.returncode == 0  # a warning, not an error


MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:40 / /data rw - nfs4 server:/export rw
31 30 0:41 / /data/local rw - xfs /dev/sdb1 rw
32 22 0:42 / /mnt/my\\040share rw - fuse.sshfs host: rw
"""


@pytest.mark.parametrize(
    "path, expected",
    [("/srv/x.db", "ext4"), ("/data/x.db", "nfs4"), ("/data/local/x.db", "xfs"),
     ("/datax/y.db", "ext4"), ("/mnt/my share/z.db", "fuse.sshfs")],
)
def test_filesystem_type_takes_the_longest_mount_prefix(path, expected):
    assert filesystem_type(path, MOUNTINFO) == expected


@pytest.mark.parametrize(
    "version, affected",
    [((3, 40, 1), True), ((3, 51, 2), True), ((3, 51, 3), False), ((3, 53, 4), False), ((4, 0, 0), False)],
)
def test_the_wal_reset_bug_range(version, affected):
    assert has_wal_reset_bug(version) is affected


def test_diagnose_reports_the_sqlite_in_use(tmp_path):
    report = diagnose(Settings.from_env({"HERMES_STATE_DB": str(tmp_path / "absent.db"), "HERMES_HOME": str(tmp_path)}))
    sqlite = next(f for f in report.findings if f.check == "sqlite")
    assert "SQLite 3." in sqlite.detail
    assert not report.healthy


def test_a_progress_bar_on_a_terminal_for_a_long_log(home):
    """Verifying a long chain takes a while: on a terminal, doctor shows how far it is."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bulk_log", Path(__file__).resolve().parent.parent / "bench" / "bulk_log.py")
    bulk_log = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bulk_log)
    home.db.parent.mkdir(parents=True)
    bulk_log.load_log(home.db, profiles=20, events=30_000)
    give_to(home.path, home.user)
    status, seen = run_on_terminal([str(HERMES), "doctor"], home.user, env=home.env())
    assert status == 0, seen[-500:]
    assert b"verifying the log" in seen
    assert b"30000 events verified" in seen
