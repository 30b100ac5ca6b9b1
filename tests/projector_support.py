"""What the projector's tests share: a real s6-svscan they start and stop, a test gateway, appends as the user.

The projector's side (s6-svscan, boot, watch) runs as the suite's own uid:
root under CI, as in the container, where the slots' scripts then drop to
the unprivileged test user with s6-setuidgid. Every append is made by that
unprivileged user, as `hermes` does in production.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from store_helpers import operator_rows

from conftest import HERMES, Home, User, run_as
from pg_cluster import Database


IS_ROOT = os.geteuid() == 0

# The test gateway: one process, no children (kill -9 leaves nothing behind).
GATEWAY = r"""#!/usr/bin/perl
# Test gateway, by its profile's name: crash* exits 1 at once, config* exits
# 78 (EX_CONFIG), quits* exits 0 at once, restarts* exits 75 (hermes-agent's
# "restart me") after a moment; stubborn* ignores SIGTERM (only
# SIGKILL ends it); any other runs until SIGTERM and then exits 0, as
# `hermes-state run` does.
my $name = $ARGV[0] // "";
exit 1 if $name =~ /^crash/;
exit 78 if $name =~ /^config/;
exit 0 if $name =~ /^quits/;
if ($name =~ /^restarts/) { select(undef, undef, undef, 0.2); exit 75; }
$SIG{TERM} = $name =~ /^stubborn/ ? 'IGNORE' : sub { exit 0 };
sleep 1 while 1;
"""

# Appends as the unprivileged user, through the store (what `hermes-state create` / `gateway start` append).
_APPEND = r"""
import sys
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store
shapes = {
    "create": ("created", "down", None),
    "start": ("started", "up", None),
    "restart": ("started", "up", "restart"),
    "stop": ("stopped", "down", None),
    "delete": ("deleted", "down", None),
}
def event(kind, name):
    event_type, desired, reason = shapes[kind]
    return NewEvent(name, event_type, "cli", desired, reason=reason)
with open_store(Settings.from_env()) as store:
    if ":" in sys.argv[1]:  # "KIND:NAME ...": all in one transaction
        with store.writing() as tx:
            for arg in sys.argv[1:]:
                tx.append(event(*arg.split(":")))
    else:  # "KIND NAME ...": one transaction each
        for name in sys.argv[2:]:
            store.append(event(sys.argv[1], name))
"""


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02):
    """Poll ``predicate`` until it returns something true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        time.sleep(interval)


def processes_under(path: Path) -> list[str]:
    """Live processes whose working directory is inside ``path`` (s6-supervise and gateways are)."""
    found = []
    prefix = str(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if state != "Z" and (cwd == prefix or cwd.startswith(prefix + "/") or cwd.startswith(prefix + " ")):
            found.append(f"{entry.name} {comm} in {cwd}")
    return found


@dataclass
class Rig:
    """A HERMES_HOME owned by the user, a scan directory owned by the projector's uid, a gateway."""

    home: Home
    root: Path
    scandir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    # HERMES_GATEWAY_COMMAND: the test gateway (GATEWAY); None leaves the choice to HERMES_GATEWAY.
    gateway_command: str | None = "{root}/gateway {{profile}}"
    scanner: subprocess.Popen | None = None
    daemons: list[subprocess.Popen] = field(default_factory=list)
    database: Database | None = None  # the store, when it is PostgreSQL's (else home.db)
    outputs: dict[int, Path] = field(default_factory=dict)

    @property
    def user(self) -> User:
        return self.home.user

    def env(self, **extra: str) -> dict[str, str]:
        env = self.home.env(S6_PROFILE_GATEWAY_SCANDIR=str(self.scandir))
        if self.gateway_command is not None:
            env["HERMES_GATEWAY_COMMAND"] = self.gateway_command.format(root=self.root)
        env.update(self.extra_env)
        env.update(extra)
        return env

    # -- commands --------------------------------------------------------
    def hermes(self, *args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
        """`hermes` as the projector's uid (root under CI)."""
        return run_as([str(HERMES), *args], None, env=self.env(**extra), timeout=timeout)

    def as_user(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_as([str(HERMES), *args], self.user, env=self.env(), timeout=timeout)

    def cli(self, *args: str) -> str:
        """A `hermes` command as the unprivileged user, which must succeed (e.g. `start alice`)."""
        result = self.as_user(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def append(self, kind: str, *names: str) -> None:
        """Append KIND (create, start, restart, stop, delete) to each name, as the user, one commit each;
        or ``append("stop:alice", "start:alice")``: those events in one transaction."""
        result = run_as([sys.executable, "-c", _APPEND, kind, *names], self.user, env=self.env(), timeout=60)
        assert result.returncode == 0, result.stderr

    def migrate(self) -> None:
        result = self.as_user("migrate")
        assert result.returncode == 0, result.stderr

    def boot(self) -> subprocess.CompletedProcess[str]:
        result = self.hermes("boot")
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    # -- s6 --------------------------------------------------------------
    def start_scanner(self) -> subprocess.Popen:
        assert self.scanner is None
        self.scandir.mkdir(parents=True, exist_ok=True)
        self.scanner = subprocess.Popen(
            [shutil.which("s6-svscan"), str(self.scandir)], env=self.env(), start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=(self.root / "svscan.log").open("ab"),
        )
        wait_for(lambda: (self.scandir / ".s6-svscan" / "control").exists(), 5, "s6-svscan to start")
        return self.scanner

    def stop_scanner(self) -> None:
        """As a container stops: s6-svscanctl -t (every finish sees wantedup false), then wait by pid."""
        scanner, self.scanner = self.scanner, None
        if scanner is None:
            return
        try:
            if scanner.poll() is None:
                subprocess.run(["s6-svscanctl", "-t", str(self.scandir)], timeout=10)
            scanner.wait(timeout=20)
        except subprocess.TimeoutExpired:
            scanner.kill()  # by its pid: never leave it running, whatever failed
            scanner.wait()
            raise AssertionError("s6-svscan did not exit after s6-svscanctl -t") from None
        wait_for(lambda: not processes_under(self.scandir), 10, "no supervisor or gateway left in the scan directory")

    def status(self, name: str) -> dict[str, str] | None:
        result = subprocess.run(
            ["s6-svstat", "-o", "up,pid,wantedup", str(self.scandir / f"gateway-{name}")],
            capture_output=True, text=True, timeout=10,
        )
        if result.returncode != 0:
            return None
        up, pid, wantedup = result.stdout.split()
        return {"up": up == "true", "pid": int(pid), "wantedup": wantedup == "true"}

    def running_pid(self, name: str) -> int | None:
        st = self.status(name)
        return st["pid"] if st and st["up"] else None

    def differences_from_desired(self) -> list[str]:
        """Where s6 is not as the log wants it: a live profile's slot missing or wanted the other way,
        a slot (or a half-made one) of no live profile. Empty: converged."""
        listing = self.as_user("list", "--json")
        assert listing.returncode == 0, listing.stderr
        desired = {row["profile"]: row["desired"] for row in map(json.loads, listing.stdout.splitlines())}
        differences = []
        for name, want in desired.items():
            status = self.status(name)
            if status is None or status["wantedup"] != (want == "up"):
                differences.append(f"{name}: desired {want}, s6 {status}")
        for entry in os.listdir(self.scandir):
            if entry.startswith(".gateway-") or (entry.startswith("gateway-") and entry[len("gateway-"):] not in desired):
                differences.append(f"{entry} in the scan directory")
        return differences

    # -- the watch daemon ---------------------------------------------------
    def start_watch(self, *args: str, **extra: str) -> subprocess.Popen:
        log = (self.root / f"watch-{len(self.daemons)}.out").open("wb")
        daemon = subprocess.Popen(
            [str(HERMES), "watch", *args], env=self.env(**extra), stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self.daemons.append(daemon)
        return daemon

    def start_gateway_watch(self, *args: str, **extra: str) -> subprocess.Popen:
        """`hermes-state watch-gateways` as the unprivileged user (it reads the gateways' own files); its
        output in ``gateways-N.out``. Stopped with the rig's other daemons."""
        path = self.root / f"gateways-{len(self.daemons)}.out"
        daemon = subprocess.Popen(
            [str(HERMES), "watch-gateways", *args], env=self.env(**extra), stdout=path.open("wb"),
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, user=self.user.uid, group=self.user.gid,
            extra_groups=[],
        )
        self.daemons.append(daemon)
        self.outputs[daemon.pid] = path
        return daemon

    def daemon_output(self, daemon: subprocess.Popen) -> str:
        """What a daemon the rig started as the user has written so far."""
        return self.outputs[daemon.pid].read_text()

    def watch_output(self, index: int = -1) -> str:
        number = len(self.daemons) + index if index < 0 else index
        return (self.root / f"watch-{number}.out").read_text()

    def stop_watch(self, daemon: subprocess.Popen) -> int:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        return daemon.wait(timeout=10)

    # -- the log -----------------------------------------------------------
    def history(self, name: str) -> list[dict]:
        """``name``'s events as an operator reads them (data as JSON text), from either backend's store."""
        columns = "position, type, actor, desired, reason, pid, exit_code, signal, boot_id"
        if self.database is None:
            return operator_rows(self.home.db, f"SELECT {columns}, data FROM events WHERE profile = ? "
                                 "ORDER BY position", name)
        import psycopg.rows

        with self.database.connect(row_factory=psycopg.rows.dict_row) as conn:
            return conn.execute(f"SELECT {columns}, data::text AS data FROM events WHERE profile = %s "
                                "ORDER BY position", (name,)).fetchall()

    def sql(self, statement: str, *params) -> None:
        """Raw SQL as the owner of the file (a hostile writer, behind the store's back)."""
        code = (
            "import sys, sqlite3; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2], sys.argv[3:]); "
            "c.commit(); c.close()"
        )
        result = run_as([sys.executable, "-c", code, str(self.home.db), statement, *map(str, params)],
                        self.user, env=self.env(), timeout=30)
        assert result.returncode == 0, result.stderr

    def cleanup(self) -> None:
        """Stop what the test started; anything still running in the scan directory is killed by pid, and fails."""
        try:
            for daemon in self.daemons:
                if daemon.poll() is None:
                    daemon.kill()
                    daemon.wait()
            self.stop_scanner()
        finally:
            left = processes_under(self.scandir)
            for line in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(line.split()[0]), signal.SIGKILL)
            assert not left, f"left running: {left}"


def make_rig(world_tmp: Path, home: Home, *, database: Database | None = None, **extra_env: str) -> Rig:
    gateway = world_tmp / "gateway"
    gateway.write_text(GATEWAY)
    gateway.chmod(0o755)
    # Owned by the projector's uid (root under CI), outside the user's volume.
    return Rig(home=home, root=world_tmp, scandir=world_tmp / "service", extra_env=dict(extra_env), database=database)


@contextlib.contextmanager
def rig_for(world_tmp: Path, home: Home, *, booted: bool = False, database: Database | None = None, **extra_env: str):
    """A rig for one test (its s6-svscan started and boot run when ``booted``); whatever it
    started is stopped at the end, also when the setup fails half-way. ``database``: the store is
    this PostgreSQL database (``home``'s environment names it), not ``home.db``."""
    rig = make_rig(world_tmp, home, database=database, **extra_env)
    try:
        if booted:
            rig.start_scanner()
            rig.boot()
        yield rig
    finally:
        rig.cleanup()


def types(history: list[dict]) -> list[tuple]:
    """(type, actor, reason) of each event: what a test compares."""
    return [(row["type"], row["actor"], row["reason"]) for row in history]


def full_pipe() -> tuple[int, int]:
    """A pipe whose 64 KiB are already taken, left blocking for the writer: a log that stopped reading."""
    read_end, write_end = os.pipe()
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        while True:
            os.write(write_end, b"x" * 4096)
    except BlockingIOError:
        pass
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags)
    return read_end, write_end


@contextlib.contextmanager
def daemon_with_a_full_log(argv: list[str], env: dict[str, str], user: User | None = None):
    """``argv`` started with stdout and stderr on a pipe whose reader stopped reading; killed (by its pid)
    if the test leaves it running."""
    read_end, write_end = full_pipe()
    kwargs = {} if user is None or user.is_self else {"user": user.uid, "group": user.gid, "extra_groups": []}
    process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=write_end, stderr=write_end, **kwargs)
    os.close(write_end)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(read_end)


def stops_on_sigterm_within(process: subprocess.Popen, seconds: float = 2.0) -> None:
    """SIGTERM, as s6 stops a longrun: a clean exit, within ``seconds``."""
    stopping = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert time.monotonic() - stopping < seconds, f"SIGTERM did not stop {process.args[1:2]} within {seconds:g} s"
