"""The SQLite change feed: inotify on the database's directory, checked against ``PRAGMA data_version``.

watchdog reports writes to the database or its ``-wal``; inotify can drop
events (a queue overflow is silent in watchdog) and some mounts have none, so
the feed also polls ``data_version`` every ``poll_interval``. A wake-up is
only a hint: ``wait`` says "changed" only once ``data_version`` (which moves
when another connection commits) has moved, so a reader that acts on it is
level-triggered and "nothing new" costs no query on ``events``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

from ...store.recorder import ChangeFeed
from ...store.feed import IDLE, NOTIFIED, POLLED, REPLACED, STOPPED, FeedResult

# inotify reports the writer's first write to the WAL; the commit becomes
# visible only after its fsync, when SQLite updates the WAL index in shared
# memory, which makes no inotify event. So after a notification, look for
# the commit every 2 ms for up to ~130 ms (data_version costs microseconds).
SETTLE_PAUSES = (0.002,) * 65


class SqliteChangeFeed(ChangeFeed):
    notification_name = "inotify"

    def __init__(
        self,
        path: str,
        data_version: Callable[[], int],
        *,
        use_notifications: bool,
        poll_interval: float,
        replaced: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._path = path
        self._data_version = data_version
        self._replaced = replaced
        self._use_inotify = use_notifications
        self._poll_interval = poll_interval
        self._changed = threading.Event()
        self._stopped = threading.Event()
        self._observer: Any = None
        self._names = {os.path.basename(path), f"{os.path.basename(path)}-wal"}
        self._seen = data_version()
        if use_notifications:
            self._start_observer()

    def _start_observer(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        feed = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                for path in (event.src_path, getattr(event, "dest_path", "")):
                    if path and os.path.basename(os.fsdecode(path)) in feed._names:
                        feed._changed.set()
                        return

        observer = Observer()
        observer.schedule(Handler(), os.path.dirname(os.path.abspath(self._path)), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def wait(self, timeout: float) -> FeedResult:
        deadline = time.monotonic() + timeout
        while True:
            if self._stopped.is_set():
                return STOPPED
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return IDLE
            limit = min(remaining, self._poll_interval)
            if self._use_inotify:
                notified = self._changed.wait(limit)
            else:
                notified = False
                self._stopped.wait(limit)
            if self._stopped.is_set():
                return STOPPED
            # A rename over the file, or a new way to it, changes no data_version: ask the path.
            why = self._replaced()
            if why is not None:
                self.replaced = why
                return REPLACED
            if notified:
                self._changed.clear()
                if self._settled():
                    return NOTIFIED
            elif self._moved():
                return POLLED

    def _moved(self) -> bool:
        version = self._data_version()
        if version == self._seen:
            return False
        self._seen = version
        return True

    def _settled(self) -> bool:
        """Whether the commit that woke us became visible within the settle time."""
        for pause in SETTLE_PAUSES:
            if self._moved():
                return True
            time.sleep(pause)
        return self._moved()

    def stop(self) -> None:
        self._stopped.set()
        self._changed.set()

    def close(self) -> None:
        self.stop()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
