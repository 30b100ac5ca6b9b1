"""One place that turns psycopg's errors into the store's own, each with its exit status."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from ...errors import (
    BadInput,
    HermesError,
    NotThisHost,
    SchemaMismatch,
    StoreCorrupt,
    StoreFull,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
    StoreUnreachable,
    VersionConflict,
)

# SQLSTATE classes and codes (PostgreSQL's appendix A) -> (error, what it means for the store).
_BY_SQLSTATE: tuple[tuple[str, type[HermesError], str], ...] = (
    ("55P03", StoreLocked, "is locked by another writer (lock_timeout)"),
    ("40P01", StoreLocked, "is locked (a deadlock was broken)"),
    ("40001", StoreLocked, "is busy (a serialization failure)"),
    ("25006", StoreReadOnly, "is read-only"),
    ("42501", StoreReadOnly, "refused this role (permission denied)"),
    ("HS001", NotThisHost, "refused the event"),  # migration 0007: another host's gateway
    ("53100", StoreFull, "is full (the database server has no disk space left)"),
    ("53", StoreUnavailable, "is out of resources"),
    ("57014", StoreUnavailable, "stopped a statement (it ran past its time bound, or the process is stopping)"),
    ("57P", StoreUnreachable, "is unreachable (the database server is shutting down or restarting)"),
    ("08", StoreUnreachable, "is unreachable"),
    ("XX001", StoreCorrupt, "is corrupt"),
    ("XX002", StoreCorrupt, "is corrupt (an index)"),
    ("42P01", SchemaMismatch, "lacks a table or view the code needs: run `hermes-state migrate`"),
    ("42703", SchemaMismatch, "lacks a column the code needs: run `hermes-state migrate`"),
    ("23505", VersionConflict, "refused a duplicate (another writer won the race)"),
    ("23", BadInput, "refused the row"),
    ("P0001", StoreUnavailable, "refused the statement"),
)


def translate(error: BaseException, location: str, *, locked_is_unreachable: bool = False) -> HermesError:
    """The store error for a psycopg (or SQLAlchemy-wrapped psycopg) error.

    ``locked_is_unreachable``: a read kept waiting past the busy timeout by a lock another
    session holds (a migration, an operator's DDL) cannot be answered in time, as when the
    server is away: boot then brings the slots up from its snapshot (docs/fleet.md, "Outages").
    """
    original = getattr(error, "orig", None) or error
    sqlstate = getattr(original, "sqlstate", None) or ""
    text = str(original).strip()
    detail = text.splitlines()[0] if text else type(original).__name__
    if locked_is_unreachable and sqlstate == "55P03":
        return StoreUnreachable(f"event store {location} is unreachable: a lock held by another session "
                                f"kept a read waiting past the busy timeout: {detail}")
    for prefix, kind, what in _BY_SQLSTATE:
        if sqlstate.startswith(prefix):
            return kind(f"event store {location} {what}: {detail}")
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(original, psycopg.OperationalError):
        # No SQLSTATE: the connection could not be made, or was lost.
        return StoreUnreachable(f"event store {location} is unreachable: {detail}")
    return StoreUnavailable(f"event store {location} failed: {detail}")


@contextlib.contextmanager
def translated(location: str, *, locked_is_unreachable: bool = False) -> Iterator[None]:
    """Re-raise psycopg (and, where in use, SQLAlchemy) database errors as the store's own."""
    import psycopg

    try:
        yield
    except psycopg.Error as error:
        raise translate(error, location, locked_is_unreachable=locked_is_unreachable) from error
    except Exception as error:
        sa_exc = sys.modules.get("sqlalchemy.exc")  # migrations only
        if sa_exc is None or not isinstance(error, sa_exc.SQLAlchemyError):
            raise
        if isinstance(error, sa_exc.DBAPIError):
            raise translate(error, location) from error
        raise StoreUnavailable(f"event store {location} failed: {error}") from error
