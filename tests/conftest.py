"""Fixtures shared by every test: real files, real processes, a real unprivileged uid.

When the suite runs as root (CI does), whatever the `hermes` user does in
production runs here as ``$HERMES_TEST_USER`` (made by `make test`), so a
permission bug cannot hide behind root. Run as an ordinary user, the
suite's own uid is that unprivileged user.
"""

from __future__ import annotations

import os
import pty
import pwd
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest

from pg_cluster import Database, PostgresCluster

BIN_DIR = Path(sys.executable).parent
HERMES = BIN_DIR / "hermes-state"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-screenshots", action="store_true",
        help="write the page's screenshots into docs/ (tests/test_serve_browser.py); "
        "without it they go to a temporary directory and no tracked file changes",
    )


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()


def _unprivileged_user() -> User:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return User(entry.pw_name, entry.pw_uid, entry.pw_gid)
    name = os.environ.get("HERMES_TEST_USER", "hermes-test")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        pytest.exit(f"test user {name!r} does not exist: run `make test` (it creates it) or useradd it", 2)
    return User(entry.pw_name, entry.pw_uid, entry.pw_gid)


@pytest.fixture(scope="session")
def hermes_user() -> User:
    """The unprivileged uid that plays the `hermes` user."""
    user = _unprivileged_user()
    problem = None if user.is_self else cannot_run(HERMES, user)
    if problem:
        pytest.exit(
            f"{user.name} cannot run {HERMES} ({problem}): the checkout must be reachable by every user "
            "(`make test` says so first; .ci/run clones it to /var/tmp when it is not)", 2
        )
    return user


def cannot_run(program: Path, user: User) -> str | None:
    """Why ``user`` cannot run ``program --version``; None when it can. A directory on the way
    that the user cannot search makes the exec itself fail (PermissionError), not the program."""
    try:
        probe = subprocess.run([str(program), "--version"], user=user.uid, group=user.gid, extra_groups=[],
                               capture_output=True, text=True, timeout=60)
    except OSError as error:
        return f"{error.strerror}: {program}"
    if probe.returncode != 0:
        return probe.stderr.strip() or f"exit {probe.returncode}"
    return None


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A temporary directory every uid can traverse (pytest's tmp_path is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="hermes-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def give_to(path: Path, user: User) -> None:
    """Make ``path`` (and everything under it) belong to ``user``, as the volume belongs to hermes."""
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, user.uid, user.gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), user.uid, user.gid)


@dataclass
class Home:
    """A HERMES_HOME owned by the unprivileged user, with the environment to use it."""

    path: Path
    user: User
    extra_env: Mapping[str, str] = field(default_factory=dict)  # added to every command's environment

    @property
    def db(self) -> Path:
        return self.path / "state" / "profiles.db"

    @property
    def scandir(self) -> Path:
        return self.path / "run" / "service"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": f"{BIN_DIR}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.path),
            "LANG": "C.UTF-8",
            "HERMES_HOME": str(self.path),
            "HERMES_USER": self.user.name,
            # Root's doctor keeps its checkpoints here (hermes_lifecycle/checkpoint.py), one directory
            # per test beside the home: never the machine's /run, never another test's.
            "HERMES_STATE_DOCTOR_DIR": str(self.path.parent / "doctor-checkpoints"),
            "S6_PROFILE_GATEWAY_SCANDIR": str(self.scandir),
            **self.extra_env,
        }
        env.update(extra)
        return env

    def hermes(
        self,
        *args: str,
        as_root: bool = False,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real `hermes` command, as the unprivileged user unless ``as_root``."""
        return run_as(
            [str(HERMES), *args],
            None if as_root else self.user,
            env={**self.env(), **(env or {})},
            timeout=timeout,
            input=input,
        )


def run_as(
    argv: Sequence[str],
    user: User | None,
    *,
    env: Mapping[str, str],
    timeout: float = 60,
    input: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    kwargs = {}
    if user is not None and not user.is_self:
        kwargs = {"user": user.uid, "group": user.gid, "extra_groups": []}
    return subprocess.run(
        list(argv), env=dict(env), capture_output=True, text=True, timeout=timeout,
        input=input, cwd=cwd, **kwargs,
    )


def run_on_terminal(argv: Sequence[str], user: User | None, *, env: Mapping[str, str], timeout: float = 60,
                    stdin: bytes | None = None) -> tuple[int, bytes]:
    """Run ``argv`` as ``user`` (None: this process's uid) with a pseudo-terminal as stdout and stderr, and as
    stdin unless ``stdin`` is given (then a pipe that holds it); its status and all it wrote."""
    leader, follower = pty.openpty()
    kwargs = {} if user is None or user.is_self else {"user": user.uid, "group": user.gid, "extra_groups": []}
    process = subprocess.Popen(list(argv), env={**env, "TERM": "xterm"},
                               stdin=follower if stdin is None else subprocess.PIPE, stdout=follower,
                               stderr=follower, **kwargs)
    os.close(follower)
    if stdin is not None:
        process.stdin.write(stdin)
        process.stdin.close()
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            seen += chunk
        return process.wait(timeout=10), seen
    finally:
        os.close(leader)


@pytest.fixture
def home(world_tmp: Path, hermes_user: User) -> Home:
    """An empty HERMES_HOME (no store yet) owned by the unprivileged user."""
    path = world_tmp / "home"
    path.mkdir()
    give_to(path, hermes_user)
    return Home(path, hermes_user)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> Path:
    """A store migrated once per session by the real migration (Alembic costs ~0.5 s a run)."""
    from hermes_lifecycle.backends.sqlite.migrate import migrate

    path = tmp_path_factory.mktemp("template") / "profiles.db"
    migrate(path)
    # The last connection closed checkpointed the WAL: the main file is the whole store.
    assert not Path(f"{path}-wal").exists()
    return path


@pytest.fixture
def migrated_home(home: Home, migrated_template: Path) -> Home:
    """A HERMES_HOME holding a migrated, empty store, all owned by the unprivileged user.

    (`hermes-state migrate` run by that user is tested on its own, in test_schema.py.)
    """
    home.db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_template, home.db)
    give_to(home.path, home.user)
    return home


@pytest.fixture(scope="session")
def pg_cluster(hermes_user: User) -> Iterator[PostgresCluster]:
    """A private PostgreSQL server (Debian's) for the session, run as the unprivileged uid.

    Started only when a test asks for it; stopped and removed when the session ends
    (and at exit, and with pytest should it be killed: see tests/pg_cluster.py).
    """
    cluster = PostgresCluster(hermes_user.uid, hermes_user.gid)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_database(pg_cluster: PostgresCluster) -> Iterator[Database]:
    """A fresh database owned by a fresh login role (``.name``, ``.owner``, ``.url``, ``.conninfo``), dropped after.

    A test that stopped the server and left it down has it started again here,
    so the next test finds it up.
    """
    database = pg_cluster.new_database()
    try:
        yield database
    finally:
        if not pg_cluster.running:
            pg_cluster.start_server()
        pg_cluster.drop(database)


# The hooks refuse to run but from their slot's s6-supervise; a test that calls one directly, as no
# slot does, says so with the documented override (docs/cli.md). Tests of real slots never set it.
HOOKS_UNSUPERVISED = {"HERMES_STATE_HOOKS_UNSUPERVISED": "1"}


def recording_gateway(out: Path) -> dict[str, str]:
    """A gateway command that writes "pid profile" to ``out`` and exits: what a hook started."""
    import shlex

    return {"HERMES_GATEWAY_COMMAND": f"/bin/sh -c {shlex.quote(f'echo $$ $HERMES_PROFILE > {out}')}"}


@pytest.fixture
def out(world_tmp: Path, hermes_user: User) -> Path:
    """Where a ``recording_gateway`` writes; a directory the user can write."""
    directory = world_tmp / "gateway-out"
    directory.mkdir()
    give_to(directory, hermes_user)
    return directory / "ran"
