"""The hooks on a fleet host in an outage: the deadline, the facts they keep, the offline breaker.

A start or an exit is seen now, with its idempotency key chosen before the first attempt: an
append whose commit was lost in the outage, its replay, even a fact kept twice (the deadline
fires after the commit) are one event. What the database cannot take is kept in the spool
(``spool.py``) and appended at the host's next write. These return what happened or raise
StoreUnavailable; the CLI says it (``hermes_lifecycle_cli/commands/hooks.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING, Callable, Iterator, NoReturn

from ..records import Record
from . import spool

if TYPE_CHECKING:
    from ..crash_loop import CrashLoopPolicy
    from ..exits import ObservedExit
    from ..settings import Settings

# How long a fleet host's record-exit waits for the database before it keeps the exit instead:
# s6 kills `finish` after five seconds (timeout-finish), and the spool's fsyncs need their share.
EXIT_DEADLINE_SECONDS = 3.0


@contextlib.contextmanager
def deadline(seconds: float, past: Callable[[], int]) -> Iterator[None]:
    """Run the block under a SIGALRM timer; past ``seconds``, leave the process with ``past()``'s
    status, without unwinding through the driver (a server that accepted the connection and went
    silent: a ROLLBACK could wait as long again)."""

    def expired(signum: int, frame: object) -> NoReturn:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os._exit(past())

    signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class StartKeeper:
    """A fleet host's start, seen now: kept in the spool when the database cannot take it, so the
    log learns of the run when it returns."""

    def __init__(self, settings: "Settings", name: str) -> None:
        self.settings, self.name = settings, name
        self.seen_at, self.seen_ns = spool.observed_now()
        self.key = spool.new_key(spool.START)

    def keep(self) -> str:
        """Keep the start (the gateway's pid is this process's: ``run`` execs it); the file's path.
        StoreUnavailable when it cannot be kept."""
        settings = self.settings
        fact = spool.KeptStart(profile=self.name, pid=os.getpid(), observed_at=self.seen_at,
                               boot_id=settings.read_boot_id(), supervisor=os.getppid(), host=settings.host_id(),
                               key=self.key)
        return spool.keep(settings, fact, self.seen_ns)


class ExitKept(Record):
    """An exit kept in the spool: where, how many of the profile's exits the spool holds within the
    breaker's window (this one included), and whether the offline breaker holds the slot down."""

    path: str
    exits_in_window: int
    held_down: bool


class ExitKeeper:
    """A fleet host's exit, seen now, with s6's own words: kept in the spool when the database
    cannot take it, and counted there (the offline breaker: the store cannot count crashes now)."""

    def __init__(self, settings: "Settings", name: str, exit_code: str, signal_number: str, wantedup: str | None,
                 policy: "CrashLoopPolicy") -> None:
        self.settings, self.name, self.policy = settings, name, policy
        self.words = (exit_code, signal_number, wantedup or "")
        self.seen_at, self.seen_ns = spool.observed_now()
        self.key = spool.new_key()

    def keep(self, observed: "ObservedExit") -> ExitKept:
        """Keep the exit; StoreUnavailable when it cannot be kept (s6 restarts as usual then)."""
        settings, policy = self.settings, self.policy
        exit_code, signal_number, wantedup = self.words
        fact = spool.KeptExit(
            profile=self.name, exit_code=exit_code, signal=signal_number, wantedup=wantedup,
            observed_at=self.seen_at, boot_id=settings.read_boot_id(), supervisor=os.getppid(),
            host=settings.host_id(), key=self.key,
        )
        earlier = spool.recent_exits(settings, self.name, self.seen_ns - int(policy.window_seconds * 1e9))
        path = spool.keep(settings, fact, self.seen_ns)
        # Every exit s6 would restart counts (a clean exit or 78 would have held it down at once).
        held_down = observed.wantedup is not False and earlier + 1 >= policy.crashes
        return ExitKept(path, earlier + 1, held_down)
