"""`hermes-state watch`: reconcile the profiles each new event touches, within milliseconds.

Level-triggered: a wake-up (watchdog on the database's directory, or the
poll every couple of seconds when inotify is silent or off) only makes the
daemon look at the log. It reads the events after the last position it has
reconciled (in memory: at start it does a full pass), reconciles the
profiles they touch, and does a full pass every minute, so a dropped
inotify event or a failed action is repaired without anyone asking. An idle
daemon reads, and writes nothing.

The store is untrusted input (docs/reliability.md): a malformed row is
skipped and reported (one JSON line on stderr naming its position), a file
replaced under the daemon is noticed at the next wake-up (the feed compares
the path's identity with the open file's) and reopened through the same
checks, and SIGTERM interrupts a statement that is running.

On a fleet's PostgreSQL the daemon outlives the database: a pass that fails
while it is away is one JSON line and a retry; when it answers again the
feed says so and the daemon runs a full pass (docs/fleet.md, Change feed).
A daemon started while the database cannot be reached (after a boot from
the snapshot) says so once and keeps trying to connect. On a fleet host,
every pass first has the starts and exits the hooks kept in the spool
appended (``SpoolReplay``), so a pass never acts on a log that lacks this
host's own facts: a slot the spool's breaker held down stays down.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Callable

from ..fleet import spool
from ..records import Record
from ..errors import HermesError, StoreUnavailable, StoreUnreachable
from ..events import MalformedRow, utc_now
from ..settings import Settings
from ..store import EventStore, open_store
from ..store.recorder import ChangeFeed, stop_every_statement
from ..store.feed import IDLE, NOTIFIED, RECONNECTED, REPLACED, STOPPED
from .claim import take as claim_volume
from .dropped import replay_spool
from .reconcile import PassReport, Reconciler

# After a pass that failed, the next full pass comes sooner, backing off to the interval.
RETRY_FIRST = 2.0


class WatchOptions(Record):
    poll_only: bool
    poll_interval: float
    full_pass_interval: float

    @classmethod
    def from_settings(cls, settings: Settings, poll_only: bool = False) -> "WatchOptions":
        """The two clocks as configured (``Settings.watch_intervals``: raises BadInput on a bad value)."""
        poll_interval, full_pass_interval = settings.watch_intervals()
        return cls(poll_only=poll_only, poll_interval=poll_interval, full_pass_interval=full_pass_interval)


def quick_check(settings: Settings, warn: Callable[[str], None]) -> None:
    """The backend's quick check of the store, for the daemon's start (run in a background thread,
    on a connection of its own); nothing to say when the database has none (PostgreSQL)."""
    try:
        with open_store(settings, readonly=True) as store:
            rows = store.recorder.quick_check()
    except HermesError as error:
        warn(f"hermes-state: watch: quick_check could not run: {error}")
        return
    if rows:
        warn(f"hermes-state: watch: event store {settings.store_location} fails quick_check: {'; '.join(rows[:5])}; "
             "run `hermes-state doctor`")


class SpoolReplay:
    """Before a pass reads the states: the facts this host's hooks kept in the spool while the
    database was unavailable go into the log first (docs/fleet.md, Outages).

    Root counts the spool's names only (``spool.pending``, through directories opened without
    following a link) and has a child dropped to the gateway user replay them
    (``dropped.replay_spool``): it reads none of that user's files. A replay that fails fails the
    pass, which is retried; names the last replay could not take (a file that cannot be set aside)
    start no new one until another name appears.
    """

    def __init__(self, settings: Settings, line: Callable[[dict], None]) -> None:
        self.settings = settings
        self.line = line
        self._left: frozenset = frozenset()
        self._cannot_look: str | None = None

    def __call__(self) -> None:
        try:
            before = spool.pending(self.settings).names
        except StoreUnavailable as error:
            # The gateway user's own writes still replay; the daemon says so once and goes on.
            if str(error) != self._cannot_look:
                self._cannot_look = str(error)
                self.line({"time": utc_now(), "spool": {"error": str(error)}})
            return
        self._cannot_look = None
        if not before - self._left:
            return
        result = replay_spool(self.settings)
        try:
            after = spool.pending(self.settings).names
        except StoreUnavailable:
            after = before
        self._left = before & after
        self.line({"time": utc_now(), "spool": {"appended": result["appended"], "refused": result["lines"],
                                                "left": len(self._left)}})


class Watcher:
    """The daemon's loop; ``stop()`` ends it (signal-safe)."""

    def __init__(
        self,
        settings: Settings,
        options: WatchOptions,
        *,
        report: Callable[[PassReport], None],
        warn: Callable[[str], None],
    ) -> None:
        """``report`` gets every pass; ``warn`` each line for stderr (a pass that failed, a failed
        quick_check, a malformed row skipped, the store replaced)."""
        self.settings = settings
        self.options = options
        self.report = report
        self.warn = warn
        self._retry = RETRY_FIRST / 2
        self._stopped = threading.Event()
        self._feed: ChangeFeed | None = None
        self._store: EventStore | None = None
        self._reported_rows: set[tuple[str, object, str]] = set()
        self._unreachable: str | None = None  # the last "cannot reach the database" line written

    def stop(self) -> None:
        self._stopped.set()
        if self._feed is not None:
            self._feed.stop()
        if self._store is not None:
            self._store.recorder.interrupt()  # a statement running now stops too

    def run(self) -> int:
        """Watch the store until stopped; a store replaced under the daemon is reopened (checked
        as at start) and projected from scratch; one that can no longer be opened ends it (its error)."""
        trigger = "start"
        try:
            while True:
                try:
                    if not self._watch_one_store(trigger):
                        break
                except StoreUnreachable as error:
                    # Only a fleet's database can be away and come back; the open failed, nothing ran.
                    if not self.settings.fleet or self._stopped.is_set():
                        raise
                    if not self._wait_for_database(error):
                        break
                    continue
                trigger = "reopen"
        except HermesError:
            if self._stopped.is_set():
                return 0  # the stop interrupted a statement (a pass's, or the feed's look at the file)
            raise
        return 0

    def _watch_one_store(self, trigger: str) -> bool:
        """Watch the file the store's path names now; True when it was replaced and must be reopened."""
        with open_store(self.settings, readonly=True) as store:
            store.on_bad_row = self._bad_row
            self._reported_rows.clear()  # positions in another file are other rows
            # The feed is opened before the first pass: a commit during that pass then counts as new.
            feed = store.change_feed(use_notifications=not self.options.poll_only,
                                     poll_interval=self.options.poll_interval)
            with feed:
                self._feed, self._store = feed, store
                try:
                    return self._loop(store, feed, trigger)
                finally:
                    self._feed = self._store = None

    def _loop(self, store: EventStore, feed: ChangeFeed, trigger: str) -> bool:
        if self._stopped.is_set():
            return False
        self._unreachable = None
        replay = SpoolReplay(self.settings, self._line) if self.settings.fleet else None
        reconciler = Reconciler(self.settings, store, report=self.report, before_reading=replay)
        reconciler.scandir.ensure()
        if trigger == "start":
            threading.Thread(target=quick_check, args=(self.settings, self.warn), daemon=True).start()
        next_full = self._pass(reconciler.full_pass, trigger)
        while True:
            wake = min(next_full, reconciler.next_retry())  # a profile's retry (backoff) may come first
            why = feed.wait(timeout=max(0.0, wake - time.monotonic()))
            if why == STOPPED or self._stopped.is_set():
                return False
            if why == REPLACED:
                return self._replaced(feed.replaced or "event store replaced")
            if why == RECONNECTED:
                # Notifications may have been lost and passes failed meanwhile: look at everything.
                self._line({"time": utc_now(), "trigger": "reconnected", "store": store.location, "then": "full pass"})
                next_full = self._pass(reconciler.full_pass, "reconnect")
                continue
            if time.monotonic() >= next_full:
                replaced = store.recorder.replaced()
                if replaced is not None:
                    return self._replaced(replaced)
                next_full = self._pass(reconciler.full_pass, "periodic")
                continue
            if why == IDLE:
                if time.monotonic() >= reconciler.next_retry():
                    next_full = min(next_full, self._pass(reconciler.catch_up, "retry"))
                continue
            trigger = feed.notification_name if why == NOTIFIED else "poll"
            next_full = min(next_full, self._pass(reconciler.catch_up, trigger))

    def _wait_for_database(self, error: StoreUnreachable) -> bool:
        """The database could not be reached at the open: one JSON line (again only when the reason
        changes), then a wait of one poll interval; False when the daemon was stopped meanwhile."""
        if str(error) != self._unreachable:
            self._unreachable = str(error)
            self._line({"time": utc_now(), "trigger": "start", "error": str(error), "then": "wait for the database"})
        return not self._stopped.wait(self.options.poll_interval)

    def _replaced(self, why: str) -> bool:
        self._line({"time": utc_now(), "trigger": "replaced", "store": why, "then": "reopen"})
        return True

    def _bad_row(self, error: MalformedRow) -> None:
        """One JSON line per malformed row, once per row for the daemon's life on this file."""
        key = (error.table, error.position if error.position is not None else str(error), error.problem)
        if key in self._reported_rows:
            return
        self._reported_rows.add(key)
        skipped = {"table": error.table, "position": error.position, "problem": error.problem}
        self._line({"time": utc_now(), "skipped": skipped, "error": str(error)})

    def _line(self, record: dict) -> None:
        self.warn(json.dumps(record, separators=(",", ":")))

    def _pass(self, run_pass: Callable[[str], PassReport], trigger: str) -> float:
        """Run one pass; returns when the next full pass is due (sooner after a failure)."""
        try:
            failed = bool(run_pass(trigger).errors)
        except HermesError as error:
            if self._stopped.is_set():
                return time.monotonic()  # interrupted by the stop: not a failure to report
            # The pass stopped before acting (s6 or the store failed): one JSON line, then retry.
            failed = True
            self._line({"time": utc_now(), "trigger": trigger, "error": str(error)})
        if not failed:
            self._retry = RETRY_FIRST / 2
            return time.monotonic() + self.options.full_pass_interval
        self._retry = min(self._retry * 2, self.options.full_pass_interval)
        return time.monotonic() + self._retry


def stop_on_signal(watcher: Watcher) -> None:
    """SIGTERM or SIGINT: the process is stopping, so every statement stops too, also one of a store
    still being opened (its schema read) or of the quick check's thread, and the watch ends."""
    stop_every_statement()
    watcher.stop()


def watch(
    settings: Settings,
    options: WatchOptions,
    *,
    report: Callable[[PassReport], None],
    warn: Callable[[str], None],
) -> int:
    """Run until SIGTERM or SIGINT; clean exit 0. The volume's claim is taken first and held for the
    daemon's life (its container's, from the keeper): another live projector on it is VolumeClaimed."""
    with claim_volume(settings):
        return run_in_foreground(Watcher(settings, options, report=report, warn=warn))


def run_in_foreground(watcher: Watcher) -> int:
    """The watch loop until SIGTERM or SIGINT (`watch`, and `up` after its boot)."""
    previous = {sig: signal.signal(sig, lambda *_: stop_on_signal(watcher)) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return watcher.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
