"""The gateway's own account and hermes-agent's commands in the log: a type and two actors.

Revision ID: 0006_gateway_reports
Revises: 0005_projection_crashes
Create Date: 2026-12-05

``reported`` (actor ``gateway``) records a transition a gateway reported
itself in its ``gateway_state.json``: ready, degraded, draining, stopped, a
platform gone fatal, ... (docs/hermes-agent.md). ``hermes-agent`` is the
actor of an intent that came from hermes-agent's own commands (its
``hermes gateway start|stop|restart``, its ``hermes profile create|delete``).
The two CHECK constraints on ``events`` widen; no row, trigger or view
changes. The projection gains ``last_report_position``, the newest report's
position (the fold's ``ProfileState.last_report_position``): what the page
and ``/metrics`` show of a gateway's own account is then one row by its key,
not a walk of a stream. No report exists yet, so it starts empty.

On SQLite a CHECK constraint cannot be altered in place. Widening one does
not change what is stored, so this uses SQLite's own procedure for such
changes (https://www.sqlite.org/lang_altertable.html, "making other kinds of
table schema changes"): rewrite the table's SQL in the schema table, bump
``schema_version``, then ``integrity_check``. Copying the table instead
would cost a boot minutes on a long log, for a change no row sees.
"""

from alembic import op

revision = "0006_gateway_reports"
down_revision = "0005_projection_crashes"
branch_labels = None
depends_on = None

OLD_TYPES = ("created", "started", "crashed", "stopped", "deleted")
NEW_TYPES = OLD_TYPES + ("reported",)
OLD_ACTORS = ("cli", "supervisor", "boot", "import", "api")
NEW_ACTORS = OLD_ACTORS + ("gateway", "hermes-agent")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _widen(old_types, new_types, old_actors, new_actors) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name, column, values in (("ck_events_type", "type", new_types), ("ck_events_actor", "actor", new_actors)):
            op.execute(f"ALTER TABLE events DROP CONSTRAINT {name}")
            op.execute(f"ALTER TABLE events ADD CONSTRAINT {name} CHECK ({_in(column, values)})")
        return
    connection = bind.connection.driver_connection
    assert connection is not None  # a SQLite engine's connection always has its driver's
    [(table_sql,)] = connection.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'")
    new_sql = table_sql
    for column, old, new in (("type", old_types, new_types), ("actor", old_actors, new_actors)):
        before, after = f"CHECK ({_in(column, old)})", f"CHECK ({_in(column, new)})"
        if new_sql.count(before) != 1:
            raise RuntimeError(f"events' {column} CHECK is not the one this revision knows: {before}")
        new_sql = new_sql.replace(before, after)
    [(version,)] = connection.execute("PRAGMA schema_version")
    connection.execute("PRAGMA writable_schema = ON")
    try:
        connection.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'events'", (new_sql,))
        connection.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        connection.execute("PRAGMA writable_schema = OFF")
    [(verdict,)] = connection.execute("PRAGMA integrity_check(1)")
    if verdict != "ok":
        raise RuntimeError(f"integrity_check after widening events' CHECK constraints: {verdict}")


def upgrade() -> None:
    _widen(OLD_TYPES, NEW_TYPES, OLD_ACTORS, NEW_ACTORS)
    # A plain ADD COLUMN (no batch copy): it keeps the table and the views over it. A position, bigint on
    # PostgreSQL like every position there (0001).
    position = "bigint" if op.get_bind().dialect.name == "postgresql" else "INTEGER"
    op.execute(f"ALTER TABLE profile_projection ADD COLUMN last_report_position {position}")


def downgrade() -> None:
    # Narrowing would leave rows the old CHECK forbids (SQLite does not re-check them): refuse instead.
    [(used,)] = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM events WHERE type = 'reported' OR actor IN ('gateway', 'hermes-agent')"
    ).fetchall()
    if used:
        raise RuntimeError(f"{used} event(s) use the type or actors 0006 added: the log cannot go back before it")
    op.execute("ALTER TABLE profile_projection DROP COLUMN last_report_position")
    _widen(NEW_TYPES, OLD_TYPES, NEW_ACTORS, OLD_ACTORS)
