"""The event log, its inline projection, the append-only triggers and the operators' views.

Revision ID: 0001_events
Revises:
Create Date: 2026-11-27

The tables are written out here rather than taken from
hermes_state.store.schema: a revision is a frozen record of what it built.
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
    "crash_loops": f"""CREATE VIEW crash_loops AS
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


def upgrade() -> None:
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
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("DROP TRIGGER IF EXISTS events_refuse_update")
    op.execute("DROP TRIGGER IF EXISTS events_refuse_delete")
    op.drop_table("profile_projection")
    op.drop_index("ix_events_crashes", table_name="events")
    op.drop_table("events")
