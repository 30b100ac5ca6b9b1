"""Each profile's host, in the projection and the views; on PostgreSQL, every append notifies listeners.

Revision ID: 0004_fleet_hosts
Revises: 0003_crash_loops_stopped_for
Create Date: 2026-12-01

A profile belongs to the host recorded on its ``created`` event (docs/fleet.md).
``profile_projection.host`` keeps it (the fold's ``ProfileState.host``; rows
already there take it from their created event), and ``profile_status`` and
``crash_loops`` show it as their last column, so a fleet's operators see where
each gateway runs; on one SQLite file it is the one host. The views are
otherwise as 0001 and 0003 made them.

On PostgreSQL, a statement-level trigger sends ``NOTIFY hermes_events`` after
every insert into ``events``: the watch daemon and ``history --follow`` listen
for it instead of watching a file. The notification is a hint (its payload is
empty); a listener reads the log after its own position to see what is new.
"""

from alembic import op

revision = "0004_fleet_hosts"
down_revision = "0003_crash_loops_stopped_for"
branch_labels = None
depends_on = None

OWNER = "p.host"


def _ago(dialect: str, interval: str) -> str:
    if dialect == "postgresql":
        return (f"to_char((now() - interval '{interval}') AT TIME ZONE 'UTC', "
                """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')""")
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{interval}')"


def profile_status(dialect: str, host: bool) -> str:
    return f"""CREATE VIEW profile_status AS
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
        AND c.occurred_at >= {_ago(dialect, '1 hour')}) AS crashes_last_hour,
    p.last_exit_code,
    p.last_signal,
    CASE WHEN p.run_position IS NOT NULL AND NOT p.run_ended THEN p.run_pid END AS pid,
    CASE WHEN p.run_position IS NOT NULL AND NOT p.run_ended THEN p.run_started_at END AS running_since,
    p.version AS events{(chr(10) + '    , ' + OWNER) if host else ''}
FROM profile_projection p"""


def crash_loops(dialect: str, host: bool) -> str:
    return f"""CREATE VIEW crash_loops AS
SELECT * FROM (
    SELECT
        p.profile,
        (SELECT count(*) FROM events c
          WHERE c.type = 'crashed' AND c.profile = p.profile
            AND c.occurred_at >= {_ago(dialect, '15 minutes')}) AS crashes_last_15m,
        (SELECT max(c.occurred_at) FROM events c
          WHERE c.type = 'crashed' AND c.profile = p.profile) AS last_crash_at,
        CASE WHEN p.desired = 'down' AND p.intent_actor = 'supervisor'
                  AND p.intent_reason IN ('crash-loop', 'fatal-config')
             THEN p.intent_reason END AS stopped_for,
        CASE WHEN p.desired = 'down' AND p.intent_actor = 'supervisor'
                  AND p.intent_reason IN ('crash-loop', 'fatal-config')
             THEN p.intent_at END AS stopped_since,
        p.last_exit_code,
        p.last_signal{(chr(10) + '        , ' + OWNER) if host else ''}
    FROM profile_projection p
    WHERE NOT p.deleted
){' AS loops' if dialect == 'postgresql' else ''}
WHERE stopped_for IS NOT NULL OR crashes_last_15m >= 3"""


# Appends in commit order (docs/fleet.md): every insert takes the append lock the recorder
# takes (held to COMMIT) and must carry the next position, so no writer, the recorder or
# one that skips it, can commit a position below one a reader has already passed.
# Built-ins are named with their schema and exact argument types: a function of the same
# name in the search path would otherwise be an exact match for an int4 literal.
SERIALIZE = (
    """CREATE FUNCTION events_serialize() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    newest bigint;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(1751478902::bigint);
    SELECT coalesce(max(position), 0) INTO newest FROM events;
    IF NEW.position <> newest + 1 THEN
        RAISE EXCEPTION 'events takes position % next, not %', newest + 1, NEW.position;
    END IF;
    RETURN NEW;
END
$$""",
    "CREATE TRIGGER events_serialize BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_serialize()",
)

NOTIFY = (
    """CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('hermes_events', '');
    RETURN NULL;
END
$$""",
    "CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION events_notify()",
)


def _views(host: bool) -> None:
    dialect = op.get_bind().dialect.name
    for name, build in (("profile_status", profile_status), ("crash_loops", crash_loops)):
        op.execute(f"DROP VIEW {name}")
        op.execute(build(dialect, host))


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy) keeps the table and the views over it.
    op.execute("ALTER TABLE profile_projection ADD COLUMN host TEXT")
    op.execute("UPDATE profile_projection SET host = "
               "(SELECT e.host FROM events e WHERE e.position = profile_projection.created_position)")
    _views(host=True)
    if op.get_bind().dialect.name == "postgresql":
        for statement in (*SERIALIZE, *NOTIFY):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_notify ON events")
        op.execute("DROP FUNCTION events_notify()")
        op.execute("DROP TRIGGER events_serialize ON events")
        op.execute("DROP FUNCTION events_serialize()")
    _views(host=False)
    op.execute("ALTER TABLE profile_projection DROP COLUMN host")
