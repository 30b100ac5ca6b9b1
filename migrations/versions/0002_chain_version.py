"""Each event records the version of the hash chain's encoding that its hash covers.

Revision ID: 0002_chain_version
Revises: 0001_events
Create Date: 2026-12-01

Every row written so far was hashed over the fifteen columns before
``hash`` (encoding 1 in hermes_lifecycle.chain), so the new column defaults to
1 and no hash changes. From here on a migration that adds a column adds an
encoding instead of silently changing what old hashes meant.

A plain ALTER TABLE (no batch copy): it keeps the table, its triggers and
the views over it as they are.
"""

from alembic import op

revision = "0002_chain_version"
down_revision = "0001_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE events ADD COLUMN chain_version INTEGER NOT NULL DEFAULT 1 "
        "CONSTRAINT ck_events_chain_version CHECK (chain_version >= 1)"
    )


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place; the triggers and views do not name it.
    op.execute("ALTER TABLE events DROP COLUMN chain_version")
