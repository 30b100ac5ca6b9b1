"""The driver-only reader gives what the store gives: one contract, two ways to read."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from cli_support import LogWriter

from hermes_state.db.connect import uri_for
from hermes_state.db.paths import store_path_from_env
from hermes_state.db.reader import StoreReader
from hermes_state.errors import SchemaMismatch, StoreMissing, StoreUnavailable
from hermes_state.history import HistoryFilter, read_history, read_newer
from hermes_state.settings import Settings
from hermes_state.store import EventStore

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
    with StoreReader.open(str(path)) as reader:
        assert reader.rows("SELECT count(*) AS n FROM events") == [{"n": 0}]
    # Only the file itself (and the -wal/-shm a WAL reader keeps): no other name was opened or made.
    assert {p.name for p in tmp_path.iterdir()} <= {name, f"{name}-wal", f"{name}-shm"}


def test_refusals(tmp_path, migrated_template):
    with pytest.raises(StoreMissing):
        StoreReader.open(str(tmp_path / "missing.db"))
    link = tmp_path / "link.db"
    link.symlink_to(migrated_template)
    with pytest.raises(StoreUnavailable, match="symbolic link"):
        StoreReader.open(str(link))
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(SchemaMismatch, match="hermes state migrate"):
        StoreReader.open(str(empty))
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database, not at all" * 100)
    with pytest.raises(StoreUnavailable, match="not a SQLite database|corrupt"):
        StoreReader.open(str(garbage))


def test_the_reader_refuses_to_write(migrated_home):
    with StoreReader.open(str(migrated_home.db)) as reader:
        with pytest.raises(StoreUnavailable):
            reader.rows("DELETE FROM profile_projection")


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


@pytest.mark.parametrize("window", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
def test_history_reads_what_the_store_reads(busy_log, window):
    settings = Settings.from_env(busy_log.env())
    with EventStore.open(settings, readonly=True) as store:
        expected = store.stream(
            "alice", since=window.since, until=window.until, types=window.types or None,
            boot_id=window.boot_id, limit=window.limit, newest_first=True,
        )
        state = store.state("alice")
    with StoreReader.open(str(busy_log.db)) as reader:
        found = read_history(reader, "alice", window)
        newer = read_newer(reader, "alice", window, expected[-1].position if expected else 0)
    assert found.events == [event.as_json() for event in reversed(expected)]
    assert found.events, "every filter here matches something"
    assert found.profile["desired"] == state.desired and found.profile["events"] == state.version
    assert found.profile["held_down_by"] == state.held_down_by
    assert [e["position"] for e in newer] == sorted(e.position for e in expected if e.position > expected[-1].position)


def test_the_history_command_imports_neither_sqlalchemy_nor_rich(busy_log):
    """Its start-up is the benchmark's subject: a heavy import here would undo it."""
    code = (
        "import sys\n"
        "from hermes_cli.main import main\n"
        "status = main(['profile', 'history', 'alice'])\n"
        "heavy = sorted(m for m in ('sqlalchemy', 'rich', 'alembic', 'watchdog', 'dataclasses', 'pathlib')"
        " if m in sys.modules)\n"
        "print(status, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=busy_log.env(), capture_output=True, text=True)
    assert result.stderr.strip().splitlines()[-1] == "0 []", result.stderr
