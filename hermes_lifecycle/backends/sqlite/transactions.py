"""Transactions on a driver connection: ``BEGIN IMMEDIATE`` for writers, with a bounded retry.

Writers start every transaction with ``BEGIN IMMEDIATE``: a deferred
transaction that later upgrades to a write gets SQLITE_BUSY without waiting
for the busy timeout, which several writing processes would hit constantly.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator

from ...errors import StoreLocked
from .translate import translated


def begin_with_retry(begin: Callable[[], object], location: str, busy_timeout_ms: int) -> None:
    """Begin a write transaction, retrying an immediate SQLITE_BUSY until the busy timeout.

    The busy timeout already waits for the lock. SQLite can still return
    SQLITE_BUSY at once, without calling the busy handler (e.g. while another
    connection recovers the WAL), so a failed BEGIN is retried with backoff,
    but never past the busy timeout.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.005
    while True:
        try:
            with translated(location):
                begin()
            return
        except StoreLocked:
            if time.monotonic() + pause >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


@contextlib.contextmanager
def driver_transaction(driver: Any, location: str, busy_timeout_ms: int, *, write: bool) -> Iterator[Any]:
    """A transaction on a driver (DB-API) connection; commits on success, rolls back otherwise.

    Writers begin ``IMMEDIATE`` (``begin_with_retry``); readers begin deferred,
    for one consistent snapshot. Errors are translated to the store's own.
    """
    if write:
        begin_with_retry(lambda: driver.execute("BEGIN IMMEDIATE"), location, busy_timeout_ms)
    else:
        with translated(location):
            driver.execute("BEGIN")
    try:
        with translated(location):
            yield driver
            driver.execute("COMMIT")
    except BaseException:
        # Also after a failed COMMIT: a long-lived connection's next BEGIN must
        # not find this transaction still open.
        if driver.in_transaction:
            with translated(location):
                driver.execute("ROLLBACK")
        raise
