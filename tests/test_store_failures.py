"""A broken store, met by the real command as the unprivileged user: one line, exit 5, nothing lost.

Each condition is produced for real: garbage bytes, a corrupted page, a file
the user may not write, a lock held by another process, a full file system,
a schema from the future. Every case checks that the command says what and
why in one stderr line, exits 5 (docs/design.md section 7), and leaves the file as
it was.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store

from conftest import give_to

WRITE = ("start", "alice")
READS = (("history", "alice"), ("list",), ("status", "alice"))


def digest(db: Path) -> str:
    """The stored data: the file and its WAL (the -shm is only a shared-memory index)."""
    wal = db.with_name(db.name + "-wal")
    return hashlib.sha256(db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")).hexdigest()


def with_alice(home, events: int = 3) -> None:
    with open_store(Settings.from_env(home.env())) as store:
        store.append(NewEvent("alice", "created", "cli", "down"))
        for number in range(events - 1):
            store.append(NewEvent("alice", "started", "cli", "up", data={"pad": "x" * 300, "n": number}))
    checkpoint(home.db)
    give_to(home.path, home.user)


def checkpoint(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def one_line(result, *phrases: str) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert any(phrase in lines[0] for phrase in phrases), lines[0]
    return lines[0]


def test_a_file_of_garbage(migrated_home):
    migrated_home.db.write_bytes(os.urandom(64 * 1024))
    before = digest(migrated_home.db)
    for args in (WRITE, *READS):
        result = migrated_home.hermes(*args)
        assert result.returncode == 5, (args, result.stderr)
        one_line(result, "not a SQLite database", "corrupt")
    assert digest(migrated_home.db) == before


def test_a_corrupted_page_of_the_log(migrated_home):
    with_alice(migrated_home, events=200)
    conn = sqlite3.connect(migrated_home.db)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(migrated_home.db, "r+b") as handle:  # scribble over the log's root page
        handle.seek((root - 1) * page_size + 100)
        handle.write(os.urandom(page_size - 200))
    before = digest(migrated_home.db)
    history = migrated_home.hermes("history", "alice")
    assert history.returncode == 5
    one_line(history, "corrupt", "malformed")
    doctor = migrated_home.hermes("doctor", "--json")
    assert doctor.returncode == 5 and '"integrity", "status": "error"' in doctor.stdout
    assert digest(migrated_home.db) == before


def test_a_file_the_user_may_not_write(migrated_home):
    with_alice(migrated_home)
    os.chmod(migrated_home.db, 0o444)
    before = digest(migrated_home.db)
    result = migrated_home.hermes(*WRITE)
    assert result.returncode == 5
    one_line(result, "read-only")
    history = migrated_home.hermes("history", "alice", "--json")
    assert history.returncode == 0 and len(history.stdout.splitlines()) == 3  # reading still works
    assert digest(migrated_home.db) == before


def test_a_state_directory_the_user_may_not_write(migrated_home):
    with_alice(migrated_home)
    os.chmod(migrated_home.db.parent, 0o555)
    try:
        before = digest(migrated_home.db)
        result = migrated_home.hermes(*WRITE)
        assert result.returncode == 5
        one_line(result, "read-only", "cannot be opened", "unable to open")
        assert digest(migrated_home.db) == before
    finally:
        os.chmod(migrated_home.db.parent, 0o755)


def test_a_host_id_the_user_may_not_read(migrated_home):
    with_alice(migrated_home)
    host_id = migrated_home.path / "state" / "host-id"
    os.chown(host_id, 0, 0)
    os.chmod(host_id, 0o600)
    before = digest(migrated_home.db)
    result = migrated_home.hermes(*WRITE)
    assert result.returncode == 5
    one_line(result, "cannot read host id")
    assert digest(migrated_home.db) == before


def test_a_lock_held_past_the_busy_timeout(migrated_home):
    with_alice(migrated_home)
    user = migrated_home.user
    holder = subprocess.Popen(
        ["sqlite3", str(migrated_home.db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        **({} if user.is_self else {"user": user.uid, "group": user.gid, "extra_groups": []}),
    )
    try:
        holder.stdin.write("BEGIN IMMEDIATE;\nSELECT 'holding';\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "holding"
        began = time.monotonic()
        result = migrated_home.hermes(*WRITE, env={"HERMES_STATE_BUSY_TIMEOUT_MS": "300"})
        waited = time.monotonic() - began
        reading = migrated_home.hermes("history", "alice", "--json")
    finally:
        holder.stdin.write("ROLLBACK;\n")
        holder.stdin.close()
        holder.wait(timeout=10)
    assert result.returncode == 5
    one_line(result, "locked")
    assert waited < 5  # it gave up after its timeout, not never
    assert reading.returncode == 0  # WAL: a writer's lock does not stop readers
    after = migrated_home.hermes("history", "alice", "--json")
    assert len(after.stdout.splitlines()) == 3  # the refused append left nothing


@pytest.fixture
def small_filesystem(world_tmp):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount_point = world_tmp / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k,mode=0755", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_a_full_file_system(small_filesystem, hermes_user, migrated_template):
    from conftest import Home

    home = Home(small_filesystem / "home", hermes_user)
    home.db.parent.mkdir(parents=True)
    home.db.write_bytes(migrated_template.read_bytes())
    give_to(home.path, hermes_user)
    with_alice(home)
    before = home.hermes("history", "alice", "--json").stdout
    assert len(before.splitlines()) == 3
    # Fill what is left of the file system, so the next append cannot grow the WAL.
    filler = small_filesystem / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    results = [home.hermes(*WRITE) for _ in range(3)]
    for result in results:
        assert result.returncode == 5, result.stderr
        one_line(result, "full", "disk I/O")
    filler.unlink()
    after = home.hermes("history", "alice", "--json")
    assert after.returncode == 0 and after.stdout == before
    conn = sqlite3.connect(f"file:{home.db}?mode=ro", uri=True)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    assert home.hermes(*WRITE).returncode == 0  # space back: the store works again


def test_a_schema_from_the_future(migrated_home):
    with_alice(migrated_home)
    conn = sqlite3.connect(migrated_home.db, isolation_level=None)
    conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.close()
    checkpoint(migrated_home.db)
    before = digest(migrated_home.db)
    for args in (WRITE, *READS, ("migrate",)):
        result = migrated_home.hermes(*args)
        assert result.returncode == 5, (args, result.stderr)
        one_line(result, "newer than this code knows")
    assert digest(migrated_home.db) == before


def test_no_store_at_all(home):
    for args in READS[:2]:
        result = home.hermes(*args)
        assert result.returncode == 5
        one_line(result, "no event store")
    assert not home.db.exists()


@pytest.mark.parametrize("url", ["mysql://fleet/hermes", "sqlite:///elsewhere.db", "postgresql:fleet", "fleet"])
def test_a_url_the_store_cannot_serve_is_refused_not_ignored(migrated_home, url):
    """Only PostgreSQL is a fleet's store (docs/fleet.md): any other URL must not silently mean the local file."""
    before = digest(migrated_home.db)
    for args in (WRITE, *READS):
        result = migrated_home.hermes(*args, env={"HERMES_STATE_URL": url})
        assert result.returncode == 2, (args, result.stderr)
        one_line(result, "HERMES_STATE_URL")
    assert digest(migrated_home.db) == before


def test_a_url_never_shows_its_password(migrated_home):
    result = migrated_home.hermes("list", env={"HERMES_STATE_URL": "mysql://fleet:s3cret@db/hermes"})
    assert result.returncode == 2
    assert "s3cret" not in result.stderr and "fleet:***@db" in result.stderr
