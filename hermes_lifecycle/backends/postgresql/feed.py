"""The PostgreSQL change feed: LISTEN/NOTIFY, checked against the log's newest position.

Every insert into ``events`` notifies ``hermes_events`` (migration 0004's
trigger). The feed listens on a connection of its own and wakes its reader
when a notification arrives or, failing that, every ``poll_interval``; either
way it reports a change only when the newest position moved. A lost listening
connection is made again at the next poll, and a change missed meanwhile is
still found: the position check does not depend on the notification. Once
the database answers again after a lost connection (a restart, a failover),
the feed says ``RECONNECTED`` whether or not the position moved, so its
reader looks at everything (the watch daemon's full pass): a pass that failed
during the outage is not left waiting for the next event.

Any role that may connect may NOTIFY the channel, as often as it likes. So a
notification is acted on at most once per ``NOTIFIED_CHECK_SECONDS``: the
first after a quiet spell at once, the ones that follow it within that time
together, when it has passed (meanwhile the listening socket is not watched,
and what queued there is consumed in one go). A flood of notifications costs
the daemon one position check per interval, not one per notification.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from typing import Any, Protocol

from ...errors import HermesError
from ...store.recorder import ChangeFeed
from ...store.feed import IDLE, NOTIFIED, POLLED, RECONNECTED, STOPPED, FeedResult
from .connect import connect



class FeedSource(Protocol):
    """What the feed needs of its recorder: where to listen, and the newest position. A protocol,
    not the recorder's class, so the recorder imports the feed and never the other way round."""

    url: str
    location: str
    lock_timeout_ms: int

    def current_position(self) -> int | None: ...

CHANNEL = "hermes_events"
# How often notifications may lead to a look at the newest position (a flood is coalesced).
NOTIFIED_CHECK_SECONDS = 0.05


class PostgresChangeFeed(ChangeFeed):
    notification_name = "notify"

    def __init__(self, recorder: FeedSource, *, use_notifications: bool, poll_interval: float) -> None:
        self._recorder = recorder
        self._use_notifications = use_notifications
        self._poll_interval = poll_interval
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._stopped = False
        self._listener: Any = None
        self._next_poll = time.monotonic() + poll_interval
        self._notified = False  # notifications drained and not yet checked (until _next_check)
        self._next_check = 0.0
        self._listen()
        self._seen = self._position()
        self._lost = self._seen is None  # True from a lost connection until the database answers again

    def _listen(self) -> None:
        """(Re)open the listening connection; on failure the feed polls until the next try."""
        if not self._use_notifications or self._listener is not None:
            return
        try:
            listener = connect(self._recorder.url, self._recorder.location, readonly=True,
                               lock_timeout_ms=self._recorder.lock_timeout_ms)
        except HermesError:
            return  # the database is away: the poll goes on, and so do the tries to listen
        try:
            listener.execute(f"LISTEN {CHANNEL}")
        except Exception:
            listener.close()
            return
        self._listener = listener

    def _position(self) -> int | None:
        """The newest position, or None while the database cannot be reached."""
        try:
            return self._recorder.current_position()
        except HermesError:
            return None

    def _drain(self) -> bool:
        """Consume the notifications that arrived; False when the listening connection is lost."""
        try:
            for _ in self._listener.notifies(timeout=0):
                pass
            return True
        except Exception:
            with contextlib.suppress(Exception):
                self._listener.close()
            self._listener = None
            self._lost = True  # notifications may have been missed: a reconnect to report
            return False

    def _changed(self, kind: FeedResult) -> FeedResult | None:
        """``kind`` when the newest position moved, RECONNECTED after an outage, else None."""
        position = self._position()
        if position is None:
            # Unreachable is not a change: the reader's own next pass meets (and reports) the outage.
            self._lost = True
            return None
        if self._lost:
            self._lost = False
            self._seen = position
            return RECONNECTED
        if position == self._seen:
            return None
        self._seen = position
        return kind

    def _check_notified(self) -> FeedResult | None:
        """Act on the notifications drained so far (and any queued since): one position check."""
        self._notified = False
        if self._listener is not None and not self._drain():
            return None  # the listening connection is lost: the next poll reconnects
        self._next_check = time.monotonic() + NOTIFIED_CHECK_SECONDS
        return self._changed(NOTIFIED)

    def wait(self, timeout: float) -> FeedResult:
        deadline = time.monotonic() + timeout
        while True:
            if self._stopped:
                return STOPPED
            now = time.monotonic()
            if now >= self._next_poll:
                self._next_poll = now + self._poll_interval
                self._listen()
                why = self._changed(POLLED)
                if why is not None:
                    return why
            if self._notified and now >= self._next_check:
                why = self._check_notified()
                if why is not None:
                    return why
            if now >= deadline:
                return IDLE
            watched = [self._wake_read]
            # While notifications wait for their check, more of them change nothing: not watched.
            listening = self._listener is not None and not self._notified
            if listening:
                watched.append(self._listener.fileno())
            wake_at = min(deadline, self._next_poll, self._next_check if self._notified else deadline)
            ready, _, _ = select.select(watched, [], [], max(0.0, wake_at - now))
            if self._wake_read in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_read, 64)
                continue
            if listening and self._listener.fileno() in ready and self._drain():
                self._notified = True  # checked at once, or with the others at _next_check

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._listener.close()
            self._listener = None
        for descriptor in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(descriptor)
