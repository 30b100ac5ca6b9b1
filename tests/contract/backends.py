"""One store per backend, for the suites that run once per backend (doctor, the operators' recipes, the contract).

``backend`` is a fixture parametrized ``sqlite`` / ``postgresql``: a migrated, empty store the unprivileged
user writes (a copy of the session's migrated SQLite file; a fresh database of the session's one private
PostgreSQL server, tests/pg_cluster.py, owned by its own role), with what a test needs to reach under the
store's interface: every row, and statements run with the log's append-only triggers out of the way, as the
store's owner (or PostgreSQL's superuser) could. A module imports the fixture by name:

    from backends import backend  # noqa: F401 (a fixture)

The PostgreSQL server is started only when a test of that backend runs.
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Home, User, give_to
from hermes_lifecycle import store
from hermes_lifecycle.settings import Settings

BACKENDS = ("sqlite", "postgresql")
HOST_ID = "00000000-0000-4000-8000-0000000000c1"
TABLES = ("events", "profile_projection")  # each with triggers that refuse a change made outside an append


class Backend:
    name: str
    home: Home  # its environment reaches the store

    def settings(self) -> Settings:
        return Settings.from_env(self.home.env())

    def rows(self) -> list[dict]:
        """Every row of the log, oldest first, read under the store."""
        raise NotImplementedError

    def behind_the_triggers(self, *statements: str) -> None:
        """Run ``statements`` on the store with its append-only triggers out of the way, and put them back."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, root: Path, user: User, template: Path) -> None:
        self.home = Home(root / "home", user)
        self.home.db.parent.mkdir(parents=True)
        shutil.copyfile(template, self.home.db)
        give_to(self.home.path, user)

    def rows(self) -> list[dict]:
        conn = sqlite3.connect(f"file:{self.home.db}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute("SELECT * FROM events ORDER BY position")]
        finally:
            conn.close()

    def behind_the_triggers(self, *statements: str) -> None:
        conn = sqlite3.connect(self.home.db, isolation_level=None)
        try:
            triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                    "AND tbl_name = 'events'").fetchall()
            for name, _ in triggers:
                conn.execute(f"DROP TRIGGER {name}")
            for statement in statements:
                conn.execute(statement)
            for _, sql in triggers:
                conn.execute(sql)
        finally:
            conn.close()


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, root: Path, user: User, cluster) -> None:
        self.cluster = cluster
        self.database = cluster.new_database()
        self.home = Home(root / "home", user, extra_env={"HERMES_STATE_URL": self.database.url,
                                                         "HERMES_HOST_ID": HOST_ID})
        self.home.path.mkdir()
        store.migrate(self.settings())
        give_to(self.home.path, user)

    def rows(self) -> list[dict]:
        import psycopg.rows

        with self.database.connect(user="postgres", row_factory=psycopg.rows.dict_row) as conn:
            return conn.execute("SELECT * FROM events ORDER BY position").fetchall()

    def behind_the_triggers(self, *statements: str) -> None:
        with self.database.connect(user="postgres", autocommit=True) as conn:
            for table in TABLES:
                conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for statement in statements:
                conn.execute(statement)
            for table in TABLES:
                conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")

    def close(self) -> None:
        if not self.cluster.running:
            self.cluster.start_server()
        self.cluster.drop(self.database)


def make_backend(name: str, request: pytest.FixtureRequest, root: Path) -> Backend:
    user = request.getfixturevalue("hermes_user")
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    if name == "sqlite":
        return SqliteBackend(root, user, request.getfixturevalue("migrated_template"))
    return PostgresBackend(root, user, request.getfixturevalue("pg_cluster"))


@pytest.fixture(params=BACKENDS)
def backend(request, world_tmp) -> Iterator[Backend]:
    """A migrated, empty store of each backend in turn (see the module's docstring)."""
    made = make_backend(request.param, request, world_tmp)
    try:
        yield made
    finally:
        made.close()


def with_env(home: Home, **extra: str) -> Home:
    return dataclasses.replace(home, extra_env={**home.extra_env, **extra})
