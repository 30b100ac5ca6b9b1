"""One place that turns driver errors into the store's own, each with its exit status."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # annotations only: readers that must start fast import this module
    from pathlib import Path

from ...errors import (
    BadInput,
    Conflict,
    HermesError,
    StoreCorrupt,
    StoreFull,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
)

# SQLite primary result codes by name (sqlite_errorname gives extended names,
# e.g. SQLITE_BUSY_SNAPSHOT, so match on the prefix).
_BY_CODE: tuple[tuple[str, type[HermesError], str], ...] = (
    ("SQLITE_BUSY", StoreLocked, "is locked by another process"),
    ("SQLITE_LOCKED", StoreLocked, "is locked"),
    ("SQLITE_READONLY", StoreReadOnly, "is read-only"),
    ("SQLITE_FULL", StoreFull, "is full (no space left)"),
    ("SQLITE_CORRUPT", StoreCorrupt, "is corrupt"),
    ("SQLITE_NOTADB", StoreCorrupt, "is not a SQLite database (corrupt?)"),
    ("SQLITE_CANTOPEN", StoreUnavailable, "cannot be opened"),
    ("SQLITE_PERM", StoreUnavailable, "cannot be opened (permission denied)"),
    ("SQLITE_AUTH", StoreUnavailable, "refused access"),
    ("SQLITE_IOERR", StoreUnavailable, "had an I/O error"),
    ("SQLITE_INTERRUPT", StoreUnavailable,
     "stopped a statement (it ran past its time bound, or the process is stopping)"),
)
# The standard library before 3.11 has no sqlite_errorname: fall back on messages.
_BY_MESSAGE: tuple[tuple[str, str], ...] = (
    ("database is locked", "SQLITE_BUSY"),
    ("database table is locked", "SQLITE_LOCKED"),
    ("readonly database", "SQLITE_READONLY"),
    ("database or disk is full", "SQLITE_FULL"),
    ("disk image is malformed", "SQLITE_CORRUPT"),
    ("file is not a database", "SQLITE_NOTADB"),
    ("unable to open database", "SQLITE_CANTOPEN"),
    ("disk i/o error", "SQLITE_IOERR"),
    ("interrupted", "SQLITE_INTERRUPT"),
)


def error_name(error: BaseException) -> str | None:
    name = getattr(error, "sqlite_errorname", None)
    if name:
        return name
    message = str(error).lower()
    for fragment, code in _BY_MESSAGE:
        if fragment in message:
            return code
    return None


def translate(error: BaseException, path: Path | str) -> HermesError:
    """The store error for a driver (or SQLAlchemy-wrapped driver) error."""
    original = getattr(error, "orig", None) or error
    name = error_name(original) or ""
    detail = str(original).splitlines()[0] if str(original) else type(original).__name__
    for prefix, kind, what in _BY_CODE:
        if name.startswith(prefix):
            return kind(f"event store {path} {what}: {detail}")
    if name.startswith("SQLITE_CONSTRAINT") or _is_integrity_error(error):
        if "UNIQUE" in detail:
            return Conflict(f"event store {path} refused a duplicate: {detail}")
        return BadInput(f"event store {path} refused the row: {detail}")
    return StoreUnavailable(f"event store {path} failed: {detail}")


@contextlib.contextmanager
def translated(path: Path | str) -> Iterator[None]:
    """Re-raise driver (and, where SQLAlchemy is in use, SQLAlchemy) database errors as the store's own."""
    try:
        yield
    except _driver_errors() as error:
        raise translate(error, path) from error
    except MemoryError:
        # SQLite's heap limit (connect.HEAP_LIMIT_BYTES) reached: the driver raises MemoryError.
        from .connect import out_of_memory

        raise out_of_memory(str(path)) from None
    except Exception as error:
        # Only migrations and the schema tests import SQLAlchemy; the hot paths never load it for this.
        sa_exc = sys.modules.get("sqlalchemy.exc")
        if sa_exc is None or not isinstance(error, sa_exc.SQLAlchemyError):
            raise
        if isinstance(error, sa_exc.DBAPIError):
            raise translate(error, path) from error
        raise StoreUnavailable(f"event store {path} failed: {error}") from error


def _is_integrity_error(error: BaseException) -> bool:
    sa_exc = sys.modules.get("sqlalchemy.exc")  # only where the error came through SQLAlchemy
    return sa_exc is not None and isinstance(error, sa_exc.IntegrityError)


def _driver_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    from .driver import sqlite_module

    return (sqlite3.Error, sqlite_module().Error)
