"""Opening a driver connection on the store: the URI, the pragmas, the busy timeout, the bounds.

Shared by the recorder, doctor's checks, ``hermes-state sql`` and the engine
Alembic runs on (``engine.make_engine``), so every connection opens the file
the same way; it imports neither SQLAlchemy nor pathlib.

The file is the gateway user's, so its schema is input too (docs/reliability.md,
"Root bounds time and memory"). From before the first statement, every
connection runs under ``StatementBound`` (SQLite's progress handler: a time
bound, ``interrupt()``, and the process's stop) and SQLite's hard heap limit;
the schema is read under a budget of virtual-machine steps, so a schema of
300,000 views is refused in milliseconds instead of parsed for minutes.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Iterator

from ...errors import SchemaMismatch, StoreUnavailable
from ...store.recorder import statements_stopped
from .driver import sqlite_module


OCTET_LENGTH_SINCE = (3, 43, 0)
PROGRESS_STEPS = 1000  # SQLite virtual-machine steps between two looks at the bound
# SQLite's heap, for the whole process (it can only be lowered): every reader's values are bounded
# far below it (a row's columns by the bounds in sql.py), so only a hostile schema or value meets it.
HEAP_LIMIT_BYTES = 128 * 1024 * 1024
# Steps the schema may take to read (the migrations' own: under 200; each object costs about 7).
SCHEMA_STEPS = 20_000


class StatementBound:
    """One connection's progress handler: non-zero stops the running statement (SQLITE_INTERRUPT).

    It stops a statement past its ``deadline`` (when one is armed), every statement once
    ``interrupt()`` was called or the process is stopping (``store.recorder.stop_every_statement``),
    and the statement that reads the schema past its budget of steps.
    """

    __slots__ = ("deadline", "interrupted", "_budget", "exhausted")

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.interrupted = False
        self._budget: int | None = None  # progress calls left for the schema read, while it runs
        self.exhausted = False

    def arm(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def disarm(self) -> None:
        self.deadline = None

    def interrupt(self) -> None:
        self.interrupted = True

    def __call__(self) -> int:
        if self.interrupted or statements_stopped():
            return 1
        if self._budget is not None:
            self._budget -= 1
            if self._budget < 0:
                self.exhausted = True
                return 1
        deadline = self.deadline
        return 1 if deadline is not None and time.monotonic() > deadline else 0

    @contextlib.contextmanager
    def schema_budget(self, path: str) -> Iterator[None]:
        """Statements that may read the schema (the open's; the first after it changed) run within
        SCHEMA_STEPS in all; beyond, SchemaMismatch (exit 5), the schema never read whole."""
        self._budget, self.exhausted = SCHEMA_STEPS // PROGRESS_STEPS, False
        try:
            yield
        except sqlite_module().Error:
            if self.exhausted:
                raise SchemaMismatch(
                    f"event store {path} refused: its schema is far larger than the migrations make "
                    f"(more than {SCHEMA_STEPS} steps to read it)"
                ) from None
            raise
        finally:
            self._budget = None

    def read_schema(self, connection: Any, path: str) -> None:
        """Make SQLite read the schema now, within its budget."""
        with self.schema_budget(path):
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()


def _octet_length(value: Any) -> int | None:
    """SQLite's octet_length: the bytes of a value as text (UTF-8) or blob; NULL for NULL."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return len(value)
    return len(str(value).encode("utf-8", "surrogatepass"))


def uri_for(path: str, mode: str = "ro") -> str:
    """A SQLite ``file:`` URI for ``path``: '%', '?' and '#' escaped, so no name can add parameters."""
    absolute = os.path.abspath(path)
    escaped = absolute.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    return f"file:{escaped}?mode={mode}"


OPEN_SECONDS = 10.0  # the open's own statements, the schema's read included


def open_connection(path: str, *, mode: str, timeout_ms: int, bound: StatementBound | None = None) -> Any:
    """A driver connection in autocommit (we issue BEGIN ourselves), with the store's pragmas and bounds.

    ``mode`` is SQLite's: ``ro``, ``rw`` or ``rwc`` (create; migration only).
    WAL is not set here: it is a property of the file, set once by the
    migration; setting it on open would write to a file not yet known to be
    ours (a foreign or newer one must be refused untouched). ``bound`` is the
    connection's progress handler (a fresh one when None): armed for the open,
    disarmed after it; its owner arms it for each statement it runs.
    """
    module = sqlite_module()
    bound = bound or StatementBound()
    connection = module.connect(
        uri_for(path, mode), uri=True, timeout=timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        # Before any statement: some pragmas, and every statement that names a table, make SQLite
        # parse the schema; all of them run within the schema's budget.
        connection.set_progress_handler(bound, PROGRESS_STEPS)
        bound.arm(OPEN_SECONDS)
        with bound.schema_budget(path):
            connection.execute(f"PRAGMA hard_heap_limit = {HEAP_LIMIT_BYTES}")
            if module.sqlite_version_info < OCTET_LENGTH_SINCE:
                # The bounded reads (sql.py) name octet_length, which SQLite reads from a
                # value's header since 3.43; before, this stand-in gives the same answers (loading the value).
                connection.create_function("octet_length", 1, _octet_length, deterministic=True)
            connection.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
            connection.execute("PRAGMA trusted_schema = OFF")
            connection.execute("PRAGMA foreign_keys = ON")
            if mode == "ro":
                connection.execute("PRAGMA query_only = ON")
            else:
                connection.execute("PRAGMA synchronous = FULL")  # an audit log: durable commits
            # Read the schema now, so a garbage file fails at open, not later.
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except MemoryError:
        connection.close()
        raise out_of_memory(path) from None
    except BaseException:
        connection.close()
        raise
    finally:
        bound.disarm()
    return connection


def out_of_memory(path: str) -> StoreUnavailable:
    """What SQLite's heap limit (a MemoryError from the driver) means for the store."""
    return StoreUnavailable(
        f"event store {path} refused: reading it needs more than the {HEAP_LIMIT_BYTES >> 20} MiB a reader may use"
    )
