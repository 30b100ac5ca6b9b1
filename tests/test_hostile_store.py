"""The store is untrusted input: what the `hermes` user (or a crash) can do to the file, and what root then does.

Each test reproduces an attack or a fault as it happens: the unprivileged
uid changes the volume (a symlinked directory, rows behind the store's back,
a replaced table, a file renamed over the store), and the real root-side
commands (`hermes-state watch`, `hermes-state boot`) and `hermes profile
history` run against it, with a real s6-svscan. docs/reliability.md lists
them under "The store as input".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import HERMES, run_as
from projector_support import IS_ROOT, rig_for, wait_for
from store_helpers import operator_rows

from hermes_lifecycle.errors import BadInput, SchemaMismatch, StoreUnavailable
from hermes_lifecycle.events import MAX_DATA_BYTES, NewEvent
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import migrate, open_store

pytestmark = pytest.mark.slow

# Statements run by the file's owner with CHECK constraints off: rows the store itself would refuse.
_HOSTILE_SQL = r"""
import json, sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA ignore_check_constraints = ON")
for statement, params in json.loads(sys.stdin.read()):
    connection.execute(statement, [bytes.fromhex(p[4:]) if isinstance(p, str) and p.startswith("hex:") else p
                                   for p in params])
connection.close()
"""

INSERT_ROW = (
    "INSERT INTO events (profile, version, type, actor, desired, occurred_at, host, pid, reason, data, hash) "
    "VALUES (?, ?, ?, 'cli', ?, '2026-01-01T00:00:00.000Z', 'h', ?, ?, ?, ?)"
)


def hostile(rig, *statements: tuple[str, list]) -> None:
    """Run SQL as the unprivileged owner of the store, behind the store's back."""
    result = run_as([sys.executable, "-c", _HOSTILE_SQL, str(rig.home.db)], rig.user, env=rig.env(),
                    input=json.dumps(statements), timeout=60)
    assert result.returncode == 0, result.stderr


def last_position(rig) -> int:
    return operator_rows(rig.home.db, "SELECT max(position) AS p FROM events")[0]["p"]


def as_user_shell(rig, script: str) -> None:
    result = run_as(["/bin/sh", "-ec", script], rig.user, env=rig.env(), cwd=rig.home.path)
    assert result.returncode == 0, result.stderr


def slots(rig) -> list[str]:
    return sorted(p.name for p in rig.scandir.iterdir() if not p.name.startswith("."))


@pytest.fixture
def rig(world_tmp, home):
    with rig_for(world_tmp, home, booted=True, HERMES_WATCH_POLL_INTERVAL="0.5") as rig:
        yield rig


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("hermes-state: ")]


# -- 1. a symbolic link on the way to the store ------------------------------------------
def _other_users_store(world_tmp: Path) -> Path:
    """Another user's private state directory holding a store whose profile 'stolen' is desired up."""
    other = world_tmp / "other"
    settings = Settings.from_env({"HERMES_HOME": str(other), "HERMES_HOST_ID": "00000000-0000-4000-8000-0000000000aa"})
    migrate(settings)
    with open_store(settings) as store:
        store.append(NewEvent("stolen", "created", "cli", "down"))
        store.append(NewEvent("stolen", "started", "cli", "up"))
    for root, dirs, files in os.walk(other):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, 65534, 65534)  # nobody: neither root nor the gateway user
    (other / "state").chmod(0o700)
    other.chmod(0o700)
    return other / "state"


@pytest.mark.skipif(not IS_ROOT, reason="the attack is on the root side: needs root")
def test_a_symlinked_state_directory_is_refused_by_watch_and_boot_with_no_slot_touched(rig, world_tmp):
    rig.append("create", "alice")
    rig.append("start", "alice")
    watch = rig.start_watch()
    wait_for(lambda: rig.running_pid("alice"), 10, "alice up")
    assert rig.stop_watch(watch) == 0
    before = slots(rig)
    other_state = _other_users_store(world_tmp)

    as_user_shell(rig, f"mv state state.real && ln -s {other_state} state")

    watch = rig.start_watch()
    assert watch.wait(timeout=30) == 5
    lines = rig.watch_output().splitlines()
    assert len(lines) == 1 and "symbolic link" in lines[0] and lines[0].startswith("hermes-state: "), lines
    booted = rig.hermes("boot")  # its writing steps, as the user, cannot open the other store either
    assert booted.returncode == 5 and len(_error_lines(booted.stderr)) == 1, booted.stderr
    assert slots(rig) == before and "gateway-stolen" not in before
    assert rig.running_pid("alice")  # the user's own gateway kept running


@pytest.mark.skipif(not IS_ROOT, reason="the attack is on the root side: needs root")
def test_a_running_daemon_notices_the_way_to_the_store_changed_and_stops_untouched(rig, world_tmp):
    rig.append("create", "alice")
    rig.append("start", "alice")
    watch = rig.start_watch()
    wait_for(lambda: rig.running_pid("alice"), 10, "alice up")
    before = slots(rig)
    other_state = _other_users_store(world_tmp)

    as_user_shell(rig, f"mv state state.real && ln -s {other_state} state")

    assert watch.wait(timeout=30) == 5
    output = rig.watch_output()
    assert '"trigger":"replaced"' in output
    assert _error_lines(output)[-1].count("symbolic link") == 1, output
    assert slots(rig) == before and rig.running_pid("alice")


@pytest.mark.skipif(not IS_ROOT, reason="the owner check is the root side's")
def test_a_store_owned_by_another_user_or_hard_linked_is_refused(rig):
    before = slots(rig)
    os.chown(rig.home.db, 65534, 65534)
    watch = rig.start_watch()
    assert watch.wait(timeout=30) == 5
    assert "belongs to uid 65534" in rig.watch_output() and len(rig.watch_output().splitlines()) == 1
    os.chown(rig.home.db, rig.user.uid, rig.user.gid)
    as_user_shell(rig, "ln state/profiles.db state/second-name")
    watch = rig.start_watch()
    assert watch.wait(timeout=30) == 5
    assert "2 hard links, not one" in rig.watch_output()
    assert slots(rig) == before


@pytest.mark.skipif(not IS_ROOT, reason="the attack is on the root side: needs root")
@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_a_symlinked_wal_or_shm_is_refused_and_its_target_left_alone(rig, world_tmp, suffix):
    victim = world_tmp / "root-owned"
    victim.write_bytes(b"root's own bytes\n")
    before = slots(rig)
    as_user_shell(rig, f"rm -f state/profiles.db-wal state/profiles.db-shm && ln -s {victim} state/profiles.db{suffix}")
    watch = rig.start_watch()
    assert watch.wait(timeout=30) == 5
    assert f"profiles.db{suffix} is a symbolic link" in rig.watch_output()
    assert victim.read_bytes() == b"root's own bytes\n" and slots(rig) == before


@pytest.mark.skipif(not IS_ROOT, reason="the attack is on the root side: needs root")
def test_root_migrating_through_a_symlinked_state_directory_is_refused(rig, world_tmp):
    target = world_tmp / "elsewhere"
    target.mkdir()
    as_user_shell(rig, f"mv state state.real && ln -s {target} state")
    result = rig.hermes("migrate")
    assert result.returncode == 5 and "symbolic link" in result.stderr, result.stderr
    assert list(target.iterdir()) == []


# -- 2. malformed rows -----------------------------------------------------------------
MALFORMED = [
    ("data is not JSON", "{not json", None),
    ("data is not text", "hex:7b7d", None),  # a BLOB holding '{}'
    ("pid", "{}", "not a number"),  # a wrong type in an integer column
]


def test_malformed_rows_are_skipped_and_reported_by_the_daemon_which_serves_on(rig):
    rig.append("create", "alice", "bob")
    watch = rig.start_watch()
    wait_for(lambda: rig.status("alice") and rig.status("bob"), 10, "the slots")
    first = last_position(rig) + 1
    hostile(rig, *[
        (INSERT_ROW, ["alice", 1000 + number, "started", "up", pid, None, data, f"{number:064d}"])
        for number, (_, data, pid) in enumerate(MALFORMED)
    ])
    rig.append("start", "bob")
    wait_for(lambda: rig.running_pid("bob"), 10, "bob started after the malformed rows")
    assert watch.poll() is None  # alive
    wait_for(lambda: rig.watch_output().count('"skipped"') >= len(MALFORMED), 10, "each bad row reported")
    reports = [json.loads(line) for line in rig.watch_output().splitlines() if '"skipped"' in line]
    assert [r["skipped"]["position"] for r in reports] == [first, first + 1, first + 2]
    for report, (problem, _, _) in zip(reports, MALFORMED):
        assert problem in report["skipped"]["problem"]
    rig.append("stop", "bob")  # the same rows read again on later passes: reported once
    wait_for(lambda: rig.status("bob")["up"] is False, 10, "bob stopped")
    assert rig.watch_output().count('"skipped"') == len(MALFORMED)
    assert "Traceback" not in rig.watch_output()
    assert rig.stop_watch(watch) == 0


def test_profile_history_shows_the_good_rows_and_names_the_bad_ones(rig):
    rig.append("create", "alice")
    rig.append("start", "alice")
    bad = last_position(rig) + 1
    hostile(rig, (INSERT_ROW, ["alice", 1000, "started", "up", None, None, "{not json", "a" * 64]))
    for args in (("history", "alice"), ("history", "alice", "--json")):
        result = rig.as_user(*args)
        assert result.returncode == 5, result.stderr
        assert "Traceback" not in result.stderr
        assert f"malformed row in events at position {bad}: data is not JSON" in result.stderr
        assert "run `hermes-state doctor`" in result.stderr
    rows = [json.loads(line) for line in rig.as_user("history", "alice", "--json").stdout.splitlines()]
    assert [(r["type"], r["actor"]) for r in rows] == [("created", "cli"), ("started", "cli")]


def test_a_malformed_projection_row_stops_history_with_one_line(rig):
    rig.append("create", "alice")
    hostile(rig, ("UPDATE profile_projection SET last_at = ? WHERE profile = 'alice'", ["yesterday"]))
    result = rig.as_user("history", "alice")
    assert result.returncode == 5
    assert _error_lines(result.stderr) == [
        "hermes-state: malformed row in profile_projection at profile 'alice': a time is not in the log's format"
    ]


@pytest.mark.parametrize("crashes, last", [("'many'", "NULL"), ("-1", "NULL"), ("3", "NULL"), ("0", "1"),
                                           ("zeroblob(2000)", "1")])
def test_a_forged_crash_count_stops_history_with_one_line(rig, crashes, last):
    """The count history shows comes from the projection (0005): a value that is no count, or one that
    disagrees with its newest crash's position, is refused, never shown and never a traceback."""
    rig.append("create", "alice")
    hostile(rig, (f"UPDATE profile_projection SET crashes = {crashes}, last_crash_position = {last} "
                  "WHERE profile = 'alice'", []))
    result = rig.as_user("history", "alice")
    assert result.returncode == 5, result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("hermes-state: malformed row in profile_projection at profile 'alice'")


def test_profile_list_fails_closed_on_a_malformed_projection_row(rig):
    rig.append("create", "alice")
    hostile(rig, ("UPDATE profile_projection SET version = 'many' WHERE profile = 'alice'", []))
    result = rig.as_user("list")
    assert result.returncode == 5
    assert _error_lines(result.stderr) == [
        "hermes-state: malformed row in profile_projection at profile 'alice': version is not a positive integer"
    ]


# -- 3. a hostile schema ------------------------------------------------------------------
RUNAWAY_VIEW = (
    "CREATE VIEW profile_projection AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
    "SELECT p.* FROM n, projection_saved AS p"
)


def test_a_projection_replaced_by_a_runaway_view_is_refused_at_open(rig):
    rig.append("create", "alice")
    rig.append("start", "alice")
    before = slots(rig)
    hostile(rig, ("ALTER TABLE profile_projection RENAME TO projection_saved", []), (RUNAWAY_VIEW, []))
    watch = rig.start_watch()
    assert watch.wait(timeout=30) == 5
    lines = rig.watch_output().splitlines()
    assert lines == [f"hermes-state: event store {rig.home.db} refused: profile_projection is a view, not the table "
                     "the migrations make; run `hermes-state doctor`"]
    booted = rig.hermes("boot")
    assert booted.returncode == 5 and "profile_projection is a view" in booted.stderr
    assert slots(rig) == before
    doctor = rig.hermes("doctor")
    assert doctor.returncode == 5 and "profile_projection is a view" in doctor.stdout + doctor.stderr


def test_a_table_whose_checks_were_dropped_is_refused(rig):
    rig.append("create", "alice")
    hostile(
        rig,
        ("ALTER TABLE events RENAME TO events_saved", []),
        ("CREATE TABLE events AS SELECT * FROM events_saved", []),
    )
    result = rig.as_user("history", "alice")
    assert result.returncode == 5
    assert "table events is not the one the migrations make" in result.stderr


def test_the_recorded_tables_are_what_the_migrations_make(tmp_path):
    """The hashes in revision.py are the migrations' own: a fresh store passes the check."""
    import sqlite3

    from hermes_lifecycle.backends.sqlite.revision import require_head

    settings = Settings.from_env({"HERMES_HOME": str(tmp_path)})
    migrate(settings)
    connection = sqlite3.connect(settings.db_path)
    try:
        require_head(connection, settings.db_path)
        connection.execute("DROP TRIGGER events_refuse_update")  # not a table it reads: still fine
        require_head(connection, settings.db_path)
        connection.execute("ALTER TABLE profile_projection ADD COLUMN extra TEXT")
        with pytest.raises(SchemaMismatch, match="table profile_projection is not the one"):
            require_head(connection, settings.db_path)
    finally:
        connection.close()


def _runaway(store) -> None:
    with store.reading() as tx:
        tx._tx._driver.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                               "SELECT count(*) FROM n").fetchone()


def test_a_runaway_statement_is_stopped_by_its_bound_and_by_interrupt(tmp_path):
    """Every statement runs under the progress handler: past the bound, or after interrupt(), it stops."""
    from hermes_lifecycle.backends.sqlite.recorder import SqliteRecorder
    from hermes_lifecycle.store.log import EventStore

    settings = Settings.from_env({"HERMES_HOME": str(tmp_path)})
    migrate(settings)
    bounded = SqliteRecorder(settings.store_file, readonly=True, busy_timeout_ms=1000, statement_seconds=0.2)
    with EventStore(bounded, host=None) as store, pytest.raises(StoreUnavailable, match="ran past its time bound"):
        _runaway(store)

    unbounded = SqliteRecorder(settings.store_file, readonly=True, busy_timeout_ms=1000, statement_seconds=3600)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            _runaway(store)
        except BaseException as error:  # checked below
            failures.append(error)

    with EventStore(unbounded, host=None) as store:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive()  # still counting
        unbounded.interrupt()
        worker.join(timeout=30)
        assert not worker.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], StoreUnavailable)


# -- 4. a store replaced under the daemon ----------------------------------------------------
def _replace_store_with_one_where_carol_is_up(rig) -> None:
    """As the user: a new store beside the old one, with carol desired up, renamed over profiles.db."""
    new_db = rig.home.path / "state" / "new.db"
    env = rig.env(HERMES_STATE_DB=str(new_db))
    for args in (("migrate",), ("create", "carol"), ("start", "carol")):
        result = run_as([str(HERMES), *args], rig.user, env=env)
        assert result.returncode == 0, result.stderr
    # The old file's WAL is emptied first (docs/reliability.md: replacing a store), then the rename.
    hostile(rig, ("PRAGMA wal_checkpoint(TRUNCATE)", []))
    as_user_shell(rig, "mv state/new.db state/profiles.db")


def test_a_store_replaced_under_the_daemon_is_reopened_and_projected(rig):
    rig.append("create", "alice")
    rig.append("start", "alice")
    watch = rig.start_watch()
    wait_for(lambda: rig.running_pid("alice"), 10, "alice up")

    _replace_store_with_one_where_carol_is_up(rig)

    wait_for(lambda: rig.running_pid("carol"), 10, "carol, from the new file, up")
    wait_for(lambda: rig.status("alice") is None, 20, "alice's slot removed: not in the new file")
    assert watch.poll() is None
    replaced = [json.loads(line) for line in rig.watch_output().splitlines() if '"replaced"' in line]
    assert len(replaced) == 1 and "was replaced by another file" in replaced[0]["store"]
    assert rig.stop_watch(watch) == 0


def test_history_follow_stops_with_one_line_when_the_store_is_replaced(rig):
    rig.append("create", "alice")
    follower = subprocess.Popen(
        [str(HERMES), "history", "alice", "--follow"], env=rig.env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        **({} if rig.user.is_self else {"user": rig.user.uid, "group": rig.user.gid, "extra_groups": []}),
    )
    try:
        assert "following alice" in follower.stderr.readline()
        _replace_store_with_one_where_carol_is_up(rig)
        assert follower.wait(timeout=20) == 5
        errors = follower.stderr.read().splitlines()
        assert errors == [f"hermes-state: event store {rig.home.db} was replaced by another file: stopped following; "
                          "run the command again"]
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


# -- not yet tried: the clock going backwards ------------------------------------------------
_BACKWARDS = r"""
import sys
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store
times = iter(sys.argv[1:])
with open_store(Settings.from_env(), clock=lambda: next(times)) as store:
    store.append(NewEvent("clocky", "created", "cli", "down"))
    first = store.append(NewEvent("clocky", "started", "supervisor", pid=100))
    store.append(NewEvent("clocky", "crashed", "supervisor", exit_code=1, data={"run": first.position}))
    second = store.append(NewEvent("clocky", "started", "supervisor", pid=200))
    store.append(NewEvent("clocky", "crashed", "supervisor", exit_code=2, data={"run": second.position}))
"""


def test_a_clock_set_back_keeps_log_order_and_the_last_crash_is_the_newest_by_position(rig):
    # Created and a first run at 12:00; then the clock goes back an hour for the second run.
    times = ["2026-11-27T12:00:00.000Z", "2026-11-27T12:00:01.000Z", "2026-11-27T12:00:05.000Z",
             "2026-11-27T11:00:00.000Z", "2026-11-27T11:00:03.000Z"]
    result = run_as([sys.executable, "-c", _BACKWARDS, *times], rig.user, env=rig.env())
    assert result.returncode == 0, result.stderr

    rows = [json.loads(line) for line in rig.as_user("history", "clocky", "--json").stdout.splitlines()]
    assert [r["occurred_at"] for r in rows] == times  # position order, whatever the clock said
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)
    since = rig.as_user("history", "clocky", "--json", "--since", "2026-11-27T11:30:00Z")
    assert [json.loads(line)["occurred_at"] for line in since.stdout.splitlines()] == times[:3]

    table = rig.as_user("history", "clocky").stdout
    assert "2 crashes, last crash" in table and "exit 2" in table.split("last crash", 1)[1].splitlines()[0]
    runs = operator_rows(rig.home.db, "SELECT run, ended_by, exit_code FROM gateway_runs "
                                      "WHERE profile = 'clocky' ORDER BY run")
    assert [(r["ended_by"], r["exit_code"]) for r in runs] == [("crashed", 1), ("crashed", 2)]


# -- not yet tried: very large values ------------------------------------------------------------
def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_huge_values_keep_the_daemon_small_and_history_readable(rig):
    rig.append("create", "alice", "bob")
    watch = rig.start_watch(HERMES_WATCH_FULL_PASS_INTERVAL="1")
    wait_for(lambda: rig.status("alice") and rig.status("bob"), 10, "the slots")
    rig.append("start", "alice")
    wait_for(lambda: rig.running_pid("alice"), 10, "alice up")
    baseline = _peak_kib(watch.pid)
    huge = 64 * 1024 * 1024
    hostile(rig, (
        "INSERT INTO events (profile, version, type, actor, desired, occurred_at, host, reason, data, hash) "
        "VALUES ('bob', 1000, 'started', 'cli', 'up', '2026-01-01T00:00:00.000Z', 'h', "
        "'r' || zeroblob(?), json_object('x', hex(zeroblob(?))), ?)",
        [huge // 4, huge // 2, "b" * 64],
    ))
    position = operator_rows(rig.home.db, "SELECT position FROM events WHERE version = 1000")[0]["position"]
    rig.append("stop", "alice")
    wait_for(lambda: rig.status("alice")["up"] is False, 10, "alice stopped after the huge row")
    wait_for(lambda: '"skipped"' in rig.watch_output(), 10, "the huge row reported")
    report = next(json.loads(line) for line in rig.watch_output().splitlines() if '"skipped"' in line)
    assert report["skipped"]["position"] == position and "data" in report["skipped"]["problem"]
    # The projection row too: a reason of 32 MiB, read by every full pass (each second here).
    hostile(rig, ("UPDATE profile_projection SET last_reason = 'r' || zeroblob(?) WHERE profile = 'bob'", [huge // 2]))
    wait_for(lambda: "oversized last_reason" in rig.watch_output(), 10, "bob's projection row refused as oversized")
    assert rig.status("bob") is not None  # a row it cannot read leaves the slot alone
    assert _peak_kib(watch.pid) - baseline < 16 * 1024  # neither huge value was ever loaded
    assert rig.stop_watch(watch) == 0
    hostile(rig, ("UPDATE profile_projection SET last_reason = NULL WHERE profile = 'bob'", []))

    # No append writes such a row: every reader takes it as malformed, never loads it (tests/test_root_reads.py).
    for args in (("history", "bob"), ("history", "bob", "--json")):
        shown = rig.as_user(*args)
        assert shown.returncode == 5, shown.stderr
        assert f"malformed row in events at position {position}: reason data larger than a reader takes" in shown.stderr
        assert max(len(line) for line in shown.stdout.splitlines()) < 1000, shown.stdout  # the good rows only


def test_an_append_with_oversized_data_is_refused(tmp_path):
    settings = Settings.from_env({"HERMES_HOME": str(tmp_path), "HERMES_HOST_ID": "00000000-0000-4000-8000-000000000001"})
    migrate(settings)
    with open_store(settings) as store:
        store.append(NewEvent("alice", "created", "cli", "down", data={"x": "y" * (MAX_DATA_BYTES - 100)}))
        with pytest.raises(BadInput, match="larger than"):
            store.append(NewEvent("alice", "stopped", "cli", "down", data={"x": "y" * MAX_DATA_BYTES}))


def test_the_bounded_reads_run_on_a_sqlite_without_octet_length(tmp_path):
    """The standard library's SQLite may predate octet_length (3.43): the stand-in gives the same rows."""
    import sqlite3

    from hermes_lifecycle.backends.sqlite import sql
    from hermes_lifecycle.backends.sqlite.connect import _octet_length

    settings = Settings.from_env({"HERMES_HOME": str(tmp_path), "HERMES_HOST_ID": "00000000-0000-4000-8000-000000000001"})
    migrate(settings)
    with open_store(settings) as store:
        store.append(NewEvent("alice", "created", "cli", "down", data={"x": "é" * 10}))
    connection = sqlite3.connect(settings.db_path)
    connection.create_function("octet_length", 1, _octet_length, deterministic=True)
    connection.execute("PRAGMA ignore_check_constraints = ON")
    connection.execute("UPDATE profile_projection SET last_reason = ? WHERE profile = 'alice'", ["é" * 600])
    try:
        (row,) = connection.execute(sql.EVENTS_AFTER, {"after": 0, "limit": -1}).fetchall()
        assert row[-1] == "" and row[13] == '{"x":"' + "é" * 10 + '"}'
        (state,) = connection.execute(sql.PROJECTION_ALL).fetchall()
        assert state[-1] == "last_reason " and state[8] is None  # 1200 bytes: over the bound
    finally:
        connection.close()


def test_the_bound_is_per_statement_so_a_long_read_of_many_statements_finishes(tmp_path):
    """doctor reads a 1M-event log in one snapshot, batch by batch: the bound must not add them up."""
    from hermes_lifecycle.backends.sqlite.recorder import SqliteRecorder
    from hermes_lifecycle.store.log import EventStore

    settings = Settings.from_env({"HERMES_HOME": str(tmp_path)})
    migrate(settings)
    bounded = SqliteRecorder(settings.store_file, readonly=True, busy_timeout_ms=1000, statement_seconds=0.3)
    with EventStore(bounded, host=None) as store, store.reading() as tx:
        for _ in range(4):  # 0.8 s in all, each statement a fraction of a millisecond
            assert tx.last_position() == 0
            time.sleep(0.2)
