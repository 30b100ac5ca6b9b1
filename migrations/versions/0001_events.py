"""The event log, its inline projection, the append-only triggers and the operators' views.

Revision ID: 0001_events
Revises:
Create Date: 2026-11-27

The tables are written out here rather than taken from
hermes_lifecycle.store.schema: a revision is a frozen record of what it built.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_events"
down_revision = None
branch_labels = None
depends_on = None

TRIGGERS = (
    """CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is append-only: UPDATE refused');
END""",
    """CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is append-only: DELETE refused');
END""",
)

# SQL that SQLite 3.37 understands (no jsonb, no ->> operator): operators
# open the file with whatever sqlite3 their distribution ships.
NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

VIEWS = {
    "profile_status": """CREATE VIEW profile_status AS
SELECT
    p.profile,
    CASE WHEN p.deleted THEN 'deleted' ELSE 'live' END AS status,
    p.desired,
    CASE WHEN p.desired = 'down' AND p.intent_actor = 'supervisor' THEN p.intent_reason END AS held_down_by,
    p.last_type AS last_event,
    p.last_actor AS last_actor,
    p.last_reason AS last_reason,
    p.last_at AS last_event_at,
    (SELECT count(*) FROM events c
      WHERE c.type = 'crashed' AND c.profile = p.profile
        AND c.occurred_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour')) AS crashes_last_hour,
    p.last_exit_code,
    p.last_signal,
    CASE WHEN p.run_position IS NOT NULL AND NOT p.run_ended THEN p.run_pid END AS pid,
    CASE WHEN p.run_position IS NOT NULL AND NOT p.run_ended THEN p.run_started_at END AS running_since,
    p.version AS events
FROM profile_projection p""",
    # One row per observed start. A run ends with the next supervisor event
    # of its profile when that is an exit naming this run (data.run); with
    # none, the run is still going ('running'), or its end was never
    # recorded ('unknown': the container was killed, or the profile was
    # deleted, whose last exit finish records nowhere).
    "gateway_runs": f"""CREATE VIEW gateway_runs AS
WITH supervised AS (
    SELECT position, profile, type, occurred_at, boot_id, pid,
           lead(position) OVER (PARTITION BY profile ORDER BY version) AS next_position
    FROM events
    WHERE actor = 'supervisor' OR type = 'deleted'
)
SELECT
    s.profile,
    s.position AS run,
    s.boot_id,
    s.pid,
    s.occurred_at AS started_at,
    e.occurred_at AS ended_at,
    round((julianday(coalesce(e.occurred_at, CASE WHEN s.next_position IS NULL THEN {NOW} END))
           - julianday(s.occurred_at)) * 86400.0, 3) AS uptime_seconds,
    CASE
        WHEN e.position IS NOT NULL THEN e.type
        WHEN s.next_position IS NULL THEN 'running'
        ELSE 'unknown'
    END AS ended_by,
    e.reason,
    e.exit_code,
    e.signal
FROM supervised s
LEFT JOIN events e
    ON e.position = s.next_position
   AND e.type IN ('crashed', 'stopped')
   AND json_extract(e.data, '$.run') = s.position
WHERE s.type = 'started'""",
    # Profiles crashing repeatedly now (3 or more crashes in the last 15
    # minutes), or held down by the breaker and not started since.
    "crash_loops": """CREATE VIEW crash_loops AS
SELECT * FROM (
    SELECT
        p.profile,
        (SELECT count(*) FROM events c
          WHERE c.type = 'crashed' AND c.profile = p.profile
            AND c.occurred_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-15 minutes')) AS crashes_last_15m,
        (SELECT max(c.occurred_at) FROM events c
          WHERE c.type = 'crashed' AND c.profile = p.profile) AS last_crash_at,
        CASE WHEN p.desired = 'down' AND p.intent_actor = 'supervisor'
                  AND p.intent_reason IN ('crash-loop', 'fatal-config')
             THEN p.intent_reason END AS held_down_by,
        CASE WHEN p.desired = 'down' AND p.intent_actor = 'supervisor'
                  AND p.intent_reason IN ('crash-loop', 'fatal-config')
             THEN p.intent_at END AS held_down_since,
        p.last_exit_code,
        p.last_signal
    FROM profile_projection p
    WHERE NOT p.deleted
)
WHERE held_down_by IS NOT NULL OR crashes_last_15m >= 3""",
}


# PostgreSQL (a fleet's store, docs/fleet.md): the same table, columns and
# meanings in its own SQL. Positions are bigint (a fleet's log outgrows int4);
# no sequence: the store assigns each position while it holds the append lock.
POSTGRESQL_TABLES = (
    r"""CREATE TABLE events (
    position bigint PRIMARY KEY,
    profile text NOT NULL,
    version integer NOT NULL CONSTRAINT ck_events_version CHECK (version >= 1),
    type text NOT NULL
        CONSTRAINT ck_events_type CHECK (type IN ('created', 'started', 'crashed', 'stopped', 'deleted')),
    actor text NOT NULL
        CONSTRAINT ck_events_actor CHECK (actor IN ('cli', 'supervisor', 'boot', 'import', 'api')),
    desired text CONSTRAINT ck_events_desired CHECK (desired IS NULL OR desired IN ('up', 'down')),
    occurred_at text NOT NULL CONSTRAINT ck_events_occurred_at
        CHECK (occurred_at ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'),
    host text NOT NULL,
    boot_id text,
    pid integer,
    exit_code integer,
    signal integer,
    reason text,
    data text NOT NULL DEFAULT '{}'
        CONSTRAINT ck_events_data_object CHECK (jsonb_typeof(data::jsonb) = 'object'),
    idempotency_key text CONSTRAINT uq_events_idempotency_key UNIQUE,
    hash text NOT NULL CONSTRAINT ck_events_hash CHECK (length(hash) = 64),
    CONSTRAINT uq_events_profile_version UNIQUE (profile, version)
)""",
    "CREATE INDEX ix_events_crashes ON events (profile, occurred_at) WHERE type = 'crashed'",
    """CREATE TABLE profile_projection (
    profile text PRIMARY KEY,
    version integer NOT NULL,
    deleted boolean NOT NULL,
    desired text NOT NULL CONSTRAINT ck_profile_projection_desired CHECK (desired IN ('up', 'down')),
    created_position bigint NOT NULL,
    last_position bigint NOT NULL,
    last_type text NOT NULL,
    last_actor text NOT NULL,
    last_reason text,
    last_at text NOT NULL,
    intent_position bigint NOT NULL,
    intent_actor text NOT NULL,
    intent_reason text,
    intent_at text NOT NULL,
    start_intent_position bigint,
    restart_position bigint,
    run_position bigint,
    run_pid integer,
    run_started_at text,
    run_boot_id text,
    run_ended boolean NOT NULL,
    last_exit_code integer,
    last_signal integer
)""",
    # Refused for every role, the owner's sessions included (only ALTER TABLE, the owner's
    # alone, can disable a trigger): the log is append-only.
    """CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % refused', TG_OP;
END
$$""",
    "CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events FOR EACH ROW EXECUTE FUNCTION events_refuse_change()",
    "CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events FOR EACH ROW EXECUTE FUNCTION events_refuse_change()",
    "CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change()",
)

# The time format of the log (text, UTC, milliseconds), as PostgreSQL writes it.
PG_NOW = """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


def pg_ago(interval: str) -> str:
    return f"""to_char((now() - interval '{interval}') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


POSTGRESQL_VIEWS = {
    "profile_status": f"""CREATE VIEW profile_status AS
SELECT
    p.profile,
    CASE WHEN p.deleted THEN 'deleted' ELSE 'live' END AS status,
    p.desired,
    CASE WHEN p.desired = 'down' AND p.intent_actor = 'supervisor' THEN p.intent_reason END AS held_down_by,
    p.last_type AS last_event,
    p.last_actor AS last_actor,
    p.last_reason AS last_reason,
    p.last_at AS last_event_at,
    (SELECT count(*) FROM events c
      WHERE c.type = 'crashed' AND c.profile = p.profile
        AND c.occurred_at >= {pg_ago('1 hour')}) AS crashes_last_hour,
    p.last_exit_code,
    p.last_signal,
    CASE WHEN p.run_position IS NOT NULL AND NOT p.run_ended THEN p.run_pid END AS pid,
    CASE WHEN p.run_position IS NOT NULL AND NOT p.run_ended THEN p.run_started_at END AS running_since,
    p.version AS events
FROM profile_projection p""",
    "gateway_runs": f"""CREATE VIEW gateway_runs AS
WITH supervised AS (
    SELECT position, profile, type, occurred_at, boot_id, pid,
           lead(position) OVER (PARTITION BY profile ORDER BY version) AS next_position
    FROM events
    WHERE actor = 'supervisor' OR type = 'deleted'
)
SELECT
    s.profile,
    s.position AS run,
    s.boot_id,
    s.pid,
    s.occurred_at AS started_at,
    e.occurred_at AS ended_at,
    round(extract(epoch FROM (coalesce(e.occurred_at, CASE WHEN s.next_position IS NULL THEN {PG_NOW} END))::timestamptz
                           - s.occurred_at::timestamptz)::numeric, 3) AS uptime_seconds,
    CASE
        WHEN e.position IS NOT NULL THEN e.type
        WHEN s.next_position IS NULL THEN 'running'
        ELSE 'unknown'
    END AS ended_by,
    e.reason,
    e.exit_code,
    e.signal
FROM supervised s
LEFT JOIN events e
    ON e.position = s.next_position
   AND e.type IN ('crashed', 'stopped')
   AND (e.data::jsonb ->> 'run') = s.position::text
WHERE s.type = 'started'""",
    "crash_loops": f"""CREATE VIEW crash_loops AS
SELECT * FROM (
    SELECT
        p.profile,
        (SELECT count(*) FROM events c
          WHERE c.type = 'crashed' AND c.profile = p.profile
            AND c.occurred_at >= {pg_ago('15 minutes')}) AS crashes_last_15m,
        (SELECT max(c.occurred_at) FROM events c
          WHERE c.type = 'crashed' AND c.profile = p.profile) AS last_crash_at,
        CASE WHEN p.desired = 'down' AND p.intent_actor = 'supervisor'
                  AND p.intent_reason IN ('crash-loop', 'fatal-config')
             THEN p.intent_reason END AS held_down_by,
        CASE WHEN p.desired = 'down' AND p.intent_actor = 'supervisor'
                  AND p.intent_reason IN ('crash-loop', 'fatal-config')
             THEN p.intent_at END AS held_down_since,
        p.last_exit_code,
        p.last_signal
    FROM profile_projection p
    WHERE NOT p.deleted
) AS loops
WHERE held_down_by IS NOT NULL OR crashes_last_15m >= 3""",
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in (*POSTGRESQL_TABLES, *POSTGRESQL_VIEWS.values()):
            op.execute(statement)
        return
    op.create_table(
        "events",
        sa.Column("position", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("desired", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("boot_id", sa.Text(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("signal", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.UniqueConstraint("profile", "version", name="uq_events_profile_version"),
        sa.UniqueConstraint("idempotency_key", name="uq_events_idempotency_key"),
        sa.CheckConstraint(
            "type IN ('created', 'started', 'crashed', 'stopped', 'deleted')", name="ck_events_type"
        ),
        sa.CheckConstraint(
            "actor IN ('cli', 'supervisor', 'boot', 'import', 'api')", name="ck_events_actor"
        ),
        sa.CheckConstraint("desired IS NULL OR desired IN ('up', 'down')", name="ck_events_desired"),
        sa.CheckConstraint("version >= 1", name="ck_events_version"),
        sa.CheckConstraint("length(hash) = 64", name="ck_events_hash"),
        sa.CheckConstraint("json_valid(data) AND json_type(data) = 'object'", name="ck_events_data_object"),
        sa.CheckConstraint(
            "occurred_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T"
            "[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'",
            name="ck_events_occurred_at",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_events_crashes",
        "events",
        ["profile", "occurred_at"],
        sqlite_where=sa.text("type = 'crashed'"),
    )
    op.create_table(
        "profile_projection",
        sa.Column("profile", sa.Text(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("desired", sa.Text(), nullable=False),
        sa.Column("created_position", sa.Integer(), nullable=False),
        sa.Column("last_position", sa.Integer(), nullable=False),
        sa.Column("last_type", sa.Text(), nullable=False),
        sa.Column("last_actor", sa.Text(), nullable=False),
        sa.Column("last_reason", sa.Text(), nullable=True),
        sa.Column("last_at", sa.Text(), nullable=False),
        sa.Column("intent_position", sa.Integer(), nullable=False),
        sa.Column("intent_actor", sa.Text(), nullable=False),
        sa.Column("intent_reason", sa.Text(), nullable=True),
        sa.Column("intent_at", sa.Text(), nullable=False),
        sa.Column("start_intent_position", sa.Integer(), nullable=True),
        sa.Column("restart_position", sa.Integer(), nullable=True),
        sa.Column("run_position", sa.Integer(), nullable=True),
        sa.Column("run_pid", sa.Integer(), nullable=True),
        sa.Column("run_started_at", sa.Text(), nullable=True),
        sa.Column("run_boot_id", sa.Text(), nullable=True),
        sa.Column("run_ended", sa.Boolean(), nullable=False),
        sa.Column("last_exit_code", sa.Integer(), nullable=True),
        sa.Column("last_signal", sa.Integer(), nullable=True),
        sa.CheckConstraint("desired IN ('up', 'down')", name="ck_profile_projection_desired"),
    )
    for statement in TRIGGERS:
        op.execute(statement)
    for statement in VIEWS.values():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in POSTGRESQL_VIEWS:
            op.execute(f"DROP VIEW IF EXISTS {name}")
        op.execute("DROP TABLE profile_projection")
        op.execute("DROP TABLE events")
        op.execute("DROP FUNCTION events_refuse_change()")
        return
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("DROP TRIGGER IF EXISTS events_refuse_update")
    op.execute("DROP TRIGGER IF EXISTS events_refuse_delete")
    op.drop_table("profile_projection")
    op.drop_index("ix_events_crashes", table_name="events")
    op.drop_table("events")
