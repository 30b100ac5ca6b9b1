"""A fleet host while its PostgreSQL is unreachable (docs/fleet.md, "Outages", "The hooks").

A real private server (tests/pg_cluster.py) stopped and started for real, the real `hermes`
command as the unprivileged uid. Every command says in one line that the store is
unreachable and exits 5; `record-start` still execs the gateway; `record-exit` keeps the
exit in the host's spool, and the host's next write appends it, once, at the time it was seen.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path

import psycopg.rows
import pytest

from conftest import HOOKS_UNSUPERVISED, Home, give_to, recording_gateway
from hermes_lifecycle import store
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings

HOST_ID = "00000000-0000-4000-8000-0000000000aa"
WAIT_SECONDS = 120  # a bound on waiting for a condition, never a measured time


@pytest.fixture
def fleet(home: Home, pg_database) -> Home:
    """A host on a migrated database, with `alice` live and wanted up."""
    env = {"HERMES_STATE_URL": pg_database.url, "HERMES_HOST_ID": HOST_ID}
    settings = Settings.from_env({**home.env(), **env})
    store.migrate(settings)
    with store.open_store(settings) as writer:
        writer.append_all([NewEvent("alice", "created", "cli", "down"), NewEvent("alice", "started", "cli", "up")])
    give_to(home.path, home.user)
    return dataclasses.replace(home, extra_env={**env, **HOOKS_UNSUPERVISED})  # its hooks are called directly


def events(database, **where: str) -> list[dict]:
    clause = " AND ".join(f"{column} = %({column})s" for column in where) or "true"
    with database.connect(row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(f"SELECT * FROM events WHERE {clause} ORDER BY position", where).fetchall()


def spool(home: Home) -> Path:
    return home.path / "state" / "spool"


def kept(home: Home) -> list[Path]:
    directory = spool(home)
    return sorted(directory.glob("*.exit")) if directory.exists() else []


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def gateway_env(out: Path) -> dict[str, str]:
    return recording_gateway(out)


# -- (a) every command: one line, exit 5 --------------------------------------------------

USER_COMMANDS = [
    ("create", "bob"),
    ("start", "alice"),
    ("stop", "alice"),
    ("history", "alice"),
    ("list",),
    ("doctor",),
]


@pytest.mark.parametrize("args", USER_COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_every_command_says_the_store_is_unreachable_in_one_line_and_exits_5(fleet, pg_cluster, args):
    pg_cluster.stop_server()
    result = fleet.hermes(*args)
    assert result.returncode == 5, result
    line = one_line(result.stderr)
    assert "is unreachable" in line and "event store postgresql+psycopg://" in line


# -- (b) record-start starts the gateway anyway ------------------------------------------------


def test_record_start_with_the_server_stopped_still_execs_the_gateway(fleet, pg_cluster, out):
    pg_cluster.stop_server()
    result = fleet.hermes("record-start", "gateway-alice", env=gateway_env(out))
    assert result.returncode == 0, result
    line = one_line(result.stderr)
    assert "is unreachable" in line and "starting the gateway anyway" in line
    assert out.read_text().split()[1] == "alice"
    assert kept(fleet) == []  # a start is not an exit: nothing to keep


# -- (c) record-exit keeps the exit; the next write appends it once -------------------------


def test_record_exit_keeps_the_exit_and_the_next_write_appends_it_once(fleet, pg_cluster, pg_database):
    before = len(events(pg_database))
    pg_cluster.stop_server()
    result = fleet.hermes("record-exit", "gateway-alice", "1", "0", "true")
    assert result.returncode == 5, result  # not 125: s6 restarts as usual
    line = one_line(result.stderr)
    assert "is unreachable" in line and "exit kept in" in line and "s6 restarts as usual" in line
    [file] = kept(fleet)
    assert file.stat().st_uid == fleet.user.uid and file.stat().st_mode & 0o777 == 0o600
    fact = json.loads(file.read_text())
    copy = file.read_bytes()  # to play a replay that committed and died before its unlink

    pg_cluster.start_server()
    stopped = fleet.hermes("stop", "alice")
    assert stopped.returncode == 0 and stopped.stderr == "", stopped
    assert kept(fleet) == []
    new = events(pg_database)[before:]
    assert [(e["type"], e["actor"]) for e in new] == [("crashed", "supervisor"), ("stopped", "cli")]
    crash = new[0]
    assert crash["occurred_at"] == fact["observed_at"] < new[1]["occurred_at"]
    assert crash["idempotency_key"] == fact["key"] and crash["exit_code"] == 1 and crash["host"] == HOST_ID
    assert json.loads(crash["data"])["spooled"] is True

    # The same file again, as if the unlink had never happened: the key finds it appended.
    file.write_bytes(copy)
    give_to(spool(fleet), fleet.user)
    started = fleet.hermes("start", "alice")
    assert started.returncode == 0 and started.stderr == "", started
    assert kept(fleet) == []
    assert [e["type"] for e in events(pg_database)[before:]] == ["crashed", "stopped", "started"]
    assert len(events(pg_database, idempotency_key=fact["key"])) == 1


def test_exits_kept_in_an_outage_are_appended_in_the_order_seen(fleet, pg_cluster, pg_database):
    fleet.hermes("create", "bob")
    fleet.hermes("start", "bob")
    pg_cluster.stop_server()
    seen = [("alice", "1", "0"), ("bob", "256", "9"), ("alice", "2", "0")]
    for name, code, signal in seen:
        result = fleet.hermes("record-exit", f"gateway-{name}", code, signal, "true")
        assert result.returncode == 5, result
    assert len(kept(fleet)) == 3
    pg_cluster.start_server()
    before = {e["position"] for e in events(pg_database)}
    listed = fleet.hermes("create", "carol")  # any write on the host
    assert listed.returncode == 0, listed
    new = [e for e in events(pg_database) if e["position"] not in before]
    assert [(e["profile"], e["type"], e["exit_code"], e["signal"]) for e in new] == [
        ("alice", "crashed", 1, None), ("bob", "crashed", None, 9), ("alice", "crashed", 2, None),
        ("carol", "created", None, None)]
    assert [e["occurred_at"] for e in new[:3]] == sorted(e["occurred_at"] for e in new[:3])


def test_a_gateway_crashing_through_an_outage_is_held_down_by_the_spool(fleet, pg_cluster, pg_database):
    pg_cluster.stop_server()
    statuses = [fleet.hermes("record-exit", "gateway-alice", "1", "0", "true",
                             env={"HERMES_CRASH_LOOP": "3/1h"}).returncode for _ in range(3)]
    assert statuses == [5, 5, 125]  # the third, as the breaker would: s6 holds it down
    pg_cluster.start_server()
    assert fleet.hermes("create", "bob", env={"HERMES_CRASH_LOOP": "3/1h"}).returncode == 0
    alice = events(pg_database, profile="alice")
    assert [(e["type"], e["reason"]) for e in alice[-4:]] == [
        ("crashed", None), ("crashed", None), ("crashed", None), ("stopped", "crash-loop")]


def test_a_frozen_server_does_not_outlast_finish(fleet, pg_cluster):
    """A server that takes the connection and says nothing (its postmaster stopped): the exit is kept
    well inside s6's five-second `finish` limit."""
    pid = pg_cluster.postmaster_pid
    os.kill(pid, 19)  # SIGSTOP
    try:
        started = time.monotonic()
        result = fleet.hermes("record-exit", "gateway-alice", "1", "0", "true")
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, 18)  # SIGCONT
    assert result.returncode == 5, result
    assert "exit kept in" in one_line(result.stderr)
    assert len(kept(fleet)) == 1
    assert elapsed < 5, elapsed


# -- (d) the must-show: the database stopped in the middle of appends ----------------------


class Writer(threading.Thread):
    """`hermes-state start|stop -p NAME` in a loop, each call's status and stderr kept."""

    def __init__(self, home: Home, name: str) -> None:
        super().__init__(daemon=True)
        self.home, self.name = home, name
        self.results: list[tuple[int, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        verbs = ("start", "stop")
        while not self.stop.is_set():
            result = self.home.hermes(verbs[len(self.results) % 2], self.name)
            self.results.append((result.returncode, result.stderr))

    def acknowledged(self) -> int:
        return sum(1 for status, _ in self.results if status == 0)

    def failed(self) -> int:
        return sum(1 for status, _ in self.results if status != 0)


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_the_database_stopped_in_the_middle_of_appends(fleet, pg_cluster, pg_database, mode):
    names = [f"w{number}" for number in range(4)]
    for name in names:
        assert fleet.hermes("create", name).returncode == 0
    writers = [Writer(fleet, name) for name in names]
    for writer in writers:
        writer.start()
    try:
        wait_until(lambda: all(w.acknowledged() >= 3 for w in writers), "appends before the stop")
        pg_cluster.stop_server(mode)
        wait_until(lambda: all(w.failed() >= 2 for w in writers), "every writer to meet the outage")
        # A gateway exits meanwhile: its finish keeps the exit on the host.
        exited = fleet.hermes("record-exit", "gateway-alice", "3", "0", "true")
        assert exited.returncode == 5 and "exit kept in" in one_line(exited.stderr), exited
        [file] = kept(fleet)
        fact = json.loads(file.read_text())
        pg_cluster.start_server()
        counts = [w.acknowledged() for w in writers]
        wait_until(lambda: all(w.acknowledged() >= c + 3 for w, c in zip(writers, counts)), "appends after")
    finally:
        for writer in writers:
            writer.stop.set()
        for writer in writers:
            writer.join(WAIT_SECONDS)
    for writer in writers:
        for status, stderr in writer.results:
            if status != 0:
                assert status == 5, stderr
                line = one_line(stderr)
                assert line.startswith("hermes-state: event store postgresql+psycopg://"), line
            else:
                assert stderr == ""
        logged = events(pg_database, profile=writer.name, actor="cli")[1:]  # after its `created`
        # Every acknowledged append is there; a failed one may be too (its commit may have landed
        # before the connection was lost), never more than were tried.
        assert writer.acknowledged() <= len(logged) <= len(writer.results), writer.name
    crashes = events(pg_database, profile="alice", type="crashed")
    assert [(e["exit_code"], e["occurred_at"], e["idempotency_key"]) for e in crashes] == [
        (3, fact["observed_at"], fact["key"])]
    assert kept(fleet) == []


# -- (e) hostile spool files ----------------------------------------------------------------


def test_hostile_spool_files_are_refused_in_one_line_each_and_block_nothing(fleet, pg_cluster, pg_database,
                                                                           world_tmp):
    pg_cluster.stop_server()
    assert fleet.hermes("record-exit", "gateway-alice", "1", "0", "true").returncode == 5
    [good] = kept(fleet)
    fact = json.loads(good.read_text())
    directory = spool(fleet)
    target = world_tmp / "secret"
    target.write_text(json.dumps(fact))
    early = "0000000000000000001"  # sorts before the real exit: each is met first
    hostile = {
        f"{early}.alice.0000000000000001.exit": ("symlink", None),
        f"{early}.alice.0000000000000002.exit": ("garbage", b"\x00\xffnot json at all"),
        f"{early}.alice.0000000000000003.exit": ("oversized", json.dumps({**fact, "key": "x" * 8000}).encode()),
        f"{early}.alice.0000000000000004.exit": ("another profile", json.dumps({**fact, "profile": "bob"}).encode()),
        f"{early}.alice.0000000000000005.exit": ("a bad field", json.dumps({**fact, "supervisor": -1}).encode()),
        f"{early}.alice.0000000000000006.exit": ("another host",
                                                 json.dumps({**fact, "host": "elsewhere", "key": "exit:" + "1" * 32}).encode()),
        "junk.txt": ("bad name", b"{}"),
    }
    for name, (_, content) in hostile.items():
        if content is None:
            (directory / name).symlink_to(target)
        else:
            (directory / name).write_bytes(content)
    give_to(directory, fleet.user)
    pg_cluster.start_server()

    result = fleet.hermes("stop", "alice")
    assert result.returncode == 0, result
    lines = result.stderr.splitlines()
    assert len(lines) == len(hostile) and "Traceback" not in result.stderr
    for name in hostile:
        [said] = [line for line in lines if name in line]
        assert "refused" in said and "set aside in refused/" in said
    assert sorted(p.name for p in (directory / "refused").iterdir()) == sorted(hostile)
    assert (directory / "refused" / f"{early}.alice.0000000000000001.exit").is_symlink()
    assert json.loads(target.read_text()) == fact  # the symlink's target untouched
    assert kept(fleet) == []
    alice = events(pg_database, profile="alice")
    assert [(e["type"], e["idempotency_key"]) for e in alice[-2:]] == [("crashed", fact["key"]), ("stopped", None)]
    # Set aside, they are not met again.
    again = fleet.hermes("start", "alice")
    assert again.returncode == 0 and again.stderr == "", again


def test_a_sqlite_host_keeps_nothing(migrated_home):
    created = migrated_home.hermes("create", "alice")
    assert created.returncode == 0
    os.chmod(migrated_home.db, 0o444)
    os.chmod(migrated_home.db.parent, 0o555)
    result = migrated_home.hermes("record-exit", "gateway-alice", "1", "0", "true", env=HOOKS_UNSUPERVISED)
    assert result.returncode == 5 and "exit not recorded" in one_line(result.stderr)
    assert not (migrated_home.path / "state" / "spool").exists()
