"""The SQL the SQLite recorder runs is generated from the Core statements, and serves from the right indexes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import hermes_state.backends.sqlite as sqlite_backend
from hermes_state.backends.sqlite import sql
from hermes_state.backends.sqlite.connect import open_connection
from hermes_state.backends.sqlite.migrate import migrate
from hermes_state.store.generate import module_text


def test_the_generated_module_is_what_the_statements_compile_to():
    generated = Path(sqlite_backend.__file__).with_name("sql.py").read_text()
    assert generated == module_text("sqlite"), "stale: run `make sql` and commit hermes_state/backends/sqlite/sql.py"


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
    "name", ["CRASH_TIMES", "CRASHES", "OVERVIEW_LIVE", "OVERVIEW_ALL", "CRASH_COUNTS_LIVE"]
)
def test_crash_reads_are_served_by_the_partial_index(migrated, name):
    """Their cost is the crashes counted, not the length of the log (a bound 'crashed' would miss the index)."""
    assert "ix_events_crashes" in plan(migrated, getattr(sql, name))


@pytest.mark.parametrize("name", ["STREAM_NEWEST_FIRST", "STREAM_OLDEST_FIRST"])
def test_stream_reads_walk_one_profiles_versions(migrated, name):
    # UNIQUE(profile, version) is SQLite's first automatic index on events.
    assert plan(migrated, getattr(sql, name)) == (
        "SEARCH events USING INDEX sqlite_autoindex_events_1 (profile=? AND version>?)"
    )
