"""A fleet host's spool: gateway starts and exits seen while the shared database was unavailable.

``record-start`` and ``record-exit`` on a fleet host (``HERMES_STATE_URL`` set)
that cannot append keep the fact here, one file each, written and fsync'd (file
and directory) before the hook goes on; ``replay`` appends the kept facts,
oldest first, when the gateway user's next writer opens the store
(``fleet.open_writer``: every writer on a fleet host is opened so), and
when root's watch daemon asks that user to (``projector/dropped.py``). Each
fact carries an idempotency key chosen before the first attempt, so an append
whose commit was lost, or a replay that stopped between its commit and the
unlink, is never appended twice. docs/fleet.md, "Outages", has the reasoning;
SQLite hosts never come here.

The files are the gateway user's. Root never reads one, nor writes or moves
one: its own writes replay nothing, and its daemon has a child dropped to
that user replay them; root only counts their names (``pending``), through
directories opened without following a link. The user's own replay checks
every field, refuses symlinks and special files, bounds sizes, and sets a
file that fails aside under ``refused/`` (a directory of its own, never a
link) with one line in the replay's result, which its caller says: never
dropped and never in the way of the files after it.

Kept light (the hooks import it): os, re and json only.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from typing import TYPE_CHECKING

from .. import durable
from ..errors import HermesError, StoreUnavailable
from ..events import TIME_FORMAT
from ..names import BOOT_ID_PATTERN, NAME_PATTERN
from ..records import Record
from ..vocabulary import format_ns, is_int
from ..volume import NotRegular, TooLarge, open_nofollow, read_regular, trusted

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import EventStore

FORMAT = 1
EXIT, START = "exit", "start"  # the kinds of kept fact: the file name's suffix, the key's prefix
REFUSED = "refused"  # where a file that cannot be replayed is set aside, under the spool
MAX_FILE_BYTES = 4096  # a kept fact is about 300 bytes
# The spool's bound: past it a fact is not kept (one line, exit 5). The hooks' own breaker
# (``recent_exits``) holds a looping gateway down long before a host gets near it.
MAX_FILES = 1000
MAX_PID = 4194304  # Linux's pid_max ceiling
# How far a kept fact's time may be from the clock that reads it (in the future) and from
# when its file was written (either way): a hook writes the file within seconds of the fact.
SKEW_SECONDS = 300
# A dot-name older than this is a write that never finished (its hook was killed, or failed
# between the create and the rename): nobody was told it was kept, so the replay removes it.
STALE_TEMPORARY_SECONDS = 60
_NAME = re.compile(r"([0-9]{19})\.([a-z0-9][a-z0-9_-]{0,63})\.([0-9a-f]{16})\.(exit|start)")
_TEMPORARY = re.compile(r"\.[0-9]{19}\.[a-z0-9][a-z0-9_-]{0,63}\.[0-9a-f]{16}\.(exit|start)\.tmp")
_KEY = {EXIT: re.compile(r"exit:[0-9a-f]{32}"), START: re.compile(r"start:[0-9a-f]{32}")}
_S6_NUMBER = re.compile(r"[0-9]{1,3}")
_FIELDS = {
    EXIT: {"format", "profile", "exit_code", "signal", "wantedup", "observed_at", "boot_id", "supervisor", "host",
           "key"},
    START: {"format", "profile", "pid", "observed_at", "boot_id", "supervisor", "host", "key"},
}


class KeptExit(Record):
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

    @property
    def kind(self) -> str:
        return EXIT


class KeptStart(Record):
    """A start as the ``run`` hook saw it just before it exec'd the gateway (the pid is the gateway's)."""

    profile: str
    pid: int
    observed_at: str
    boot_id: str | None
    supervisor: int  # the s6-supervise that ran run: the supervisor's `started` carries it
    host: str
    key: str

    @property
    def kind(self) -> str:
        return START


def new_key(kind: str = EXIT) -> str:
    return f"{kind}:{os.urandom(16).hex()}"


class Refused(Exception):
    """A spool file that is not a kept fact this host can replay: the reason is its message."""


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
        if match and match.group(4) == EXIT and match.group(2) == profile and int(match.group(1)) >= since_ns:
            count += 1
    return count


def keep(settings: "Settings", fact: KeptExit | KeptStart, now_ns: int) -> str:
    """Write ``fact`` durably (file, then directory, fsync'd); its path. StoreUnavailable when it cannot be."""
    path = settings.spool_dir
    if os.geteuid() == 0:
        # The spool is the gateway user's: root writes nothing there (it would follow the user's links).
        raise StoreUnavailable(f"root keeps nothing in the spool {path}: the hooks run as the gateway user")
    try:
        directory = _open_dir(path, create=True)
    except OSError as error:
        raise StoreUnavailable(f"cannot open the spool {path}: {error.strerror}") from None
    assert directory is not None
    try:
        if len(os.listdir(directory)) >= MAX_FILES:
            raise StoreUnavailable(f"the spool {path} holds {MAX_FILES} files already")
        name = f"{now_ns:019d}.{fact.profile}.{os.urandom(8).hex()}.{fact.kind}"
        text = json.dumps({"format": FORMAT, **fact._asdict()}, sort_keys=True) + "\n"
        try:
            # A dot name while it is written: replay never reads a file still being written.
            durable.write_file(name, text.encode("ascii"), mode=0o600, dir_fd=directory, temporary=f".{name}.tmp")
        except OSError as error:
            raise StoreUnavailable(f"cannot write to the spool {path}: {error.strerror}") from None
        return os.path.join(path, name)
    finally:
        os.close(directory)


def _remove(directory: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=directory)
    except OSError:
        pass  # gone already, or nothing more can be done: the replay sweeps stale dot-names


def _read(directory: int, name: str, match: re.Match, host: str, now_ns: int) -> KeptExit | KeptStart | None:
    """The kept fact in ``name``, every field checked; None when it is gone (replayed by another writer)."""
    try:
        fd = open_nofollow(name, dir_fd=directory)
    except FileNotFoundError:
        return None
    except OSError as error:
        # ELOOP: a symbolic link, which this code never writes.
        raise Refused("a symbolic link" if error.errno == errno.ELOOP else f"cannot be read: {error.strerror}") from None
    try:
        raw, info = read_regular(fd, MAX_FILE_BYTES)
    except NotRegular:
        raise Refused("not a regular file") from None
    except TooLarge:
        raise Refused(f"larger than {MAX_FILE_BYTES} bytes") from None
    finally:
        os.close(fd)
    try:
        value = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Refused("not a kept fact (not ASCII JSON)") from None
    fact = _checked(value, match.group(4), match.group(2), host)
    _plausible(fact.observed_at, int(match.group(1)), info.st_mtime_ns, now_ns)
    return fact


def _checked(value: object, kind: str, profile: str, host: str) -> KeptExit | KeptStart:
    if not isinstance(value, dict) or set(value) != _FIELDS[kind]:
        raise Refused(f"not a kept {kind} (unexpected fields)")
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

    def pid(field: str) -> None:
        item = value[field]
        if not is_int(item) or not 1 <= item <= MAX_PID:
            raise Refused(f"invalid {field} pid")

    text("profile", NAME_PATTERN)
    text("observed_at", TIME_FORMAT)
    text("boot_id", BOOT_ID_PATTERN, optional=True)
    text("key", _KEY[kind])
    pid("supervisor")
    if kind == EXIT:
        text("exit_code", _S6_NUMBER)
        text("signal", _S6_NUMBER)
        if value["wantedup"] not in ("true", "false", ""):
            raise Refused("invalid wantedup")
    else:
        pid("pid")
    if value["host"] != host:
        raise Refused("kept by another host")
    del value["format"]
    return KeptExit(**value) if kind == EXIT else KeptStart(**value)


def _plausible(observed_at: str, name_ns: int, written_ns: int, now_ns: int) -> None:
    """The fact's time is the one its name was made from, not in the future, and close to when its
    file was written: a hook writes the file within seconds of what it saw (``SKEW_SECONDS``)."""
    import calendar
    import time

    seconds = calendar.timegm(time.strptime(observed_at[:19], "%Y-%m-%dT%H:%M:%S"))
    observed_ns = seconds * 1_000_000_000 + int(observed_at[20:23]) * 1_000_000
    if observed_ns != name_ns // 1_000_000 * 1_000_000:
        raise Refused(f"its time {observed_at} is not the one its name says")
    skew = SKEW_SECONDS * 1_000_000_000
    if observed_ns > now_ns + skew:
        raise Refused(f"its time {observed_at} is in the future")
    if abs(written_ns - observed_ns) > skew:
        raise Refused(f"its time {observed_at} is over {SKEW_SECONDS} s from when the file was written")


class Replayed(Record):
    """What a replay did: how many facts it appended, and one line per file it set aside."""

    appended: int
    refused: list


def replay(store: "EventStore", settings: "Settings") -> Replayed:
    """Append the kept facts, oldest first, each in its own transaction.

    Cheap when there is nothing: one directory lookup. StoreUnavailable stops it (the
    caller's own write would fail the same way; the files stay, in order). A file that
    cannot be replayed, or that the store refuses, is set aside with one line for the
    caller to say (the library says nothing itself).
    As root it does nothing: the files are the gateway user's, and root's rare writes on a
    fleet host leave them to that user's next write or to the watch daemon's request
    (``projector/dropped.py``, docs/fleet.md).
    """
    done = Replayed(0, [])
    if os.geteuid() == 0:
        return done
    path = settings.spool_dir
    try:
        directory = _open_dir(path, create=False)
    except OSError as error:
        raise StoreUnavailable(f"cannot open the spool {path}: {error.strerror}") from None
    if directory is None:
        return done
    appended = 0
    try:
        import time

        now_ns = time.time_ns()
        entries = os.listdir(directory)
        _sweep_temporaries(directory, [name for name in entries if name.startswith(".")], now_ns)
        names = sorted(name for name in entries if not name.startswith(".") and name != REFUSED)
        if not names:
            return done
        from ..exits import ObservedExit
        from ..hooks import decide_exit, replay_start

        policy = settings.crash_loop_policy()
        host = settings.host_id()
        for name in names:
            match = _NAME.fullmatch(name)
            try:
                if match is None:
                    raise Refused("not a spool file name")
                fact = _read(directory, name, match, host, now_ns)
                if fact is None:
                    continue
                observed = None
                if isinstance(fact, KeptExit):
                    try:
                        observed = ObservedExit.parse(fact.exit_code, fact.signal, fact.wantedup)
                    except HermesError as error:
                        raise Refused(str(error)) from None
                try:
                    with store.writing() as tx:
                        if tx.has_key(fact.key):
                            pass  # appended already: the unlink after that commit did not happen
                        elif observed is not None:
                            decide_exit(tx, fact.profile, observed, policy, now=fact.observed_at,
                                        boot_id=fact.boot_id, supervisor=fact.supervisor, key=fact.key, late=True)
                            appended += 1
                        elif replay_start(tx, fact) is not None:
                            appended += 1
                except StoreUnavailable:
                    raise
                except HermesError as error:  # the store refused the fact itself: never retried forever
                    raise Refused(f"refused by the store: {error}") from None
            except Refused as problem:
                done.refused.append(_set_aside(directory, path, name, str(problem)))
                continue
            try:
                os.unlink(name, dir_fd=directory)
            except FileNotFoundError:
                pass  # another writer replayed it at the same time; the key kept it single
        os.fsync(directory)
    finally:
        os.close(directory)
    return done._replace(appended=appended)


def _sweep_temporaries(directory: int, dot_names: list[str], now_ns: int) -> None:
    """Remove this code's temporary names left by writes that never finished (never said `kept`)."""
    for name in dot_names:
        if not _TEMPORARY.fullmatch(name):
            continue
        try:
            info = os.stat(name, dir_fd=directory, follow_symlinks=False)
        except OSError:
            continue
        if now_ns - info.st_mtime_ns > STALE_TEMPORARY_SECONDS * 1_000_000_000:
            _remove(directory, name)


def _set_aside(directory: int, path: str, name: str, reason: str) -> str:
    """Move ``name`` under ``refused/``; the line that says so (or why it could not be moved)."""
    shown = name if name.isprintable() and len(name) <= 120 else repr(name[:120])
    try:
        refused = _refused_directory(directory)
        try:
            # rename moves a symbolic link itself, never what it points to; both ends are descriptors.
            os.rename(name, name, src_dir_fd=directory, dst_dir_fd=refused)
        finally:
            os.close(refused)
    except OSError as error:
        why = {errno.ELOOP: f"{REFUSED}/ is a symbolic link", errno.ENOTDIR: f"{REFUSED}/ is not a directory",
               errno.EPERM: f"{REFUSED}/ is not this user's"}.get(error.errno or 0, error.strerror)
        return _one_line(f"hermes-state: spool {path}: {shown} refused ({reason}) and cannot be set aside ({why}): skipped")
    return _one_line(f"hermes-state: spool {path}: {shown} refused ({reason}): set aside in {REFUSED}/")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _refused_directory(directory: int) -> int:
    """``refused/`` under the spool: made when missing, opened without following a link, and this
    user's own directory; an OSError otherwise (nothing is moved then)."""
    try:
        os.mkdir(REFUSED, 0o700, dir_fd=directory)
    except FileExistsError:
        pass
    try:
        fd = os.open(REFUSED, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
    except NotADirectoryError:
        # O_DIRECTORY|O_NOFOLLOW says ENOTDIR for a link too: say which it is.
        if stat.S_ISLNK(os.stat(REFUSED, dir_fd=directory, follow_symlinks=False).st_mode):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
        raise
    if not trusted(os.fstat(fd), {os.geteuid()}):
        os.close(fd)
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))
    return fd


class Pending(Record):
    """What the spool holds, by names only (root reads nothing else): kept facts not yet in the log,
    the oldest one's time (nanoseconds, from its name), and the files set aside in ``refused/``."""

    names: frozenset
    oldest_ns: int | None
    refused: int


# Names looked at, at most (the spool holds at most MAX_FILES kept facts; anything past it is noise).
_LISTED = 4 * MAX_FILES


def pending(settings: "Settings") -> Pending:
    """The spool's kept facts and set-aside files, counted by name through directories opened without
    following a link (root's doctor and watch daemon ask; nothing is opened but directories).
    StoreUnavailable (one line) when the spool cannot be looked at that way."""
    from .snapshot import NoSuchDirectory, volume_directory

    try:
        directory = volume_directory(settings, "state", "spool")
    except NoSuchDirectory:
        return Pending(frozenset(), None, 0)
    try:
        names = _bounded_names(directory)
        try:
            refused = os.open(REFUSED, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
        except FileNotFoundError:
            refused_count = 0
        except OSError as error:
            raise StoreUnavailable(f"cannot look at {settings.spool_dir}/{REFUSED}: {error.strerror}") from None
        else:
            try:
                refused_count = len(_bounded_names(refused))
            finally:
                os.close(refused)
    finally:
        os.close(directory)
    kept = frozenset(name for name in names if _NAME.fullmatch(name))
    oldest = min((int(name[:19]) for name in kept), default=None)
    return Pending(kept, oldest, refused_count)


def _bounded_names(directory: int) -> list[str]:
    names = []
    with os.scandir(directory) as entries:
        for entry in entries:
            names.append(entry.name)
            if len(names) >= _LISTED:
                break
    return names


def observed_now() -> tuple[str, int]:
    """Now, in the log's time format and in nanoseconds (the file name's order), from one reading."""
    import time

    now_ns = time.time_ns()
    return observed_time(now_ns), now_ns


observed_time = format_ns  # a time in nanoseconds in the log's time format
