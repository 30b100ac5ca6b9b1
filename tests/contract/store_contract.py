"""The store contract, written once against the interface (``open_store``, ``EventStore``, the change feed).

A backend's test module subclasses ``StoreContract``, names its ``BACKEND`` (one of
tests/contract/backends.py's: the store the tests that run real writer processes get) and provides
two fixtures:

- ``store_settings``: ``Settings`` naming a freshly migrated, empty store this process may write;
- ``faults``: a ``Faults`` for that backend, which puts a store a real command uses into each
  state the design names (locked, read-only, full, corrupt, newer schema).

Nothing here knows which database runs underneath.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections import defaultdict
from typing import ContextManager, Iterator

import pytest
from backends import make_backend
from test_concurrency import PROFILES, check, create_profiles, doctor, spawn

from conftest import Home
from hermes_lifecycle import chain
from hermes_lifecycle.errors import (
    BadInput,
    Conflict,
    NotFound,
    ProfileDeleted,
    ProfileExists,
    VersionConflict,
)
from hermes_lifecycle.events import NewEvent
from store_helpers import fold
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import EventStore, StreamWindow, open_store
from hermes_lifecycle.store.feed import IDLE, NOTIFIED, POLLED, STOPPED

WRITE = ("start", "alice")


class Faults:
    """How one backend breaks a store for real. Each yields the ``conftest.Home`` to run commands in,
    whose store holds profile ``alice`` with three events, and undoes the fault afterwards."""

    def locked(self) -> ContextManager:
        raise NotImplementedError

    def read_only(self) -> ContextManager:
        raise NotImplementedError

    def full(self) -> ContextManager:
        raise NotImplementedError

    def corrupt(self) -> ContextManager:
        raise NotImplementedError

    def newer_schema(self) -> ContextManager:
        raise NotImplementedError

    def fingerprint(self, home) -> str:
        """What the store holds, to show a failed command changed nothing."""
        raise NotImplementedError


@contextlib.contextmanager
def small_tmpfs(mount_point, size: str, mode: str) -> Iterator[None]:
    """A tmpfs of ``size`` at ``mount_point`` (made here), unmounted afterwards: a real full disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(path) -> None:
    """Write zeros to ``path`` until its file system has no space left."""
    with open(path, "wb", buffering=0) as filler:
        with contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 4096)


@contextlib.contextmanager
def writer(settings: Settings, **options) -> Iterator[EventStore]:
    with open_store(settings, **options) as store:
        yield store


def created(store: EventStore, name: str = "alice"):
    return store.append(NewEvent(name, "created", "cli", "down"))


class StoreContract:
    BACKEND: str
    STORM_APPENDS = 500  # per writer process, eight processes at once

    @pytest.fixture
    def store_home(self, request, world_tmp) -> Iterator[Home]:
        """A migrated, empty store the unprivileged user writes; its ``Home``."""
        made = make_backend(self.BACKEND, request, world_tmp / "writers")
        try:
            yield made.home
        finally:
            made.close()
    # -- the stream rules ---------------------------------------------------------
    def test_nothing_but_created_starts_a_stream(self, store_settings):
        with writer(store_settings) as store:
            with pytest.raises(NotFound):
                store.append(NewEvent("alice", "started", "cli", "up"))
            assert created(store).version == 1
            assert store.append(NewEvent("alice", "started", "cli", "up")).version == 2

    def test_no_second_created_on_a_live_profile(self, store_settings):
        with writer(store_settings) as store:
            created(store)
            with pytest.raises(ProfileExists):
                created(store)

    def test_a_deleted_profile_takes_nothing_but_created_and_default_is_never_deleted(self, store_settings):
        with writer(store_settings) as store:
            created(store)
            store.append(NewEvent("alice", "deleted", "cli", "down"))
            with pytest.raises(ProfileDeleted):
                store.append(NewEvent("alice", "started", "cli", "up"))
            again = created(store)
            assert again.version == 3  # the stream goes on
            created(store, "default")
            with pytest.raises(Conflict):
                store.append(NewEvent("default", "deleted", "cli", "down"))

    def test_who_appends_what(self, store_settings):
        with writer(store_settings) as store:
            created(store)
            with pytest.raises(BadInput):
                store.append(NewEvent("alice", "crashed", "cli"))
            with pytest.raises(BadInput):
                store.append(NewEvent("alice", "started", "supervisor", "up"))

    def test_positions_are_global_and_versions_gapless_per_profile(self, store_settings):
        with writer(store_settings) as store:
            for name in ("alice", "bob"):
                created(store, name)
            for _ in range(3):
                for name in ("alice", "bob"):
                    store.append(NewEvent(name, "started", "cli", "up"))
            log = store.log_after(0)
        assert [e.position for e in log] == list(range(1, 9))
        for name in ("alice", "bob"):
            assert [e.version for e in log if e.profile == name] == [1, 2, 3, 4]

    # -- expected version ------------------------------------------------------------
    def test_an_expected_version_that_does_not_match_is_a_conflict_and_appends_nothing(self, store_settings):
        with writer(store_settings) as store:
            created(store)
            with pytest.raises(VersionConflict):
                store.append(NewEvent("alice", "started", "cli", "up"), expected_version=5)
            assert store.append(NewEvent("alice", "started", "cli", "up"), expected_version=1).version == 2
            assert store.last_position() == 2

    # -- idempotency keys ----------------------------------------------------------------
    def test_a_retried_key_returns_the_stored_event(self, store_settings):
        with writer(store_settings) as store:
            created(store)
            first = store.append(NewEvent("alice", "started", "cli", "up", idempotency_key="k-1"))
            again = store.append(NewEvent("alice", "started", "cli", "up", idempotency_key="k-1"))
            assert again == first and store.last_position() == 2

    def test_a_key_used_for_another_event_is_a_conflict(self, store_settings):
        with writer(store_settings) as store:
            created(store)
            store.append(NewEvent("alice", "started", "cli", "up", idempotency_key="k-1"))
            with pytest.raises(Conflict):
                store.append(NewEvent("alice", "stopped", "cli", "down", idempotency_key="k-1"))

    # -- the hash chain and the projection -----------------------------------------------------
    def _mixed_log(self, store: EventStore) -> None:
        for name in ("alice", "bob", "default"):
            created(store, name)
        with store.writing() as tx:
            run = tx.append(NewEvent("alice", "started", "supervisor", pid=4242))
            tx.append(NewEvent("alice", "crashed", "supervisor", exit_code=3, data={"run": run.position}))
        store.append(NewEvent("bob", "started", "cli", "up", reason="restart"))
        store.append(NewEvent("alice", "stopped", "supervisor", "down", reason="crash-loop", data={"count": 5}))
        store.append(NewEvent("bob", "deleted", "cli", "down"))

    def test_every_hash_chains_from_the_one_before(self, store_settings):
        with writer(store_settings) as store:
            self._mixed_log(store)
            with store.reading() as tx:
                rows = tx.rows_after(0)
        assert rows[0]["hash"] == chain.chain_hash(chain.GENESIS, rows[0])
        assert chain.first_broken_position(rows) is None
        changed = [dict(row) for row in rows]
        changed[3]["reason"] = "tampered"
        assert chain.first_broken_position(changed) == rows[3]["position"]

    def test_the_projection_equals_the_fold_of_the_log(self, store_settings):
        with writer(store_settings) as store:
            self._mixed_log(store)
            stored = {state.profile: state for state in store.states(include_deleted=True)}
            assert stored == fold(store.log_after(0))
            assert {s.profile for s in store.states()} == {"alice", "default"}

    # -- reads ------------------------------------------------------------------------------
    def test_stream_windows(self, store_settings):
        with writer(store_settings) as store:
            self._mixed_log(store)
            every = store.stream("alice")
            assert [e.version for e in every] == [1, 2, 3, 4]
            assert [e.type for e in store.stream("alice", StreamWindow(types=("crashed", "stopped")))] == [
                "crashed", "stopped"]
            assert [e.version for e in store.stream("alice", StreamWindow(limit=2, newest_first=True))] == [4, 3]
            assert [e.version for e in store.stream("alice", StreamWindow(after_version=2))] == [3, 4]
            assert store.stream("alice", StreamWindow(since="2999-01-01T00:00:00.000Z")) == []
            with store.reading() as tx:
                crashes = tx.crashes("alice")
                assert crashes.total == 1 and crashes.last.exit_code == 3
                overview = {row.state.profile: row.crashes_since for row in tx.overview("2000-01-01T00:00:00.000Z")}
            assert overview == {"alice": 1, "default": 0}
            with store.reading() as tx:
                assert tx.crash_counts("2000-01-01T00:00:00.000Z") == overview
                assert tx.crash_counts("2999-01-01T00:00:00.000Z") == {"alice": 0, "default": 0}

    # -- the change feed -------------------------------------------------------------------------
    @pytest.mark.parametrize("notifications", [True, False], ids=["notified", "polled"])
    def test_the_change_feed_wakes_on_another_writers_commit(self, store_settings, notifications):
        with writer(store_settings, readonly=True) as reader, writer(store_settings) as other:
            with reader.change_feed(use_notifications=notifications, poll_interval=0.2) as feed:
                assert feed.wait(0.3) == IDLE
                created(other)
                assert feed.wait(10) in ((NOTIFIED, POLLED) if notifications else (POLLED,))
                assert reader.last_position() == 1
                assert feed.wait(0.3) == IDLE  # the change was reported once

    def test_stop_ends_a_wait_at_once(self, store_settings):
        with writer(store_settings, readonly=True) as reader:
            with reader.change_feed(poll_interval=5) as feed:
                threading.Timer(0.2, feed.stop).start()
                began = time.monotonic()
                assert feed.wait(30) == STOPPED
                assert time.monotonic() - began < 5

    # -- concurrent writers -------------------------------------------------------------------------------
    def test_eight_processes_appending_at_once_lose_nothing(self, store_home):
        """Real processes of the unprivileged user, appending to one store at once: no append lost,
        duplicated or reordered (every returned position holds what it returned, versions gapless
        per profile), the hash chain sound, and doctor content."""
        create_profiles(store_home, PROFILES)
        workers = [spawn(store_home, "append_storm.py", str(self.STORM_APPENDS), ",".join(PROFILES)) for _ in range(8)]
        outputs = [worker.communicate(timeout=300) for worker in workers]
        for worker, (out, err) in zip(workers, outputs):
            assert worker.returncode == 0, err
            assert err == "", err
        returned = [json.loads(line) for out, _ in outputs for line in out.splitlines()]
        assert len(returned) == 8 * self.STORM_APPENDS

        with open_store(Settings.from_env(store_home.env()), readonly=True) as store, store.reading() as tx:
            rows = tx.rows_after(0)
        assert len(rows) == len(PROFILES) + 8 * self.STORM_APPENDS
        assert [row["position"] for row in rows] == sorted({row["position"] for row in rows})
        by_position = {row["position"]: row for row in rows}
        for item in returned:
            row = by_position[item["position"]]
            assert (row["profile"], row["version"], row["type"]) == (item["profile"], item["version"], item["type"])
        versions = defaultdict(list)
        for row in rows:
            versions[row["profile"]].append(row["version"])
        for name, seen in versions.items():
            assert seen == list(range(1, len(seen) + 1)), f"{name}: versions not gapless"
        assert chain.first_broken_position(rows) is None
        report = doctor(store_home)
        assert report["healthy"], report
        assert check(report, "projection")["status"] == "ok"

    # -- the store's failures, as a real command meets them (docs/design.md section 7: one line, exit 5) ------
    @pytest.mark.parametrize(
        "fault, phrases",
        [
            ("locked", ("locked",)),
            ("read_only", ("read-only", "cannot be opened", "unable to open")),
            ("full", ("full", "disk I/O")),
            ("corrupt", ("corrupt", "not a SQLite database", "malformed")),
            ("newer_schema", ("newer than this code knows",)),
        ],
    )
    def test_a_broken_store_is_one_line_and_exit_5_and_loses_nothing(self, faults, fault, phrases):
        with getattr(faults, fault)() as home:
            before = faults.fingerprint(home)
            result = home.hermes(*WRITE)
            assert result.returncode == 5, (fault, result.stdout, result.stderr)
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
            assert any(phrase in lines[0] for phrase in phrases), lines[0]
            assert faults.fingerprint(home) == before
