"""The tables as SQLAlchemy Core metadata: the code's view of what migrations build.

``tests/test_schema.py::test_migrated_schema_and_metadata_do_not_drift``
compares this with a freshly migrated file, so the two cannot drift apart.
Views and triggers live in the migrations (frozen per revision); their
names are listed here for checks.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from ..events import ACTORS, TYPES

metadata = MetaData()


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


events = Table(
    "events",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("profile", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("desired", Text, nullable=True),
    Column("occurred_at", Text, nullable=False),
    Column("host", Text, nullable=False),
    Column("boot_id", Text, nullable=True),
    Column("pid", Integer, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("signal", Integer, nullable=True),
    Column("reason", Text, nullable=True),
    Column("data", Text, nullable=False, server_default=text("'{}'")),
    Column("idempotency_key", Text, nullable=True),
    Column("hash", Text, nullable=False),
    # Which frozen encoding the hash covers (hermes_lifecycle.chain.ENCODINGS); added by 0002.
    Column("chain_version", Integer, nullable=False, server_default=text("1")),
    UniqueConstraint("profile", "version", name="uq_events_profile_version"),
    UniqueConstraint("idempotency_key", name="uq_events_idempotency_key"),
    CheckConstraint(_in("type", TYPES), name="ck_events_type"),
    CheckConstraint(_in("actor", ACTORS), name="ck_events_actor"),
    CheckConstraint("desired IS NULL OR desired IN ('up', 'down')", name="ck_events_desired"),
    CheckConstraint("version >= 1", name="ck_events_version"),
    CheckConstraint("length(hash) = 64", name="ck_events_hash"),
    CheckConstraint("chain_version >= 1", name="ck_events_chain_version"),
    CheckConstraint(
        "json_valid(data) AND json_type(data) = 'object'", name="ck_events_data_object"
    ).ddl_if(dialect="sqlite"),
    CheckConstraint(
        "occurred_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T"
        "[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'",
        name="ck_events_occurred_at",
    ).ddl_if(dialect="sqlite"),
    sqlite_autoincrement=True,
)

# Only crashed rows: the breaker and the views count crashes per profile in a
# time window, and a partial index costs nothing for every other event.
# (No postgresql_where here: naming it loads SQLAlchemy's PostgreSQL dialect,
# ~18 ms in every hook; revision 0001 creates PostgreSQL's partial index in its own SQL.)
Index(
    "ix_events_crashes",
    events.c.profile,
    events.c.occurred_at,
    sqlite_where=text("type = 'crashed'"),
)

# The inline projection: one row per profile, written in the append's
# transaction; ``hermes_lifecycle.fold.ProfileState`` is its Python shape.
profile_projection = Table(
    "profile_projection",
    metadata,
    Column("profile", Text, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("desired", Text, nullable=False),
    Column("created_position", Integer, nullable=False),
    Column("last_position", Integer, nullable=False),
    Column("last_type", Text, nullable=False),
    Column("last_actor", Text, nullable=False),
    Column("last_reason", Text, nullable=True),
    Column("last_at", Text, nullable=False),
    Column("intent_position", Integer, nullable=False),
    Column("intent_actor", Text, nullable=False),
    Column("intent_reason", Text, nullable=True),
    Column("intent_at", Text, nullable=False),
    Column("start_intent_position", Integer, nullable=True),
    Column("restart_position", Integer, nullable=True),
    Column("run_position", Integer, nullable=True),
    Column("run_pid", Integer, nullable=True),
    Column("run_started_at", Text, nullable=True),
    Column("run_boot_id", Text, nullable=True),
    Column("run_ended", Boolean, nullable=False),
    Column("last_exit_code", Integer, nullable=True),
    Column("last_signal", Integer, nullable=True),
    Column("host", Text, nullable=True),  # the created event's host (migration 0004)
    Column("crashes", Integer, nullable=False, server_default=text("0")),  # migration 0005
    Column("last_crash_position", Integer, nullable=True),
    Column("last_report_position", Integer, nullable=True),  # migration 0006
    CheckConstraint("desired IN ('up', 'down')", name="ck_profile_projection_desired"),
)

VIEWS = ("profile_status", "gateway_runs", "crash_loops")
TRIGGERS = ("events_refuse_update", "events_refuse_delete")
