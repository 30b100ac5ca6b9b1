"""The SQL each recorder runs (written by hand, ``backends/*/sql.py``) serves from the right indexes."""

from __future__ import annotations

import sqlite3

import pytest

from hermes_lifecycle.backends.postgresql import sql as pg_sql
from hermes_lifecycle.backends.sqlite import sql
from hermes_lifecycle.backends.sqlite.connect import open_connection
from hermes_lifecycle.backends.sqlite.migrate import migrate
from hermes_lifecycle.events import MAX_DATA_BYTES

# Every parameter any statement names, with a value of its type.
VALUES = {"profile": "alice", "since": "2000-01-01T00:00:00.000Z", "until": None, "after": 0, "after_version": 0,
          "after_position": 0, "limit": 10, "types": None, "boot_id": None, "key": "k"}


def test_postgresql_reads_use_its_indexes_too(pg_database):
    """The same shape of plan on PostgreSQL: crash reads from the partial index, streams from UNIQUE(profile, version)."""
    from hermes_lifecycle.settings import Settings
    from hermes_lifecycle.store import migrate as migrate_store

    migrate_store(Settings.from_env({"HERMES_HOME": "/nonexistent", "HERMES_STATE_URL": pg_database.url}))
    with pg_database.connect() as conn:
        conn.execute("SET enable_seqscan = off")  # an empty table: the planner would scan it, whatever the index

        def pg_plan(text, **values):
            rows = conn.execute("EXPLAIN " + text, {**VALUES, **values}).fetchall()
            return " | ".join(row[0] for row in rows)
        assert "ix_events_crashes" in pg_plan(pg_sql.CRASH_TIMES)
        assert "ix_events_crashes" in pg_plan(pg_sql.CRASH_COUNTS)
        for stream in (pg_sql.STREAM_NEWEST_FIRST, pg_sql.STREAM_OLDEST_FIRST):
            for types in (None, ["started"]):
                found = pg_plan(stream, types=types)
                assert "uq_events_profile_version" in found and "Sort" not in found, found
        assert "profile_projection_pkey" in pg_plan(pg_sql.PROJECTION_ROW)
        assert "events_pkey" in pg_plan(pg_sql.EVENTS_AFTER)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> sqlite3.Connection:
    path = tmp_path_factory.mktemp("plans") / "profiles.db"
    migrate(path)
    connection = open_connection(str(path), mode="ro", timeout_ms=1000)  # as the recorder opens it
    yield connection
    connection.close()


def plan(connection: sqlite3.Connection, text: str, **values) -> str:
    rows = connection.execute(f"EXPLAIN QUERY PLAN {text}", {**VALUES, **values}).fetchall()
    return " | ".join(row[-1] for row in rows)


@pytest.mark.parametrize("name", ["CRASH_TIMES", "CRASH_COUNTS"])
def test_crash_reads_are_served_by_the_partial_index(migrated, name):
    """Their cost is the crashes counted, not the length of the log (a bound 'crashed' would miss the index)."""
    assert "ix_events_crashes" in plan(migrated, getattr(sql, name))


def test_a_profiles_row_and_an_event_by_position_are_each_one_search(migrated):
    """A profile's crash summary is its projection row (count, newest's position) and one event by key."""
    assert plan(migrated, sql.PROJECTION_ROW) == "SEARCH profile_projection USING INDEX sqlite_autoindex_profile_projection_1 (profile=?)"
    assert plan(migrated, sql.EVENTS_AFTER) == "SEARCH events USING INTEGER PRIMARY KEY (rowid>?)"


@pytest.mark.parametrize("name", ["PROJECTION_LIVE", "PROJECTION_ALL"])
def test_the_projection_is_read_in_its_keys_order(migrated, name):
    # ORDER BY a bare `profile` would sort by the bounded result column: every row, then a sort.
    assert "TEMP B-TREE" not in plan(migrated, getattr(sql, name))


@pytest.mark.parametrize("name", ["STREAM_NEWEST_FIRST", "STREAM_OLDEST_FIRST"])
@pytest.mark.parametrize("types", [None, '["started","crashed"]'])
def test_stream_reads_walk_one_profiles_versions(migrated, name, types):
    # UNIQUE(profile, version) is SQLite's first automatic index on events; a type filter is
    # checked on the rows found, never a scan of its own.
    found = plan(migrated, getattr(sql, name), types=types)
    assert found.startswith("SEARCH events USING INDEX sqlite_autoindex_events_1 (profile=? AND version>?)")
    # In the index's order: a LIMIT stops after its rows, never the whole stream read and sorted.
    assert "SCAN events" not in found and "TEMP B-TREE" not in found


@pytest.mark.parametrize("module", [sql, pg_sql])
def test_every_value_read_is_bounded_by_the_bounds_the_writers_keep(module):
    """The data bound is what an append may write (MAX_DATA_BYTES); every other value's is 1024."""
    assert f"octet_length(data) <= {MAX_DATA_BYTES} THEN data" in module.EVENT_COLUMNS
    for text in (module.EVENT_COLUMNS, module.PROJECTION_COLUMNS):
        bounded = text.count("<= 1024 THEN") + text.count(f"<= {MAX_DATA_BYTES} THEN")
        assert bounded == text.count(" > 1024 THEN '") + text.count(f" > {MAX_DATA_BYTES} THEN '")
