"""The projection keeps each profile's crash count and its newest crash's position.

Revision ID: 0005_projection_crashes
Revises: 0004_fleet_hosts
Create Date: 2026-12-01

`hermes profile history` shows every crash of a profile (all its lives) and the
newest one. Counted from the crashes' partial index, that read grows with the
crashes (1-2 ms for a profile with 15,000 of them, on every call); kept in the
projection by the fold (``ProfileState.crashes``, ``last_crash_position``) it
is one row and one event by key. Rows already there are filled from the log,
as the fold would have kept them; doctor's check that the projection equals
the fold covers the new columns like the others.
"""

from alembic import op

revision = "0005_projection_crashes"
down_revision = "0004_fleet_hosts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (no batch copy): they keep the table and the views over it.
    op.execute("ALTER TABLE profile_projection ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0")
    # A position, bigint on PostgreSQL like every position there (0001).
    position = "bigint" if op.get_bind().dialect.name == "postgresql" else "INTEGER"
    op.execute(f"ALTER TABLE profile_projection ADD COLUMN last_crash_position {position}")
    op.execute(
        "UPDATE profile_projection SET "
        "crashes = (SELECT count(*) FROM events e WHERE e.type = 'crashed' AND e.profile = profile_projection.profile), "
        "last_crash_position = (SELECT max(e.position) FROM events e "
        "WHERE e.type = 'crashed' AND e.profile = profile_projection.profile)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE profile_projection DROP COLUMN last_crash_position")
    op.execute("ALTER TABLE profile_projection DROP COLUMN crashes")
