"""The hash chain's encoding is frozen per chain version, so adding a column never breaks old rows."""

from __future__ import annotations

import sqlite3

import pytest
from store_helpers import settings_for

from hermes_lifecycle import chain, store
from hermes_lifecycle.backends.sqlite import revision
from hermes_lifecycle.backends.sqlite.migrate import migrate
from hermes_lifecycle.doctor import diagnose
from hermes_lifecycle.events import NewEvent


def _append_some(settings, names=("alice", "bob")) -> None:
    with store.open_store(settings) as log:
        for name in names:
            log.append(NewEvent(name, "created", "cli", "down"))
            log.append(NewEvent(name, "started", "cli", "up", data={"why": "test"}))


def _chain_and_projection(settings) -> dict[str, str]:
    report = diagnose(settings)
    return {f.check: f.status for f in report.findings if f.check in ("hash chain", "projection")}


def test_a_log_written_before_chain_versions_verifies_after_the_upgrade(tmp_path):
    """Rows hashed by 0001-era code (no chain_version column) keep their hashes: they are version 1."""
    settings = settings_for(tmp_path)
    migrate(settings.db_path, target="0001_events")
    previous = chain.GENESIS
    connection = sqlite3.connect(settings.db_path, isolation_level=None)
    for position in (1, 2):
        row = {
            "position": position, "profile": "alice", "version": position,
            "type": "created" if position == 1 else "started", "actor": "cli",
            "desired": "down" if position == 1 else "up", "occurred_at": "2026-11-27T10:00:00.000Z",
            "host": "h", "boot_id": None, "pid": None, "exit_code": None, "signal": None, "reason": None,
            "data": "{}", "idempotency_key": None,
        }
        row["hash"] = previous = chain.chain_hash(previous, {**row, "chain_version": 1})
        connection.execute(f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                           list(row.values()))
    connection.close()
    migrate(settings.db_path)
    with store.open_store(settings, readonly=True) as log, log.reading() as tx:
        rows = tx.rows_after(0)
    assert [row["chain_version"] for row in rows] == [1, 1]
    assert chain.first_broken_position(rows) is None


def test_a_migration_that_adds_a_column_leaves_old_and_new_rows_verifying(tmp_path, monkeypatch):
    settings = settings_for(tmp_path)
    store.migrate(settings)
    _append_some(settings)
    # What a later revision would do: a new column on events, and its table recorded as the new HEAD's.
    connection = sqlite3.connect(settings.db_path, isolation_level=None)
    connection.execute("ALTER TABLE events ADD COLUMN note TEXT")
    (sql,) = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
    connection.close()
    monkeypatch.setitem(revision.TABLES_AT_HEAD, "events", chain.sha256(sql.encode()).hexdigest())
    _append_some(settings, names=("carol",))
    assert _chain_and_projection(settings) == {"hash chain": "ok", "projection": "ok"}


@pytest.fixture
def with_version_two(monkeypatch):
    """A second encoding as the revision adding ``note`` would register it."""
    monkeypatch.setattr(chain, "ENCODINGS", {**chain.ENCODINGS, 2: chain.ENCODINGS[1] + ("note",)})


def _row(position: int, version: int, note: str | None = None) -> dict:
    return {
        "position": position, "profile": "alice", "version": position, "type": "started", "actor": "cli",
        "desired": "up", "occurred_at": "2026-11-27T10:00:00.000Z", "host": "h", "boot_id": None, "pid": None,
        "exit_code": None, "signal": None, "reason": None, "data": "{}", "idempotency_key": None,
        "chain_version": version, "note": note,
    }


def _chained(rows: list[dict]) -> list[dict]:
    previous = chain.GENESIS
    for row in rows:
        row["hash"] = previous = chain.chain_hash(previous, row)
    return rows


def test_each_row_verifies_under_its_own_version(with_version_two):
    rows = _chained([_row(1, 1), _row(2, 1), _row(3, 2, "n"), _row(4, 2, "m")])
    assert chain.first_broken_position(rows) is None
    rows[0]["note"] = "ignored"  # not in version 1's encoding
    assert chain.first_broken_position(rows) is None
    rows[2]["note"] = "changed"  # in version 2's
    assert chain.first_broken_position(rows) == 3


def test_a_row_of_an_unknown_chain_version_breaks_the_chain():
    rows = _chained([_row(1, 1), _row(2, 1)])
    rows[1]["chain_version"] = 9
    assert chain.first_broken_position(rows) == 2


def test_appends_write_the_newest_version(tmp_path):
    settings = settings_for(tmp_path)
    store.migrate(settings)
    _append_some(settings, names=("alice",))
    with store.open_store(settings, readonly=True) as log:
        assert {event.chain_version for event in log.log_after(0)} == {chain.CHAIN_VERSION}


def test_the_crash_counts_0005_fills_in_are_the_folds(tmp_path):
    """A store that reached 0004 with crashes already in it (two lives of alice) gains the counts the
    fold keeps: the projection equals the fold after the upgrade, as doctor checks."""
    from alembic import command
    from alembic.config import Config

    from hermes_lifecycle.backends.sqlite.migrate import migration_transaction
    from store_helpers import fold
    from hermes_lifecycle.store.revisions import migrations_dir

    settings = settings_for(tmp_path)
    migrate(settings.db_path)
    with store.open_store(settings) as log:
        for life in range(2):
            log.append(NewEvent("alice", "created", "cli", "down"))
            for _ in range(2 + life):
                with log.writing() as tx:
                    run = tx.append(NewEvent("alice", "started", "supervisor", pid=4242))
                    tx.append(NewEvent("alice", "crashed", "supervisor", exit_code=1, data={"run": run.position}))
            if life == 0:
                log.append(NewEvent("alice", "deleted", "cli", "down"))
        log.append(NewEvent("bob", "created", "cli", "down"))
    config = Config()
    config.set_main_option("script_location", migrations_dir())
    with migration_transaction(settings.db_path, busy_timeout_ms=1000) as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004_fleet_hosts")
    migrate(settings.db_path)
    with store.open_store(settings, readonly=True) as log:
        stored = {state.profile: state for state in log.states(include_deleted=True)}
        expected = fold(log.log_after(0))
        with log.reading() as tx:
            alice = tx.crashes("alice")
    assert stored == expected
    assert (stored["alice"].crashes, stored["bob"].crashes, stored["bob"].last_crash_position) == (5, 0, None)
    assert alice.total == 5 and alice.last.position == stored["alice"].last_crash_position
    assert _chain_and_projection(settings) == {"hash chain": "ok", "projection": "ok"}
