"""A private PostgreSQL cluster: Debian's real server, on a free port, as an unprivileged uid.

No pytest here, so bench/ scripts can use it as the tests do (conftest's
``pg_cluster`` and ``pg_database`` fixtures wrap it)::

    with PostgresCluster() as cluster:           # initdb, then the server on 127.0.0.1:<free port>
        db = cluster.new_database()              # a fresh database owned by a fresh login role
        engine = create_engine(db.url)           # postgresql+psycopg://owner@127.0.0.1:PORT/name
        cluster.stop_server(); cluster.start_server()   # the data stays; the port too
    # stopped (fast shutdown) and its directory removed

``initdb`` and ``postgres`` refuse root, so when this process is root the
server runs as the unprivileged uid given (the tests pass ``$HERMES_TEST_USER``'s);
otherwise as this process's own uid. The server keeps PostgreSQL's durability
defaults (``fsync``, ``synchronous_commit``, ``full_page_writes`` on): the
benchmarks measure durable appends. Only initdb's one-off flush of the fresh
files is skipped (``--no-sync``); a crash of the machine loses a temporary
cluster either way. Authentication is ``trust`` for the unix socket and
127.0.0.1: this is a test server on loopback only.

Nothing is left running: ``stop()`` runs in the tests' session finalizer and
again at exit (atexit), and the postmaster is started with a parent-death
signal, so a test session killed outright (SIGKILL, no finalizer, no atexit)
takes its server with it (a fast shutdown). A directory such a session leaves
behind is swept by the next ``start()`` once its owner and its server are gone.
Linux sends that signal when the *thread* that started the server ends: start
it from the main thread (pytest's fixtures are), or from a thread that lives
as long as the server should.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import quote

import psycopg
from psycopg import sql

SUPERUSER = "postgres"
HOST = "127.0.0.1"
PREFIX = "hermes-pg-"
OWNER_FILE = "owner.pid"  # the pid of the process that made the directory (for the sweep)
SHUTDOWN_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
PR_SET_PDEATHSIG = 1


class ClusterError(RuntimeError):
    pass


def server_bindir() -> Path:
    """Where ``initdb``, ``postgres`` and ``psql`` are: ``pg_config --bindir``, else Debian's highest version."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", Path(path).parent.name))

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise ClusterError(
        "PostgreSQL's server binaries (initdb, postgres) are not installed: "
        "`make test-deps` installs Debian's `postgresql`"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (the server retries should another take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def unprivileged_ids() -> tuple[int, int]:
    """This process's uid and gid, or ``$HERMES_TEST_USER``'s (default hermes-test) when root."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    name = os.environ.get("HERMES_TEST_USER", "hermes-test")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ClusterError(f"the server cannot run as root and user {name!r} does not exist: `make test-user` makes it")
    return entry.pw_uid, entry.pw_gid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def sweep_stale(tempdir: str | None = None) -> list[Path]:
    """Remove cluster directories whose owning process and whose server are both gone; the ones removed."""
    removed = []
    for entry in Path(tempdir or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        owner = _pid_in(entry / OWNER_FILE)
        if owner is None or _alive(owner):
            continue
        postmaster = _pid_in(entry / "data" / "postmaster.pid")
        if postmaster is not None and _alive(postmaster):
            continue  # left alone: a server we did not start in this process
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent(parent: int) -> None:
    """In the server's child before exec (after the uid change, which would clear it): die with the parent."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)  # SIGINT: the postmaster's fast shutdown
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


@dataclass(frozen=True)
class Database:
    """A database of the cluster and the login role that owns it."""

    cluster: "PostgresCluster"
    name: str
    owner: str

    @property
    def url(self) -> str:
        """The owner's SQLAlchemy URL."""
        return self.cluster.url(self.name, self.owner)

    @property
    def superuser_url(self) -> str:
        return self.cluster.url(self.name, SUPERUSER)

    @property
    def conninfo(self) -> str:
        """The owner's libpq connection string (for psycopg.connect)."""
        return self.cluster.conninfo(self.name, self.owner)

    def connect(self, user: str | None = None, **kwargs) -> psycopg.Connection:
        return self.cluster.connect(self.name, user or self.owner, **kwargs)

    def psql(self, args: Sequence[str] = (), *, input: str | None = None, user: str | None = None,
             check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.cluster.psql(args, input=input, user=user or self.owner, db=self.name, check=check,
                                 timeout=timeout)


_live: set["PostgresCluster"] = set()


@atexit.register
def _stop_all() -> None:
    for cluster in list(_live):
        if cluster.owner_pid == os.getpid():  # not in a forked child that exits normally
            cluster.stop()


class PostgresCluster:
    """One private cluster: ``start()`` (initdb + server), ``stop()`` (server down + directory removed)."""

    def __init__(self, uid: int | None = None, gid: int | None = None, *, bindir: Path | None = None,
                 settings: Mapping[str, str] | None = None, tempdir: str | None = None) -> None:
        if uid is None:
            uid, gid = unprivileged_ids()
        elif gid is None:
            gid = pwd.getpwuid(uid).pw_gid
        if uid == 0:
            raise ClusterError("PostgreSQL refuses to run as root: give an unprivileged uid")
        self.uid, self.gid = uid, gid
        self.bindir = bindir or server_bindir()
        self.settings = dict(settings or {})  # extra `-c name=value` for the server
        self.tempdir = tempdir
        self.base: Path | None = None
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self.owner_pid = os.getpid()
        self._log = None

    # -- paths -------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base() / "run"

    @property
    def log_path(self) -> Path:
        return self._base() / "server.log"

    def _base(self) -> Path:
        if self.base is None:
            raise ClusterError("the cluster is not started")
        return self.base

    # -- running things as the server's uid ---------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {"PATH": f"{self.bindir}:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                "HOME": str(self._base()), "PGTZ": "UTC", "TZ": "UTC"}

    def _as_server_user(self) -> dict:
        if self.uid == os.geteuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def _run(self, argv: Sequence[str], *, input: str | None = None, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(list(argv), env=self._env(), cwd=self._base(), input=input, capture_output=True,
                                text=True, timeout=timeout, **self._as_server_user())
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "PostgresCluster":
        """A fresh cluster: a directory, initdb, the server up and accepting connections."""
        if self.base is not None:
            raise ClusterError(f"already started at {self.base}")
        sweep_stale(self.tempdir)
        self.base = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.tempdir))
        _live.add(self)
        try:
            self.base.chmod(0o755)  # world-traversable: the server's uid and any client reach the socket
            (self.base / OWNER_FILE).write_text(f"{os.getpid()}\n")
            self.data_dir.mkdir(mode=0o700)  # initdb and postgres insist on 0700 (or 0750)
            self.socket_dir.mkdir()
            self.socket_dir.chmod(0o755)  # any uid may use the socket
            if os.geteuid() == 0:
                for path in (self.base, self.data_dir, self.socket_dir):
                    os.chown(path, self.uid, self.gid)
            self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                       "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"])
            for _attempt in range(5):
                self.port = free_port()
                if self._start(retry_on_bind=True):
                    return self
            raise ClusterError(f"no free port after 5 attempts; see {self.log_path}")
        except BaseException:
            self.stop()
            raise

    def start_server(self) -> None:
        """Start the server again on the same data and port (after stop_server)."""
        self._base()
        if self.running:
            raise ClusterError("the server is already running")
        self._start(retry_on_bind=False)

    def stop_server(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the server, keeping the data: "fast" (sessions ended, a checkpoint), "smart"
        (waits for clients) or "immediate" (no checkpoint: the next start recovers from the WAL, as after a crash)."""
        process = self._process
        if process is None:
            return
        try:
            process.send_signal(SHUTDOWN_SIGNALS[mode])
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGQUIT)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            self._process = None
            if self._log is not None:
                self._log.close()
                self._log = None

    def restart(self, mode: str = "fast") -> None:
        self.stop_server(mode)
        self.start_server()

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove the whole directory. Safe to call twice."""
        try:
            self.stop_server()
        finally:
            _live.discard(self)
            if self.base is not None:
                shutil.rmtree(self.base, ignore_errors=True)
                self.base = None

    def __enter__(self) -> "PostgresCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def postmaster_pid(self) -> int | None:
        return self._process.pid if self.running else None

    def _start(self, *, retry_on_bind: bool, timeout: float = 60) -> bool:
        """Start the postmaster and wait until it accepts connections; False when its port was taken."""
        argv = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={self.socket_dir}"]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = open(self.log_path, "ab")
        if os.geteuid() == 0:
            os.chown(self.log_path, self.uid, self.gid)
        # Its own session: a Ctrl-C meant for pytest does not reach it (the finalizer stops it).
        self._process = subprocess.Popen(
            argv, env=self._env(), cwd=self.base, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=lambda parent=os.getpid(): _die_with_parent(parent),
            **self._as_server_user(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                status = self._process.returncode
                self.stop_server()
                log = self._log_since(log_start)
                if retry_on_bind and "could not bind" in log:
                    return False
                raise ClusterError(f"postgres exited {status} while starting:\n{log}")
            try:
                # Through its unix socket: whatever else might listen on the port, this is our server
                # (and one up has its TCP port too: failing to bind it, postgres exits).
                with psycopg.connect(host=str(self.socket_dir), port=self.port, dbname="postgres", user=SUPERUSER,
                                     connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.02)
        self.stop_server()
        raise ClusterError(f"postgres did not accept connections in {timeout} s:\n{self._log_since(log_start)}")

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    # -- clients ------------------------------------------------------------------------------

    def url(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        """The SQLAlchemy URL: postgresql+psycopg://user@127.0.0.1:PORT/dbname."""
        if self.port is None:
            raise ClusterError("the cluster is not started")
        return f"postgresql+psycopg://{quote(user, safe='')}@{HOST}:{self.port}/{quote(dbname, safe='')}"

    def conninfo(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        """The libpq connection string psycopg.connect takes."""
        if self.port is None:
            raise ClusterError("the cluster is not started")
        return psycopg.conninfo.make_conninfo(host=HOST, port=self.port, dbname=dbname, user=user)

    def connect(self, dbname: str = "postgres", user: str = SUPERUSER, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(dbname, user), **kwargs)

    def create_role(self, name: str, login: bool = True) -> None:
        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} " + ("LOGIN" if login else "NOLOGIN")).format(sql.Identifier(name)))

    def drop_role(self, name: str) -> None:
        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    def create_database(self, name: str, owner: str = SUPERUSER) -> None:
        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))

    def drop_database(self, name: str) -> None:
        """Drop it, ending its sessions first (WITH (FORCE))."""
        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def new_database(self, prefix: str = "hermes_t") -> Database:
        """A fresh database, owned by a fresh login role of the same (unique) name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.create_role(name)
        self.create_database(name, owner=name)
        return Database(self, name, name)

    def drop(self, database: Database) -> None:
        self.drop_database(database.name)
        self.drop_role(database.owner)

    def psql(self, args: Sequence[str] = (), *, input: str | None = None, user: str = SUPERUSER,
             db: str = "postgres", check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The real ``psql`` client (no psqlrc, stops at the first error), run as the server's uid."""
        argv = [str(self.bindir / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", str(self.port),
                "-U", user, "-d", db, *args]
        return self._run(argv, input=input, check=check, timeout=timeout)
