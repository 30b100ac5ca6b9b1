"""Doctor's checks of a fleet's database: reachable, at the code's revision, the triggers, the
views, and what each role may do (docs/fleet.md). The chain and the projection are checked above
the seam (``hermes_state.doctor``), the same way for every backend.
"""

from __future__ import annotations

from typing import Any

from ...checks import ERROR, OK, WARNING, Report
from ...errors import HermesError
from ...store.revisions import HEAD
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
}
# What a role other than the owner must never hold on the log.
_FORBIDDEN_ON_EVENTS = ("UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


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
            _check_triggers(report, connection)
            _check_views(report, connection)
            _check_roles(report, connection)
        return True
    except HermesError as error:
        report.add("database", ERROR, str(error))
        return False
    finally:
        connection.close()


def _check_triggers(report: Report, connection: Any) -> None:
    rows = connection.execute(
        "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal"
    ).fetchall()
    enabled = {name: state for name, state in rows}
    missing = [name for name in TRIGGERS if name not in enabled]
    disabled = [name for name in TRIGGERS if enabled.get(name) == "D"]
    if missing or disabled:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"disabled {', '.join(disabled)}"] if disabled else [])
        report.add("triggers", ERROR, f"events' triggers: {'; '.join(parts)}: the log is not protected")
    else:
        report.add("triggers", OK, ", ".join(f"{name} ({what})" for name, what in TRIGGERS.items()))


def _check_views(report: Report, connection: Any) -> None:
    found = {name for (name,) in connection.execute(
        "SELECT viewname FROM pg_views WHERE schemaname = current_schema() AND viewname = ANY(%s)", (list(VIEWS),)
    ).fetchall()}
    missing = [name for name in VIEWS if name not in found]
    if missing:
        report.add("views", ERROR, f"missing {', '.join(missing)}: run `hermes state migrate`")
    else:
        report.add("views", OK, ", ".join(VIEWS))


def _check_roles(report: Report, connection: Any) -> None:
    """No role but the owner (and superusers) may change the log or the schema."""
    owner = connection.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'events' "
                               "AND schemaname = current_schema()").fetchone()[0]
    rows = connection.execute(
        "SELECT r.rolname, p.privilege FROM pg_roles r CROSS JOIN unnest(%s::text[]) AS p(privilege) "
        "WHERE NOT r.rolsuper AND r.rolname <> %s AND r.rolname NOT LIKE 'pg\\_%%' "
        "AND has_table_privilege(r.oid, 'events', p.privilege)",
        (list(_FORBIDDEN_ON_EVENTS), owner),
    ).fetchall()
    schema_rows = connection.execute(
        "SELECT r.rolname FROM pg_roles r WHERE NOT r.rolsuper AND r.rolname <> %s AND r.rolname NOT LIKE 'pg\\_%%' "
        "AND has_schema_privilege(r.oid, current_schema(), 'CREATE')",
        (owner,),
    ).fetchall()
    problems = [f"{name} may {privilege} events" for name, privilege in rows]
    problems += [f"{name} may CREATE in the schema (it could shadow a table or view)" for (name,) in schema_rows]
    if problems:
        report.add("roles", WARNING, "; ".join(problems) + " (docs/fleet.md has the GRANTs)")
    else:
        report.add("roles", OK, f"only the owner ({owner}) may change the log or the schema")
