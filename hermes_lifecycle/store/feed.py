"""Why a change feed's ``wait`` returned (``store.recorder.ChangeFeed``).

Apart from the recorder, which every hook imports: only the daemons and
``history --follow`` wait on a feed, and only they pay for defining the enum.
"""

from __future__ import annotations

from enum import StrEnum


class FeedResult(StrEnum):
    NOTIFIED = "notified"  # the database said it changed, and it has
    POLLED = "polled"  # no notification, but the poll found a change
    IDLE = "idle"  # nothing changed before the timeout
    STOPPED = "stopped"  # stop() was called
    REPLACED = "replaced"  # the store's path names another file now (or none): reopen, or stop
    RECONNECTED = "reconnected"  # the database answers again after it could not be reached: look at everything


NOTIFIED, POLLED, IDLE, STOPPED, REPLACED, RECONNECTED = FeedResult
