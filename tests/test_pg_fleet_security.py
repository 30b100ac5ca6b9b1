"""One host's credentials harm no other host beyond the documented intents (docs/reliability.md,
"A fleet host's credentials"; docs/fleet.md, "Roles").

The fleet is made as docs/fleet.md says (tests/pg_fleet.py: its SQL through the real `psql`), with
two hosts, "a" and "b", each a HERMES_HOME of its own (the unprivileged uid's), its own role bound
to its own host id, its own scan directory under a real s6-svscan and its own projector (root's,
reading as the projector role). The attacker holds host a: its writer role (a psycopg connection
as that role, or the real `hermes-state` as the gateway uid with a's environment). Each attack is
the one issue 20 found working; each test fails on the code before migration 0007.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time

import psycopg
import pytest

from conftest import HERMES, HOOKS_UNSUPERVISED, Home, give_to, run_as
from hermes_lifecycle.backends.postgresql.feed import NOTIFIED_CHECK_SECONDS
from hermes_lifecycle.backends.postgresql.recorder import APPEND_LOCK, PostgresRecorder
from hermes_lifecycle.errors import BadInput
from hermes_lifecycle.events import Event, NewEvent
from hermes_lifecycle.fold import check_shape
from store_helpers import fold
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import migrate, open_store
from hermes_lifecycle.store.feed import NOTIFIED
from hermes_lifecycle.vocabulary import ACTORS, TYPES
from pg_fleet import HOST_CONNECTION_LIMIT, HOST_IDS, Fleet, fleet  # noqa: F401 (fleet: a fixture)
from projector_support import Rig, rig_for, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def hosts(fleet: Fleet, world_tmp, hermes_user):
    """Hosts a and b, each booted on its own s6 scan directory; b runs bob's gateway."""
    with contextlib.ExitStack() as stack:
        rigs: dict[str, Rig] = {}
        for name in ("a", "b"):
            home_dir = world_tmp / f"home-{name}"
            home_dir.mkdir()
            give_to(home_dir, hermes_user)
            root = world_tmp / f"host-{name}"
            root.mkdir()
            root.chmod(0o755)
            env = {**fleet.host_env(name), "HERMES_STATE_PROJECTOR_URL": fleet.url(fleet.projector)}
            rig = stack.enter_context(rig_for(root, Home(home_dir, hermes_user, extra_env=env)))
            rig.start_scanner()
            rig.boot()
            rigs[name] = rig
        rigs["b"].cli("create", "bob")
        rigs["b"].cli("start", "bob")
        rigs["b"].boot()
        wait_for(lambda: rigs["b"].running_pid("bob"), 10, "bob's gateway up on host b")
        wait_for(lambda: _supervisor_events("bob", rigs["b"]), 10, "bob's start recorded by its hook")
        yield rigs


def _supervisor_events(name: str, rig: Rig) -> list[dict]:
    history = [json.loads(line) for line in rig.cli("history", name, "--json").splitlines()]
    return [event for event in history if event["actor"] == "supervisor"]


def _as_user(rig: Rig, *args: str, **extra: str):
    """`hermes-state ARGS` as the host's gateway uid, its environment with ``extra``."""
    return run_as([str(HERMES), *args], rig.user, env=rig.env(**extra), timeout=60)


def _as_host(fleet: Fleet, host: str = "a") -> psycopg.Connection:
    """A session of host ``host``'s writer role: what its credentials open."""
    return fleet.database.connect(user=fleet.hosts[host], autocommit=True)


def _row(fleet: Fleet, name: str) -> dict | None:
    with fleet.database.connect(row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("SELECT * FROM profile_projection WHERE profile = %s", (name,)).fetchone()


def _one_line(result, status: int, says: str) -> None:
    assert result.returncode == status, (result.args, result.stdout, result.stderr)
    assert len(result.stderr.splitlines()) == 1 and says in result.stderr, result.stderr


def _healthy(fleet: Fleet, rig: Rig) -> dict:
    result = rig.home.hermes("doctor", "--json", env=fleet.projector_env("b"))
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["healthy"], report
    return {check["check"]: check for check in report["checks"]}


# -- 6: acting on another host's profiles beyond intents -------------------------------------------

def test_a_hosts_role_cannot_move_another_hosts_profile_to_itself(fleet, hosts):
    a, b = hosts["a"], hosts["b"]
    before = _row(fleet, "bob")
    with _as_host(fleet) as attacker:
        for statement in (f"UPDATE profile_projection SET host = '{HOST_IDS['a']}' WHERE profile = 'bob'",
                          "UPDATE profile_projection SET desired = 'down' WHERE profile = 'bob'",
                          "DELETE FROM profile_projection WHERE profile = 'bob'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), attacker.transaction():
                attacker.execute(statement)
    assert _row(fleet, "bob") == before
    a.boot()
    b.boot()
    assert a.status("bob") is None  # no slot on a, no gateway there
    assert b.running_pid("bob")
    assert _healthy(fleet, b)["projection"]["status"] == "ok"


def test_a_host_cannot_append_as_another_host(fleet, hosts):
    a, b = hosts["a"], hosts["b"]
    _one_line(_as_user(a, "create", "evil", HERMES_HOST_ID=HOST_IDS["b"]), 5, f"appends as host {HOST_IDS['a']}, not as host {HOST_IDS['b']}")
    _one_line(_as_user(a, "stop", "bob", HERMES_HOST_ID=HOST_IDS["b"]), 5, "appends as host")
    assert _row(fleet, "evil") is None
    b.boot()
    assert b.status("evil") is None and b.status("bob")["wantedup"]
    assert not (a.home.path / "profiles" / "evil").exists()
    # As itself, a may still ask for what the documented intents allow: stop b's gateway.
    a.cli("stop", "bob")
    b.boot()
    assert not b.status("bob")["wantedup"]


def test_a_hosts_exits_cannot_trip_another_hosts_breaker(fleet, hosts):
    a, b = hosts["a"], hosts["b"]
    recorded = _supervisor_events("bob", b)
    for _ in range(5):  # the breaker's count (HERMES_CRASH_LOOP's default: 5 in 300 s)
        _one_line(_as_user(a, "record-exit", "gateway-bob", "1", "0", "true", **HOOKS_UNSUPERVISED), 4,
                  f"profile bob is host {HOST_IDS['b']}'s: host {HOST_IDS['a']} records no gateway")
    # Nor may a's run hook record a start of it, or start its gateway.
    started = _as_user(a, "record-start", "gateway-bob", HERMES_GATEWAY_COMMAND="/bin/echo started",
                       **HOOKS_UNSUPERVISED)
    _one_line(started, 4, "records no gateway start, exit or report")
    assert started.stdout == ""
    assert _supervisor_events("bob", b) == recorded
    row = _row(fleet, "bob")
    assert (row["desired"], row["intent_actor"], row["crashes"]) == ("up", "cli", 0)
    b.boot()
    assert b.status("bob")["wantedup"] and b.running_pid("bob")


def test_a_writer_that_skips_the_recorder_meets_the_same_rules(fleet, hosts):
    """Raw INSERTs as a's role, chained and positioned right: the database folds and refuses them."""
    with _as_host(fleet) as attacker:
        def insert(profile, version, kind, actor, desired=None, host=HOST_IDS["a"], data="{}"):
            position, = attacker.execute("SELECT coalesce(max(position), 0) + 1 FROM events").fetchone()
            with attacker.transaction():
                attacker.execute(
                    "INSERT INTO events (position, profile, version, type, actor, desired, occurred_at, host, data,"
                    " hash, chain_version) VALUES (%s, %s, %s, %s, %s, %s, '2026-12-08T00:00:00.000Z', %s, %s,"
                    " repeat('0', 64), 1)", (position, profile, version, kind, actor, desired, host, data))

        bob = _row(fleet, "bob")
        cases = [
            # SQLSTATE HS001, the store's own (psycopg knows no class for it).
            (("bob", bob["version"] + 1, "crashed", "supervisor"), psycopg.OperationalError, "records no gateway"),
            (("bob", bob["version"] + 1, "stopped", "cli", "down", HOST_IDS["b"]), psycopg.errors.InsufficientPrivilege,
             "appends as host"),
            (("Evil", 1, "created", "cli", "down"), psycopg.errors.CheckViolation, "may not be created"),
            (("bob", bob["version"] + 5, "stopped", "cli", "down"), psycopg.errors.CheckViolation, "is at version"),
            (("bob", bob["version"] + 1, "started", "cli", "down"), psycopg.errors.CheckViolation, "does not append"),
            (("nobody", 2, "started", "cli", "up"), psycopg.errors.CheckViolation, "is at version"),
        ]
        for args, error, says in cases:
            with pytest.raises(error, match=says):
                insert(*args)
    assert _row(fleet, "bob") == bob


# -- 7: denying service to every host -------------------------------------------------------------

def test_a_hosts_role_cannot_lock_the_store(fleet, hosts):
    a, b = hosts["a"], hosts["b"]
    with _as_host(fleet) as attacker:
        for statement in ("LOCK TABLE profile_projection IN ACCESS EXCLUSIVE MODE",
                          "LOCK TABLE events IN ACCESS EXCLUSIVE MODE",
                          "LOCK TABLE events IN SHARE MODE",
                          "SELECT * FROM profile_projection FOR KEY SHARE"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), attacker.transaction():
                attacker.execute(statement)
        # What it may take (its INSERT allows ROW EXCLUSIVE), held open, blocks nobody.
        attacker.execute("BEGIN")
        attacker.execute("LOCK TABLE events IN ROW EXCLUSIVE MODE")
        b.cli("restart", "bob")
        a.cli("create", "alice")
        assert "bob" in b.cli("list")
        attacker.execute("ROLLBACK")


def test_a_boot_kept_waiting_by_a_lock_brings_the_slots_up_from_the_snapshot(fleet, hosts):
    """Only the owner can hold the projection now (a migration, an operator's DDL): a boot kept
    waiting past the busy timeout cannot be answered in time, as with the server away."""
    b = hosts["b"]
    b.stop_scanner()
    shutil.rmtree(b.scandir)  # as a container restart leaves /run/service
    b.start_scanner()
    with fleet.database.connect() as owner:
        owner.execute("LOCK TABLE profile_projection IN ACCESS EXCLUSIVE MODE")
        booted = b.hermes("boot", HERMES_STATE_BUSY_TIMEOUT_MS="300")
        owner.rollback()
    assert booted.returncode == 0, booted.stderr
    assert "database unreachable: slots from the snapshot" in booted.stderr, booted.stderr
    wait_for(lambda: b.running_pid("bob"), 10, "bob up from b's snapshot")


def test_a_hosts_role_can_make_only_itself_read_only(fleet, hosts):
    a, b = hosts["a"], hosts["b"]
    with _as_host(fleet) as attacker:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), attacker.transaction():
            attacker.execute(f'ALTER ROLE "{fleet.hosts["b"]}" SET default_transaction_read_only = on')
        # The hosts' group is its to change (a member may SET ROLE to it), but nobody logs in as it.
        attacker.execute(f'SET ROLE "{fleet.writer}"')
        attacker.execute(f'ALTER ROLE "{fleet.writer}" SET default_transaction_read_only = on')
        attacker.execute("RESET ROLE")
        attacker.execute(f'ALTER ROLE "{fleet.hosts["a"]}" SET default_transaction_read_only = on')
    b.cli("stop", "bob")  # every other host appends as before
    _one_line(a.as_user("create", "alice"), 5, "read-only")  # a harmed itself
    result = b.home.hermes("doctor", "--json", env=fleet.projector_env("b"))
    roles = {check["check"]: check for check in json.loads(result.stdout)["checks"]}["roles"]
    assert result.returncode == 5 and roles["status"] == "error", roles
    assert f"{fleet.hosts['a']} starts every session read-only" in roles["detail"]
    assert fleet.writer not in roles["detail"]  # nobody logs in as the group: its defaults apply to no session


def test_a_hosts_role_cannot_change_another_hosts_password(fleet, hosts):
    b = hosts["b"]

    def passwords() -> list:
        with fleet.database.connect(user="postgres") as conn:
            return conn.execute("SELECT rolname, rolpassword, rolcanlogin FROM pg_authid WHERE rolname IN (%s, %s)"
                                " ORDER BY 1", (fleet.hosts["b"], fleet.writer)).fetchall()

    before = passwords()
    with _as_host(fleet) as attacker:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), attacker.transaction():
            attacker.execute(f"ALTER ROLE \"{fleet.hosts['b']}\" PASSWORD 'taken'")
        attacker.execute(f'SET ROLE "{fleet.writer}"')
        attacker.execute(f"ALTER ROLE \"{fleet.writer}\" PASSWORD 'taken'")  # no login: it opens nothing
        for change in ("LOGIN", "CONNECTION LIMIT -1"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), attacker.transaction():
                attacker.execute(f'ALTER ROLE "{fleet.writer}" {change}')
    after = passwords()
    assert [row for row in after if row[0] == fleet.hosts["b"]] == [row for row in before if row[0] == fleet.hosts["b"]]
    assert [row[2] for row in after if row[0] == fleet.writer] == [False]
    b.cli("stop", "bob")


def test_a_hosts_connections_cannot_exhaust_the_server(fleet, hosts, pg_cluster):
    b = hosts["b"]
    with pg_cluster.connect() as conn:
        ceiling = int(conn.execute("SHOW max_connections").fetchone()[0])
    held: list[psycopg.Connection] = []
    refused = None
    try:
        while len(held) < ceiling:
            try:
                held.append(_as_host(fleet))
            except psycopg.OperationalError as error:
                refused = str(error)
                break
        assert len(held) == HOST_CONNECTION_LIMIT and "too many connections for role" in (refused or ""), \
            (len(held), refused)
        b.cli("stop", "bob")
        b.cli("start", "bob")
    finally:
        for conn in held:
            conn.close()


def test_a_hosts_lock_on_the_appends_is_ended_by_the_next_append(fleet, hosts):
    a, b = hosts["a"], hosts["b"]
    # A session-level lock, the session idle: no append holds one. Even a hook's 500 ms wait ends it.
    attacker = _as_host(fleet)
    attacker.execute("SELECT pg_advisory_lock(%s)", (APPEND_LOCK,))
    stopped = _as_user(b, "stop", "bob", HERMES_STATE_BUSY_TIMEOUT_MS="500")
    assert stopped.returncode == 0, stopped.stderr
    with pytest.raises(psycopg.OperationalError):
        attacker.execute("SELECT 1")
    attacker.close()

    # Held in a transaction left idle: ended once it has been idle longer than any append is.
    attacker = _as_host(fleet)
    attacker.execute("BEGIN")
    attacker.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
    b.cli("start", "bob")
    with pytest.raises(psycopg.OperationalError):
        attacker.execute("SELECT 1")
    attacker.close()

    # A superuser's lock is not the owner's to end: waited for, then locked (exit 5), as before.
    with fleet.database.connect(user="postgres") as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
        _one_line(_as_user(a, "stop", "bob", HERMES_STATE_BUSY_TIMEOUT_MS="300"), 5, "locked")
        holder.rollback()
    assert _healthy(fleet, b)["hosts"]["status"] == "ok"


# -- 8: a change feed flooded with notifications --------------------------------------------------

def test_a_flood_of_notifications_costs_one_position_check_per_interval(fleet, hosts, world_tmp):
    """NOTIFY needs no privilege: a host's role can send as many as it likes to every daemon."""

    class CountingRecorder(PostgresRecorder):
        checks = 0

        def current_position(self) -> int:
            CountingRecorder.checks += 1
            return super().current_position()

    recorder = CountingRecorder(fleet.url(fleet.projector), "fleet", readonly=True, lock_timeout_ms=1000)
    flooding = threading.Event()
    sent = []

    def flood() -> None:
        with _as_host(fleet) as attacker:
            flooding.set()
            for _ in range(4000):  # one transaction each, as fast as the server takes them
                attacker.execute("NOTIFY hermes_events")
                sent.append(1)

    try:
        with recorder.change_feed(use_notifications=True, poll_interval=60) as feed:
            flooder = threading.Thread(target=flood)
            started = time.monotonic()
            flooder.start()
            flooding.wait(10)
            while flooder.is_alive():
                assert feed.wait(0.2) != NOTIFIED  # the position never moved
            flooder.join()
            feed.wait(2 * NOTIFIED_CHECK_SECONDS)  # what queued last is checked once more
            elapsed = time.monotonic() - started
            assert sum(sent) == 4000
            assert CountingRecorder.checks <= elapsed / NOTIFIED_CHECK_SECONDS + 3, (CountingRecorder.checks, elapsed)
            # A real append is still seen at once.
            hosts["a"].cli("create", "alice")
            assert feed.wait(5) == NOTIFIED
    finally:
        recorder.close()


# -- the database's fold is the Python fold ----------------------------------------------------------

def test_the_databases_projection_is_the_fold_through_every_branch(pg_database, world_tmp):
    """Every kind of event the fold treats apart, appended through the store: each row the trigger
    wrote equals the Python fold of the log."""
    url = pg_database.url  # the owner: it may append as any host (a fleet's own hosts are tested above)

    def store_of(host: str):
        return open_store(Settings.from_env({"HERMES_HOME": str(world_tmp), "HERMES_STATE_URL": url,
                                             "HERMES_HOST_ID": host}))

    migrate(Settings.from_env({"HERMES_HOME": str(world_tmp), "HERMES_STATE_URL": url}))
    first, second = HOST_IDS["a"], HOST_IDS["b"]
    with store_of(first) as store:
        def supervisor(kind, desired=None, **fields):
            return store.append(NewEvent("bob", kind, "supervisor", desired, **fields))

        store.append(NewEvent("default", "created", "boot", "down"))
        store.append(NewEvent("bob", "created", "cli", "down"))
        store.append(NewEvent("bob", "started", "cli", "up"))
        run = supervisor("started", pid=100).position
        supervisor("crashed", exit_code=1, data={"run": run})
        run = supervisor("started", pid=101).position
        store.append(NewEvent("bob", "started", "api", "up", reason="restart"))
        supervisor("stopped", signal=15, data={"run": run})
        run = supervisor("started", pid=102).position
        supervisor("crashed", exit_code=2, data={"run": run - 1})  # a late exit of an older run
        supervisor("crashed", signal=9, data={"run": run})
        supervisor("stopped", "down", reason="crash-loop")
        store.append(NewEvent("bob", "started", "import", "up"))
        supervisor("started", pid=103)
        store.append(NewEvent("bob", "reported", "gateway", None, pid=103, reason="ready"))
        store.append(NewEvent("bob", "stopped", "hermes-agent", "down"))
        store.append(NewEvent("bob", "deleted", "cli", "down"))
    with store_of(second) as store:
        store.append(NewEvent("bob", "created", "api", "down"))  # a new life, on another host
        store.append(NewEvent("bob", "stopped", "cli", "down", reason="why"))
        store.append(NewEvent("carol", "created", "import", "down"))
        states = {state.profile: state for state in store.states(include_deleted=True)}
        log = store.log_after(0)
    assert states == fold(log)
    assert states["bob"].host == second and states["bob"].crashes == 3 and not states["bob"].deleted


def test_the_trigger_accepts_exactly_what_the_fold_accepts(pg_database, world_tmp):
    """Who appends what (``fold.ALLOWED`` and ``check_shape``): every (type, actor, desired) of the
    vocabulary inserted raw, as the owner, after a live profile; the trigger must take exactly the
    ones the fold takes. A revision that widens the vocabulary must widen events_project too."""
    migrate(Settings.from_env({"HERMES_HOME": str(world_tmp), "HERMES_STATE_URL": pg_database.url}))
    with open_store(Settings.from_env({"HERMES_HOME": str(world_tmp), "HERMES_STATE_URL": pg_database.url,
                                       "HERMES_HOST_ID": HOST_IDS["a"]})) as store:
        store.append(NewEvent("p", "created", "cli", "down"))
    taken, folded = set(), set()
    with pg_database.connect(autocommit=True) as owner:
        for kind in TYPES:
            for actor in ACTORS:
                for desired in (None, "up", "down"):
                    profile = "fresh" if kind == "created" else "p"
                    version = 1 if kind == "created" else 2
                    row = dict(position=2, profile=profile, version=version, type=kind, actor=actor, desired=desired,
                               occurred_at="2026-12-08T00:00:00.000Z", host=HOST_IDS["a"], boot_id=None, pid=None,
                               exit_code=None, signal=None, reason="why", data="{}", idempotency_key=None,
                               hash="0" * 64, chain_version=1)
                    try:
                        check_shape(Event(**{**row, "data": {}}))
                        folded.add((kind, actor, desired))
                    except BadInput:
                        pass
                    try:
                        with owner.transaction(force_rollback=True):
                            owner.execute(f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
                                          list(row.values()))
                        taken.add((kind, actor, desired))
                    except psycopg.errors.CheckViolation:
                        pass
    assert taken == folded and ("reported", "gateway", None) in taken and ("stopped", "hermes-agent", "down") in taken
