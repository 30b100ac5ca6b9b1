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
import shutil
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
        with writer.writing() as tx:
            tx.append(NewEvent("alice", "created", "cli", "down"))
            tx.append(NewEvent("alice", "started", "cli", "up"))
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


# -- (b) record-start starts the gateway anyway, and keeps the start --------------------------


def kept_starts(home: Home) -> list[Path]:
    directory = spool(home)
    return sorted(directory.glob("*.start")) if directory.exists() else []


def profile_status(database, name: str) -> dict:
    with database.connect(row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("SELECT * FROM profile_status WHERE profile = %s", (name,)).fetchone()


def test_record_start_with_the_server_stopped_still_execs_the_gateway(fleet, pg_cluster, out):
    pg_cluster.stop_server()
    result = fleet.hermes("record-start", "gateway-alice", env=gateway_env(out))
    assert result.returncode == 0, result
    line = one_line(result.stderr)
    assert "is unreachable" in line and "starting the gateway anyway" in line
    assert out.read_text().split()[1] == "alice"
    assert kept(fleet) == []  # a start is not an exit: the spool's breaker never counts it


def test_a_start_in_an_outage_is_kept_and_the_next_write_records_the_run_going(fleet, pg_cluster, pg_database,
                                                                                out):
    """Issue 21, item 7: the run s6 started while the database was away is in the log once it returns,
    with its pid, supervisor, boot and the time it was seen: `list` and the views say it runs."""
    pg_cluster.stop_server()
    exited = fleet.hermes("record-exit", "gateway-alice", "256", "9", "true")  # the old run, SIGKILLed
    assert exited.returncode == 5, exited
    started = fleet.hermes("record-start", "gateway-alice", env=gateway_env(out))
    assert started.returncode == 0, started
    line = one_line(started.stderr)
    assert "start not recorded" in line and "kept in" in line and "starting the gateway anyway" in line, line
    pid = int(out.read_text().split()[0])
    [file] = kept_starts(fleet)
    assert file.stat().st_uid == fleet.user.uid and file.stat().st_mode & 0o777 == 0o600
    fact = json.loads(file.read_text())
    assert (fact["pid"], fact["profile"], fact["host"]) == (pid, "alice", HOST_ID) and fact["key"].startswith("start:")

    pg_cluster.start_server()
    created = fleet.hermes("create", "bob")  # any write on the host
    assert created.returncode == 0 and created.stderr == "", created
    assert kept(fleet) == [] and kept_starts(fleet) == []
    alice = events(pg_database, profile="alice")
    assert [(e["type"], e["actor"], e["pid"], e["signal"]) for e in alice[-2:]] == [
        ("crashed", "supervisor", None, 9), ("started", "supervisor", pid, None)]
    start = alice[-1]
    assert start["occurred_at"] == fact["observed_at"] > alice[-2]["occurred_at"]
    assert start["idempotency_key"] == fact["key"] and start["host"] == HOST_ID
    assert json.loads(start["data"]) == {"supervisor": fact["supervisor"], "spooled": True}
    listed = fleet.hermes("list", "--json")
    [row] = [json.loads(text) for text in listed.stdout.splitlines() if json.loads(text)["profile"] == "alice"]
    assert (row["pid"], row["running_since"]) == (pid, fact["observed_at"])
    assert profile_status(pg_database, "alice")["pid"] == pid  # recipe 5 ("never came back") leaves it out


def test_a_kept_start_of_a_profile_deleted_meanwhile_is_recorded_nowhere(fleet, pg_cluster, pg_database, out):
    pg_cluster.stop_server()
    assert fleet.hermes("record-start", "gateway-alice", env=gateway_env(out)).returncode == 0
    pg_cluster.start_server()
    with store.open_store(Settings.from_env(fleet.env(HERMES_HOST_ID="00000000-0000-4000-8000-0000000000bb"))) as other:
        other.append(NewEvent("alice", "deleted", "cli", "down"))
    before = len(events(pg_database))
    assert fleet.hermes("create", "bob").returncode == 0
    assert kept_starts(fleet) == []
    assert [(e["profile"], e["type"]) for e in events(pg_database)[before:]] == [("bob", "created")]


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


def test_watch_gateways_appends_what_was_kept_before_its_own_write(fleet, pg_cluster, pg_database, world_tmp):
    """A writer that keeps its store open (the gateways' reader) replays before each of its writes
    (``fleet.replay_kept``), as every writer opened by ``fleet.open_writer`` does before its first."""
    import signal
    import subprocess

    from conftest import HERMES, run_as

    pg_cluster.stop_server()
    assert fleet.hermes("record-exit", "gateway-alice", "1", "0", "true").returncode == 5
    assert len(kept(fleet)) == 1
    pg_cluster.start_server()
    output = world_tmp / "watch-gateways.out"
    reader = subprocess.Popen([str(HERMES), "watch-gateways"], env=fleet.env(HERMES_GATEWAY="hermes-agent"),
                              stdout=output.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              user=fleet.user.uid, group=fleet.user.gid, extra_groups=[])
    try:
        carol = fleet.path / "profiles" / "carol"  # hermes-agent's `profile create`: adopted as created
        made = run_as(["/bin/sh", "-c", f"mkdir -p {carol} && : > {carol}/SOUL.md"], fleet.user, env=fleet.env())
        assert made.returncode == 0, made.stderr
        wait_until(lambda: events(pg_database, profile="carol"), "carol adopted")
    finally:
        reader.send_signal(signal.SIGTERM)
        assert reader.wait(timeout=30) == 0, output.read_text()
    assert kept(fleet) == []
    assert [(e["profile"], e["type"]) for e in events(pg_database)[-2:]] == [("alice", "crashed"), ("carol", "created")]


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


# -- (f) root and the spool ---------------------------------------------------------------------


def as_user(home: Home, code: str, *args: str) -> None:
    """Python run as the gateway user (the volume's owner), as a compromised gateway could."""
    import sys

    from conftest import run_as

    result = run_as([sys.executable, "-c", code, *args], home.user, env=home.env())
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the attack is on root")
def test_root_never_moves_a_spool_file_through_a_link_the_gateway_user_planted(fleet, pg_cluster, pg_database,
                                                                             world_tmp):
    """Issue 20, item 1: `refused` made a link to a root-owned directory, a file dropped in the spool.
    Root's writes replay nothing (the files are the gateway user's); the user's own replay refuses to set
    aside through the link. Nothing lands in root's directory either way."""
    pg_cluster.stop_server()
    assert fleet.hermes("record-exit", "gateway-alice", "1", "0", "true").returncode == 5
    [good] = kept(fleet)
    fact = json.loads(good.read_text())
    roots = world_tmp / "root-owned"
    roots.mkdir(mode=0o755)
    assert roots.stat().st_uid == 0
    as_user(fleet, "import os, sys; os.symlink(sys.argv[1], sys.argv[2] + '/refused'); "
                   "open(sys.argv[2] + '/0000000000000000001.alice.00000000000000aa.exit', 'w').write('not json')",
            str(roots), str(spool(fleet)))
    pg_cluster.start_server()

    by_root = fleet.hermes("stop", "alice", as_root=True)
    assert by_root.returncode == 0 and by_root.stderr == "", by_root
    assert os.listdir(roots) == []
    assert len(kept(fleet)) == 2  # left for the gateway user: root read neither
    assert events(pg_database, idempotency_key=fact["key"]) == []

    by_user = fleet.hermes("start", "alice")
    assert by_user.returncode == 0, by_user
    line = one_line(by_user.stderr)
    assert "0000000000000000001.alice.00000000000000aa.exit refused (not a kept fact (not ASCII JSON))" in line
    assert "cannot be set aside (refused/ is a symbolic link): skipped" in line, line
    assert os.listdir(roots) == []
    assert [p.name for p in kept(fleet)] == ["0000000000000000001.alice.00000000000000aa.exit"]
    assert len(events(pg_database, idempotency_key=fact["key"])) == 1


def test_a_kept_exit_dated_in_the_future_is_set_aside(fleet, pg_cluster, pg_database):
    """Issue 20, low: an `observed_at` of 2099 (its name made to agree) is not appended as a crash
    "in 26690d": a fact's time must be near the file's own and not ahead of the clock."""
    pg_cluster.stop_server()
    assert fleet.hermes("record-exit", "gateway-alice", "1", "0", "true").returncode == 5
    [good] = kept(fleet)
    fact = json.loads(good.read_text())
    future = "2099-01-01T00:00:00.000Z"
    name = f"{4070908800 * 10**9:019d}.alice.00000000000000bb.exit"
    as_user(fleet, "import sys; open(sys.argv[1], 'w').write(sys.argv[2])", str(spool(fleet) / name),
            json.dumps({**fact, "observed_at": future, "key": "exit:" + "b" * 32}))
    pg_cluster.start_server()

    result = fleet.hermes("stop", "alice")
    assert result.returncode == 0, result
    line = one_line(result.stderr)
    assert f"{name} refused (its time {future} is in the future): set aside in refused/" in line, line
    assert [e["occurred_at"] for e in events(pg_database, type="crashed")] == [fact["observed_at"]]


def test_doctor_reports_what_the_spool_holds_to_the_user_and_to_root(fleet, pg_cluster):
    """Issue 21, item 8: kept facts not in the log yet, and files set aside, are a warning (exit 0)."""
    pg_cluster.stop_server()
    assert fleet.hermes("record-exit", "gateway-alice", "1", "0", "true").returncode == 5
    [good] = kept(fleet)
    offline = fleet.hermes("doctor", "--json")
    assert offline.returncode == 5, offline
    pg_cluster.start_server()
    for as_root in (False, True):
        result = fleet.hermes("doctor", "--json", as_root=as_root)
        assert result.returncode == 0, result
        [spooled] = [c for c in json.loads(result.stdout)["checks"] if c["check"] == "spool"]
        assert spooled["status"] == "warning", spooled
        assert spooled["detail"].startswith(f"1 start(s) and exit(s) kept in {spool(fleet)} are not in the log yet")
        assert json.loads(good.read_text())["observed_at"] in spooled["detail"]
    [spooled] = [c for c in json.loads(offline.stdout)["checks"] if c["check"] == "spool"]
    assert spooled["status"] == "warning"  # said also while the database is away

    assert fleet.hermes("start", "alice").returncode == 0  # the replay
    result = fleet.hermes("doctor", "--json")
    [spooled] = [c for c in json.loads(result.stdout)["checks"] if c["check"] == "spool"]
    assert spooled == {"check": "spool", "status": "ok", "detail": f"nothing kept in {spool(fleet)}"}


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="a private tmpfs needs root and unshare")
def test_a_spool_on_a_full_disk_keeps_nothing_and_leaves_no_temporary_file(fleet, pg_cluster, world_tmp):
    """Issue 20, low: the write fails after its create; the half-made name is removed, so it neither
    lingers nor counts towards the spool's bound. A real full tmpfs in a private mount namespace."""
    from conftest import HERMES
    from test_projector_fulldisk import Namespace

    directory = spool(fleet)
    directory.mkdir(parents=True)
    give_to(fleet.path, fleet.user)
    env = fleet.env()
    space = Namespace(world_tmp, fleet.user)
    try:
        mounted = space.run(["mount", "-t", "tmpfs", "-o", f"size=64k,mode=0700,uid={fleet.user.uid},"
                             f"gid={fleet.user.gid}", "tmpfs", str(directory)], env, as_user=False)
        assert mounted.returncode == 0, mounted.stderr
        fill = space.run(["dd", "if=/dev/zero", f"of={directory / '.filler'}", "bs=4k"], env, as_user=True)
        assert "No space left on device" in fill.stderr
        pg_cluster.stop_server()
        result = space.run([str(HERMES), "record-exit", "gateway-alice", "1", "0", "true"], env, as_user=True)
        assert result.returncode == 5, result
        line = one_line(result.stderr)
        assert "exit not recorded and not kept" in line and "No space left on device" in line, line
        listed = space.run(["ls", "-A", str(directory)], env, as_user=True)
        assert listed.stdout.split() == [".filler"], listed.stdout
    finally:
        space.close()


def test_doctor_on_a_machine_with_no_volume_finds_nothing_kept(fleet, world_tmp):
    """An operator's machine pointed at the fleet's database has no home: no spool, not a warning."""
    result = fleet.hermes("doctor", "--json", env={"HERMES_HOME": str(world_tmp / "nowhere")})
    assert result.returncode == 0, result
    [spooled] = [c for c in json.loads(result.stdout)["checks"] if c["check"] == "spool"]
    assert spooled["status"] == "ok", spooled
