"""The commands facing a hostile store or a hostile argument (issue 11, items 8 and 9).

The store belongs to the gateway user, so whatever a row holds is that
user's text; these tests write such rows as that user, behind the store's
back (raw SQL, CHECK constraints off), then run the real `hermes` command,
as root where root is the one under attack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from cli_support import LogWriter, one_stderr_line, tree
from store_helpers import operator_rows

from conftest import HERMES, give_to, run_as

from hermes_lifecycle_cli import grid

IS_ROOT = os.geteuid() == 0
# What a terminal acts on: clear screen, a bell, a title change (OSC), a bidi override, a C1 CSI.
HOSTILE_TEXT = "x\x1b[2J\x07\x1b]0;owned\x07\u202etxt\x9b31m"
RAW = ("\x1b", "\x07", "\u202e", "\x9b")


def as_owner(home, *statements: str, params: tuple = ()) -> None:
    """Raw SQL as the owner of the file, CHECK constraints off: the gateway user gone hostile."""
    code = (
        "import json, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA ignore_check_constraints = ON')\n"
        "params = json.loads(sys.argv[2])\n"
        "for statement in sys.argv[3:]:\n"
        "    c.execute(statement, params if '?' in statement else ())\n"
        "c.close()\n"
    )
    result = run_as([sys.executable, "-c", code, str(home.db), json.dumps(list(params)), *statements],
                    home.user, env=home.env())
    assert result.returncode == 0, result.stderr


def assert_nothing_raw(text: str) -> None:
    for character in RAW:
        assert character not in text, f"{character!r} reached the terminal: {text!r}"


@pytest.fixture
def hostile_alice(migrated_home):
    """alice with a run, then a crash row whose `reason` is terminal escapes (and the projection says so)."""
    writer = LogWriter(migrated_home)
    writer.append("alice", "created", "cli", "down")
    writer.append("alice", "started", "cli", "up")
    started = writer.append("alice", "started", "supervisor", pid=4242)
    writer.close()
    as_owner(
        migrated_home,
        "INSERT INTO events (position, profile, version, type, actor, desired, occurred_at, host, pid, "
        "exit_code, reason, data, hash, chain_version) SELECT max(position) + 1, 'alice', 4, 'crashed', "
        "'supervisor', NULL, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'h', 4242, 1, ?, "
        f"'{{\"run\":{started.position}}}', printf('%064d', 0), 1 FROM events",  # a well-formed hash (not chained)
        "UPDATE profile_projection SET version = 4, last_position = last_position + 1, last_type = 'crashed', "
        "last_reason = ? WHERE profile = 'alice'",
        params=(HOSTILE_TEXT,),
    )
    return migrated_home


# -- item 9: what rows show ---------------------------------------------------
def test_printable_shows_every_control_character_as_its_escape():
    assert grid.printable(HOSTILE_TEXT) == "x\\x1b[2J\\x07\\x1b]0;owned\\x07\\u202etxt\\x9b31m"
    assert grid.printable("plain text, ünïcode") == "plain text, ünïcode"
    assert grid.printable("a" * 300, 10) == "a" * 9 + "\u2026"


def test_a_grid_cell_is_one_printable_line_of_bounded_length():
    table = grid.Grid([grid.Column("reason", "reason")], colour=False)
    rows = [{"reason": "line one\nline two\x1b[31m" + "r" * 10_000}]
    [header, line] = table.fit(rows).lines(rows)
    assert line.startswith("line one line two\\x1b[31mrrr")
    assert len(line) == grid.CELL_LIMIT
    assert_nothing_raw(line)


def test_a_whole_table_shows_every_character_escaped_headers_too(capsys):
    """doctor's, sql's and import-legacy's tables: nothing cut, nothing raw, not even a column's name."""
    reason = "line one\nline two\x1b[31m" + "r" * 10_000
    grid.table([{"\x1b[2Jname": reason}], [grid.Column("\x1b[2Jname", "\x1b[2Jname")], title="/store\u202e")
    title, header, line = capsys.readouterr().out.splitlines()
    assert (title, header) == ("/store\\u202e", "\\x1b[2Jname")
    assert line == "line one\\nline two\\x1b[31m" + "r" * 10_000
    assert_nothing_raw(title + header + line)
    grid.table([{"data": b"\x1b[2J"}], [grid.Column("data", "data")])
    assert capsys.readouterr().out.splitlines()[1] == '{"blob": "1b5b324a"}'  # as `sql`'s JSON line shows a BLOB


def test_profile_list_shows_a_hostile_reason_escaped_as_root_and_json_keeps_it(hostile_alice, hermes_user):
    for as_root in (False, True):
        result = hostile_alice.hermes("list", as_root=as_root)
        assert result.returncode == 0, result.stderr
        assert_nothing_raw(result.stdout + result.stderr)
        assert "\\x1b[2J" in result.stdout
    listed = hostile_alice.hermes("list", "--json")
    assert json.loads(listed.stdout)["last_reason"] == HOSTILE_TEXT


def test_profile_history_shows_a_hostile_reason_escaped_and_json_keeps_it(hostile_alice):
    result = hostile_alice.hermes("history", "alice", as_root=IS_ROOT)
    assert result.returncode == 0, result.stderr
    assert_nothing_raw(result.stdout + result.stderr)
    assert "\\x1b[2J" in result.stdout
    exact = hostile_alice.hermes("history", "alice", "--json")
    assert json.loads(exact.stdout.splitlines()[-1])["reason"] == HOSTILE_TEXT


def test_gateway_status_shows_a_hostile_reason_escaped(hostile_alice):
    as_owner(hostile_alice, "UPDATE profile_projection SET intent_reason = ? WHERE profile = 'alice'",
             params=(HOSTILE_TEXT,))
    result = hostile_alice.hermes("status", "alice", as_root=IS_ROOT)
    assert result.returncode == 0, result.stderr
    assert_nothing_raw(result.stdout + result.stderr)
    assert "\\x1b[2J" in result.stdout


# -- item 9: arguments --------------------------------------------------------
@pytest.mark.parametrize("limit", ["99999999999999999999999", "-1", "2147483648", "ten", "1e3"])
def test_an_impossible_limit_is_one_line_and_2(hostile_alice, limit):
    result = hostile_alice.hermes("history", "alice", "--limit", limit)
    assert result.returncode == 2
    assert "--limit" in one_stderr_line(result)


def test_the_largest_limit_is_all(hostile_alice):
    result = hostile_alice.hermes("history", "alice", "--json", "--limit", "2147483647")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 4


# -- item 9: gateway run on a directory it cannot use ---------------------------
def test_gateway_run_on_an_unreadable_profile_directory_is_one_line_and_78(migrated_home):
    assert migrated_home.hermes("create", "alice").returncode == 0
    directory = migrated_home.path / "profiles" / "alice"
    directory.chmod(0o000)  # as its owner would: the gateway user itself cannot enter it
    try:
        result = migrated_home.hermes("stand-in", "alice", timeout=10)
    finally:
        directory.chmod(0o700)
    assert result.returncode == 78
    line = one_stderr_line(result)
    assert "cannot use its profile" in line and "Permission denied" in line


def test_gateway_run_where_no_lock_can_be_made_is_one_line_and_78(migrated_home):
    assert migrated_home.hermes("create", "alice").returncode == 0
    directory = migrated_home.path / "profiles" / "alice"
    directory.chmod(0o500)  # readable, not writable: SOUL.md is there, the lock cannot be made
    try:
        result = migrated_home.hermes("stand-in", "alice", timeout=10)
    finally:
        directory.chmod(0o700)
    assert result.returncode == 78
    assert "cannot open its lock" in one_stderr_line(result)


# -- item 9: root does not write profiles --------------------------------------
@pytest.mark.skipif(not IS_ROOT, reason="root's refusal needs the suite to run as root (CI does)")
@pytest.mark.parametrize("command", [("create", "alice"), ("delete", "bob", "--yes")])
def test_root_writing_profiles_is_refused_and_nothing_is_made(migrated_home, command):
    writer = LogWriter(migrated_home)
    writer.append("bob", "created", "cli", "down")
    writer.close()
    (migrated_home.path / "profiles" / "bob").mkdir(parents=True)
    give_to(migrated_home.path, migrated_home.user)
    before = list(tree(migrated_home.path))
    digest = migrated_home.db.read_bytes()
    result = migrated_home.hermes(*command, as_root=True)
    assert result.returncode == 2
    line = one_stderr_line(result)
    assert "as root" in line
    assert list(tree(migrated_home.path)) == before
    assert migrated_home.db.read_bytes() == digest
    # The command it names works as it is pasted: the user, the home and this very program in it.
    hint = line.split("run it as that user: ", 1)[1]
    assert hint.startswith(f"runuser -u {migrated_home.user.name} -- env HERMES_HOME=")
    pasted = subprocess.run(["/bin/sh", "-c", hint], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    assert pasted.returncode == 0, pasted.stderr
    assert (migrated_home.path / "profiles" / "alice").is_dir() == (command[0] == "create")


@pytest.mark.skipif(not IS_ROOT, reason="root's refusal needs the suite to run as root (CI does)")
def test_root_is_refused_without_a_hint_to_become_root_when_the_gateway_user_is_root(migrated_home):
    result = migrated_home.hermes("create", "alice", as_root=True, env={"HERMES_USER": "root"})
    assert result.returncode == 2
    line = one_stderr_line(result)
    assert "HERMES_USER names root" in line and "runuser" not in line
    assert not (migrated_home.path / "profiles").exists()


# -- item 8: state sql is read-only, for root too ------------------------------
def _journal_mode(db) -> str:
    return operator_rows(db, "PRAGMA journal_mode")[0]["journal_mode"]


def _counts(db) -> tuple[int, int]:
    return (operator_rows(db, "SELECT count(*) AS n FROM events")[0]["n"],
            operator_rows(db, "SELECT count(*) AS n FROM profile_projection")[0]["n"])


@pytest.fixture
def store_with_alice(migrated_home):
    writer = LogWriter(migrated_home)
    writer.append("alice", "created", "cli", "down")
    writer.close()
    return migrated_home


@pytest.mark.parametrize(
    "statement",
    [
        "ATTACH '{target}' AS other",
        "VACUUM INTO '{target}'",
        "PRAGMA journal_mode=DELETE",
        "PRAGMA user_version=7",
        "INSERT INTO events (profile) VALUES ('x')",
        "DELETE FROM profile_projection",
        "CREATE TEMP TABLE t (x)",
        "VACUUM",
        "REINDEX",
        "ANALYZE",
        "BEGIN IMMEDIATE",
    ],
)
def test_one_statement_that_is_not_a_read_is_refused_with_2_and_creates_nothing(store_with_alice, world_tmp, statement):
    target = world_tmp / "created-by-sql.db"
    before = store_with_alice.db.read_bytes()
    result = store_with_alice.hermes("sql", statement.format(target=target), as_root=IS_ROOT)
    assert result.returncode == 2, result.stderr
    assert "read-only" in one_stderr_line(result)
    assert not target.exists()
    assert store_with_alice.db.read_bytes() == before
    assert _journal_mode(store_with_alice.db) == "wal"
    assert _counts(store_with_alice.db) == (1, 1)


@pytest.mark.parametrize(
    "statement",
    ["SELECT count(*) AS n FROM events", "PRAGMA table_info(events)", "PRAGMA journal_mode",
     "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r",
     "SELECT * FROM profile_status", "PRAGMA quick_check"],
)
def test_reads_still_work(migrated_home, statement):
    result = migrated_home.hermes("sql", statement, as_root=IS_ROOT)
    assert result.returncode == 0, result.stderr
    assert all(isinstance(json.loads(line), dict) for line in result.stdout.splitlines())


@pytest.mark.parametrize(
    "commands",
    [
        ".open {db}\nDELETE FROM profile_projection;\n",
        ".open --new {target}\n",
        "ATTACH '{target}' AS other;\n",
        "VACUUM INTO '{target}';\n",
        ".output {target}\nSELECT 1;\n",
        ".shell touch {target}\n",
        "PRAGMA query_only=OFF;\nDELETE FROM profile_projection;\n",
        "PRAGMA journal_mode=DELETE;\n",
    ],
)
def test_the_interactive_shell_writes_nothing_anywhere(store_with_alice, world_tmp, commands):
    target = world_tmp / "created-by-shell"
    before = store_with_alice.db.read_bytes()
    result = store_with_alice.hermes("sql", as_root=IS_ROOT,
                                     input=commands.format(db=store_with_alice.db, target=target))
    assert not target.exists(), result.stderr
    assert result.stderr.strip(), "the shell said nothing of what it refused"
    assert store_with_alice.db.read_bytes() == before
    assert _journal_mode(store_with_alice.db) == "wal"
    assert _counts(store_with_alice.db) == (1, 1)


def test_ctrl_c_stops_a_statement_on_a_view_that_never_ends(store_with_alice):
    """The gateway user replaces a view operators query with an endless one; root's Ctrl-C still works."""
    as_owner(store_with_alice,
             "CREATE VIEW endless AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
             "SELECT count(*) AS n FROM r")
    process = subprocess.Popen([str(HERMES), "sql", "SELECT * FROM endless"], env=store_with_alice.env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)  # into the statement (no timing is measured: only that SIGINT ends it)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert err.strip() == "hermes-state: interrupted" and out == ""
