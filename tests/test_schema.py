"""The schema: migrations, drift against the metadata, the append-only triggers, the views, refusals."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import hermes_lifecycle
from hermes_lifecycle.backends.sqlite.engine import make_engine
from hermes_lifecycle.backends.sqlite.revision import HEAD, KNOWN_REVISIONS
from hermes_lifecycle.store.schema import TRIGGERS, VIEWS, metadata
from hermes_lifecycle.events import COLUMNS, NewEvent
from hermes_lifecycle.backends.sqlite.migrate import migrate
from hermes_lifecycle.store.revisions import migrations_dir

from store_helpers import open_store, ticking_clock

REPO = Path(__file__).resolve().parent.parent


def test_migrated_schema_and_metadata_do_not_drift(tmp_path):
    migrate(tmp_path / "profiles.db")
    engine = make_engine(tmp_path / "profiles.db", readonly=True, busy_timeout_ms=1000)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_events_has_exactly_the_public_columns(tmp_path):
    migrate(tmp_path / "profiles.db")
    with sqlite3.connect(tmp_path / "profiles.db") as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
        objects = set(conn.execute("SELECT type, name FROM sqlite_master"))
    assert tuple(columns) == COLUMNS
    assert {("trigger", t) for t in TRIGGERS} <= objects
    assert {("view", v) for v in VIEWS} <= objects


def test_known_revisions_are_the_alembic_history():
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    history = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
    assert tuple(reversed(history)) == KNOWN_REVISIONS
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_the_installed_package_carries_its_migrations():
    """`pip install .` (not editable): the revisions ship inside the package, not the checkout."""
    package_dir = Path(hermes_lifecycle.__file__).resolve().parent
    assert Path(migrations_dir()) == package_dir / "migrations"
    assert (Path(migrations_dir()) / "versions" / "0001_events.py").is_file()
    assert not package_dir.is_relative_to(REPO) or ".venv" in package_dir.parts


def test_alembic_upgrade_head_from_the_repository_root(tmp_path):
    db = tmp_path / "alembic.db"
    env = {"HERMES_STATE_DB": str(db), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    alembic = str(Path(sys.executable).parent / "alembic")
    upgrade = subprocess.run([alembic, "upgrade", "head"], cwd=REPO, env=env, capture_output=True, text=True)
    assert upgrade.returncode == 0, upgrade.stderr
    current = subprocess.run([alembic, "current"], cwd=REPO, env=env, capture_output=True, text=True)
    assert HEAD in current.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)


def test_migrating_twice_changes_nothing(tmp_path):
    db = tmp_path / "profiles.db"
    assert migrate(db) == (None, HEAD)
    assert migrate(db) == (HEAD, HEAD)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE events SET reason = 'forged' WHERE position = 1", "DELETE FROM events WHERE position = 1", "DELETE FROM events"],
)
def test_update_and_delete_on_events_are_refused(tmp_path, statement):
    with open_store(tmp_path) as store:
        store.append(NewEvent("alice", "created", "cli", "down"))
        db = store.location
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(statement)
    conn.close()
    shell = subprocess.run(["sqlite3", str(db), statement], capture_output=True, text=True)
    assert shell.returncode != 0 and "append-only" in shell.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), max(reason) FROM events").fetchone() == (1, None)


def _crash_loop_log(store):
    store.append(NewEvent("alice", "created", "cli", "down"))
    store.append(NewEvent("alice", "started", "cli", "up"))
    for _ in range(3):
        run = store.append(NewEvent("alice", "started", "supervisor", pid=4242))
        store.append(NewEvent("alice", "crashed", "supervisor", pid=4242, signal=9, data={"run": run.position}))
    store.append(NewEvent("alice", "stopped", "supervisor", "down", reason="crash-loop", data={"run": run.position}))
    store.append(NewEvent("bob", "created", "cli", "down"))
    store.append(NewEvent("bob", "started", "cli", "up"))
    running = store.append(NewEvent("bob", "started", "supervisor", pid=77))
    return running


def test_views_answer_the_operators_questions(tmp_path):
    # Times "now": the views compare with SQLite's clock.
    with open_store(tmp_path) as store:
        running = _crash_loop_log(store)
        db = store.location
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    status = {r["profile"]: dict(r) for r in conn.execute("SELECT * FROM profile_status")}
    assert status["alice"]["desired"] == "down" and status["alice"]["held_down_by"] == "crash-loop"
    assert status["alice"]["crashes_last_hour"] == 3 and status["alice"]["last_signal"] == 9
    assert status["bob"]["pid"] == 77 and status["bob"]["crashes_last_hour"] == 0
    runs = [dict(r) for r in conn.execute("SELECT * FROM gateway_runs ORDER BY run")]
    assert [r["ended_by"] for r in runs] == ["crashed", "crashed", "crashed", "running"]
    assert runs[-1]["run"] == running.position and runs[0]["signal"] == 9
    assert all(r["uptime_seconds"] >= 0 for r in runs)
    loops = [dict(r) for r in conn.execute("SELECT * FROM crash_loops")]
    assert [(r["profile"], r["stopped_for"], r["crashes_last_15m"]) for r in loops] == [("alice", "crash-loop", 3)]
    conn.close()


def test_views_work_in_debians_sqlite3_shell(tmp_path):
    """Operators open the file with the sqlite3 their distribution ships (3.40 on Debian 12)."""
    with open_store(tmp_path) as store:
        _crash_loop_log(store)
        db = store.location
    for view in VIEWS:
        shell = subprocess.run(["sqlite3", "-readonly", str(db), f"SELECT count(*) FROM {view}"], capture_output=True, text=True)
        assert shell.returncode == 0, shell.stderr
        assert int(shell.stdout) >= 1


def test_an_unended_run_followed_by_a_new_one_is_unknown(tmp_path):
    with open_store(tmp_path, clock=ticking_clock()) as store:
        store.append(NewEvent("alice", "created", "cli", "down"))
        store.append(NewEvent("alice", "started", "cli", "up"))
        store.append(NewEvent("alice", "started", "supervisor", pid=1))  # its finish never recorded
        store.append(NewEvent("alice", "started", "supervisor", pid=2))
        db = store.location
    with sqlite3.connect(db) as conn:
        ended = [row[0] for row in conn.execute("SELECT ended_by FROM gateway_runs ORDER BY run")]
    assert ended == ["unknown", "running"]


def test_a_deleted_profiles_last_run_is_not_shown_running(tmp_path):
    """finish records nothing for a deleted profile: its last run's end is unknown, not running."""
    with open_store(tmp_path, clock=ticking_clock()) as store:
        store.append(NewEvent("alice", "created", "cli", "down"))
        store.append(NewEvent("alice", "started", "cli", "up"))
        store.append(NewEvent("alice", "started", "supervisor", pid=4242))
        store.append(NewEvent("alice", "deleted", "cli", "down"))
        db = store.location
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT status, pid, running_since FROM profile_status").fetchall() == [("deleted", None, None)]
    assert conn.execute("SELECT ended_by, uptime_seconds FROM gateway_runs").fetchall() == [("unknown", None)]
    conn.close()


def _file_digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


def test_a_schema_newer_than_the_code_is_refused_and_untouched(migrated_home):
    db = migrated_home.db
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = _file_digest(db)
    for args in (["migrate"], ["doctor"]):
        result = migrated_home.hermes(*args)
        assert result.returncode == 5, result
        assert "newer than this code knows" in result.stderr or "newer than this code knows" in result.stdout
        assert len(result.stderr.strip().splitlines()) == 1
    assert _file_digest(db) == before


def test_a_foreign_sqlite_file_is_refused(home):
    home.db.parent.mkdir(parents=True)
    with sqlite3.connect(home.db) as conn:
        conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
    before = _file_digest(home.db)
    result = home.hermes("migrate", as_root=True)
    assert result.returncode == 5
    assert "not a hermes-state database" in result.stderr
    assert _file_digest(home.db) == before


def test_hermes_state_migrate_as_the_unprivileged_user(home):
    """The installed `hermes` (a plain `pip install .`) migrates a new file, owned by whoever ran it."""
    first = home.hermes("migrate")
    assert first.returncode == 0, first.stderr
    assert "migrated from an empty file to " + HEAD in first.stdout
    assert home.db.stat().st_uid == home.user.uid
    with sqlite3.connect(f"file:{home.db}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
    again = home.hermes("migrate")
    assert again.returncode == 0 and "nothing to do" in again.stdout
