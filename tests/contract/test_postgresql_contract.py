"""The store contract on the PostgreSQL backend: a private server (tests/pg_cluster.py), the faults made for real."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from typing import Iterator

import psycopg
import pytest
from store_contract import Faults, StoreContract, fill, small_tmpfs

from conftest import Home, give_to
from hermes_lifecycle import store
from hermes_lifecycle.backends.postgresql.recorder import APPEND_LOCK
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings

HOST_ID = "00000000-0000-4000-8000-00000000000b"


def pg_settings(home_dir, url: str, **extra: str) -> Settings:
    return Settings.from_env({"HERMES_HOME": str(home_dir), "HERMES_STATE_URL": url, "HERMES_HOST_ID": HOST_ID,
                              **extra})


class PostgresFaults(Faults):
    """Each fault as a fleet meets it: a writer holding the append lock, a database made read-only
    (as a standby is), a tablespace out of disk, a damaged page on disk, a newer schema."""

    def __init__(self, home: Home, database, world_tmp) -> None:
        self.database = database
        self.cluster = database.cluster
        self.world_tmp = world_tmp
        self.home = dataclasses.replace(home, extra_env={"HERMES_STATE_URL": database.url})
        self._by_file: str | None = None
        store.migrate(pg_settings(home.path, database.url))
        with store.open_store(pg_settings(home.path, database.url)) as writer:
            writer.append(NewEvent("alice", "created", "cli", "down"))
            for number in range(2):
                writer.append(NewEvent("alice", "started", "cli", "up", data={"pad": "x" * 300, "n": number}))
        give_to(home.path, home.user)

    def _superuser(self) -> psycopg.Connection:
        return self.database.connect(user="postgres", autocommit=True)

    def fingerprint(self, home: Home) -> str:
        if self._by_file is not None:  # the damaged file itself: PostgreSQL cannot read its rows
            with open(self._by_file, "rb") as damaged:
                return hashlib.sha256(damaged.read()).hexdigest()
        with self._superuser() as conn:
            conn.execute("SET default_transaction_read_only = off")
            rows = conn.execute("SELECT * FROM events ORDER BY position").fetchall()
            rows += conn.execute("SELECT * FROM profile_projection ORDER BY profile").fetchall()
        return hashlib.sha256(repr(rows).encode()).hexdigest()

    @contextlib.contextmanager
    def locked(self) -> Iterator[Home]:
        with self._superuser() as holder:
            holder.execute("BEGIN")
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
            yield dataclasses.replace(self.home, extra_env={**self.home.extra_env,
                                                            "HERMES_STATE_BUSY_TIMEOUT_MS": "300"})
            holder.execute("ROLLBACK")

    @contextlib.contextmanager
    def read_only(self) -> Iterator[Home]:
        # What a writer meets on a standby (a failover that went to the wrong node, say).
        with self._superuser() as conn:
            conn.execute(f'ALTER DATABASE "{self.database.name}" SET default_transaction_read_only = on')
        try:
            yield self.home
        finally:
            with self._superuser() as conn:
                conn.execute("SET default_transaction_read_only = off")  # this session began read-only too
                conn.execute(f'ALTER DATABASE "{self.database.name}" RESET default_transaction_read_only')

    @contextlib.contextmanager
    def full(self) -> Iterator[Home]:
        """The log's tablespace on a small tmpfs, filled: the next append must extend the table."""
        mount_point = self.world_tmp / "small"
        with small_tmpfs(mount_point, "1m", "0700"):
            os.chown(mount_point, self.cluster.uid, self.cluster.gid)
            space = f"small_{self.database.name}"
            try:
                with self._superuser() as conn:
                    conn.execute(f"CREATE TABLESPACE {space} LOCATION '{mount_point}'")
                    # Inserts fill a page only to its fillfactor: the fourth event needs a new page.
                    conn.execute("ALTER TABLE events SET (fillfactor = 10)")
                    conn.execute(f"ALTER TABLE events SET TABLESPACE {space}")
                    conn.execute("CHECKPOINT")
                fill(mount_point / "filler")
                os.chown(mount_point / "filler", self.cluster.uid, self.cluster.gid)
                yield self.home
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(mount_point / "filler")
                with self._superuser() as conn:
                    conn.execute("ALTER TABLE events SET TABLESPACE pg_default")
                    conn.execute(f"DROP TABLESPACE {space}")

    @contextlib.contextmanager
    def corrupt(self) -> Iterator[Home]:
        """The events table's first page overwritten on disk, read again after a restart."""
        with self._superuser() as conn:
            conn.execute("CHECKPOINT")
            relative = conn.execute("SELECT pg_relation_filepath('events')").fetchone()[0]
        path = self.cluster.data_dir / relative
        self.cluster.stop_server()
        with open(path, "r+b") as table:
            table.write(os.urandom(8192))
        self.cluster.start_server()
        self._by_file = str(path)
        try:
            yield self.home
        finally:
            self._by_file = None

    @contextlib.contextmanager
    def newer_schema(self) -> Iterator[Home]:
        with self._superuser() as conn:
            conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
        yield self.home


class TestPostgresStore(StoreContract):
    BACKEND = "postgresql"
    # Each append is a round trip to the server under the append lock: 8 x 500 took 19 s here; 8 x 200
    # (4.6 s) still has all eight writers waiting on one another throughout.
    STORM_APPENDS = 200

    @pytest.fixture
    def store_settings(self, tmp_path, pg_database) -> Settings:
        settings = pg_settings(tmp_path, pg_database.url)
        store.migrate(settings)
        return settings

    @pytest.fixture
    def faults(self, home, pg_database, world_tmp) -> PostgresFaults:
        return PostgresFaults(home, pg_database, world_tmp)
