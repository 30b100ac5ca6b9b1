"""Doctor's checks of a fleet's database: reachable, at the code's revision, the triggers as the
migrations made them, the views, and what each role may do (docs/fleet.md, "Roles"). The chain and
the projection are checked above the seam (``hermes_lifecycle.doctor``), the same way for every backend.

Think of an attacker who holds one host's writer role: it may read and append, as its own host only
(migration 0007 binds the host to the role), and the database writes the projection from the events.
The log is kept by two walls: the triggers, which refuse UPDATE, DELETE and TRUNCATE to every role
(and fold every append, refusing another host's name or another host's gateway), and the grants.
Whatever can take the first wall down now, or did, is an error: a trigger missing, disabled, firing
only for replicas, calling something else, or its function's body not the migrations' own; a trigger
or function in the schema the migrations did not make (a function named like a built-in there can
capture the triggers' calls); a role that is a member of the owner's (it may ALTER TABLE ... DISABLE
TRIGGER, replace the functions, and rewrite the log and its chain, which has no secret, undetectably);
a role that may SET session_replication_role (its session skips the triggers). So is what lets one
host act on another without an event: writing the projection (moving a profile, starting or removing
its gateway) or the host bindings (appending as another host). A grant the triggers still hold
(UPDATE, DELETE, TRUNCATE on events, CREATE in the schema, ...) is a warning: the log cannot be
changed through it, and the chain would show a change if it were; docs/fleet.md has the GRANTs that
put it right. So is what weakens one host's own service: a role's own session defaults (an error
when they make an appending role read-only), no connection limit, a session the owner could not end
while it holds the append lock.
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Any

from ...records import Record
from ...checks import ERROR, OK, WARNING, Report
from ...errors import HermesError
from ...store.revisions import HEAD, KNOWN_REVISIONS
from ...store.schema import VIEWS
from .connect import connect
from .revision import require_head
from .translate import translated

# Every trigger the migrations make on events, and what it keeps true.
TRIGGERS = {
    "events_refuse_update": "UPDATE refused",
    "events_refuse_delete": "DELETE refused",
    "events_refuse_truncate": "TRUNCATE refused",
    "events_serialize": "appends in commit order",
    "events_notify": "listeners woken",
    "events_project": "the projection folded, each host as itself",
}
# Grants on the store's tables no role but the owner should hold; the triggers still refuse
# a change to the log, so each is a warning (the module's docstring says why).
_WARN_ON = {
    "events": ("UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"),
    "alembic_version": ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER"),
    "profile_projection": ("TRIGGER",),
}
# Grants through which one host could act on another's profiles without an event: errors.
_ERROR_ON = {
    "profile_projection": ("INSERT", "UPDATE", "DELETE", "TRUNCATE"),
    "fleet_hosts": ("INSERT", "UPDATE", "DELETE", "TRUNCATE"),
}
_ERROR_WHY = {
    "profile_projection": "it could move, start or remove another host's gateways without an event",
    "fleet_hosts": "it could append as another host",
}
# Roles whose privileges are not findings: the owner, superusers, PostgreSQL's predefined roles
# (a member of one, pg_write_all_data say, is found itself: privileges are checked per login role).
_OTHER_ROLES = "NOT r.rolsuper AND r.rolname <> %(owner)s AND r.rolname NOT LIKE 'pg\\_%%'"

_CREATE_FUNCTION = re.compile(
    r"CREATE (?:OR REPLACE )?FUNCTION (\w+)\(([^)]*)\) RETURNS \w+ LANGUAGE plpgsql( SECURITY DEFINER)? "
    r"AS \$\$(.*)\$\$\s*\Z", re.S)
_CREATE_TRIGGER = re.compile(r"CREATE TRIGGER (\w+) .* EXECUTE FUNCTION \w+\(\)\s*\Z", re.S)


class Function(Record):
    """A function as a revision makes it: its arguments (as pg_get_function_identity_arguments
    writes them), its body, and whether it runs as its owner (SECURITY DEFINER)."""

    arguments: str
    body: str
    definer: bool


@functools.lru_cache(maxsize=1)
def migrations_objects() -> tuple[dict[str, str], dict[str, Function]]:
    """(trigger name -> its CREATE TRIGGER, function name -> its Function) as the revisions up to
    HEAD leave them on PostgreSQL, read from the revisions themselves, so doctor and the migrations
    cannot disagree (a later revision's definition replaces an earlier one's)."""
    triggers: dict[str, str] = {}
    bodies: dict[str, Function] = {}

    def scan(value: Any) -> None:
        if isinstance(value, str):
            if match := _CREATE_FUNCTION.match(value.strip()):
                bodies[match.group(1)] = Function(match.group(2), match.group(4), bool(match.group(3)))
            elif match := _CREATE_TRIGGER.match(value.strip()):
                triggers[match.group(1)] = " ".join(value.split())
        elif isinstance(value, (tuple, list)):
            for item in value:
                scan(item)
        elif isinstance(value, dict):
            for item in value.values():
                scan(item)

    for revision in KNOWN_REVISIONS:
        module = importlib.import_module(f"hermes_lifecycle.migrations.versions.{revision}")
        for name, value in vars(module).items():
            if name.isupper():
                scan(value)
    return triggers, bodies


def diagnose_database(url: str, location: str, report: Report, lock_timeout_ms: int) -> bool:
    """Every check of the database; True when the log can then be read (chain, fold)."""
    try:
        connection = connect(url, location, readonly=True, lock_timeout_ms=lock_timeout_ms)
    except HermesError as error:
        report.add("connect", ERROR, str(error))
        return False
    try:
        with translated(location):
            version = connection.execute("SHOW server_version").fetchone()[0]
            report.add("connect", OK, f"{location} (PostgreSQL {version})")
            try:
                require_head(connection, location)
            except HermesError as error:
                report.add("schema", ERROR, str(error))
                return False
            report.add("schema", OK, f"revision {HEAD}")
            owner, schema = connection.execute(
                "SELECT tableowner, schemaname FROM pg_tables WHERE tablename = 'events' "
                "AND schemaname = current_schema()").fetchone()
            _check_triggers(report, connection)
            _check_functions(report, connection, owner, schema)
            _check_views(report, connection, owner)
            _check_roles(report, connection, owner, schema)
            _check_hosts(report, connection, owner)
        return True
    except HermesError as error:
        report.add("database", ERROR, str(error))
        return False
    finally:
        connection.close()


def _unqualified(definition: str, schema: str) -> str:
    """pg_get_triggerdef's text as the migrations write it: the store's schema not named."""
    return " ".join(definition.replace(f"ON {schema}.", "ON ").replace(f"FUNCTION {schema}.", "FUNCTION ").split())


def _check_triggers(report: Report, connection: Any) -> None:
    expected, _ = migrations_objects()
    rows = connection.execute(
        "SELECT t.tgname, t.tgenabled, pg_get_triggerdef(t.oid), quote_ident(n.nspname) FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE t.tgrelid = 'events'::regclass AND NOT t.tgisinternal"
    ).fetchall()
    found = {name: (state, _unqualified(definition, schema)) for name, state, definition, schema in rows}
    problems = [f"missing {name}" for name in expected if name not in found]
    # 'D' is disabled; 'R' fires only when session_replication_role is replica: in no ordinary session.
    problems += [f"{name} disabled" for name in expected if found.get(name, ("O",))[0] == "D"]
    problems += [f"{name} enabled only for replicas" for name in expected if found.get(name, ("O",))[0] == "R"]
    problems += [f"{name} is not the migrations' ({found[name][1]})" for name in expected
                 if name in found and found[name][1] != expected[name]]
    # A trigger nobody migrated could rewrite each append (another host's too) before it is stored.
    problems += [f"{name} was not made by the migrations" for name in sorted(set(found) - set(expected))]
    if problems:
        report.add("triggers", ERROR, f"events' triggers: {'; '.join(problems)}: the log is not protected")
    else:
        report.add("triggers", OK, ", ".join(f"{name} ({TRIGGERS.get(name, 'as migrated')})" for name in expected))


def _check_functions(report: Report, connection: Any, owner: str, schema: str) -> None:
    """The triggers' functions are the migrations' own, and the schema holds no other function or
    operator that a call in them (or the recorder's) could resolve to instead of a built-in. A
    function that runs as its owner (SECURITY DEFINER) must say where it finds names: the store's
    schema after pg_catalog, a session's temporary objects last (never in place of the tables)."""
    _, bodies = migrations_objects()
    rows = connection.execute(
        "SELECT p.proname, p.prosrc, l.lanname, pg_get_userbyid(p.proowner), p.prosecdef, "
        "pg_get_function_identity_arguments(p.oid), p.proconfig "
        "FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
        "WHERE p.pronamespace = current_schema()::regnamespace "
        "AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid "
        "AND d.deptype = 'e')"  # an extension's functions (CREATE EXTENSION is the owner's or a superuser's)
    ).fetchall()
    search_path = "search_path=pg_catalog, {}, pg_temp".format(
        connection.execute("SELECT quote_ident(%s)", (schema,)).fetchone()[0])
    problems = []
    seen = set()
    for name, source, language, function_owner, definer, arguments, config in rows:
        expected = bodies.get(name)
        if expected is None or arguments != expected.arguments:
            problems.append(f"{name}({arguments}) was not made by the migrations")
            continue
        seen.add(name)
        if source != expected.body or language != "plpgsql" or definer != expected.definer:
            problems.append(f"{name}'s body is not the migrations' own")
        elif config != ([search_path] if definer else None):
            problems.append(f"{name} runs with settings {config}, not the migrations' (search_path for "
                            "a function that runs as its owner, none for the others)")
        if function_owner != owner:
            problems.append(f"{name} is owned by {function_owner}, who could replace it, not by {owner}")
    problems += [f"{name} is missing" for name in bodies if name not in seen]
    operators = connection.execute(
        "SELECT o.oprname || '(' || format_type(o.oprleft, NULL) || ', ' || format_type(o.oprright, NULL) || ')' "
        "FROM pg_operator o WHERE o.oprnamespace = current_schema()::regnamespace "
        "AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_operator'::regclass AND d.objid = o.oid "
        "AND d.deptype = 'e')"
    ).fetchall()
    problems += [f"operator {name} was not made by the migrations" for (name,) in operators]
    if problems:
        report.add("functions", ERROR, "; ".join(problems) + ": the triggers may not do what they say")
    else:
        report.add("functions", OK, f"{', '.join(bodies)}: the migrations' own, owned by {owner}")


def _check_views(report: Report, connection: Any, owner: str) -> None:
    found = dict(connection.execute(
        "SELECT viewname, viewowner FROM pg_views WHERE schemaname = current_schema() AND viewname = ANY(%s)",
        (list(VIEWS),),
    ).fetchall())
    missing = [name for name in VIEWS if name not in found]
    # Only the owner makes views here: one owned by another role was put in place of the migrations'.
    foreign = [f"{name} is owned by {found[name]}, not {owner}" for name in VIEWS
               if name in found and found[name] != owner]
    if missing or foreign:
        parts = ([f"missing {', '.join(missing)}: run `hermes-state migrate`"] if missing else []) + foreign
        report.add("views", ERROR, "; ".join(parts))
    else:
        report.add("views", OK, ", ".join(VIEWS))


def _check_roles(report: Report, connection: Any, owner: str, schema: str) -> None:
    """What each role other than the owner may do: errors where it could take the triggers down or
    act on another host without an event, warnings where only the grants are wider than docs/fleet.md's."""
    values = {"owner": owner, "schema": schema}
    errors = [f"{name} is a member of {of} (it may disable the triggers and rewrite the log)"
              for name, of in connection.execute(
                  "SELECT r.rolname, o.rolname FROM pg_roles r CROSS JOIN pg_roles o "
                  f"WHERE {_OTHER_ROLES} AND o.rolname IN (%(owner)s, "
                  "(SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %(schema)s)) "
                  "AND o.oid <> r.oid AND pg_has_role(r.oid, o.oid, 'MEMBER') ORDER BY 1", values).fetchall()]
    if connection.info.server_version >= 150000:  # GRANT SET ON PARAMETER is new in 15
        # Granted cluster-wide: only roles that may connect to this database are its concern.
        errors += [f"{name} may SET session_replication_role (its session skips the triggers)"
                   for (name,) in connection.execute(
                       f"SELECT r.rolname FROM pg_roles r WHERE {_OTHER_ROLES} "
                       "AND has_database_privilege(r.oid, current_database(), 'CONNECT') "
                       "AND has_parameter_privilege(r.oid, 'session_replication_role', 'SET') ORDER BY 1",
                       values).fetchall()]
    errors += [f"{name} may {privilege} {table} ({_ERROR_WHY[table]})"
               for table, privileges in _ERROR_ON.items()
               for name, privilege in _granted(connection, values, table, privileges)]
    defaults = _session_defaults(connection, values)
    errors += [f"{name} starts every session read-only ({setting}, set by ALTER ROLE): its appends are refused"
               for name, setting, denies in defaults if denies]
    warnings = [f"{name} may {privilege} {table}" for table, privileges in _WARN_ON.items()
                for name, privilege in _granted(connection, values, table, privileges)]
    warnings += [f"{name} may CREATE in schema {schema} (it could put a function there that the triggers call)"
                 for (name,) in connection.execute(
                     f"SELECT r.rolname FROM pg_roles r WHERE {_OTHER_ROLES} "
                     "AND has_schema_privilege(r.oid, %(schema)s, 'CREATE') ORDER BY 1", values).fetchall()]
    warnings += [f"{name} has a session default of its own ({setting}, set by ALTER ROLE: RESET it unless meant)"
                 for name, setting, denies in defaults if not denies]
    if errors:
        report.add("roles", ERROR, "; ".join(errors + warnings) + " (docs/fleet.md has the GRANTs)")
    elif warnings:
        report.add("roles", WARNING, "; ".join(warnings) + " (docs/fleet.md has the GRANTs)")
    else:
        appenders = [name for (name,) in connection.execute(
            f"SELECT r.rolname FROM pg_roles r WHERE {_OTHER_ROLES} AND r.rolcanlogin "
            "AND has_table_privilege(r.oid, 'events', 'INSERT') ORDER BY 1", values).fetchall()]
        report.add("roles", OK, f"only the owner ({owner}) may change the log or the schema; "
                   f"appending: {', '.join(appenders) or 'none but the owner'}")


def _granted(connection: Any, values: dict, table: str, privileges: tuple[str, ...]) -> list[tuple[str, str]]:
    """(role, privilege) for each role other than the owner that holds one of ``privileges`` on ``table``."""
    return connection.execute(
        "SELECT r.rolname, p.privilege FROM pg_roles r CROSS JOIN unnest(%(privileges)s::text[]) "
        f"AS p(privilege) WHERE {_OTHER_ROLES} "
        "AND has_table_privilege(r.oid, %(table)s::regclass, p.privilege) ORDER BY 1, 2",
        {**values, "table": table, "privileges": list(privileges)}).fetchall()


def _session_defaults(connection: Any, values: dict) -> list[tuple[str, str, bool]]:
    """(role, setting, whether it refuses the role's appends) for each ALTER ROLE ... SET of a role other
    than the owner that may log in here, for every database or this one: a role may set its own, and
    they apply to every session it opens (a role that cannot log in opens none: the hosts' group may be
    changed by its members, harmlessly)."""
    rows = connection.execute(
        "SELECT r.rolname, c.setting, has_table_privilege(r.oid, 'events', 'INSERT') "
        "FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole CROSS JOIN unnest(s.setconfig) AS c(setting) "
        f"WHERE {_OTHER_ROLES} AND r.rolcanlogin "
        "AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) "
        "AND has_database_privilege(r.oid, current_database(), 'CONNECT') ORDER BY 1, 2", values).fetchall()
    return [(name, setting, appends and _makes_read_only(setting)) for name, setting, appends in rows]


def _makes_read_only(setting: str) -> bool:
    name, _, value = setting.partition("=")
    return name.strip().lower() in ("default_transaction_read_only", "transaction_read_only") and \
        value.strip().strip("'").lower() in ("on", "true", "yes", "1", "t", "y")


def _check_hosts(report: Report, connection: Any, owner: str) -> None:
    """Each host's role as docs/fleet.md makes it: bound to its host (fleet_hosts), with a connection
    limit (a host's sessions cannot take every connection), and held by the owner (so append_lock can
    end one of its sessions that holds the append lock without appending). A login role that may
    append but is bound to no host has its every append refused."""
    values = {"owner": owner}
    rows = connection.execute(
        "SELECT r.rolname, h.host, r.rolconnlimit, pg_has_role(%(owner)s, r.oid, 'USAGE') "
        f"FROM pg_roles r LEFT JOIN fleet_hosts h ON h.role = r.rolname WHERE {_OTHER_ROLES} AND r.rolcanlogin "
        "AND has_database_privilege(r.oid, current_database(), 'CONNECT') "
        "AND has_table_privilege(r.oid, 'events', 'INSERT') ORDER BY 1", values).fetchall()
    warnings = []
    for name, host, limit, held in rows:
        if host is None:
            warnings.append(f"{name} may INSERT events but is bound to no host: its appends are refused")
            continue
        if limit < 0:
            warnings.append(f"{name} has no connection limit: its sessions could take every connection")
        if not held:
            warnings.append(f"{owner} is not granted {name}: a session of it holding the append lock "
                            "cannot be ended")
    stale = [role for (role,) in connection.execute(
        "SELECT h.role FROM fleet_hosts h WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = h.role "
        "AND r.rolcanlogin) ORDER BY 1").fetchall()]
    warnings += [f"fleet_hosts binds {role}, which cannot log in" for role in stale]
    bound = [f"{name} (host {host})" for name, host, _, _ in rows if host is not None]
    if warnings:
        report.add("hosts", WARNING, "; ".join(warnings) + " (docs/fleet.md, Roles)")
    else:
        report.add("hosts", OK, f"appending as their own host only: {', '.join(bound) or 'no role but the owner'}")
