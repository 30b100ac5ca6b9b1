"""The wake-up shared by the watch daemon and `history --follow`: a hint that the log may have grown.

watchdog reports writes to the database or its ``-wal``; because inotify can
drop events (a queue overflow is silent in watchdog) and some mounts have
none, ``wait`` also returns after ``poll_interval`` regardless. A wake-up is
only a hint: the caller then looks at the log (``PRAGMA data_version`` or the
highest position) and acts on what it finds, level-triggered.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

POLL_INTERVAL = 2.0


class LogWakeup:
    """Use as a context manager; ``wait()`` returns "change", "poll" or "stopped"."""

    def __init__(self, db_path: Path, *, use_inotify: bool = True, poll_interval: float = POLL_INTERVAL) -> None:
        self.db_path = Path(db_path)
        self.use_inotify = use_inotify
        self.poll_interval = poll_interval
        self._changed = threading.Event()
        self._stopped = threading.Event()
        self._observer = None
        self._names = {self.db_path.name, f"{self.db_path.name}-wal"}

    def __enter__(self) -> "LogWakeup":
        if self.use_inotify:
            self._start_observer()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start_observer(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        wakeup = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                for path in (event.src_path, getattr(event, "dest_path", "")):
                    if path and os.path.basename(os.fsdecode(path)) in wakeup._names:
                        wakeup._changed.set()
                        return

        observer = Observer()
        observer.schedule(Handler(), str(self.db_path.parent), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def wait(self, timeout: float | None = None) -> str:
        """Block until the files change, the poll interval (or ``timeout``) passes, or ``stop()``."""
        limit = self.poll_interval if timeout is None else min(timeout, self.poll_interval)
        if self._stopped.is_set():
            return "stopped"
        if self.use_inotify:
            changed = self._changed.wait(limit)
        else:
            changed = False
            self._stopped.wait(limit)
        if self._stopped.is_set():
            return "stopped"
        if changed:
            self._changed.clear()
            return "change"
        return "poll"

    def stop(self) -> None:
        """Make ``wait`` return "stopped" now (safe from a signal handler)."""
        self._stopped.set()
        self._changed.set()

    def close(self) -> None:
        self.stop()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
