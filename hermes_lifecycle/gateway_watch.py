"""`hermes-state watch-gateways`: each gateway's own account into the log, and the log's word back into its file.

Run as the gateway user, never as root: the files it reads are that user's
(docs/reliability.md). Level-triggered, like the projector: a wake-up
(watchdog on the home and each profile's directory, its polling observer
where inotify is unavailable, the log's change feed, a full look every
minute) only makes it look.

For each of this host's live profiles it looks at
``profiles/NAME/gateway_state.json`` (the home's own for ``default``):

- **Reports.** What the gateway says of the run the log knows (the same
  pid) is compared with the last report the log holds for that run, and
  the difference is appended as ``reported`` events (``reports.py``):
  ready, degraded, recovered, draining, stopped, startup-failed, a platform
  fatal, needing attention or recovered. The comparison is with the log,
  not with memory, so a restarted daemon appends nothing twice and misses no
  transition the file still shows.
- **The file follows the log** (when ``HERMES_GATEWAY=hermes-agent``): its
  ``desired_state`` is the log's desired state, and a file that says its
  process is alive when the log says no run is going is corrected
  (``reports.followed_file``, ``gateway_files.replace``).
- **hermes-agent's profile commands** (when ``HERMES_GATEWAY=hermes-agent``):
  a profile directory that appears with its ``SOUL.md`` (``hermes profile
  create``) is appended as ``created``, one this daemon saw and that is gone
  (``hermes profile delete``) as ``deleted``, both by ``hermes-agent``.

Every file is untrusted input: bounded, never followed through a link; a
malformed one is one line (once while it stays the same) and no event.
Reports are bounded per profile (``REPORTS_PER_MINUTE``).
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections import deque
from typing import Any, Callable

from . import gateway_files, reports
from .errors import HermesError, StoreUnreachable
from .events import NewEvent, utc_now
from .fleet import replay_kept
from .names import DEFAULT_PROFILE, NAME_PATTERN, RESERVED_NAMES
from .profile_state import ProfileState
from .settings import HERMES_AGENT, SOUL_FILE, Settings
from .store import EventStore, open_store
from .store.feed import IDLE, REPLACED, STOPPED
from .vocabulary import Actor, Desired, EventType, is_int

REPORTS_PER_MINUTE = 30  # a gateway flapping faster than this is said once a minute, and caught up after
POLL_SECONDS = 1.0  # the polling observer's period, where inotify is unavailable
SETTLE_SECONDS = 0.05  # a burst of writes to one file is looked at once
GONE_CONFIRM_SECONDS = 1.0  # a directory must stay gone this long before its profile counts as deleted
ADOPTED = "profile-directory"  # the reason of the created/deleted events adoption appends


class GatewayWatcher:
    """The daemon; ``stop()`` ends it (signal-safe)."""

    def __init__(self, settings: Settings, *, poll_only: bool, full_pass_interval: float,
                 say: Callable[[str], None], warn: Callable[[str], None]) -> None:
        self.settings = settings
        self.poll_only = poll_only
        self.full_pass_interval = full_pass_interval
        self.say = say
        self.warn = warn
        self.follow = settings.gateway == HERMES_AGENT
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._directories_dirty = True
        self._log_dirty = True
        self._store: EventStore | None = None
        self._observer: Any = None
        self._watched: dict[str, Any] = {}  # directory -> watchdog watch
        self._files: dict[str, tuple] = {}  # profile -> (identity, account, content) last read
        self._summaries: dict[str, tuple[int, reports.Summary]] = {}  # profile -> (run, its summary)
        self._said: dict[str, str] = {}  # profile -> the last problem line said (said again only when it changes)
        self._reported: dict[str, deque] = {}
        self._present: set[str] = set()  # profile directories seen
        self._gone_since: dict[str, float] = {}
        self._recheck_at = float("inf")  # when a directory seen gone must be looked at again
        self._candidates: set[str] = set()  # directories under profiles/ without their SOUL.md yet
        self.observer_kind = "polling" if poll_only else "inotify"

    # -- life -----------------------------------------------------------------
    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._store is not None:
            self._store.recorder.interrupt()

    def run(self) -> int:
        self.host = self.settings.host_id(create=False) if self.settings.fleet else None
        with open_store(self.settings) as store:
            self._store = store
            feed_thread = threading.Thread(target=self._follow_log, name="log-feed", daemon=True)
            self._start_observer()
            feed_thread.start()
            try:
                self._line({"time": utc_now(), "watching": str(self.settings.home), "observer": self.observer_kind,
                            "follows_files": self.follow})
                next_full = 0.0
                while not self._stopped.is_set():
                    now = time.monotonic()
                    if now >= next_full:
                        self._pass(full=True)
                        next_full = now + self.full_pass_interval
                    elif self._wake.is_set() or now >= self._recheck_at:
                        self._wake.clear()
                        self._stopped.wait(SETTLE_SECONDS)
                        self._pass(full=False)
                    due = min(next_full, self._recheck_at)
                    self._wake.wait(max(0.0, min(due - time.monotonic(), self.full_pass_interval)))
            finally:
                self._store = None
                if self._observer is not None:
                    self._observer.stop()
                    self._observer.join(timeout=2)
        return 0

    def _follow_log(self) -> None:
        """The log's change feed, on a connection of its own: an intent wakes the loop (desired_state)."""
        while not self._stopped.is_set():
            try:
                with open_store(self.settings, readonly=True) as store:
                    with store.change_feed(poll_interval=2.0) as feed:
                        while not self._stopped.is_set():
                            why = feed.wait(1.0)
                            if why in (STOPPED, REPLACED):
                                break
                            if why != IDLE:
                                self._log_dirty = True
                                self._wake.set()
            except HermesError as error:
                self._problem("log", f"cannot follow the log: {error}")
            self._stopped.wait(2.0)

    # -- the observers ------------------------------------------------------------
    def _start_observer(self) -> None:
        from watchdog.observers.polling import PollingObserver

        observer: Any = None  # watchdog has no type information
        if not self.poll_only:
            try:
                from watchdog.observers.inotify import InotifyObserver

                observer = InotifyObserver()
                observer.daemon = True
                observer.start()
            except (OSError, ImportError) as error:
                self._problem("observer", f"inotify is unavailable ({error}): polling every {POLL_SECONDS:g}s")
                observer = None
        if observer is None:
            observer = PollingObserver(timeout=POLL_SECONDS)
            observer.daemon = True
            observer.start()
            self.observer_kind = "polling"
        self._observer = observer

    def _watch(self, directory: str) -> None:
        """Watch ``directory`` (not its subdirectories) while it exists; a watch the system refuses
        (its limit reached) is said once, and the full pass still looks every minute."""
        if directory in self._watched or self._observer is None:
            return
        from watchdog.events import FileSystemEventHandler

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                watcher._noticed(directory, event)

        try:
            self._watched[directory] = self._observer.schedule(Handler(), directory, recursive=False)
        except OSError as error:
            self._problem(f"watch:{directory}", f"cannot watch {directory} ({error.strerror or error}): "
                          "it is looked at every full pass only")

    def _unwatch(self, directory: str) -> None:
        watch = self._watched.pop(directory, None)
        if watch is not None:
            try:
                self._observer.unschedule(watch)
            except (KeyError, OSError):
                pass

    def _noticed(self, directory: str, event) -> None:
        profiles_dir = str(self.settings.profiles_dir)
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if not path:
                continue
            path = os.fsdecode(path)
            parent, name = os.path.split(path)
            if name == SOUL_FILE and os.path.dirname(parent) == profiles_dir:
                self._directories_dirty = True  # a directory made before its SOUL.md is a profile only now
                self._wake.set()
            elif name == gateway_files.FILE_NAME:
                profile = DEFAULT_PROFILE if parent == str(self.settings.home) else os.path.basename(parent)
                with self._lock:
                    self._dirty.add(profile)
                self._wake.set()
            elif parent == profiles_dir or directory == profiles_dir:
                self._directories_dirty = True
                self._wake.set()

    # -- a pass -------------------------------------------------------------------
    def _pass(self, *, full: bool) -> None:
        store = self._store
        assert store is not None
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        directories, self._directories_dirty = self._directories_dirty or full or \
            time.monotonic() >= self._recheck_at, False
        if directories:
            self._recheck_at = float("inf")
        log_changed, self._log_dirty = self._log_dirty or full, False
        narrow = not (full or log_changed or directories)
        try:
            with store.reading() as tx:
                if narrow:  # files changed, nothing else: only their profiles' rows
                    every = [s for name in sorted(dirty) if (s := _state_or_none(tx, name)) and self._ours(s)]
                else:
                    every = [s for s in tx.states(include_deleted=True) if self._ours(s)]
        except HermesError as error:
            if self._stopped.is_set():
                return
            self._problem("log", f"cannot read the log: {error}")
            self._log_dirty = self._directories_dirty = True
            return
        live = {s.profile: s for s in every if s.live}
        if narrow:
            for name in sorted(live):
                self._look_guarded(name, live[name])
            return
        if self.follow and directories:
            try:
                self._adopt(live, {s.profile for s in every if s.deleted})
            except HermesError as error:
                if self._stopped.is_set():
                    return
                self._problem("adopt", f"cannot record hermes-agent's profile changes now: {error}")
                self._directories_dirty = True
        self._keep_watches(live, self._candidates if self.follow else set())
        names = set(live) if (full or log_changed) else dirty & set(live)
        for name in sorted(names):
            if self._stopped.is_set():
                return
            self._look_guarded(name, live[name])

    def _look_guarded(self, name: str, state: ProfileState) -> None:
        try:
            self._look(name, state)
        except HermesError as error:
            if self._stopped.is_set():
                return
            self._problem(name, f"profile {name}: {error}")
            with self._lock:
                self._dirty.add(name)  # looked at again at the next wake-up

    def _ours(self, state: ProfileState) -> bool:
        """This host's profiles only: on a fleet, another host's gateway and files are not here."""
        return self.host is None or state.host == self.host

    def _file_of(self, name: str) -> str:
        return os.path.join(str(self.settings.profile_dir(name)), gateway_files.FILE_NAME)

    def _keep_watches(self, live: dict[str, ProfileState], candidates: set[str]) -> None:
        """The home, profiles/, each live profile's directory, and (adopting) each directory that may
        become one: hermes-agent makes a profile's directory first and its SOUL.md after."""
        wanted = {str(self.settings.home), str(self.settings.profiles_dir)}
        wanted |= {str(self.settings.profile_dir(name)) for name in set(live) | candidates}
        for directory in sorted(set(self._watched) - wanted):
            self._unwatch(directory)
        for directory in sorted(wanted):
            if os.path.isdir(directory) and not os.path.islink(directory):
                self._watch(directory)

    def _look(self, name: str, state: ProfileState) -> None:
        path = self._file_of(name)
        try:
            current = gateway_files.identity(os.lstat(path))
        except FileNotFoundError:
            current = None
        except OSError as error:
            self._problem(name, f"profile {name}: cannot look at {path}: {error.strerror}")
            return
        cached = self._files.get(name)
        if cached is None or cached[0] != current:
            cached = self._read(name, path)
            if cached is None:
                return
            self._files[name] = cached
        _, account, content = cached
        if account is not None:
            self._report(name, state, account)
        if self.follow:
            self._follow(name, state, path, cached)

    def _read(self, name: str, path: str) -> tuple | None:
        try:
            seen = gateway_files.read(path)
        except gateway_files.Unreadable as error:
            self._problem(name, f"profile {name}: {path} ignored: {error}")
            return None
        if seen is None:
            return (None, None, None)
        try:
            account = reports.read_account(seen.content)
        except reports.BadAccount as error:
            self._problem(name, f"profile {name}: {path} ignored: {error}")
            return None
        self._said.pop(name, None)
        return (seen.identity, account, seen.content)

    # -- reports ---------------------------------------------------------------
    def _report(self, name: str, state: ProfileState, account: reports.Account) -> None:
        if state.run_position is None or state.run_pid is None or state.run_started_at is None:
            return  # no run recorded: nothing the file could be about
        run = reports.Run(state.run_position, state.run_pid, state.run_started_at)
        if account.pid != run.pid:
            return  # a file left by another process (a run since ended, a gateway started by hand)
        last = self._last_summary(name, run.position)
        events = reports.transitions(last, account, run, name, now=utc_now())
        if not events or not self._allowed(name, len(events)):
            return
        store = self._writer()
        with store.writing() as tx:
            now = tx.state(name)
            if now is None or now.deleted or now.run_position != run.position:
                return  # the log moved on meanwhile: the next look compares with it
            appended = [tx.append(event) for event in events]
        self._summaries[name] = (run.position, reports.summary_of(appended[-1].data, run.position))
        for event in appended:
            self._line({"time": event.occurred_at, "profile": name, "reported": event.reason,
                        "position": event.position, "pid": event.pid})

    def _last_summary(self, name: str, run: int) -> reports.Summary:
        cached = self._summaries.get(name)
        if cached is not None and cached[0] == run:
            return cached[1]
        store = self._store
        assert store is not None
        with store.reading() as tx:
            state = tx.state(name)
            position = state.last_report_position if state is not None else None
            newest = tx.log_after(position - 1, limit=1) if position is not None else []
        summary = reports.summary_of(newest[0].data, run) if newest else reports.NOTHING_YET
        self._summaries[name] = (run, summary)
        return summary

    def _allowed(self, name: str, count: int) -> bool:
        window = self._reported.setdefault(name, deque())
        now = time.monotonic()
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) + count > REPORTS_PER_MINUTE:
            self._problem(f"rate:{name}", f"profile {name}: more than {REPORTS_PER_MINUTE} reports in a minute: "
                          "held back, the state it ends in is appended when the minute is over")
            with self._lock:
                self._dirty.add(name)
            return False
        window.extend([now] * count)
        self._said.pop(f"rate:{name}", None)
        return True

    # -- the file follows the log ------------------------------------------------------
    def _follow(self, name: str, state: ProfileState, path: str, cached: tuple) -> None:
        identity, _, content = cached
        content = content if isinstance(content, dict) else {}
        followed = reports.followed_file(content, state.desired, dead=_claims_a_dead_run(content, state),
                                         now=int(time.time()), ended_as=_ended_as(state))
        if followed is None:
            return
        if not os.path.isdir(os.path.dirname(path)):
            return  # no profile directory (yet): nothing to write into
        try:
            written = gateway_files.replace(path, followed, identity)
        except OSError as error:
            self._problem(name, f"profile {name}: cannot write {path}: {error.strerror}")
            return
        if not written:
            with self._lock:
                self._dirty.add(name)  # the gateway wrote meanwhile: read it, then decide again
            self._wake.set()
            return
        self._files.pop(name, None)
        self._line({"time": utc_now(), "profile": name, "wrote": path, "desired_state": followed["desired_state"],
                    "gateway_state": followed.get("gateway_state")})

    # -- hermes-agent's profile commands ------------------------------------------------
    def _adopt(self, live: dict[str, ProfileState], deleted: set[str]) -> None:
        """hermes-agent's ``profile create`` of a name the log never had, and ``profile delete`` of a
        directory seen here, into the log. A deleted name's directory is left alone (this package's
        own delete moves it away after its commit, and may fail to): `hermes-state create` revives it."""
        profiles_dir = str(self.settings.profiles_dir)
        listed = profile_directories(profiles_dir)
        if listed is None:
            return  # no readable profiles directory: nothing can be concluded (a volume not there)
        found, self._candidates = listed
        now = time.monotonic()
        for name in sorted(found):
            self._present.add(name)
            self._gone_since.pop(name, None)
            if name in live or name in deleted:
                continue
            self._append_adopted(name, EventType.CREATED, Desired.DOWN, "a profile directory appeared")
        for name in sorted(set(live) - set(found) - {DEFAULT_PROFILE}):
            if name not in self._present:
                continue  # never seen here: not ours to conclude anything about
            since = self._gone_since.setdefault(name, now)
            if now - since < GONE_CONFIRM_SECONDS:
                self._recheck_at = min(self._recheck_at, since + GONE_CONFIRM_SECONDS)
                continue
            if self._append_adopted(name, EventType.DELETED, Desired.DOWN, "its profile directory is gone"):
                self._present.discard(name)
                self._gone_since.pop(name, None)

    def _append_adopted(self, name: str, kind: EventType, desired: Desired, why: str) -> bool:
        try:
            event = self._writer().append(NewEvent(name, kind, Actor.HERMES_AGENT, desired, reason=ADOPTED,
                                                   data={"seen": why}))
        except HermesError as error:
            if self._stopped.is_set():
                return False
            if isinstance(error, StoreUnreachable):
                raise
            # Someone recorded it first (this package's own create or delete): nothing to adopt.
            self._problem(f"adopt:{name}", f"profile {name}: {why}, not recorded: {error}")
            return False
        self._line({"time": event.occurred_at, "profile": name, kind: "by hermes-agent", "why": why,
                    "position": event.position})
        return True

    # -- lines --------------------------------------------------------------------
    def _writer(self) -> EventStore:
        """The store, about to be written: on a fleet host, what the hooks kept in the spool is
        appended first (``fleet.replay_kept``), as by every writer; a file it sets aside is a line."""
        store = self._store
        assert store is not None
        replay_kept(store, self.settings, say=self.warn)
        return store

    def _line(self, record: dict) -> None:
        self.say(json.dumps(record, separators=(",", ":")))

    def _problem(self, key: str, line: str) -> None:
        """One line per problem, said again only when it changes."""
        if self._said.get(key) == line:
            return
        self._said[key] = line
        self.warn(json.dumps({"time": utc_now(), "problem": line}, separators=(",", ":")))


def _state_or_none(tx, name: str) -> ProfileState | None:
    """A profile's row; None for a name that is not one (a file event under a directory named otherwise)."""
    from .errors import InvalidName

    try:
        return tx.state(name)
    except InvalidName:
        return None


def profile_directories(profiles_dir: str) -> tuple[set[str], set[str]] | None:
    """The names of the real directories under ``profiles_dir`` with a valid, unreserved name: those
    with a ``SOUL.md`` (profiles), and those without one yet; None when the directory itself cannot be
    read (a missing or unmounted volume is not the deletion of every profile)."""
    try:
        with os.scandir(profiles_dir) as entries:
            listed = list(entries)
    except OSError:
        return None
    found: set[str] = set()
    waiting: set[str] = set()
    for entry in listed:
        name = entry.name
        if not NAME_PATTERN.fullmatch(name) or name in RESERVED_NAMES:
            continue
        try:
            if not stat.S_ISDIR(entry.stat(follow_symlinks=False).st_mode):
                continue
        except OSError:
            continue
        try:
            soul = os.lstat(os.path.join(entry.path, SOUL_FILE))
        except OSError:
            waiting.add(name)
            continue
        (found if stat.S_ISREG(soul.st_mode) else waiting).add(name)
    return found, waiting


def _claims_a_dead_run(content: dict, state: ProfileState) -> bool:
    """The file names a pid the log says no run of is going, and that process is gone. Both: a start
    the log could not record (an outage) must not make a live gateway look stopped."""
    pid = content.get("pid")
    if not is_int(pid) or pid <= 0:
        return False
    if state.running_run is not None and state.run_pid == pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, someone else's: not ours to call dead
    return False


def _ended_as(state: ProfileState) -> str:
    """What the log says ended the gateway's last run, for a file still claiming it runs."""
    if state.held_down_by:
        return f"held down: {state.held_down_by} (hermes-state)"
    if state.desired == "down":
        return f"stopped as asked by {state.intent_actor} (hermes-state)"
    if state.last_signal is not None:
        return f"ended by signal {state.last_signal} (hermes-state)"
    if state.last_exit_code is not None:
        return f"exited {state.last_exit_code} (hermes-state)"
    return "ended (hermes-state)"
