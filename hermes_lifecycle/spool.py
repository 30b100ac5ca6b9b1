"""A fleet host's spool: gateway exits seen while the shared database was unavailable.

``record-exit`` on a fleet host (``HERMES_STATE_URL`` set) that cannot append
keeps the exit here, one file per exit, written and fsync'd (file and
directory) before the hook exits; ``replay`` appends the kept exits, oldest
first, before the host's next write transaction (``EventStore.before_write``,
set by ``open_store`` on a fleet host only). Each exit carries an idempotency
key chosen before the first attempt, so an append whose commit was lost, or a
replay that stopped between its commit and the unlink, is never appended twice.
docs/fleet.md, "Outages", has the reasoning; SQLite hosts never come here.

The files are written by the gateway user and read by whoever writes next
(root among them): every field is checked, symlinks are refused, sizes are
bounded, and a file that fails is set aside under ``refused/`` with one line
on stderr, never dropped and never in the way of the files after it.

Kept light (the hooks import it): os, re and json only.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from typing import TYPE_CHECKING, Callable

from .errors import HermesError, StoreUnavailable
from .names import BOOT_ID_PATTERN, NAME_PATTERN
from .records import record
from .events import TIME_FORMAT

if TYPE_CHECKING:
    from .settings import Settings
    from .store import EventStore

FORMAT = 1
SUFFIX = ".exit"
REFUSED = "refused"  # where a file that cannot be replayed is set aside, under the spool
MAX_FILE_BYTES = 4096  # a kept exit is about 300 bytes
# The spool's bound: past it an exit is not kept (one line, exit 5). The hooks' own breaker
# (``recent_exits``) holds a looping gateway down long before a host gets near it.
MAX_FILES = 1000
MAX_PID = 4194304  # Linux's pid_max ceiling
_NAME = re.compile(r"([0-9]{19})\.([a-z0-9][a-z0-9_-]{0,63})\.([0-9a-f]{16})" + re.escape(SUFFIX))
_KEY = re.compile(r"exit:[0-9a-f]{32}")
_S6_NUMBER = re.compile(r"[0-9]{1,3}")
_FIELDS = {"format", "profile", "exit_code", "signal", "wantedup", "observed_at", "boot_id", "supervisor",
           "host", "key"}


@record
class KeptExit:
    """An exit as the ``finish`` hook saw it, with s6's own words (checked again at replay)."""

    profile: str
    exit_code: str  # s6's $1: 0-255, 256 when killed by a signal
    signal: str  # s6's $2
    wantedup: str  # "true", "false" or "" (unknown), as s6-svstat printed it
    observed_at: str  # the log's time format: the event's occurred_at when replayed
    boot_id: str | None
    supervisor: int  # the s6-supervise that ran finish: tells an earlier life's exit (hooks)
    host: str
    key: str  # the first event's idempotency key


def new_key() -> str:
    return "exit:" + os.urandom(16).hex()


class Refused(Exception):
    """A spool file that is not a kept exit this host can replay: the reason is its message."""


def _open_dir(path: str, create: bool) -> int | None:
    """The spool directory, never through a symlink; None when it does not exist (and not ``create``)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        if not create:
            return None
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    else:
        parent = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(parent)  # the new directory's entry is durable before any file in it is
        finally:
            os.close(parent)
    return os.open(path, flags)


def recent_exits(settings: "Settings", profile: str, since_ns: int) -> int:
    """How many of ``profile``'s exits are kept with a name time at or after ``since_ns``."""
    try:
        names = os.listdir(settings.spool_dir)
    except FileNotFoundError:
        return 0
    count = 0
    for name in names:
        match = _NAME.fullmatch(name)
        if match and match.group(2) == profile and int(match.group(1)) >= since_ns:
            count += 1
    return count


def keep(settings: "Settings", fact: KeptExit, now_ns: int) -> str:
    """Write ``fact`` durably (file, then directory, fsync'd); its path. StoreUnavailable when it cannot be."""
    path = settings.spool_dir
    try:
        directory = _open_dir(path, create=True)
    except OSError as error:
        raise StoreUnavailable(f"cannot open the spool {path}: {error.strerror}") from None
    assert directory is not None
    try:
        if len(os.listdir(directory)) >= MAX_FILES:
            raise StoreUnavailable(f"the spool {path} holds {MAX_FILES} files already")
        name = f"{now_ns:019d}.{fact.profile}.{os.urandom(8).hex()}{SUFFIX}"
        text = json.dumps({"format": FORMAT, **fact._asdict()}, sort_keys=True) + "\n"
        temporary = f".{name}.tmp"  # a dot name: replay never reads a file still being written
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=directory)
            try:
                os.write(fd, text.encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
            os.fsync(directory)
        except OSError as error:
            raise StoreUnavailable(f"cannot write to the spool {path}: {error.strerror}") from None
        return os.path.join(path, name)
    finally:
        os.close(directory)


def _read(directory: int, name: str, profile: str, host: str) -> KeptExit | None:
    """The kept exit in ``name``, every field checked; None when it is gone (replayed by another writer)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)
    except FileNotFoundError:
        return None
    except OSError as error:
        # ELOOP: a symbolic link, which this code never writes.
        raise Refused("a symbolic link" if error.errno == errno.ELOOP else f"cannot be read: {error.strerror}") from None
    try:
        import stat

        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused("not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise Refused(f"larger than {MAX_FILE_BYTES} bytes")
        raw = os.read(fd, MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:
        raise Refused(f"larger than {MAX_FILE_BYTES} bytes")
    try:
        value = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise Refused("not a kept exit (not ASCII JSON)") from None
    return _checked(value, profile, host)


def _checked(value: object, profile: str, host: str) -> KeptExit:
    if not isinstance(value, dict) or set(value) != _FIELDS:
        raise Refused("not a kept exit (unexpected fields)")
    if value["format"] != FORMAT or isinstance(value["format"], bool):
        raise Refused(f"format {str(value['format'])[:20]!r}, not {FORMAT}")
    if value["profile"] != profile:
        raise Refused("its profile is not the one its name says")

    def text(field: str, pattern: re.Pattern, optional: bool = False) -> None:
        item = value[field]
        if item is None and optional:
            return
        if not isinstance(item, str) or not pattern.fullmatch(item):
            raise Refused(f"invalid {field}")

    text("profile", NAME_PATTERN)
    text("exit_code", _S6_NUMBER)
    text("signal", _S6_NUMBER)
    if value["wantedup"] not in ("true", "false", ""):
        raise Refused("invalid wantedup")
    text("observed_at", TIME_FORMAT)
    text("boot_id", BOOT_ID_PATTERN, optional=True)
    text("key", _KEY)
    supervisor = value["supervisor"]
    if isinstance(supervisor, bool) or not isinstance(supervisor, int) or not 1 <= supervisor <= MAX_PID:
        raise Refused("invalid supervisor pid")
    if value["host"] != host:
        raise Refused("kept by another host")
    del value["format"]
    return KeptExit(**value)


def _say(line: str) -> None:
    print(" ".join(line.split()), file=sys.stderr, flush=True)


def replay(store: "EventStore", settings: "Settings", say: Callable[[str], None] = _say) -> int:
    """Append the kept exits, oldest first, each in its own transaction; how many were appended.

    Cheap when there is nothing: one directory lookup. StoreUnavailable stops it (the
    caller's own write would fail the same way; the files stay, in order). A file that
    cannot be replayed, or that the store refuses, is set aside with one line.
    """
    path = settings.spool_dir
    try:
        directory = _open_dir(path, create=False)
    except OSError as error:
        raise StoreUnavailable(f"cannot open the spool {path}: {error.strerror}") from None
    if directory is None:
        return 0
    appended = 0
    try:
        names = sorted(name for name in os.listdir(directory) if not name.startswith(".") and name != REFUSED)
        if not names:
            return 0
        from .exits import ObservedExit
        from .hooks import decide_exit

        policy = settings.crash_loop_policy()
        host = settings.host_id()
        for name in names:
            match = _NAME.fullmatch(name)
            try:
                if match is None:
                    raise Refused("not a spool file name")
                fact = _read(directory, name, match.group(2), host)
                if fact is None:
                    continue
                try:
                    observed = ObservedExit.parse(fact.exit_code, fact.signal, fact.wantedup)
                except HermesError as error:
                    raise Refused(str(error)) from None
                try:
                    with store.writing() as tx:
                        if tx.has_key(fact.key):
                            pass  # appended already: the unlink after that commit did not happen
                        else:
                            decide_exit(tx, fact.profile, observed, policy, now=fact.observed_at,
                                        boot_id=fact.boot_id, supervisor=fact.supervisor, key=fact.key, late=True)
                            appended += 1
                except StoreUnavailable:
                    raise
                except HermesError as error:  # the store refused the fact itself: never retried forever
                    raise Refused(f"refused by the store: {error}") from None
            except Refused as problem:
                _set_aside(directory, path, name, str(problem), say)
                continue
            try:
                os.unlink(name, dir_fd=directory)
            except FileNotFoundError:
                pass  # another writer replayed it at the same time; the key kept it single
        os.fsync(directory)
    finally:
        os.close(directory)
    return appended


def _set_aside(directory: int, path: str, name: str, reason: str, say: Callable[[str], None]) -> None:
    shown = name if name.isprintable() and len(name) <= 120 else repr(name[:120])
    try:
        try:
            os.mkdir(REFUSED, 0o700, dir_fd=directory)
        except FileExistsError:
            pass
        # rename moves a symbolic link itself, never what it points to.
        os.rename(name, f"{REFUSED}/{name}", src_dir_fd=directory, dst_dir_fd=directory)
    except OSError as error:
        say(f"hermes-state: spool {path}: {shown} refused ({reason}) and cannot be set aside "
            f"({error.strerror}): skipped")
        return
    say(f"hermes-state: spool {path}: {shown} refused ({reason}): set aside in {REFUSED}/")


def observed_now() -> tuple[str, int]:
    """Now, in the log's time format and in nanoseconds (the file name's order), from one reading."""
    import time

    now_ns = time.time_ns()
    seconds, rest = divmod(now_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % (rest // 1_000_000), now_ns
