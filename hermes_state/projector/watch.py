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
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import BadInput, HermesError
from ..events import utc_now
from ..settings import Settings
from ..store import open_store
from ..store.recorder import IDLE, NOTIFIED, STOPPED, ChangeFeed
from .reconcile import PassReport, Reconciler, json_line

FULL_PASS_INTERVAL = 60.0
POLL_INTERVAL = 2.0
# After a pass that failed, the next full pass comes sooner, backing off to the interval.
RETRY_FIRST = 2.0


@dataclass(frozen=True)
class WatchOptions:
    poll_only: bool = False
    poll_interval: float = POLL_INTERVAL
    full_pass_interval: float = FULL_PASS_INTERVAL

    @classmethod
    def from_env(cls, poll_only: bool = False) -> "WatchOptions":
        """``HERMES_WATCH_POLL_INTERVAL`` / ``HERMES_WATCH_FULL_PASS_INTERVAL`` (seconds) tune the two clocks."""
        return cls(
            poll_only=poll_only,
            poll_interval=_seconds("HERMES_WATCH_POLL_INTERVAL", POLL_INTERVAL),
            full_pass_interval=_seconds("HERMES_WATCH_FULL_PASS_INTERVAL", FULL_PASS_INTERVAL),
        )


def _seconds(variable: str, default: float) -> float:
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.01 <= value <= 86400:
        raise BadInput(f"invalid {variable} {text!r}: expected seconds between 0.01 and 86400")
    return value


def quick_check(settings: Settings, say: Callable[[str], None]) -> None:
    """The backend's quick check of the store, for the daemon's start (run in a background thread,
    on a connection of its own)."""
    try:
        with open_store(settings, readonly=True) as store:
            rows = store.recorder.quick_check()
    except HermesError as error:
        say(f"hermes: watch: quick_check could not run: {error}")
        return
    if rows:
        say(f"hermes: watch: event store {settings.db_path} fails quick_check: {'; '.join(rows[:5])}; "
            "run `hermes state doctor`")


class Watcher:
    """The daemon's loop; ``stop()`` ends it (signal-safe)."""

    def __init__(
        self,
        settings: Settings,
        options: WatchOptions,
        *,
        report: Callable[[PassReport], None] = json_line,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.report = report
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
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
                threading.Thread(target=quick_check, args=(self.settings, self.say), daemon=True).start()
                next_full = self._pass(reconciler.full_pass, "start")
                while True:
                    why = feed.wait(timeout=max(0.0, next_full - time.monotonic()))
                    if why == STOPPED:
                        return 0
                    if time.monotonic() >= next_full:
                        next_full = self._pass(reconciler.full_pass, "periodic")
                        continue
                    if why == IDLE:
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
            self.say(json.dumps({"time": utc_now(), "trigger": trigger, "error": str(error)}, separators=(",", ":")))
        if not failed:
            self._retry = RETRY_FIRST / 2
            return time.monotonic() + self.options.full_pass_interval
        self._retry = min(self._retry * 2, self.options.full_pass_interval)
        return time.monotonic() + self._retry


def watch(settings: Settings, options: WatchOptions, *, report: Callable[[PassReport], None] = json_line) -> int:
    """Run until SIGTERM or SIGINT; clean exit 0."""
    watcher = Watcher(settings, options, report=report)
    previous = {sig: signal.signal(sig, lambda *_: watcher.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return watcher.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
