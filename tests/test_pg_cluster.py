"""The private PostgreSQL cluster the tests use (tests/pg_cluster.py, conftest's pg_cluster and pg_database).

A real server from Debian's packages: it runs as the unprivileged uid, takes
connections, keeps its data across a stop and a start (fast or immediate),
and leaves nothing behind: not after stop(), not after its parent is killed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy

import pg_cluster as pg_module
from conftest import User
from pg_cluster import Database, PostgresCluster

TESTS = Path(__file__).resolve().parent


def uids_of(pid: int) -> set[int]:
    """The real, effective, saved and file-system uids of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return {int(field) for field in line.split()[1:]}
    raise AssertionError(f"no Uid line for {pid}")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    """No such process (a zombie nobody reaped yet counts as gone: it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_the_server_runs_as_the_unprivileged_uid(pg_cluster: PostgresCluster, hermes_user: User) -> None:
    pid = pg_cluster.postmaster_pid
    assert pid is not None
    assert uids_of(pid) == {hermes_user.uid}
    backends = children_of(pid)
    assert backends, "a postmaster without its checkpointer, writer, ...?"
    assert all(uids_of(child) == {hermes_user.uid} for child in backends)
    assert Path(f"/proc/{pid}/exe").resolve() == (pg_cluster.bindir / "postgres").resolve()
    data = pg_cluster.data_dir.stat()
    assert (data.st_uid, data.st_mode & 0o777) == (hermes_user.uid, 0o700)
    # Listening on loopback only, on its own port: not Debian's cluster on 5432.
    assert pg_cluster.port != 5432
    with pg_cluster.connect() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW port").fetchone() == (str(pg_cluster.port),)
        # The durability defaults the benchmarks rely on.
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)


def test_a_fresh_database_for_its_owner(pg_database: Database, pg_cluster: PostgresCluster) -> None:
    assert pg_database.url == f"postgresql+psycopg://{pg_database.owner}@127.0.0.1:{pg_cluster.port}/{pg_database.name}"
    with psycopg.connect(pg_database.conninfo) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (
            pg_database.owner, pg_database.name)
        rolsuper, = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        assert rolsuper is False
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, body text NOT NULL)")
        conn.execute("INSERT INTO events (body) VALUES ('created')")
    # The URL as SQLAlchemy takes it (psycopg 3 dialect).
    engine = sqlalchemy.create_engine(pg_database.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT body FROM events")).scalar_one() == "created"
    finally:
        engine.dispose()


def test_each_test_has_its_own_database(pg_database: Database, pg_cluster: PostgresCluster) -> None:
    with pg_cluster.connect() as conn:
        names = [row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'hermes_t_%'")]
    # The previous test's database was dropped with its owner.
    assert names == [pg_database.name]
    with pg_cluster.connect() as conn:
        roles = [row[0] for row in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'hermes_t_%'")]
    assert roles == [pg_database.owner]


def test_the_real_psql(pg_database: Database) -> None:
    done = pg_database.psql(["-At"], input="CREATE TABLE t (x int); INSERT INTO t VALUES (41), (1); SELECT sum(x) FROM t;")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["CREATE", "TABLE", "INSERT", "0", "2", "42"]
    failed = pg_database.psql(["-c", "SELECT * FROM nowhere"])
    assert failed.returncode != 0 and 'relation "nowhere" does not exist' in failed.stderr


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_stopped_and_started_again_the_data_stays(pg_database: Database, pg_cluster: PostgresCluster, mode: str) -> None:
    with pg_database.connect() as conn:
        conn.execute("CREATE TABLE log (n int)")
        conn.execute("INSERT INTO log SELECT generate_series(1, 1000)")
    port, old_pid = pg_cluster.port, pg_cluster.postmaster_pid
    held = pg_database.connect()  # a session open across the stop: it is ended, not waited for

    pg_cluster.stop_server(mode)
    assert not pg_cluster.running and pg_cluster.postmaster_pid is None
    assert gone(old_pid)
    assert refused(port)
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_database.conninfo, connect_timeout=2)

    pg_cluster.start_server()
    assert pg_cluster.port == port and pg_cluster.postmaster_pid != old_pid
    with pg_database.connect() as conn:
        assert conn.execute("SELECT count(*), sum(n) FROM log").fetchone() == (1000, 500500)
    if mode == "immediate":
        assert "database system was not properly shut down; automatic recovery in progress" in (
            pg_cluster.log_path.read_text())


def test_left_down_by_a_test_it_is_up_for_the_next(pg_database: Database, pg_cluster: PostgresCluster) -> None:
    pg_cluster.stop_server()  # pg_database's teardown starts it again


def test_up_again_after_the_previous_test(pg_cluster: PostgresCluster) -> None:
    assert pg_cluster.running
    with pg_cluster.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_stop_leaves_nothing(hermes_user: User) -> None:
    cluster = PostgresCluster(hermes_user.uid, hermes_user.gid)
    started = time.monotonic()
    cluster.start()
    took_start = time.monotonic() - started
    base, port, pid = cluster.base, cluster.port, cluster.postmaster_pid
    processes = [pid, *children_of(pid)]
    assert base is not None and base.is_dir() and not refused(port)

    started = time.monotonic()
    cluster.stop()
    took_stop = time.monotonic() - started
    assert all(gone(p) for p in processes)
    assert not base.exists()
    assert refused(port)
    assert cluster.base is None and not cluster.running
    cluster.stop()  # twice is harmless
    assert took_start < 30 and took_stop < 30, (took_start, took_stop)


def test_the_server_dies_with_its_parent(hermes_user: User, world_tmp: Path) -> None:
    """A session killed outright (no finalizer, no atexit) takes its server along; the next start sweeps the rest."""
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from pg_cluster import PostgresCluster\n"
        f"cluster = PostgresCluster({hermes_user.uid}, {hermes_user.gid}, tempdir={str(world_tmp)!r}).start()\n"
        "print(cluster.postmaster_pid, cluster.base, cluster.port, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        assert line, "the parent died before starting its cluster"
        pid_text, base_text, port_text = line.split()
        pid, base, port = int(pid_text), Path(base_text), int(port_text)
        assert not gone(pid)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid), "the postmaster outlived its parent"
    assert refused(port)
    assert base.is_dir()  # nobody removed it: the parent had no chance
    assert pg_module.sweep_stale(str(world_tmp)) == [base]
    assert not base.exists()


def test_a_taken_port_is_given_up_for_another(hermes_user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real = pg_module.free_port
        monkeypatch.setattr(pg_module, "free_port", lambda: next(ports, None) or real())
        with PostgresCluster(hermes_user.uid, hermes_user.gid) as cluster:
            assert cluster.port != taken
            with cluster.connect() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            assert "could not bind" in cluster.log_path.read_text()
