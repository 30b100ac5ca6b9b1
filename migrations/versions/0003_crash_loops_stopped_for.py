"""crash_loops names why restarts stopped `stopped_for`, not `held_down_by`.

Revision ID: 0003_crash_loops_stopped_for
Revises: 0002_chain_version
Create Date: 2026-12-01

"Held down" has one definition, the fold's (``ProfileState.held_down_by``,
which ``profile_status.held_down_by`` matches): any supervisor stop with
desired down, a clean exit (`exited`) included. ``crash_loops`` lists only
crash-loop and fatal-config stops, a narrower thing, so its columns get
their own names: ``stopped_for`` and ``stopped_since``. The rest of the
view is as 0001 made it.
"""

from alembic import op

revision = "0003_crash_loops_stopped_for"
down_revision = "0002_chain_version"
branch_labels = None
depends_on = None

# (held column, since column) per revision: the view is otherwise the same text. Each
# dialect has its own clock expression, and PostgreSQL a name for the subquery (docs/fleet.md).
_VIEW = """CREATE VIEW crash_loops AS
SELECT * FROM (
    SELECT
        p.profile,
        (SELECT count(*) FROM events c
          WHERE c.type = 'crashed' AND c.profile = p.profile
            AND c.occurred_at >= {ago}) AS crashes_last_15m,
        (SELECT max(c.occurred_at) FROM events c
          WHERE c.type = 'crashed' AND c.profile = p.profile) AS last_crash_at,
        CASE WHEN p.desired = 'down' AND p.intent_actor = 'supervisor'
                  AND p.intent_reason IN ('crash-loop', 'fatal-config')
             THEN p.intent_reason END AS {held},
        CASE WHEN p.desired = 'down' AND p.intent_actor = 'supervisor'
                  AND p.intent_reason IN ('crash-loop', 'fatal-config')
             THEN p.intent_at END AS {since},
        p.last_exit_code,
        p.last_signal
    FROM profile_projection p
    WHERE NOT p.deleted
){alias}
WHERE {held} IS NOT NULL OR crashes_last_15m >= 3"""

_DIALECTS = {
    "sqlite": {"ago": "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-15 minutes')", "alias": ""},
    "postgresql": {
        "ago": "to_char((now() - interval '15 minutes') AT TIME ZONE 'UTC',\n"
               "                                         'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
        "alias": " AS loops",
    },
}


def _view(held: str, since: str) -> str:
    return _VIEW.format(held=held, since=since, **_DIALECTS[op.get_bind().dialect.name])


def upgrade() -> None:
    op.execute("DROP VIEW crash_loops")
    op.execute(_view("stopped_for", "stopped_since"))


def downgrade() -> None:
    op.execute("DROP VIEW crash_loops")
    op.execute(_view("held_down_by", "held_down_since"))
