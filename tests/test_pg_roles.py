"""Least privilege as database roles (docs/fleet.md, "Roles"): the doc's own SQL, run through the
real `psql` on a private server, makes roles that can do what their processes do and no more.

The SQL is read from docs/fleet.md, so the page and this test cannot drift. The hermes side runs
the real `hermes` commands as the unprivileged uid, connected as the writer's role or the
projector's; each forbidden statement is tried for real on a connection of that role.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from hermes_lifecycle.backends.postgresql.recorder import APPEND_LOCK
from pg_fleet import HOST_IDS, Fleet, fleet, removed_after, roles_blocks  # noqa: F401 (fleet: a fixture)

GATEWAY_SH = "/bin/true"


def ok(result) -> str:
    assert result.returncode == 0, (result.args, result.stderr)
    return result.stdout


def refused(conn: psycopg.Connection, statement: str) -> str:
    """``statement`` fails for lack of a privilege (SQLSTATE 42501), not for any other reason
    (in a transaction of its own: LOCK TABLE takes one)."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as raised, conn.transaction():
        conn.execute(statement)
    return str(raised.value)


# Statements no role but the owner may run: the log rewritten, the schema changed, the guards
# taken down, the revision forged, or a way round them (another role, a session without triggers).
def beyond_the_grants(fleet: Fleet) -> list[str]:
    return [
        "UPDATE events SET reason = 'forged' WHERE position = 1",
        "DELETE FROM events WHERE position = 1",
        "TRUNCATE events",
        "TRUNCATE profile_projection",
        "DELETE FROM profile_projection",
        "UPDATE profile_projection SET desired = 'up'",
        "INSERT INTO profile_projection SELECT * FROM profile_projection",
        "LOCK TABLE profile_projection IN ACCESS EXCLUSIVE MODE",
        "SELECT * FROM profile_projection FOR UPDATE",
        "LOCK TABLE events IN ACCESS EXCLUSIVE MODE",
        "INSERT INTO fleet_hosts (role, host) VALUES (session_user, 'another')",
        "UPDATE fleet_hosts SET host = 'another'",
        "UPDATE alembic_version SET version_num = '0001_events'",
        "CREATE TABLE public.shadow (position bigint)",
        "CREATE VIEW public.shadow AS SELECT 1 AS one",
        "CREATE FUNCTION public.pg_advisory_xact_lock(integer) RETURNS void LANGUAGE sql AS 'SELECT'",
        "CREATE TEMP TABLE events (position bigint)",
        "CREATE SCHEMA shadow",
        "DROP TABLE events",
        "DROP VIEW crash_loops",
        "ALTER TABLE events DISABLE TRIGGER USER",
        "ALTER TABLE events ADD COLUMN forged text",
        "CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RETURN NEW; END$$",
        "DROP TRIGGER events_refuse_update ON events",
        "SET session_replication_role = replica",
        f'SET ROLE "{fleet.database.owner}"',
    ]


def test_the_superusers_block_is_idempotent_and_its_names_default_to_the_pages(pg_cluster):
    superuser_block, _, _ = roles_blocks()
    names = {"owner": "hermes_owner", "writer": "hermes_writer", "projector": "hermes_projector", "dbname": "hermes"}
    with removed_after(pg_cluster, names):
        for _ in range(2):  # run again, it makes nothing twice and fails on nothing
            pg_cluster.psql([], input=superuser_block, check=True)
        with pg_cluster.connect() as conn:
            roles = conn.execute("SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                                 "WHERE rolname LIKE 'hermes\\_%' ORDER BY 1").fetchall()
            owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'hermes'").fetchone()
        # The writer is the hosts' group: each host logs in as a role of its own.
        assert roles == [(name, name != "hermes_writer", False, False, False)
                         for name in ("hermes_owner", "hermes_projector", "hermes_writer")]
        assert owner == ("hermes_owner",)


def test_the_owners_grants_run_again_after_a_migration_change_nothing(fleet):
    _, owner_block, _ = roles_blocks()

    def privileges() -> list:
        with fleet.database.connect() as conn:
            return conn.execute("SELECT relname, relacl::text FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                                "AND relkind IN ('r', 'v') ORDER BY 1").fetchall()

    before = privileges()
    fleet.database.psql(["-v", f"writer={fleet.writer}", "-v", f"projector={fleet.projector}"],
                        input=owner_block, check=True)
    assert privileges() == before


def test_a_hosts_block_runs_again_to_change_its_limit_and_binds_nothing_twice(fleet):
    _, _, host_block = roles_blocks()
    role = fleet.hosts["a"]
    for _ in range(2):
        fleet.database.psql(["-v", f"owner={fleet.database.owner}", "-v", f"writer={fleet.writer}",
                             "-v", f"role={role}", "-v", f"host={HOST_IDS['a']}", "-v", "limit=5"],
                            input=host_block, user="postgres", check=True)
    with fleet.database.connect(user="postgres") as conn:
        assert conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (role,)).fetchone() == (5,)
        assert conn.execute("SELECT role, host FROM fleet_hosts ORDER BY 1").fetchall() == [
            (fleet.hosts[name], HOST_IDS[name]) for name in sorted(fleet.hosts)]


def test_the_writer_runs_the_hermes_side_and_can_do_no_more(fleet, home):
    writer = fleet.host_env("a")
    ok(home.hermes("create", "alice", env=writer))
    ok(home.hermes("start", "alice", env=writer))
    # The s6 slot's hooks: the run script's record-start (which execs the gateway), the finish script's record-exit.
    ok(home.hermes("record-start", "gateway-alice", env={**writer, "HERMES_GATEWAY_COMMAND": GATEWAY_SH}))
    ok(home.hermes("record-exit", "gateway-alice", "1", "0", "true", env=writer))
    ok(home.hermes("stop", "alice", env=writer))
    assert "alice" in ok(home.hermes("list", env=writer))
    history = [json.loads(line) for line in ok(home.hermes("history", "alice", "--json", env=writer))
               .splitlines()]
    assert [(e["type"], e["actor"]) for e in sorted(history, key=lambda e: e["position"])] == [
        ("created", "cli"), ("started", "cli"), ("started", "supervisor"), ("crashed", "supervisor"),
        ("stopped", "cli")]
    assert json.loads(ok(home.hermes("doctor", "--json", env=writer)))["healthy"] is True

    before = fleet.fingerprint()
    with fleet.database.connect(user=fleet.hosts["a"], autocommit=True) as conn:
        for statement in beyond_the_grants(fleet):
            refused(conn, statement)
        # What it may do, directly: read, and take the append lock (no privilege needed).
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 5
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
    assert fleet.fingerprint() == before


def test_the_projector_reads_and_every_write_is_refused(fleet, home):
    writer, projector = fleet.host_env("a"), fleet.projector_env("a")
    ok(home.hermes("create", "alice", env=writer))
    ok(home.hermes("start", "alice", env=writer))
    ok(home.hermes("create", "x", env=writer))
    before = fleet.fingerprint()

    assert "alice" in ok(home.hermes("list", env=projector))
    assert "alice" in ok(home.hermes("list", "--all-hosts", env=projector))
    ok(home.hermes("history", "alice", env=projector))
    ok(home.hermes("status", "alice", env=projector))
    doctor = json.loads(ok(home.hermes("doctor", "--json", env=projector)))
    assert doctor["healthy"] is True
    assert {check["check"]: check["status"] for check in doctor["checks"]}["roles"] == "ok"

    for args in (("start", "x"), ("stop", "alice"), ("create", "bob"),
                 ("delete", "x", "--yes"), ("record-exit", "gateway-alice", "1", "0", "true")):
        result = home.hermes(*args, env=projector)
        assert result.returncode == 5, (args, result.stdout, result.stderr)
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert "permission denied" in result.stderr or "read-only" in result.stderr, result.stderr
    assert sorted(path.name for path in (home.path / "profiles").iterdir()) == ["alice", "x"]
    # The run hook starts the gateway anyway (the log is a record, not a permission) and says so.
    started = home.hermes("record-start", "gateway-alice", env={**projector, "HERMES_GATEWAY_COMMAND": GATEWAY_SH})
    assert started.returncode == 0 and len(started.stderr.splitlines()) == 1
    assert "starting the gateway anyway" in started.stderr

    with fleet.database.connect(user=fleet.projector, autocommit=True) as conn:
        for statement in [
            "INSERT INTO events (position, profile, version, type, actor, occurred_at, host, hash) "
            "VALUES (3, 'x', 1, 'created', 'cli', '2026-01-01T00:00:00.000Z', 'h', repeat('0', 64))",
            "SELECT append_lock(100)",
            *beyond_the_grants(fleet),
        ]:
            refused(conn, statement)
    assert fleet.fingerprint() == before

