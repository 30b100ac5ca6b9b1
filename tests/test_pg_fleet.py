"""A fleet on one PostgreSQL: several hosts' writers and projectors at once (docs/fleet.md).

Two hosts are two HERMES_HOMEs with their own host ids (and, for the projectors, their own
scan directories and s6-svscan) on this one machine, sharing a private PostgreSQL server
over TCP: what crosses between hosts is only the database, as in a fleet.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading

import pytest

from conftest import HERMES, Home, give_to
from pg_fleet import fleet  # noqa: F401 (a fixture: the roles as docs/fleet.md makes them)
from projector_support import rig_for, wait_for
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import migrate, open_store

pytestmark = pytest.mark.slow

WRITERS_PER_HOST = 4
ROUNDS = 6  # start and stop intents per writer and round


def _home(world_tmp, user, name: str, url: str) -> Home:
    path = world_tmp / name
    path.mkdir()
    give_to(path, user)
    return Home(path, user, extra_env={"HERMES_STATE_URL": url})


def _log(url: str) -> list:
    with open_store(Settings.from_env({"HERMES_HOME": "/nonexistent", "HERMES_STATE_URL": url}), readonly=True) as store:
        return store.log_after(0)


def test_eight_writers_on_two_hosts_lose_nothing_and_a_follower_sees_every_position(world_tmp, hermes_user, pg_database):
    url = pg_database.url
    migrate(Settings.from_env({"HERMES_HOME": str(world_tmp), "HERMES_STATE_URL": url}))
    hosts = [_home(world_tmp, hermes_user, name, url) for name in ("host-a", "host-b")]
    writers = {f"w{h}{n}": home for h, home in enumerate(hosts) for n in range(WRITERS_PER_HOST)}
    for name, home in writers.items():
        created = home.hermes("create", name)
        assert created.returncode == 0, created.stderr
    start = _log(url)[-1].position

    # A follower per profile, started before the writers: `history --follow` must print every event.
    followers = {
        name: subprocess.Popen([str(HERMES), "history", name, "--follow", "--json", "--limit", "0"],
                               env=home.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               user=home.user.uid if not home.user.is_self else None)
        for name, home in writers.items()
    }

    def listening() -> int:
        # A follower LISTENs before its first read (the feed opens first): from then on it misses nothing.
        with pg_database.connect(user="postgres") as conn:
            return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN%%'",
                                (pg_database.name,)).fetchone()[0]

    wait_for(lambda: listening() == len(followers), 30, "every follower to listen")

    failures: list[str] = []

    def write(name: str, home: Home) -> None:
        for _ in range(ROUNDS):
            for verb in ("start", "stop"):
                result = home.hermes(verb, name, timeout=120)
                if result.returncode != 0:
                    failures.append(f"{name} {verb}: {result.returncode} {result.stderr.strip()}")

    threads = [threading.Thread(target=write, args=item) for item in writers.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    log = _log(url)
    appended = [event for event in log if event.position > start]
    assert len(appended) == len(writers) * ROUNDS * 2  # every event present
    assert [event.position for event in log] == list(range(1, len(log) + 1))  # positions gapless, in commit order
    for name, home in writers.items():
        mine = [event for event in log if event.profile == name]
        assert [event.version for event in mine] == list(range(1, len(mine) + 1))  # versions gapless
        host = Settings.from_env(home.env()).host_id(create=False)
        assert {event.host for event in mine} == {host}

    expected = {name: [event.position for event in log if event.profile == name] for name in writers}

    def seen(name: str) -> list[int]:
        return [json.loads(line)["position"] for line in lines[name]]

    lines: dict[str, list[str]] = {}
    for name, follower in followers.items():
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err
        lines[name] = out.splitlines()
        assert seen(name) == expected[name], name  # every position, once, in order


def test_two_hosts_each_project_their_own_profiles_and_carry_out_each_others_stops(world_tmp, hermes_user, pg_database):
    url = pg_database.url
    homes = {name: _home(world_tmp, hermes_user, f"home-{name}", url) for name in ("a", "b")}
    roots = {}
    for name in homes:
        roots[name] = world_tmp / f"host-{name}"
        roots[name].mkdir()
        roots[name].chmod(0o755)
    with rig_for(roots["a"], homes["a"]) as a, rig_for(roots["b"], homes["b"]) as b:
        ups = {}
        try:
            for name, rig in (("a", a), ("b", b)):
                out = (rig.root / "up.out").open("wb")
                ups[name] = subprocess.Popen([str(HERMES), "up"], env=rig.env(), stdout=out,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                wait_for(lambda: "boot done" in (rig.root / "up.out").read_text(), 30, f"host {name} to boot")

            a.cli("create", "alice")
            a.cli("start", "alice")
            b.cli("create", "bob")
            b.cli("start", "bob")
            wait_for(lambda: a.running_pid("alice"), 10, "alice up on host a")
            wait_for(lambda: b.running_pid("bob"), 10, "bob up on host b")
            assert a.status("bob") is None and b.status("alice") is None  # neither touches the other's

            # An operator on host a stops host b's gateway: b's projector carries it out.
            a.cli("stop", "bob")
            wait_for(lambda: b.status("bob") and not b.status("bob")["wantedup"], 10, "bob stopped on host b")
            assert a.status("bob") is None
            assert a.running_pid("alice")

            for rig in (a, b):
                wait_for(lambda: rig.differences_from_desired() == [], 10, "each host converged on its own profiles")
            listing = a.as_user("list", "--all-hosts", "--json")
            hosts = {row["profile"]: row["host"] for row in map(json.loads, listing.stdout.splitlines())}
            assert hosts["alice"] != hosts["bob"]
            # Each host's log tells of its own profiles' events (a's stop of bob is b's to tell).
            said = {name: (rig.root / "up.out").read_text() for name, rig in (("a", a), ("b", b))}
            assert " alice " in said["a"] and " bob " not in said["a"], said["a"]
            assert " bob " in said["b"] and " alice " not in said["b"], said["b"]
        finally:
            for up in ups.values():
                up.send_signal(signal.SIGINT)
            for up in ups.values():
                up.wait(timeout=60)


def test_roots_projector_reads_as_the_projector_role_and_the_hermes_side_writes_as_the_writer(world_tmp, home, fleet):
    """HERMES_STATE_PROJECTOR_URL: boot and watch (root) connect as the read-only role; the slots' hooks and
    the commands keep HERMES_STATE_URL, the writer's."""
    env = {**fleet.host_env("a"), "HERMES_STATE_PROJECTOR_URL": fleet.url(fleet.projector)}
    root = world_tmp / "host"
    root.mkdir()
    root.chmod(0o755)
    home = Home(home.path, home.user, extra_env=env)
    with rig_for(root, home) as rig:
        rig.cli("create", "alice")
        rig.cli("start", "alice")
        rig.start_scanner()
        rig.boot()
        wait_for(lambda: rig.running_pid("alice"), 10, "alice up")
        # The gateway's own start was recorded by its hook, as the writer.
        wait_for(lambda: any(json.loads(line)["actor"] == "supervisor"
                             for line in rig.cli("history", "alice", "--json").splitlines()),
                 10, "the hook's start")
        daemon = rig.start_watch()
        try:
            wait_for(lambda: _sessions_of(fleet, fleet.projector) >= 1, 10, "the watch daemon connected as the projector")
            rig.cli("stop", "alice")
            wait_for(lambda: not rig.status("alice")["wantedup"], 10, "the daemon carried out the stop")
        finally:
            rig.stop_watch(daemon)


def _sessions_of(fleet, role: str) -> int:
    with fleet.database.connect(user="postgres") as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s",
                            (fleet.database.name, role)).fetchone()[0]


def test_a_projector_url_without_a_store_url_is_refused(home):
    result = home.hermes("boot", as_root=True,
                         env={"HERMES_STATE_PROJECTOR_URL": "postgresql://p@db/hermes"})
    assert result.returncode == 2 and "HERMES_STATE_PROJECTOR_URL" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_each_host_speaks_for_its_own_profiles_and_names_the_others_host(world_tmp, hermes_user, pg_database):
    """Issue 21, item 10: on a fleet's database, doctor checks only this host's profile directories,
    `status` of another host's profile names that host, and `/metrics` exports each profile once, from
    its own host, with a `host` label (a Prometheus scraping every host gets no duplicate series)."""
    url = pg_database.url
    migrate(Settings.from_env({"HERMES_HOME": str(world_tmp), "HERMES_STATE_URL": url}))
    a, b = (_home(world_tmp, hermes_user, name, url) for name in ("host-a", "host-b"))
    for home, name in ((a, "alice"), (b, "bob")):
        for verb in ("create", "start"):
            result = home.hermes(verb, name)
            assert result.returncode == 0, result.stderr
    ids = {name: Settings.from_env(home.env()).host_id(create=False) for name, home in (("a", a), ("b", b))}

    doctor = a.hermes("doctor", "--json")
    assert doctor.returncode == 0, doctor.stderr
    [directories] = [c for c in json.loads(doctor.stdout)["checks"] if c["check"] == "profile directories"]
    assert directories["status"] == "ok", directories

    status = a.hermes("status", "bob", "--json")
    assert status.returncode == 0, status.stderr
    [row] = map(json.loads, status.stdout.splitlines())
    assert row["s6_unavailable"] == (f"the profile belongs to host {ids['b']}, not to this one ({ids['a']}): "
                                     "that host's projector runs its slot"), row
    human = a.hermes("status", "bob")
    assert f"belongs to host {ids['b']}" in human.stdout and "has not made one" not in human.stdout, human.stdout

    exported = {}
    for name, home in (("a", a), ("b", b)):
        metrics = home.hermes("serve", "--once", "/metrics")
        assert metrics.returncode == 0, metrics.stderr
        exported[name] = sorted(line for line in metrics.stdout.splitlines() if line.startswith("hermes_gateway_desired_up"))
    assert exported["a"] == [f'hermes_gateway_desired_up{{host="{ids["a"]}",profile="alice"}} 1.0']
    assert exported["b"] == [f'hermes_gateway_desired_up{{host="{ids["b"]}",profile="bob"}} 1.0']
    page = a.hermes("serve", "--once", "/")
    assert f"Profiles of host {ids['a']}" in page.stdout and "/profiles/bob" not in page.stdout


def test_a_non_root_up_with_the_projector_url_exported_runs_and_replays_as_the_writer(world_tmp, home, fleet,
                                                                                   pg_cluster):
    """Issue 21, item 10: both URLs exported as docs/fleet.md shows, `hermes-state up` as the gateway user
    (outside a container) boots and watches with its own, writing role: the projector's role is root's
    only. Its daemon then has the spool replayed when the database returns, with no write on the host."""
    env = fleet.host_env("a", HERMES_STATE_PROJECTOR_URL=fleet.url(fleet.projector), HERMES_WATCH_POLL_INTERVAL="0.3")
    user = Home(home.path, home.user, extra_env=env)
    kwargs = {} if user.user.is_self else {"user": user.user.uid, "group": user.user.gid, "extra_groups": []}
    assert user.hermes("create", "alice").returncode == 0
    output = user.path / "up.out"
    with output.open("wb") as out:
        up = subprocess.Popen([str(HERMES), "up"], env=user.env(), stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, **kwargs)
    try:
        wait_for(lambda: "boot done" in output.read_text() or up.poll() is not None, 30, "up to boot")
        assert up.poll() is None, output.read_text()
        pg_cluster.stop_server()
        exited = user.hermes("record-exit", "gateway-alice", "1", "0", "true")
        assert exited.returncode == 5 and "exit kept in" in exited.stderr, exited
        pg_cluster.start_server()
        spool = user.path / "state" / "spool"
        wait_for(lambda: not list(spool.glob("*.exit")), 30, "the daemon to have the kept exit appended")
        history = [json.loads(line) for line in user.hermes("history", "alice", "--json").stdout.splitlines()]
        # alice is desired down (created only): the kept exit is a requested stop, at the time it was seen.
        assert [(e["type"], e["actor"], e["reason"], e["exit_code"]) for e in history][-1] == (
            "stopped", "supervisor", "requested", 1)
        assert history[-1]["data"]["spooled"] is True
    finally:
        up.send_signal(signal.SIGINT)
        status = up.wait(timeout=60)
    assert status == 0, output.read_text()
