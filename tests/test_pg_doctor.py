"""`hermes-state doctor` on PostgreSQL checks a fleet's store as thoroughly as a file: the chain,
the projection equal to the fold, the triggers and their functions as the migrations made them,
the views, and what each role may do.

What doctor finds on either backend (a changed or deleted row, a projection out of step, root's
checkpoint) runs on both in tests/test_doctor.py; here is what only a fleet's database has.

Each store is made as docs/fleet.md says (tests/pg_fleet.py) and filled as the writer (by the real
commands in the healthy fleet's test, by their events appended in one process in the others); then
tampered with for real (as the superuser, the owner, or the writer), and the real `hermes-state
doctor` is run as the projector (any role may run it: it only reads).
"""

from __future__ import annotations

import json
import sys

import psycopg
import pytest

from conftest import run_as
from hermes_lifecycle.checks import ERROR, OK, WARNING
from pg_fleet import HOST_IDS, Fleet, fleet  # noqa: F401 (fleet: a fixture)

CHECKS = ("connect", "schema", "triggers", "functions", "views", "roles", "hosts", "hash chain", "projection")


FILL = (("create", "alice"), ("start", "alice"), ("stop", "alice"), ("create", "bob"))

# The events of FILL's commands, appended by one process of the writer: the tests that tamper need the
# rows, not the commands (four CLI processes a test were some 23 s of this file's 82).
_APPEND_FILL = """
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store
with open_store(Settings.from_env()) as store:
    for profile, kind, desired in (("alice", "created", "down"), ("alice", "started", "up"),
                                   ("alice", "stopped", "down"), ("bob", "created", "down")):
        store.append(NewEvent(profile, kind, "cli", desired))
"""


def fill_by_commands(fleet: Fleet, home) -> None:
    writer = fleet.host_env("a")
    for args in FILL:
        result = home.hermes(*args, env=writer)
        assert result.returncode == 0, result.stderr


def fill(fleet: Fleet, home) -> None:
    result = run_as([sys.executable, "-c", _APPEND_FILL], home.user, env={**home.env(), **fleet.host_env("a")})
    assert result.returncode == 0, result.stderr


def doctor_json(fleet: Fleet, home):
    result = home.hermes("doctor", "--json", env=fleet.env(fleet.projector))
    assert len(result.stdout.splitlines()) == 1, result.stdout
    report = json.loads(result.stdout)
    return result.returncode, {check["check"]: check for check in report["checks"]}, result.stderr


def tamper(fleet: Fleet, *statements: str, user: str = "postgres") -> None:
    with fleet.database.connect(user=user, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.format(writer=fleet.writer, owner=fleet.database.owner, host=fleet.hosts["a"],
                                           projector=fleet.projector))


def test_a_healthy_fleet_store(fleet, home):
    fill_by_commands(fleet, home)
    status, checks, stderr = doctor_json(fleet, home)
    assert status == 0 and stderr == ""
    for name in CHECKS:
        assert checks[name]["status"] == OK, checks[name]
    assert checks["hash chain"]["detail"] == "4 events verified"
    assert checks["projection"]["detail"] == "2 profiles equal the fold of the log"
    assert checks["roles"]["detail"] == (f"only the owner ({fleet.database.owner}) may change the log or the schema; "
                                         f"appending: {fleet.hosts['a']}, {fleet.hosts['b']}")
    assert checks["hosts"]["detail"] == ("appending as their own host only: "
                                         f"{fleet.hosts['a']} (host {HOST_IDS['a']}), "
                                         f"{fleet.hosts['b']} (host {HOST_IDS['b']})")
    human = home.hermes("doctor", env=fleet.env(fleet.projector))
    assert human.returncode == 0 and "hash chain" in human.stdout and "roles" in human.stdout


# (what was done, by whom, the check that must find it, and what it must say)
ERRORS = {
    "a trigger left disabled": (
        ["ALTER TABLE events DISABLE TRIGGER events_refuse_delete"], "postgres", "triggers",
        "events_refuse_delete disabled"),
    "a trigger that fires only for replicas": (
        ["ALTER TABLE events ENABLE REPLICA TRIGGER events_refuse_update"], "postgres", "triggers",
        "events_refuse_update enabled only for replicas"),
    "a trigger dropped": (
        ["DROP TRIGGER events_refuse_truncate ON events"], "postgres", "triggers", "missing events_refuse_truncate"),
    # Row-level BEFORE, events_notify's RETURN NULL silently skips each UPDATE instead of refusing it.
    "a trigger pointed at another function": (
        ["DROP TRIGGER events_refuse_update ON events",
         "CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events FOR EACH ROW EXECUTE FUNCTION events_notify()"],
        "postgres", "triggers", "events_refuse_update is not the migrations'"),
    "a trigger nobody migrated": (
        ["CREATE TRIGGER a_rewrite BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_serialize()"],
        "postgres", "triggers", "a_rewrite was not made by the migrations"),
    # The owner may replace its functions: the trigger is there and enabled, and does nothing.
    "a trigger function's body replaced by a no-op": (
        ["CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS "
         "$$BEGIN RETURN NEW; END$$"], "owner", "functions", "events_refuse_change's body is not the migrations' own"),
    "a trigger function given to the writer": (
        ["ALTER FUNCTION events_serialize() OWNER TO {writer}"], "postgres", "functions",
        "events_serialize is owned by"),
    "a function named like a built-in the triggers call": (
        ["CREATE FUNCTION public.pg_advisory_xact_lock(integer) RETURNS void LANGUAGE sql AS 'SELECT'"],
        "owner", "functions", "pg_advisory_xact_lock(integer) was not made by the migrations"),
    "a view dropped": (["DROP VIEW gateway_runs"], "owner", "views", "missing gateway_runs"),
    "a view put back by another role": (
        ["DROP VIEW crash_loops", "CREATE VIEW crash_loops AS SELECT profile FROM profile_projection WHERE false",
         "ALTER VIEW crash_loops OWNER TO {writer}"], "postgres", "views", "crash_loops is owned by"),
    "the writer allowed to write the projection": (
        ["GRANT UPDATE ON profile_projection TO {writer}"], "postgres", "roles",
        "may UPDATE profile_projection (it could move, start or remove another host's gateways"),
    "the writer allowed to delete from the projection": (
        ["GRANT DELETE ON profile_projection TO {writer}"], "postgres", "roles", "may DELETE profile_projection"),
    "the writer allowed to bind hosts": (
        ["GRANT INSERT ON fleet_hosts TO {writer}"], "postgres", "roles",
        "may INSERT fleet_hosts (it could append as another host)"),
    "a host's role made read-only by itself": (
        ["ALTER ROLE {host} SET default_transaction_read_only = on"], "host", "roles",
        "starts every session read-only (default_transaction_read_only=on, set by ALTER ROLE)"),
    "a function that runs as its owner, with another search_path": (
        ["ALTER FUNCTION events_project() SET search_path = public, pg_catalog"], "owner", "functions",
        "events_project runs with settings"),
    # (Not the writer: the owner is a member of it through the hosts' roles, and PostgreSQL refuses a cycle.)
    "the projector made a member of the owner's role": (
        ["GRANT {owner} TO {projector}"], "postgres", "roles", "is a member of"),
    "the writer allowed to turn triggers off for its session": (
        ["GRANT SET ON PARAMETER session_replication_role TO {writer}"], "postgres", "roles",
        "may SET session_replication_role"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_each_tampering_is_an_error(fleet, home, case):
    statements, by, check, says = ERRORS[case]
    fill(fleet, home)
    user = {"postgres": "postgres", "owner": fleet.database.owner, "host": fleet.hosts["a"]}[by]
    tamper(fleet, *statements, user=user)
    status, checks, stderr = doctor_json(fleet, home)
    assert status == 5, checks
    assert checks[check]["status"] == ERROR and says in checks[check]["detail"], checks[check]
    assert len(stderr.splitlines()) == 1 and "unhealthy" in stderr, stderr
    human = home.hermes("doctor", env=fleet.env(fleet.projector))
    assert human.returncode == 5 and len(human.stderr.splitlines()) == 1


WARNINGS = {
    "UPDATE on events": ("GRANT UPDATE ON events TO {writer}", "may UPDATE events"),
    "DELETE and TRUNCATE on events": ("GRANT DELETE, TRUNCATE ON events TO {writer}", "may TRUNCATE events"),
    "TRIGGER on events": ("GRANT TRIGGER ON events TO {writer}", "may TRIGGER events"),
    "UPDATE on alembic_version": ("GRANT UPDATE ON alembic_version TO {writer}", "may UPDATE alembic_version"),
    "TRIGGER on the projection": ("GRANT TRIGGER ON profile_projection TO {writer}", "may TRIGGER profile_projection"),
    "CREATE in the schema": ("GRANT CREATE ON SCHEMA public TO {writer}", "may CREATE in schema public"),
    "UPDATE on events to everyone": ("GRANT UPDATE ON events TO PUBLIC", "may UPDATE events"),
}


@pytest.mark.parametrize("case", list(WARNINGS))
def test_a_grant_the_triggers_still_hold_is_a_warning(fleet, home, case):
    """The log cannot be changed through it (the triggers refuse every role), and the chain would show a
    change if it were: the store is sound, the grants are wider than docs/fleet.md's."""
    grant, says = WARNINGS[case]
    fill(fleet, home)
    tamper(fleet, grant)
    status, checks, stderr = doctor_json(fleet, home)
    assert status == 0 and stderr == "", checks
    assert checks["roles"]["status"] == WARNING and f"{fleet.writer} {says}" in checks["roles"]["detail"]
    assert "docs/fleet.md" in checks["roles"]["detail"]
    for name in CHECKS:
        if name != "roles":
            assert checks[name]["status"] == OK, checks[name]


def test_the_writer_with_update_on_events_is_still_refused_by_the_triggers(fleet, home):
    """Why the grant is only a warning: the first wall holds for every role."""
    fill(fleet, home)
    tamper(fleet, "GRANT UPDATE, DELETE, TRUNCATE ON events TO {writer}")
    with fleet.database.connect(user=fleet.hosts["a"], autocommit=True) as conn:
        for statement in ("UPDATE events SET reason = 'forged'", "DELETE FROM events", "TRUNCATE events"):
            with pytest.raises(psycopg.errors.RaiseException, match="events is append-only"):
                conn.execute(statement)


def test_a_function_named_like_a_built_in_does_not_capture_the_appends_lock(fleet, home):
    """An unqualified pg_advisory_xact_lock(1751478902) would resolve to an exact int4 match in the
    schema before pg_catalog's bigint one; the recorder and the trigger name pg_catalog's with a
    bigint, so the impostor is never called (and doctor still reports it)."""
    fill(fleet, home)
    tamper(fleet, "CREATE FUNCTION public.pg_advisory_xact_lock(integer) RETURNS void LANGUAGE plpgsql AS "
                  "$$BEGIN RAISE EXCEPTION 'captured'; END$$", user=fleet.database.owner)
    result = home.hermes("start", "alice", env=fleet.host_env("a"))
    assert result.returncode == 0 and "captured" not in result.stderr, result.stderr
    status, checks, _ = doctor_json(fleet, home)
    assert status == 5 and checks["functions"]["status"] == ERROR, checks["functions"]


def test_a_role_that_cannot_connect_here_is_not_this_stores_concern(fleet, home, pg_cluster):
    """Parameter grants are cluster-wide; a role of another database's (no CONNECT here) is not a finding."""
    fill(fleet, home)
    other = f"other_{fleet.database.name}"
    pg_cluster.create_role(other)
    try:
        with pg_cluster.connect(autocommit=True) as conn:
            conn.execute(f'GRANT SET ON PARAMETER session_replication_role TO "{other}"')
        status, checks, _ = doctor_json(fleet, home)
        assert status == 0 and checks["roles"]["status"] == OK, checks["roles"]
    finally:
        with pg_cluster.connect(autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{other}"')
        pg_cluster.drop_role(other)


HOST_WARNINGS = {
    "a host's role without a connection limit": ('ALTER ROLE "{host}" CONNECTION LIMIT -1', "has no connection limit"),
    "a host's role not granted to the owner": ('REVOKE "{host}" FROM "{owner}"',
                                               "is not granted {host}: a session of it holding the append lock"),
    "a login role that may append, bound to no host": ("DELETE FROM fleet_hosts WHERE role = '{host}'",
                                                       "{host} may INSERT events but is bound to no host"),
    "a role's own session default": ('ALTER ROLE "{host}" SET statement_timeout = 0', "has a session default"),
}


@pytest.mark.parametrize("case", list(HOST_WARNINGS))
def test_what_weakens_one_hosts_own_service_is_a_warning(fleet, home, case):
    statement, says = HOST_WARNINGS[case]
    fill(fleet, home)
    tamper(fleet, statement)
    status, checks, stderr = doctor_json(fleet, home)
    assert status == 0 and stderr == "", checks
    found = [check for check in checks.values() if check["status"] == WARNING]
    expected = says.format(host=fleet.hosts["a"], owner=fleet.database.owner)
    assert len(found) == 1 and expected in found[0]["detail"], found
