"""The SQL each recorder runs is generated from the Core statements, and serves from the right indexes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import hermes_lifecycle.backends.postgresql as postgresql_backend
import hermes_lifecycle.backends.sqlite as sqlite_backend
from hermes_lifecycle.backends.sqlite import sql
from hermes_lifecycle.backends.sqlite.connect import open_connection
from hermes_lifecycle.backends.sqlite.migrate import migrate
from hermes_lifecycle.store.generate import module_text
from hermes_lifecycle.vocabulary import TYPES


@pytest.mark.parametrize("backend, package", [("sqlite", sqlite_backend), ("postgresql", postgresql_backend)])
def test_the_generated_module_is_what_the_statements_compile_to(backend, package):
    generated = Path(package.__file__).with_name("sql.py").read_text()
    assert generated == module_text(backend), f"stale: run `make sql` and commit hermes_lifecycle/backends/{backend}/sql.py"


def test_postgresql_reads_use_its_indexes_too(pg_database):
    """The same shape of plan on PostgreSQL: crash reads from the partial index, streams from UNIQUE(profile, version)."""
    from hermes_lifecycle.backends.postgresql import sql as pg_sql
    from hermes_lifecycle.settings import Settings
    from hermes_lifecycle.store import migrate as migrate_store

    migrate_store(Settings.from_env({"HERMES_HOME": "/nonexistent", "HERMES_STATE_URL": pg_database.url}))
    with pg_database.connect() as conn:
        conn.execute("SET enable_seqscan = off")  # an empty table: the planner would scan it, whatever the index
        values = {"name": "alice", "since": "2000-01-01T00:00:00.000Z", "after": 0, "after_version": 0,
                  "after_position": 0, "limit": 10, **{f"type{i}": kind for i, kind in enumerate(TYPES)}}

        def pg_plan(statement):
            text, names = statement
            rows = conn.execute("EXPLAIN " + text, [values.get(name) for name in names]).fetchall()
            return " | ".join(row[0] for row in rows)
        assert "ix_events_crashes" in pg_plan(pg_sql.CRASH_TIMES)
        crashes = pg_plan(pg_sql.CRASHES)  # the projection's row, then one event by its position
        assert "profile_projection_pkey" in crashes and "events_pkey" in crashes and "Seq Scan" not in crashes
        assert "uq_events_profile_version" in pg_plan(pg_sql.STREAM_NEWEST_FIRST)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> sqlite3.Connection:
    path = tmp_path_factory.mktemp("plans") / "profiles.db"
    migrate(path)
    connection = open_connection(str(path), mode="ro", timeout_ms=1000)  # as the recorder opens it
    yield connection
    connection.close()


def plan(connection: sqlite3.Connection, statement: tuple[str, tuple[str, ...]]) -> str:
    text, names = statement
    rows = connection.execute(f"EXPLAIN QUERY PLAN {text}", [None] * len(names)).fetchall()
    return " | ".join(row[-1] for row in rows)


@pytest.mark.parametrize(
    "name", ["CRASH_TIMES", "OVERVIEW_LIVE", "OVERVIEW_ALL", "CRASH_COUNTS_LIVE"]
)
def test_crash_reads_are_served_by_the_partial_index(migrated, name):
    """Their cost is the crashes counted, not the length of the log (a bound 'crashed' would miss the index)."""
    assert "ix_events_crashes" in plan(migrated, getattr(sql, name))


def test_a_profiles_crash_summary_is_one_row_and_one_event_by_key(migrated):
    """However many crashes: the projection keeps the count and the newest's position (0005)."""
    found = plan(migrated, sql.CRASHES)
    assert "SEARCH profile_projection USING INDEX" in found and "SEARCH events USING INTEGER PRIMARY KEY" in found
    assert "SCAN" not in found.replace("SEARCH", "")


@pytest.mark.parametrize("name", ["STREAM_NEWEST_FIRST", "STREAM_OLDEST_FIRST"])
def test_stream_reads_walk_one_profiles_versions(migrated, name):
    # UNIQUE(profile, version) is SQLite's first automatic index on events.
    assert plan(migrated, getattr(sql, name)) == (
        "SEARCH events USING INDEX sqlite_autoindex_events_1 (profile=? AND version>?)"
    )
