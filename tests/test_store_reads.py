"""The store's read side (one path for every reader): where the store is, how it is opened, the stream filters."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from cli_support import LogWriter

from hermes_lifecycle.backends.sqlite.connect import uri_for
from hermes_lifecycle.errors import BadInput, SchemaMismatch, StoreMissing, StoreUnavailable
from hermes_lifecycle.history import HistoryFilter, read_history, read_newer
from hermes_lifecycle.settings import Settings, store_path_from_env
from hermes_lifecycle.store import backend_for, open_store


def settings_at(path) -> Settings:
    return Settings.from_env({"HERMES_STATE_DB": str(path), "HERMES_HOME": str(path.parent)})


NOW = datetime.now(timezone.utc)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"HOME": "/home/h"}, "/home/h/.hermes/state/profiles.db"),
        ({"HOME": "/home/h", "HERMES_HOME": "/opt/data"}, "/opt/data/state/profiles.db"),
        ({"HOME": "/home/h", "HERMES_HOME": "/opt/data", "HERMES_STATE_DB": "/elsewhere/x.db"}, "/elsewhere/x.db"),
        ({"HOME": "/home/h", "HERMES_HOME": "", "HERMES_STATE_DB": ""}, "/home/h/.hermes/state/profiles.db"),
    ],
)
def test_where_the_store_is(env, expected, monkeypatch):
    monkeypatch.setenv("HOME", env["HOME"])
    assert store_path_from_env(env) == expected
    assert str(Settings.from_env(env).db_path) == expected


@pytest.mark.parametrize("name", ["plain.db", "with?mode=rwc.db", "hash#frag.db", "per%41cent.db", "sp ace.db"])
def test_uri_escapes_what_would_change_its_meaning(tmp_path, name, migrated_template):
    path = tmp_path / name
    shutil.copyfile(migrated_template, path)
    assert uri_for(str(path)).endswith("?mode=ro")
    with open_store(settings_at(path), readonly=True) as store:
        assert store.last_position() == 0
    # Only the file itself (and the -wal/-shm a WAL reader keeps): no other name was opened or made.
    assert {p.name for p in tmp_path.iterdir()} <= {name, f"{name}-wal", f"{name}-shm"}


def test_refusals(tmp_path, migrated_template):
    with pytest.raises(StoreMissing):
        open_store(settings_at(tmp_path / "missing.db"), readonly=True)
    link = tmp_path / "link.db"
    link.symlink_to(migrated_template)
    with pytest.raises(StoreUnavailable, match="symbolic link"):
        open_store(settings_at(link), readonly=True)
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(SchemaMismatch, match="hermes-state migrate"):
        open_store(settings_at(empty), readonly=True)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database, not at all" * 100)
    with pytest.raises(StoreUnavailable, match="not a SQLite database|corrupt"):
        open_store(settings_at(garbage), readonly=True)


def test_the_console_refuses_to_write(migrated_home):
    settings = Settings.from_env(migrated_home.env())
    with pytest.raises(BadInput, match="read-only"):
        backend_for(settings).console(settings).rows("DELETE FROM profile_projection")


@pytest.fixture
def busy_log(migrated_home):
    writer = LogWriter(migrated_home, start=NOW - timedelta(days=1))
    writer.boot("b-1")
    for name in ("alice", "bob"):
        writer.append(name, "created", "cli", "down")
        writer.append(name, "started", "cli", "up")
    for index in range(6):
        writer.after(minutes=30).run("alice", 100 + index, seconds=10 + index, exit_code=index % 3 or None,
                                     ended_by="crashed" if index % 3 else "stopped",
                                     reason=None if index % 3 else "shutdown")
        if index == 2:
            writer.boot("b-2")
        writer.run("bob", 200 + index, seconds=5, signal=9)
    writer.close()
    return migrated_home


FILTERS = [
    HistoryFilter(),
    HistoryFilter(limit=None),
    HistoryFilter(limit=3),
    HistoryFilter(types=("crashed",), limit=None),
    HistoryFilter(types=("stopped", "started"), limit=4),
    HistoryFilter(boot_id="b-2", limit=None),
    HistoryFilter(since=(NOW - timedelta(hours=22)).strftime("%Y-%m-%dT%H:%M:%S.000Z"), limit=None),
    HistoryFilter(until=(NOW - timedelta(hours=22)).strftime("%Y-%m-%dT%H:%M:%S.000Z"), limit=2),
]


def _matches(event, window: HistoryFilter) -> bool:
    """The filter, written plainly over every event: the oracle the store's SQL must agree with."""
    return (
        (window.since is None or event.occurred_at >= window.since)
        and (window.until is None or event.occurred_at <= window.until)
        and (not window.types or event.type in window.types)
        and (window.boot_id is None or event.boot_id == window.boot_id)
    )


@pytest.mark.parametrize("window", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
def test_history_reads_what_a_plain_filter_keeps(busy_log, window):
    settings = Settings.from_env(busy_log.env())
    with open_store(settings, readonly=True) as store:
        every = store.stream("alice")
        state = store.state("alice")
        found = read_history(store, "alice", window)
        matching = [event for event in every if _matches(event, window)]
        expected = matching[-window.limit:] if window.limit else matching
        newer = read_newer(store, "alice", window, expected[0].position)
    assert expected, "every filter here matches something"
    assert found.events == expected
    assert found.state == state
    assert found.crashes.total == sum(1 for e in every if e.type == "crashed")
    assert found.crashes.last == max((e for e in every if e.type == "crashed"), key=lambda e: e.occurred_at)
    assert newer == [event for event in matching if event.position > expected[0].position]


def test_the_history_command_imports_neither_sqlalchemy_nor_rich(busy_log):
    """Its start-up is the benchmark's subject: a heavy import here would undo it. Nor does it load
    the writer's half of the store (the fold, the chain), json or signal's enums: a reader needs none."""
    code = (
        "import sys\n"
        "from hermes_lifecycle_cli.main import main\n"
        "status = main(['history', 'alice'])\n"
        "heavy = sorted(m for m in ('sqlalchemy', 'rich', 'alembic', 'watchdog', 'dataclasses', 'pathlib',"
        " 'json', 'signal', 'hermes_lifecycle.fold', 'hermes_lifecycle.chain') if m in sys.modules)\n"
        "print(status, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=busy_log.env(), capture_output=True, text=True)
    assert result.stderr.strip().splitlines()[-1] == "0 []", result.stderr
