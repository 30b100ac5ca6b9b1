"""The projector on a fleet's PostgreSQL: the boot snapshot, a boot with the database away, and the
daemons (`watch`, `up`, `history --follow`) through a restart of the database.

Real s6 (an s6-svscan on a temporary scan directory), a real PostgreSQL server (tests/pg_cluster.py),
the projector as the suite's uid (root under CI) and every append, and every write to the volume,
made by the unprivileged uid, as `hermes` does in production.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import HERMES, run_as
from projector_support import _APPEND, rig_for, wait_for

pytestmark = pytest.mark.slow

HOST_A = "00000000-0000-4000-8000-00000000000a"  # this host
HOST_B = "00000000-0000-4000-8000-00000000000b"  # another host of the fleet, on the same database


@pytest.fixture
def rig(world_tmp, home, pg_database):
    with rig_for(world_tmp, home, database=pg_database, HERMES_STATE_URL=pg_database.url, HERMES_HOST_ID=HOST_A,
                 HERMES_WATCH_POLL_INTERVAL="0.3") as rig:
        rig.cluster = pg_database.cluster
        rig.migrate()
        yield rig


def append_on(rig, host: str, kind: str, *names: str) -> None:
    """Append as the unprivileged user of ``host`` (its HERMES_HOST_ID)."""
    result = run_as([sys.executable, "-c", _APPEND, kind, *names], rig.user, env=rig.env(HERMES_HOST_ID=host),
                    timeout=60)
    assert result.returncode == 0, result.stderr


def snapshot_file(rig):
    return rig.home.path / "state" / "fleet-snapshot.json"


def read_snapshot(rig) -> dict:
    return json.loads(snapshot_file(rig).read_text())


def write_as_user(rig, path, text: str) -> None:
    """The gateway user (the volume's owner) replaces a file, as a compromised gateway could."""
    code = "import os, sys; p = sys.argv[1]; os.path.lexists(p) and os.unlink(p); open(p, 'w').write(sys.argv[2])"
    result = run_as([sys.executable, "-c", code, str(path), text], rig.user, env=rig.env())
    assert result.returncode == 0, result.stderr


def symlink_as_user(rig, target, path) -> None:
    code = "import os, sys; os.path.lexists(sys.argv[2]) and os.unlink(sys.argv[2]); os.symlink(sys.argv[1], sys.argv[2])"
    result = run_as([sys.executable, "-c", code, str(target), str(path)], rig.user, env=rig.env())
    assert result.returncode == 0, result.stderr


def position_before_the_gateways(rig) -> int:
    """The newest position boot could read: after it, only the gateways' own starts are appended."""
    with rig.database.connect() as conn:
        return conn.execute("SELECT max(position) FROM events WHERE actor <> 'supervisor'").fetchone()[0]


def slots(rig) -> set[str]:
    return {entry for entry in os.listdir(rig.scandir) if "gateway-" in entry}


def fresh_scan_directory(rig) -> None:
    """As a container restart leaves it: /run/service is a tmpfs, so every slot and the boot id are gone."""
    rig.stop_scanner()
    shutil.rmtree(rig.scandir)
    rig.start_scanner()


def boot_log(rig) -> str:
    return (rig.home.path / "logs" / "container-boot.log").read_text()


def online_boot(rig) -> dict:
    """alpha (up) and bravo (down) on this host, carol (up) on host B; an online boot; its snapshot."""
    append_on(rig, HOST_A, "create", "alpha", "bravo")
    append_on(rig, HOST_A, "start", "alpha")
    append_on(rig, HOST_B, "create", "carol")
    append_on(rig, HOST_B, "start", "carol")
    rig.start_scanner()
    rig.boot()
    wait_for(lambda: rig.running_pid("alpha"), 10, "alpha up")
    return read_snapshot(rig)


def offline_boot(rig) -> subprocess.CompletedProcess[str]:
    return rig.hermes("boot")


def test_boot_online_writes_the_snapshot_and_offline_brings_up_exactly_its_up_profiles(rig):
    snapshot = online_boot(rig)
    assert snapshot["host"] == HOST_A and snapshot["format"] == 1
    assert snapshot["position"] == position_before_the_gateways(rig)
    assert [(s["profile"], s["desired"], s["host"]) for s in snapshot["states"]] == [
        ("alpha", "up", HOST_A), ("bravo", "down", HOST_A), ("default", "down", HOST_A)]
    assert not rig.status("carol")  # host B's: never a slot here
    info = snapshot_file(rig).stat()
    assert (info.st_uid, oct(info.st_mode & 0o777)) == (rig.user.uid, "0o644")  # the volume stays its owner's
    assert not [e for e in os.listdir(snapshot_file(rig).parent) if e.startswith(".fleet-snapshot")]

    fresh_scan_directory(rig)
    rig.cluster.stop_server()
    result = offline_boot(rig)
    assert result.returncode == 0, result.stderr
    headline = (f"database unreachable: slots from the snapshot of {snapshot['written_at']}, "
                f"position {snapshot['position']} (3 profile(s), 1 up)")
    assert f"hermes-state: boot: {headline}; the watch daemon reconciles" in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert headline in boot_log(rig)
    wait_for(lambda: rig.running_pid("alpha"), 10, "alpha up from the snapshot")
    for name in ("bravo", "default"):
        assert rig.status(name) == {"up": False, "pid": -1, "wantedup": False}
    assert slots(rig) == {"gateway-alpha", "gateway-bravo", "gateway-default"}
    assert (rig.scandir / ".boot-id").exists()
    assert json.loads(result.stdout.splitlines()[-1])["trigger"] == "boot-snapshot"
    assert read_snapshot(rig) == snapshot  # an offline boot does not rewrite what it read


def _entry(snapshot: dict, name: str, **changes) -> dict:
    entry = dict(next(s for s in snapshot["states"] if s["profile"] == name))
    entry.update(changes)
    return entry


def test_a_tampered_snapshot_is_refused_entry_by_entry_or_as_a_whole(rig, world_tmp):
    snapshot = online_boot(rig)
    fresh_scan_directory(rig)
    rig.cluster.stop_server()
    path = snapshot_file(rig)

    # Refused as a whole: nothing created or brought up, no boot id, one line, exit 5.
    elsewhere = world_tmp / "copy.json"
    elsewhere.write_text(json.dumps(snapshot))  # a valid snapshot, but reached through a link
    wholes = [
        ("{not json", "is not JSON"),
        (json.dumps({**snapshot, "host": HOST_B}), f"belongs to host '{HOST_B}', not to this host ({HOST_A})"),
        (json.dumps({**snapshot, "position": "many"}), "has position 'many'"),
        (json.dumps([snapshot]), "is not a snapshot"),
        (None, "refused: Too many levels of symbolic links"),
    ]
    for text, why in wholes:
        if text is None:
            symlink_as_user(rig, elsewhere, path)
        else:
            write_as_user(rig, path, text)
        result = offline_boot(rig)
        assert result.returncode == 5, (why, result.stderr)
        [line] = result.stderr.splitlines()
        assert line.startswith("hermes-state: boot failed: event store ") and "is unreachable" in line, line
        assert why in line and line.endswith("no slot was created or brought up"), line
        assert slots(rig) == set() and not (rig.scandir / ".boot-id").exists()

    # Refused entry by entry: another host's profile, a name that is no name, an impossible
    # state, a duplicate, an unknown field; the good entries are used.
    entries = [
        _entry(snapshot, "alpha"),
        _entry(snapshot, "bravo", profile="carol", desired="up", host=HOST_B),
        _entry(snapshot, "bravo", profile="../../escape", desired="up"),
        _entry(snapshot, "bravo", profile="delta", desired="sideways"),
        _entry(snapshot, "bravo", profile="echo", desired="up", version="7"),
        _entry(snapshot, "bravo", profile="foxtrot", desired="up", evil=1),
        _entry(snapshot, "bravo", profile="golf", desired="up"),
        _entry(snapshot, "bravo", profile="golf", desired="down"),
        "alpha",
    ]
    write_as_user(rig, path, json.dumps({**snapshot, "states": entries}))
    result = offline_boot(rig)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[:-1] == [
        f"hermes-state: boot: snapshot entry 1 (profile 'carol'): a profile of host '{HOST_B}', not of this host: skipped",
        "hermes-state: boot: snapshot entry 2 (profile '../../escape'): invalid profile name: skipped",
        "hermes-state: boot: snapshot entry 3 (profile 'delta'): invalid desired state: skipped",
        "hermes-state: boot: snapshot entry 4 (profile 'echo'): version is not a positive integer: skipped",
        "hermes-state: boot: snapshot entry 5 (profile 'foxtrot'): not a projection row (its fields): skipped",
        "hermes-state: boot: snapshot entry 8 (profile None): not a projection row (its fields): skipped",
        "hermes-state: boot: snapshot entries for profile 'golf': more than one: all skipped",
    ]
    assert "(1 profile(s), 1 up)" in lines[-1]
    for line in lines[:-1]:
        assert line.removeprefix("hermes-state: boot: ") in boot_log(rig)
    wait_for(lambda: rig.running_pid("alpha"), 10, "alpha up from the snapshot")
    assert slots(rig) == {"gateway-alpha"}
    assert not (world_tmp / "escape").exists() and not (rig.scandir.parent / "escape").exists()


def test_a_symlinked_state_directory_is_refused_and_the_snapshot_is_not_written_through_it(rig, world_tmp):
    online_boot(rig)
    # The gateway user points state/ elsewhere (keeping the host id, so boot's steps still run).
    real = rig.home.path / "state"
    decoy = world_tmp / "decoy"
    decoy.mkdir()
    moved = run_as([sys.executable, "-c", "import os, sys; os.rename(sys.argv[1], sys.argv[2]); "
                    "os.symlink(sys.argv[3], sys.argv[1])", str(real), str(rig.home.path / "state.real"), str(decoy)],
                   rig.user, env=rig.env())
    assert moved.returncode == 0, moved.stderr
    append_on(rig, HOST_A, "stop", "alpha")  # a change: the online pass would write a new snapshot
    result = rig.hermes("boot")
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("hermes-state: boot: warning: cannot open ") and "without following a link" in line, line
    assert os.listdir(decoy) == []
    wait_for(lambda: not rig.running_pid("alpha"), 15, "alpha down as the database says")


def start_up(rig, **extra):
    out = (rig.root / "up.out").open("wb")
    return subprocess.Popen([str(HERMES), "up"], env=rig.env(**extra), stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def up_output(rig) -> str:
    return (rig.root / "up.out").read_text()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_watch_reconnects_after_a_restart_and_misses_no_event(rig, mode):
    online_boot(rig)
    # A poll of 2 s: the append below lands before the daemon's feed can have reconnected.
    watch = rig.start_watch(HERMES_WATCH_POLL_INTERVAL="2")
    append_on(rig, HOST_A, "create", "delta")
    wait_for(lambda: rig.status("delta"), 10, "the daemon at work (delta's slot)")
    rig.cluster.stop_server(mode=mode)
    rig.cluster.start_server()
    append_on(rig, HOST_A, "start", "bravo")  # while the daemon is still reconnecting
    wait_for(lambda: rig.running_pid("bravo"), 20, "bravo up, appended during the reconnect")
    append_on(rig, HOST_A, "stop", "alpha")  # after it reconnected
    wait_for(lambda: not rig.status("alpha")["wantedup"], 20, "alpha down, appended after the reconnect")
    assert watch.poll() is None, rig.watch_output()
    assert rig.stop_watch(watch) == 0
    passes = [json.loads(line) for line in rig.watch_output().splitlines()]
    assert [p["trigger"] for p in passes if p.get("trigger", "").startswith("reconnect")][:1] == ["reconnected"], passes
    assert not [line for line in rig.watch_output().splitlines() if "Traceback" in line]
    wait_for(lambda: [s["profile"] for s in read_snapshot(rig)["states"] if s["desired"] == "up"] == ["bravo"],
             5, "the snapshot to follow the reconnected daemon")


def test_up_boots_from_the_snapshot_then_reconciles_when_the_database_returns(rig):
    online_boot(rig)
    rig.stop_scanner()
    shutil.rmtree(rig.scandir)
    append_on(rig, HOST_A, "stop", "alpha")  # the snapshot is older than this: no projector ran since
    append_on(rig, HOST_A, "start", "bravo")
    rig.cluster.stop_server()
    up = start_up(rig)
    try:
        wait_for(lambda: "boot done" in up_output(rig), 30, "up to boot from the snapshot")
        assert "database unreachable: slots from the snapshot of" in up_output(rig)
        wait_for(lambda: rig.running_pid("alpha"), 10, "alpha up, as the snapshot says")
        wait_for(lambda: "wait for the database" in up_output(rig), 10, "the watch to say it waits")
        rig.cluster.start_server()
        wait_for(lambda: rig.running_pid("bravo") and not rig.status("alpha")["wantedup"], 30,
                 "the log's desired states once the database is back")
        rig.cluster.stop_server(mode="immediate")
        rig.cluster.start_server()
        append_on(rig, HOST_A, "start", "alpha")
        wait_for(lambda: rig.running_pid("alpha"), 30, "alpha up, appended after a second restart")
        assert up.poll() is None, up_output(rig)
    finally:
        up.send_signal(signal.SIGINT)
        status = up.wait(timeout=60)
    assert status == 0, up_output(rig)


def test_history_follow_survives_a_restart_of_the_database(rig):
    append_on(rig, HOST_A, "create", "alpha")
    out = (rig.root / "follow.out").open("wb")
    err = (rig.root / "follow.err").open("wb")
    kwargs = {} if rig.user.is_self else {"user": rig.user.uid, "group": rig.user.gid, "extra_groups": []}
    follow = subprocess.Popen([str(HERMES), "history", "alpha", "--follow", "--json"],
                              env=rig.env(), stdout=out, stderr=err, stdin=subprocess.DEVNULL, **kwargs)

    def followed() -> list[str]:
        return [json.loads(line)["type"] for line in (rig.root / "follow.out").read_text().splitlines()]

    try:
        wait_for(lambda: followed() == ["created"], 10, "the history so far")
        append_on(rig, HOST_A, "start", "alpha")
        wait_for(lambda: followed() == ["created", "started"], 10, "the start followed")
        rig.cluster.stop_server(mode="immediate")
        rig.cluster.start_server()
        append_on(rig, HOST_A, "stop", "alpha")
        wait_for(lambda: followed() == ["created", "started", "stopped"], 20, "the stop after the restart followed")
        assert follow.poll() is None, (rig.root / "follow.err").read_text()
    finally:
        follow.send_signal(signal.SIGINT)
        status = follow.wait(timeout=20)
    assert status == 0, (rig.root / "follow.err").read_text()


# -- the spool through an outage (issue 21, items 7-9) ----------------------------------------------


def spool_files(rig) -> list[str]:
    directory = rig.home.path / "state" / "spool"
    return sorted(p.name for p in directory.iterdir() if p.name.endswith((".exit", ".start"))) if directory.exists() else []


def alpha_events(rig) -> list[dict]:
    import psycopg.rows

    with rig.database.connect(row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("SELECT type, actor, desired, reason, pid, signal, data FROM events "
                            "WHERE profile = 'alpha' ORDER BY position").fetchall()


def supervisor_started(rig) -> list[int]:
    return [e["pid"] for e in alpha_events(rig) if (e["type"], e["actor"]) == ("started", "supervisor")]


def watch_lines(rig) -> list[dict]:
    """The daemon's complete JSON lines so far (the last may be half-written while it runs; a
    quick_check meeting the outage says so in plain words)."""
    text = rig.watch_output()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines() if line.startswith("{")]


def start_watch_connected(rig):
    """The watch daemon, once it listens on the database: an outage from then on is a reconnect for it."""
    watch = rig.start_watch()

    def listening() -> int:
        with rig.database.connect(user="postgres") as conn:
            return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN%%'",
                                (rig.database.name,)).fetchone()[0]

    wait_for(listening, 20, "the watch daemon to listen")
    return watch


def kill_and_wait_for_the_next(rig, pid: int) -> int:
    """SIGKILL the gateway; s6 restarts it (after its one-second pause): the new pid."""
    os.kill(pid, signal.SIGKILL)
    return wait_for(lambda: (new := rig.running_pid("alpha")) not in (None, pid) and new, 20, "s6 to restart alpha")


def test_a_gateway_killed_in_an_outage_is_in_the_log_running_once_the_watch_daemon_sees_the_database(rig):
    """The database stopped, the gateway SIGKILLed, s6 starts it again: its exit and its new start are
    kept, and the watch daemon has them appended when the database returns, with no write on the host.
    The log then says what s6 runs: alpha running as the new pid, not crashed and gone."""
    online_boot(rig)
    first = wait_for(lambda: supervisor_started(rig), 10, "alpha's start recorded")[-1]
    assert first == rig.running_pid("alpha")
    watch = start_watch_connected(rig)
    rig.cluster.stop_server()
    second = kill_and_wait_for_the_next(rig, first)
    wait_for(lambda: len(spool_files(rig)) == 2, 20, "the exit and the start kept")
    assert [name.rsplit(".", 1)[1] for name in spool_files(rig)] == ["exit", "start"]  # in the order seen

    rig.cluster.start_server()
    wait_for(lambda: spool_files(rig) == [], 30, "the watch daemon to have the spool replayed")
    history = alpha_events(rig)
    assert [(e["type"], e["actor"], e["pid"], e["signal"]) for e in history[-2:]] == [
        ("crashed", "supervisor", first, 9), ("started", "supervisor", second, None)]
    assert all(json.loads(e["data"])["spooled"] for e in history[-2:])
    listed = {row["profile"]: row for row in map(json.loads, rig.cli("list", "--json").splitlines())}
    assert listed["alpha"]["pid"] == second == rig.running_pid("alpha")
    with rig.database.connect() as conn:
        running = conn.execute("SELECT count(*) FILTER (WHERE pid IS NOT NULL) FROM profile_status "
                               "WHERE status = 'live' AND host = %s", (HOST_A,)).fetchone()[0]
        never_came_back = conn.execute("SELECT profile FROM profile_status WHERE status = 'live' AND desired = 'up' "
                                       "AND pid IS NULL AND host = %s", (HOST_A,)).fetchall()  # recipe 5
    assert running == 1 and never_came_back == []
    lines = watch_lines(rig)
    assert {"appended": 2, "refused": [], "left": 0} in [line.get("spool") for line in lines], lines
    assert rig.stop_watch(watch) == 0


def test_a_slot_the_spools_breaker_held_down_stays_down_when_the_database_returns(rig):
    """The gateway dies three times in an outage (HERMES_CRASH_LOOP=3/1h): the third `finish` exits 125
    and s6 holds the slot down. When the database returns the daemon has the kept exits appended before
    its pass reads the states: the breaker's stop is in the log, and the slot is never brought up again
    (before: up, then down again, and a stop in history with no start)."""
    rig.extra_env["HERMES_CRASH_LOOP"] = "3/1h"  # for the slots' hooks too: s6-svscan hands its environment on
    online_boot(rig)
    pid = wait_for(lambda: supervisor_started(rig), 10, "alpha's start recorded")[-1]
    watch = start_watch_connected(rig)
    rig.cluster.stop_server()
    for round in (1, 2):
        pid = kill_and_wait_for_the_next(rig, pid)
        # s6 says up once it forked `run`: the hook must have kept the start before the next kill.
        wait_for(lambda: sum(name.endswith(".start") for name in spool_files(rig)) == round, 20, "the start kept")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: rig.status("alpha") and not rig.status("alpha")["wantedup"], 20, "the spool's breaker to hold it")
    kept = spool_files(rig)
    assert [name.rsplit(".", 1)[1] for name in kept] == ["exit", "start", "exit", "start", "exit"]

    rig.cluster.start_server()
    wait_for(lambda: spool_files(rig) == [], 30, "the watch daemon to have the spool replayed")

    def acting_on_alpha() -> list[dict]:
        return [line for line in watch_lines(rig)
                if "positions" in line and any(a["profile"] == "alpha" for a in line["actions"])]

    [first_pass, *_] = wait_for(acting_on_alpha, 30, "the first pass that acts on alpha")
    assert [a["action"] for a in first_pass["actions"] if a["profile"] == "alpha"] == ["mark-down"], first_pass
    assert {"appended": 5, "refused": [], "left": 0} in [line.get("spool") for line in watch_lines(rig)]
    history = alpha_events(rig)
    last = max(index for index, e in enumerate(history) if e["reason"] == "crash-loop")
    assert history[last]["desired"] == "down" and history[last + 1:] == [], history[last:]
    assert [e["type"] for e in history if e["actor"] == "supervisor"][-6:] == [
        "crashed", "started", "crashed", "started", "crashed", "stopped"]
    status = rig.status("alpha")
    assert not status["up"] and not status["wantedup"], status
    assert rig.stop_watch(watch) == 0


def test_boot_replays_the_spool_as_the_gateway_user_and_says_what_it_set_aside(rig):
    """Boot's writing steps (a child as the gateway user) replay the spool at their first write; a file
    they set aside is said on boot's stderr and in the boot log, not lost with the child's stderr."""
    append_on(rig, HOST_A, "create", "alpha")
    spool = rig.home.path / "state" / "spool"
    code = ("import os, sys; os.makedirs(sys.argv[1], 0o700); "
            "open(sys.argv[1] + '/0000000000000000001.alpha.00000000000000aa.exit', 'w').write('not json')")
    made = run_as([sys.executable, "-c", code, str(spool)], rig.user, env=rig.env())
    assert made.returncode == 0, made.stderr
    rig.start_scanner()
    result = rig.boot()
    said = [line for line in result.stderr.splitlines() if "spool" in line]
    assert len(said) == 1 and "0000000000000000001.alpha.00000000000000aa.exit refused" in said[0], result.stderr
    assert said[0].endswith("set aside in refused/")
    assert said[0].removeprefix("hermes-state: ") in boot_log(rig)
    assert os.listdir(spool / "refused") == ["0000000000000000001.alpha.00000000000000aa.exit"]
