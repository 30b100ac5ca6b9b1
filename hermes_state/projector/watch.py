"""`hermes state watch`: reconcile the profiles each new event touches, within milliseconds.

Level-triggered: a wake-up (watchdog on the database's directory, or the
poll every couple of seconds when inotify is silent or off) only makes the
daemon look at the log. It reads the events after the last position it has
reconciled (in memory: at start it does a full pass), reconciles the
profiles they touch, and does a full pass every minute, so a dropped
inotify event or a failed action is repaired without anyone asking. An idle
daemon reads, and writes nothing.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..db.engine import make_engine, read_transaction
from ..errors import HermesError
from ..events import utc_now
from ..settings import Settings
from ..store import EventStore
from ..wakeup import LogWakeup
from .reconcile import PassReport, Reconciler

# After a pass that failed, the next full pass comes sooner, backing off to the interval.
RETRY_FIRST = 2.0
# After an inotify wake-up, look for the commit to become visible every 2 ms for up to ~130 ms
# (a data_version query costs microseconds; a commit waits for its fsync).
SETTLE_PAUSES = (0.002,) * 65


@dataclass(frozen=True)
class WatchOptions:
    poll_only: bool
    poll_interval: float
    full_pass_interval: float

    @classmethod
    def from_settings(cls, settings: Settings, poll_only: bool = False) -> "WatchOptions":
        """The two clocks as configured (``Settings.watch_intervals``: raises BadInput on a bad value)."""
        poll_interval, full_pass_interval = settings.watch_intervals()
        return cls(poll_only=poll_only, poll_interval=poll_interval, full_pass_interval=full_pass_interval)


def quick_check(settings: Settings, warn: Callable[[str], None]) -> None:
    """``PRAGMA quick_check`` on the store, for the daemon's start (run in a background thread)."""
    try:
        engine = make_engine(settings.db_path, readonly=True)
        try:
            with read_transaction(engine) as conn:
                rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA quick_check")]
        finally:
            engine.dispose()
    except HermesError as error:
        warn(f"hermes: watch: quick_check could not run: {error}")
        return
    if rows != ["ok"]:
        warn(f"hermes: watch: event store {settings.db_path} fails quick_check: {'; '.join(rows[:5])}; "
             "run `hermes state doctor`")


def settled_version(store: EventStore, seen: int) -> int:
    """``data_version`` once the commit that woke us is visible, or after ~130 ms of nothing.

    inotify reports the writer's first write to the WAL; the commit becomes
    visible only after its fsync, when SQLite updates the WAL index in shared
    memory, which makes no inotify event. Reading at once can miss it, and
    nothing would wake the daemon again before the next poll.
    """
    for pause in SETTLE_PAUSES:
        version = store.data_version()
        if version != seen:
            return version
        time.sleep(pause)
    return store.data_version()


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
        """``report`` gets every pass; ``warn`` each line for stderr (a pass that failed, a failed quick_check)."""
        self.settings = settings
        self.options = options
        self.report = report
        self.warn = warn
        self._retry = RETRY_FIRST / 2
        self._wakeup = LogWakeup(settings.db_path, use_inotify=not options.poll_only, poll_interval=options.poll_interval)

    def stop(self) -> None:
        self._wakeup.stop()

    def run(self) -> int:
        with EventStore.open(self.settings, readonly=True) as store, self._wakeup as wakeup:
            reconciler = Reconciler(self.settings, store, report=self.report)
            reconciler.scandir.ensure()
            threading.Thread(target=quick_check, args=(self.settings, self.warn), daemon=True).start()
            # data_version is read before each pass: a commit during the pass then counts as new.
            seen_version = store.data_version()
            next_full = self._pass(reconciler.full_pass, "start")
            while True:
                now = time.monotonic()
                why = wakeup.wait(timeout=max(0.0, next_full - now))
                if why == "stopped":
                    return 0
                if time.monotonic() >= next_full:
                    seen_version = store.data_version()
                    next_full = self._pass(reconciler.full_pass, "periodic")
                    continue
                # data_version moves when another connection commits: "nothing new" costs no query on events.
                version = store.data_version() if why == "poll" else settled_version(store, seen_version)
                if version == seen_version:
                    continue
                seen_version = version
                retry = self._pass(reconciler.catch_up, "inotify" if why == "change" else "poll")
                next_full = min(next_full, retry)

    def _pass(self, run_pass: Callable[[str], PassReport], trigger: str) -> float:
        """Run one pass; returns when the next full pass is due (sooner after a failure)."""
        try:
            failed = bool(run_pass(trigger).errors)
        except HermesError as error:
            # The pass stopped before acting (s6 or the store failed): one JSON line, then retry.
            failed = True
            self.warn(json.dumps({"time": utc_now(), "trigger": trigger, "error": str(error)}, separators=(",", ":")))
        if not failed:
            self._retry = RETRY_FIRST / 2
            return time.monotonic() + self.options.full_pass_interval
        self._retry = min(self._retry * 2, self.options.full_pass_interval)
        return time.monotonic() + self._retry


def watch(
    settings: Settings,
    options: WatchOptions,
    *,
    report: Callable[[PassReport], None],
    warn: Callable[[str], None],
) -> int:
    """Run until SIGTERM or SIGINT; clean exit 0."""
    watcher = Watcher(settings, options, report=report, warn=warn)
    previous = {sig: signal.signal(sig, lambda *_: watcher.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return watcher.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
