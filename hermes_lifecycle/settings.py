"""Where things live (docs/design.md section 1), read from the environment once per process."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Mapping

from .backends import BACKENDS
from .crash_loop import CrashLoopPolicy  # the pure core's type; built here from HERMES_CRASH_LOOP
from . import durable
from .errors import BadInput, StoreUnavailable
from .names import BOOT_ID_PATTERN, DEFAULT_PROFILE, slot_name, validate_name
from .records import Record

if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_CRASH_LOOP = "5/60s"
# HERMES_GATEWAY: the gateways a slot knows how to run (docs/design.md section 1).
STAND_IN = "stand-in"  # this package's own stand-in (`hermes-state stand-in NAME`)
HERMES_AGENT = "hermes-agent"  # hermes-agent's real gateway (docs/hermes-agent.md)
GATEWAYS = (STAND_IN, HERMES_AGENT)
# The file that makes a directory under profiles/ a profile (docs/design.md section 1).
SOUL_FILE = "SOUL.md"
S6_OVERLAY_SCANDIR = "/run/service"
BOOT_ID_NAME = ".boot-id"  # in the scan directory: a tmpfs in the container, new at every start
# How long a writer waits for the store's lock (the hooks ask for less).
DEFAULT_BUSY_TIMEOUT_MS = 5000
CHILD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # a child's PATH: none of root's
# An id file holds one UUID and a newline: anything longer is not one, and is never read whole.
ID_FILE_BYTES = 4096
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# The watch daemon's two clocks (seconds): how often it looks at the log when
# inotify is silent or off, and how often it reconciles every profile.
DEFAULT_WATCH_POLL_INTERVAL = 2.0
DEFAULT_WATCH_FULL_PASS_INTERVAL = 60.0
WATCH_INTERVAL_RANGE = (0.01, 86400.0)


def home_from_env(environ: Mapping[str, str]) -> str:
    """``HERMES_HOME``, else ``~/.hermes``."""
    return environ.get("HERMES_HOME") or os.path.join(os.path.expanduser("~"), ".hermes")


def store_path_from_env(environ: Mapping[str, str]) -> str:
    """``HERMES_STATE_DB``, else ``$HERMES_HOME/state/profiles.db`` (docs/design.md section 1)."""
    return environ.get("HERMES_STATE_DB") or os.path.join(home_from_env(environ), "state", "profiles.db")


# The schemes HERMES_STATE_URL takes: PostgreSQL through psycopg 3 (docs/fleet.md), from the backends' table.
STORE_URL_SCHEMES = tuple(scheme for scheme in BACKENDS if scheme is not None)


def store_url_from_env(environ: Mapping[str, str], variable: str = "HERMES_STATE_URL") -> str | None:
    """``HERMES_STATE_URL``: a fleet's PostgreSQL (docs/design.md section 8), or None for the file.

    Any other scheme is refused rather than ignored: someone who set it must not
    be writing to a local file, or to a database the store cannot serve, without knowing.
    """
    url = environ.get(variable)
    if not url:
        return None
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in STORE_URL_SCHEMES or not rest:
        raise BadInput(
            f"invalid {variable} {redact_url(url)!r}: expected postgresql+psycopg://user@host:port/dbname "
            "(unset it to use the SQLite file)"
        )
    return url


def projector_url_from_env(environ: Mapping[str, str]) -> str | None:
    """``HERMES_STATE_PROJECTOR_URL``: the same database as the projector's read-only role (docs/fleet.md)."""
    url = store_url_from_env(environ, "HERMES_STATE_PROJECTOR_URL")
    if url is not None and not environ.get("HERMES_STATE_URL"):
        raise BadInput("HERMES_STATE_PROJECTOR_URL is set without HERMES_STATE_URL: a fleet sets both")
    return url


def redact_url(url: str) -> str:
    """``url`` without its password: what messages and logs may show."""
    scheme, separator, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    if not separator or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{place}"


def inside_s6_overlay(proc_root: str = "/proc", run_root: str = "/run") -> bool:
    """World-readable facts only: PID 1 is s6-svscan and s6-overlay's basedir exists.

    (``/proc/1/exe`` would be more direct, but it is root-only: an unprivileged
    process that resolves it silently gets the wrong answer.)
    """
    try:
        with open(os.path.join(proc_root, "1", "comm")) as comm_file:
            comm = comm_file.read().strip()
    except OSError:
        return False
    return comm == "s6-svscan" and os.path.exists(os.path.join(run_root, "s6", "basedir"))


class WatchIntervals(Record):
    poll: float
    full_pass: float


def parse_seconds(variable: str, text: str | None, default: float) -> float:
    """A clock setting in seconds; unset or empty is ``default``; BadInput (one line) outside the range."""
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    low, high = WATCH_INTERVAL_RANGE
    if not low <= value <= high:  # NaN fails too
        raise BadInput(f"invalid {variable} {text!r}: expected seconds between {low:g} and {high:g}")
    return value


class Settings(Record):
    """Where things live and how to run, from the environment.

    Paths are kept as text and handed out as ``Path`` on request: the hooks
    never ask, and so never import pathlib.
    """

    home_dir: str
    store_file: str
    scandir_dir: str
    host_id_override: str | None
    gateway_user: str
    gateway_command: str | None  # HERMES_GATEWAY_COMMAND: a command of the operator's own
    crash_loop: str
    in_container: bool
    busy_timeout_ms: int = 5000
    # As written in the environment; parsed by watch_intervals() when the daemon starts,
    # so a bad value stops `hermes-state watch` and `up`, not every command.
    watch_poll_interval: str | None = None
    watch_full_pass_interval: str | None = None
    store_url: str | None = None  # HERMES_STATE_URL: a fleet's PostgreSQL instead of store_file
    projector_url: str | None = None  # HERMES_STATE_PROJECTOR_URL: how root's projector connects, read-only
    gateway: str = STAND_IN  # HERMES_GATEWAY: which gateway a slot runs (GATEWAYS)
    # HERMES_STATE_HOOKS_UNSUPERVISED, as written: "1" lets the hooks run outside a slot (hooks.py).
    hooks_unsupervised: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        in_container = inside_s6_overlay()
        home = home_from_env(env)
        scandir = env.get("S6_PROFILE_GATEWAY_SCANDIR") or (
            S6_OVERLAY_SCANDIR if in_container else os.path.join(home, "run", "service")
        )
        return cls(
            home_dir=home,
            store_file=store_path_from_env(env),
            scandir_dir=scandir,
            host_id_override=env.get("HERMES_HOST_ID") or None,
            gateway_user=env.get("HERMES_USER") or "hermes",
            gateway_command=env.get("HERMES_GATEWAY_COMMAND") or None,
            crash_loop=env.get("HERMES_CRASH_LOOP") or DEFAULT_CRASH_LOOP,
            in_container=in_container,
            busy_timeout_ms=_milliseconds(env, "HERMES_STATE_BUSY_TIMEOUT_MS", DEFAULT_BUSY_TIMEOUT_MS),
            watch_poll_interval=env.get("HERMES_WATCH_POLL_INTERVAL"),
            watch_full_pass_interval=env.get("HERMES_WATCH_FULL_PASS_INTERVAL"),
            store_url=store_url_from_env(env),
            projector_url=projector_url_from_env(env),
            gateway=env.get("HERMES_GATEWAY") or STAND_IN,
            hooks_unsupervised=env.get("HERMES_STATE_HOOKS_UNSUPERVISED") or None,
        )

    def for_projector(self) -> "Settings":
        """The settings root's projector reads with: the projector's own role where one is set, so
        the process that drives s6 holds no right to write the log (docs/fleet.md, Roles). Root's
        only: a projector run as the gateway user (``hermes-state up`` outside a container) is that
        user, whose own writes (boot's migration, the spool's replay) need the writer's role."""
        return self._replace(store_url=self.projector_url) if self.projector_url and os.geteuid() == 0 else self

    # -- paths -----------------------------------------------------------
    @property
    def home(self) -> "Path":
        return _path(self.home_dir)

    @property
    def db_path(self) -> "Path":
        return _path(self.store_file)

    @property
    def store_location(self) -> str:
        """What messages call the store: its file, or its URL without the password."""
        return redact_url(self.store_url) if self.store_url else self.store_file

    @property
    def fleet(self) -> bool:
        """A shared database: each host's projector acts on its own profiles only (docs/fleet.md)."""
        return self.store_url is not None

    @property
    def scandir(self) -> "Path":
        return _path(self.scandir_dir)

    @property
    def host_id_file(self) -> str:
        return os.path.join(self.home_dir, "state", "host-id")

    @property
    def spool_dir(self) -> str:
        """A fleet host's exits seen while the database was unavailable (``fleet/spool.py``, docs/fleet.md)."""
        return os.path.join(self.home_dir, "state", "spool")

    @property
    def boot_id_file(self) -> str:
        return os.path.join(self.scandir_dir, BOOT_ID_NAME)

    @property
    def profiles_dir(self) -> "Path":
        return self.home / "profiles"

    @property
    def boot_log(self) -> "Path":
        return self.home / "logs" / "container-boot.log"

    def profile_dir(self, name: str) -> "Path":
        """The directory of a profile; ``default`` is the home itself."""
        validate_name(name)
        return self.home if name == DEFAULT_PROFILE else self.profiles_dir / name

    def slot_dir(self, name: str) -> "Path":
        return self.scandir / slot_name(name)

    def crash_loop_policy(self) -> CrashLoopPolicy:
        return CrashLoopPolicy.parse(self.crash_loop)

    def watch_intervals(self) -> WatchIntervals:
        """``HERMES_WATCH_POLL_INTERVAL`` / ``HERMES_WATCH_FULL_PASS_INTERVAL``, parsed; BadInput on a bad one."""
        return WatchIntervals(
            poll=parse_seconds("HERMES_WATCH_POLL_INTERVAL", self.watch_poll_interval, DEFAULT_WATCH_POLL_INTERVAL),
            full_pass=parse_seconds(
                "HERMES_WATCH_FULL_PASS_INTERVAL", self.watch_full_pass_interval, DEFAULT_WATCH_FULL_PASS_INTERVAL
            ),
        )

    def gateway_launch(self, name: str) -> tuple[list[str], dict[str, str]]:
        """What a slot execs for profile ``name``: the argv and what it adds to the environment.

        ``HERMES_GATEWAY`` names a gateway this code knows how to run (GATEWAYS); ``HERMES_GATEWAY_COMMAND``
        is any other command, split like a shell would (no shell runs it), ``{profile}`` filled in.
        """
        validate_name(name)
        if self.gateway_command is not None:
            if self.gateway != STAND_IN:
                raise BadInput("HERMES_GATEWAY and HERMES_GATEWAY_COMMAND are both set: a slot runs one of them")
            try:
                import shlex  # here: only record-start splits the command

                words = shlex.split(self.gateway_command)
            except ValueError as error:
                raise BadInput(f"invalid HERMES_GATEWAY_COMMAND: {error}") from None
            if not words:
                raise BadInput("HERMES_GATEWAY_COMMAND is empty")
            return [word.replace("{profile}", name) for word in words], {}
        if self.gateway == HERMES_AGENT:
            # As hermes-agent's own s6 service runs it (hermes_cli/service_manager.py): the root profile
            # is the home itself, which `-p default` would not name; `--replace` takes over from a stray
            # gateway of the same profile; HERMES_S6_SUPERVISED_CHILD tells it a supervisor owns it, so it
            # neither hands itself to s6 nor follows the sticky active profile. Its own respawn ledger is
            # off: the log's breaker is the one breaker (docs/hermes-agent.md, "Exits").
            profile = [] if name == DEFAULT_PROFILE else ["-p", name]
            return (["hermes", *profile, "gateway", "run", "--replace"],
                    {"HERMES_S6_SUPERVISED_CHILD": "1", "HERMES_GATEWAY_MAX_STARTS": "0"})
        if self.gateway == STAND_IN:
            return ["hermes-state", "stand-in", name], {}
        raise BadInput(f"invalid HERMES_GATEWAY {self.gateway!r}: expected {' or '.join(GATEWAYS)} "
                       "(or set HERMES_GATEWAY_COMMAND instead)")

    def environment_for(self, user: str, home: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a child root runs as the gateway user (boot's writing steps): what it
        needs, and nothing of root's own. Its settings (``HERMES_*`` but root's read-only role,
        ``HERMES_STATE_PROJECTOR_URL``), libpq's connection settings but root's passwords
        (``PGPASSWORD``, ``PGPASSFILE``: the gateway user writes with its own ``~/.pgpass``,
        docs/fleet.md), the locale, a plain PATH, the user's own HOME, USER and LOGNAME, and the
        paths this process resolved, so the child reaches the very same files."""
        env = {name: value for name, value in (os.environ if environ is None else environ).items()
               if (name.startswith("HERMES_") and name != "HERMES_STATE_PROJECTOR_URL")
               or (name.startswith("PG") and name not in ("PGPASSWORD", "PGPASSFILE"))
               or name in ("LANG", "LANGUAGE", "TZ") or name.startswith("LC_")}
        env.update(
            HERMES_HOME=self.home_dir,
            HERMES_STATE_DB=self.store_file,
            S6_PROFILE_GATEWAY_SCANDIR=self.scandir_dir,
            PATH=CHILD_PATH,
            HOME=home,
            USER=user,
            LOGNAME=user,
        )
        return env

    # -- ids -----------------------------------------------------------
    def read_id_file(self, path: str, what: str, *, on_volume: bool = True) -> str:
        """A small id file (the boot id, the host id) as text, read through ``volume.read_file``:
        never a link, a FIFO or a device, at most ID_FILE_BYTES; FileNotFoundError when missing, one
        line (exit 5) for anything else. ``on_volume``: as root, the directories from the home down
        are checked too (the scan directory holding the boot id is root's, checked by ``ScanDir``)."""
        from .volume import owners_for, read_file

        try:
            data = read_file(path, limit=ID_FILE_BYTES, volume_root=self.home_dir if on_volume else None,
                             owners=owners_for(self.gateway_user), what=f"{what} file {path}")
        except (FileNotFoundError, NotADirectoryError):
            raise
        except OSError as error:
            raise StoreUnavailable(f"cannot read {what} file {path}: {error.strerror}") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise StoreUnavailable(f"{what} file {path} is not text") from None

    def read_boot_id(self) -> str | None:
        try:
            text = self.read_id_file(self.boot_id_file, "boot id", on_volume=False).strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return text if BOOT_ID_PATTERN.fullmatch(text) else None

    def host_id(self, create: bool = True) -> str:
        """This volume's host id: ``HERMES_HOST_ID``, else the file, made once."""
        if self.host_id_override:
            return self.host_id_override
        try:
            return _host_id_in(self.read_id_file(self.host_id_file, "host id"), self.host_id_file)
        except FileNotFoundError:
            if not create:
                raise StoreUnavailable(f"no host id at {self.host_id_file}") from None
        return _create_host_id(self)


def _path(text: str) -> "Path":
    from pathlib import Path

    return Path(text)


def _milliseconds(env: Mapping[str, str], variable: str, default: int) -> int:
    text = env.get(variable)
    if not text:
        return default
    if not text.isdigit() or not 0 < int(text) <= 3_600_000:
        raise BadInput(f"invalid {variable} {text!r}: expected milliseconds from 1 to 3600000")
    return int(text)


def _host_id_in(text: str, path: str) -> str:
    """The UUID a host id file holds; StoreUnavailable when it holds none."""
    text = text.strip()
    if _CANONICAL_UUID.fullmatch(text):
        return text  # as this code writes it: no need to import uuid, which every hook would pay for
    import uuid

    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise StoreUnavailable(f"host id file {path} does not hold a UUID") from None


def _create_host_id(settings: Settings) -> str:
    """Write a new UUID without ever replacing one another process made first."""
    import uuid

    path = _path(settings.host_id_file)
    new_id = str(uuid.uuid4())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            durable.write_file(path, (new_id + "\n").encode(), mode=0o644, replace=False)
        except FileExistsError:
            pass  # another process won the race: its id is the one
    except OSError as error:
        raise StoreUnavailable(f"cannot create host id {path}: {error.strerror}") from None
    return _host_id_in(settings.read_id_file(str(path), "host id"), str(path))
