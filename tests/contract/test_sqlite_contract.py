"""The store contract on the SQLite backend: real files, the faults made for real."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
from typing import Iterator

import pytest
from store_contract import Faults, StoreContract, fill, small_tmpfs
from test_store_failures import checkpoint, digest, with_alice

from conftest import Home, give_to
from hermes_lifecycle import store
from hermes_lifecycle.settings import Settings


class SqliteFaults(Faults):
    def __init__(self, home: Home, world_tmp) -> None:
        self.home = home
        self.world_tmp = world_tmp
        with_alice(home)

    def fingerprint(self, home: Home) -> str:
        return digest(home.db)

    @contextlib.contextmanager
    def locked(self) -> Iterator[Home]:
        holder = sqlite3.connect(self.home.db, isolation_level=None, timeout=0)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield dataclasses.replace(self.home, extra_env={"HERMES_STATE_BUSY_TIMEOUT_MS": "300"})
        finally:
            holder.execute("ROLLBACK")
            holder.close()

    @contextlib.contextmanager
    def read_only(self) -> Iterator[Home]:
        directory = self.home.db.parent
        os.chmod(directory, 0o555)
        try:
            yield self.home
        finally:
            os.chmod(directory, 0o755)

    @contextlib.contextmanager
    def full(self) -> Iterator[Home]:
        mount_point = self.world_tmp / "small"
        with small_tmpfs(mount_point, "320k", "0755"):
            home = Home(mount_point / "home", self.home.user)
            home.db.parent.mkdir(parents=True)
            home.db.write_bytes(self.home.db.read_bytes())  # checkpointed: the file holds alice
            give_to(home.path, home.user)
            fill(mount_point / "filler")
            yield home

    @contextlib.contextmanager
    def corrupt(self) -> Iterator[Home]:
        self.home.db.write_bytes(os.urandom(64 * 1024))
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.home.db}{suffix}")
        yield self.home

    @contextlib.contextmanager
    def newer_schema(self) -> Iterator[Home]:
        connection = sqlite3.connect(self.home.db, isolation_level=None)
        connection.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
        connection.close()
        checkpoint(self.home.db)
        yield self.home


class TestSqliteStore(StoreContract):
    BACKEND = "sqlite"
    @pytest.fixture
    def store_settings(self, tmp_path) -> Settings:
        settings = Settings.from_env({"HERMES_HOME": str(tmp_path), "HERMES_HOST_ID": "00000000-0000-4000-8000-00000000000a"})
        store.migrate(settings)
        return settings

    @pytest.fixture
    def faults(self, migrated_home, world_tmp) -> SqliteFaults:
        return SqliteFaults(migrated_home, world_tmp)
