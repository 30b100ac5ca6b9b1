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

from ..errors import HermesError
from ..events import utc_now
from ..settings import Settings
from ..store import open_store
from ..store.recorder import IDLE, NOTIFIED, STOPPED, ChangeFeed
from .reconcile import PassReport, Reconciler

# After a pass that failed, the next full pass comes sooner, backing off to the interval.
RETRY_FIRST = 2.0


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
    """The backend's quick check of the store, for the daemon's start (run in a background thread,
    on a connection of its own)."""
    try:
        with open_store(settings, readonly=True) as store:
            rows = store.recorder.quick_check()
    except HermesError as error:
        warn(f"hermes: watch: quick_check could not run: {error}")
        return
    if rows:
        warn(f"hermes: watch: event store {settings.db_path} fails quick_check: {'; '.join(rows[:5])}; "
             "run `hermes state doctor`")


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
        self._stopped = threading.Event()
        self._feed: ChangeFeed | None = None

    def stop(self) -> None:
        self._stopped.set()
        if self._feed is not None:
            self._feed.stop()

    def run(self) -> int:
        with open_store(self.settings, readonly=True) as store:
            # The feed is opened before the first pass: a commit during that pass then counts as new.
            feed = store.change_feed(use_notifications=not self.options.poll_only,
                                     poll_interval=self.options.poll_interval)
            with feed:
                self._feed = feed
                if self._stopped.is_set():
                    return 0
                reconciler = Reconciler(self.settings, store, report=self.report)
                reconciler.scandir.ensure()
                threading.Thread(target=quick_check, args=(self.settings, self.warn), daemon=True).start()
                next_full = self._pass(reconciler.full_pass, "start")
                while True:
                    wake = min(next_full, reconciler.next_retry())  # a profile's retry (backoff) may come first
                    why = feed.wait(timeout=max(0.0, wake - time.monotonic()))
                    if why == STOPPED:
                        return 0
                    if time.monotonic() >= next_full:
                        next_full = self._pass(reconciler.full_pass, "periodic")
                        continue
                    if why == IDLE:
                        if time.monotonic() >= reconciler.next_retry():
                            next_full = min(next_full, self._pass(reconciler.catch_up, "retry"))
                        continue
                    trigger = feed.notification_name if why == NOTIFIED else "poll"
                    next_full = min(next_full, self._pass(reconciler.catch_up, trigger))

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
