"""`hermes-state doctor`: healthy stores pass; tampered, corrupt and foreign ones are named precisely.

The tests that take ``backend`` run once per backend (tests/contract/backends.py: a SQLite file, a
database of the session's private PostgreSQL server); the others are about SQLite's file. What only a
fleet's PostgreSQL has (roles, hosts, triggers and functions as the migrations made them) is in
tests/test_pg_doctor.py.
"""

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

from backends import Backend, backend  # noqa: F401 (backend: a fixture)
from conftest import HERMES, give_to, run_on_terminal

# What a healthy store's doctor says is ok, per backend (PostgreSQL's roles and hosts: test_pg_doctor.py).
HEALTHY = {"sqlite": ("integrity", "schema", "schema objects", "hash chain", "projection"),
           "postgresql": ("connect", "schema", "triggers", "functions", "views", "hash chain", "projection")}
# The check that finds the log's triggers missing, disabled or replaced.
TRIGGERS = {"sqlite": "schema objects", "postgresql": "triggers"}


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


def test_a_healthy_store(backend):
    fill(backend.home)
    status, checks, stderr = doctor_json(backend.home)
    assert status == 0 and stderr == ""
    for name in HEALTHY[backend.name]:
        assert checks[name]["status"] == OK, checks[name]
    assert checks["hash chain"]["detail"] == "6 events verified"
    assert checks["projection"]["detail"] == "1 profiles equal the fold of the log"
    if backend.name == "sqlite":
        assert checks["journal"]["detail"] == "journal_mode=wal"


def test_the_human_output_is_a_table_and_says_healthy_by_its_status(backend):
    fill(backend.home)
    result = backend.home.hermes("doctor")
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


def test_a_row_changed_behind_a_dropped_trigger_is_found_by_position(migrated_home):
    fill(migrated_home)
    raw(migrated_home.db,
        "DROP TRIGGER events_refuse_update",
        "UPDATE events SET reason = 'forged' WHERE position = 4")
    status, checks, stderr = doctor_json(migrated_home)
    assert status == 5
    assert checks["hash chain"]["status"] == ERROR and "position 4" in checks["hash chain"]["detail"]
    assert checks["schema objects"]["status"] == ERROR and "events_refuse_update" in checks["schema objects"]["detail"]
    assert stderr.count("\n") == 1 and "unhealthy" in stderr


def test_a_change_hidden_by_restored_triggers_is_still_found(backend):
    fill(backend.home)
    backend.behind_the_triggers("UPDATE events SET desired = 'up', type = 'started' WHERE position = 3")
    status, checks, stderr = doctor_json(backend.home)
    assert status == 5
    assert checks["hash chain"]["status"] == ERROR
    assert checks["hash chain"]["detail"].startswith("broken at position 3"), checks["hash chain"]
    assert checks[TRIGGERS[backend.name]]["status"] == OK
    assert len(stderr.splitlines()) == 1 and "unhealthy" in stderr, stderr
    human = backend.home.hermes("doctor")
    assert human.returncode == 5 and len(human.stderr.splitlines()) == 1


def test_a_deleted_row_breaks_the_chain_at_the_next_one(backend):
    fill(backend.home)
    backend.behind_the_triggers("DELETE FROM events WHERE position = 5")
    status, checks, _ = doctor_json(backend.home)
    assert status == 5 and "position 6" in checks["hash chain"]["detail"]
    assert checks["fold"]["status"] == ERROR  # versions no longer follow


def test_a_projection_out_of_step_with_the_log(backend):
    fill(backend.home, events=2)
    backend.behind_the_triggers(
        "UPDATE profile_projection SET desired = 'down', version = 2 WHERE profile = 'alice'",
        "UPDATE profile_projection SET run_pid = 99 WHERE profile = 'alice'")
    status, checks, _ = doctor_json(backend.home)
    assert status == 5
    assert checks["projection"]["status"] == ERROR
    assert "projection differs from the fold of the log for: alice" in checks["projection"]["detail"]
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


# -- root's checkpoint (hermes_lifecycle/checkpoint.py) ------------------------------------------------
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root keeps a checkpoint")


def root_doctor(home, *args: str):
    result = home.hermes("doctor", "--json", *args, as_root=True)
    assert len(result.stdout.splitlines()) == 1, result.stderr
    return result.returncode, {c["check"]: c for c in json.loads(result.stdout)["checks"]}, result.stderr


def checkpoints(home):
    return home.path.parent / "doctor-checkpoints"  # conftest's HERMES_STATE_DOCTOR_DIR


def append(home, *types: str) -> None:
    with open_store(Settings.from_env(home.env())) as store:
        for kind in types:
            store.append(NewEvent("alice", kind, "cli", "up" if kind == "started" else "down"))
    give_to(home.path, home.user)


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def rewrite_consistently(backend: Backend, position: int, **changes: str) -> None:
    """What the store's owner can do: change a row, recompute every hash from it on (the chain has
    no secret) and put the triggers back, so that a check from the genesis hash passes."""
    from hermes_lifecycle.chain import chain_hash

    with open_store(backend.settings(), readonly=True) as store, store.reading() as tx:
        rows = [dict(row) for row in tx.rows_after(0)]  # as the chain hashes them, on either backend
    previous = rows[position - 2]["hash"] if position > 1 else "0" * 64
    rows[position - 1].update(changes)
    statements = []
    for row in rows[position - 1:]:
        row["hash"] = previous = chain_hash(previous, row)
        changed = {"hash": row["hash"], **(changes if row["position"] == position else {})}
        statements.append("UPDATE events SET " + ", ".join(f"{name} = {literal(value)}" for name, value in changed.items())
                          + f" WHERE position = {row['position']}")
    backend.behind_the_triggers(*statements)


@needs_root
def test_root_keeps_a_checkpoint_and_verifies_only_the_rows_after_it(backend):
    fill(backend.home)
    status, checks, _ = root_doctor(backend.home)
    assert status == 0 and checks["hash chain"]["detail"] == "6 events verified"
    assert checks["checkpoint"]["status"] == OK and "position 6 kept" in checks["checkpoint"]["detail"]
    [kept] = checkpoints(backend.home).iterdir()
    assert (kept.stat().st_uid, kept.stat().st_mode & 0o777, checkpoints(backend.home).stat().st_mode & 0o777) == (
        0, 0o600, 0o700)
    append(backend.home, "started", "stopped")
    status, checks, _ = root_doctor(backend.home)
    assert status == 0, checks
    assert checks["hash chain"]["detail"].startswith("2 events verified after position 6, whose row is the one verified")
    assert checks["projection"]["status"] == OK and "position 8 kept" in checks["checkpoint"]["detail"]
    status, checks, _ = root_doctor(backend.home, "--full")
    assert status == 0 and checks["hash chain"]["detail"] == "8 events verified"


@needs_root
def test_a_rewrite_before_the_checkpoint_with_the_chain_recomputed_is_found(backend):
    """The chain alone cannot see it (the user's doctor passes); root's checkpoint can."""
    fill(backend.home)
    assert root_doctor(backend.home)[0] == 0
    rewrite_consistently(backend, 3, reason="forged")
    assert doctor_json(backend.home)[0] == 0  # as the store's owner: every hash verifies from the genesis
    for args in ((), ("--full",)):
        status, checks, stderr = root_doctor(backend.home, *args)
        assert status == 5 and "unhealthy: checkpoint" in stderr
        detail = checks["checkpoint"]["detail"]
        assert checks["checkpoint"]["status"] == ERROR and "the row at position 6, verified" in detail
        assert "rewritten, or another store is in its place" in detail and str(checkpoints(backend.home)) in detail
        assert checks["hash chain"] == {"check": "hash chain", "status": OK, "detail": "6 events verified"}
    # Kept as it was (the evidence); removed on purpose, the next doctor verifies everything and keeps a new one.
    [kept] = checkpoints(backend.home).iterdir()
    kept.unlink()
    assert root_doctor(backend.home)[0] == 0 and len(list(checkpoints(backend.home).iterdir())) == 1


@needs_root
def test_rows_removed_from_the_end_are_found(backend):
    """A shorter log still verifies from the genesis; its fold matches once the projection is made
    to agree. The checkpoint knows where the log ended."""
    fill(backend.home)
    assert root_doctor(backend.home)[0] == 0
    backend.behind_the_triggers("DELETE FROM events WHERE position > 4")
    status, checks, _ = root_doctor(backend.home)
    assert status == 5
    assert "the log ends at position 4, before position 6, verified" in checks["checkpoint"]["detail"]


@needs_root
def test_a_row_changed_before_the_checkpoint_without_its_hash_is_found_by_full(backend):
    """The short check reads no row before the checkpoint but the one at it (docs/store.md says so);
    --full reads them all."""
    fill(backend.home)
    assert root_doctor(backend.home)[0] == 0
    backend.behind_the_triggers("UPDATE events SET reason = 'forged' WHERE position = 3")
    status, checks, _ = root_doctor(backend.home, "--full")
    assert status == 5 and checks["hash chain"]["detail"].startswith("broken at position 3")
    assert "checkpoint" not in checks  # position 6 is as verified; a broken chain is never kept


@needs_root
def test_a_change_of_the_row_at_the_checkpoint_is_found(backend):
    fill(backend.home)
    assert root_doctor(backend.home)[0] == 0
    backend.behind_the_triggers("UPDATE events SET reason = 'forged' WHERE position = 6")
    status, checks, _ = root_doctor(backend.home)
    assert status == 5 and "the row at position 6, verified" in checks["checkpoint"]["detail"]
    assert checks["hash chain"]["detail"].startswith("broken at position 6")  # read from the genesis instead


@needs_root
def test_a_checkpoint_directory_others_can_write_is_not_trusted(backend):
    fill(backend.home)
    directory = checkpoints(backend.home)
    directory.mkdir(mode=0o700)
    directory.chmod(0o777)
    status, checks, _ = root_doctor(backend.home)
    assert status == 0
    assert checks["checkpoint"]["status"] == WARNING and "is not this user's alone" in checks["checkpoint"]["detail"]
    assert checks["hash chain"]["detail"] == "6 events verified" and list(directory.iterdir()) == []


def test_a_doctor_not_run_as_root_keeps_no_checkpoint(backend):
    fill(backend.home)
    status, checks, _ = doctor_json(backend.home)
    assert status == 0 and "checkpoint" not in checks
    assert not checkpoints(backend.home).exists()
