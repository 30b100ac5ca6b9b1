"""The schema revisions this code knows, and the cheap check short-lived processes make.

Hooks and CLI commands must not import Alembic: they read
``alembic_version`` with one query and refuse a file that is not at
``HEAD``. The functions take a driver (DB-API) connection, so the check
needs no SQLAlchemy either.
``tests/test_schema.py::test_known_revisions_are_the_alembic_history``
checks these constants against the Alembic scripts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the revision check must import without pathlib
    from pathlib import Path

from ...errors import SchemaMismatch

KNOWN_REVISIONS = ("0001_events", "0002_chain_version", "0003_crash_loops_stopped_for")  # oldest first
HEAD = KNOWN_REVISIONS[-1]


def current_revision(driver: Any) -> str | None:
    """The file's Alembic revision; None for a file with no tables at all."""
    tables = {name for (name,) in driver.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "alembic_version" not in tables:
        if tables - {"sqlite_sequence"}:
            raise SchemaMismatch("not a hermes-state database: it has tables but no alembic_version")
        return None
    rows = driver.execute("SELECT version_num FROM alembic_version").fetchall()
    if len(rows) != 1:
        raise SchemaMismatch(f"alembic_version holds {len(rows)} rows, expected one")
    return rows[0][0]


def describe_mismatch(revision: str | None, path: Path | str) -> str | None:
    """None when ``revision`` is the code's; else the one line that says what to do."""
    if revision == HEAD:
        return None
    if revision is None:
        return f"event store {path} is empty: run `hermes state migrate`"
    if revision in KNOWN_REVISIONS:
        return f"event store {path} is at schema {revision}, this code needs {HEAD}: run `hermes state migrate`"
    return (
        f"event store {path} has schema {revision}, newer than this code knows ({HEAD}): "
        "upgrade hermes-state; the file was not touched"
    )


def require_head(driver: Any, path: Path | str) -> None:
    problem = describe_mismatch(current_revision(driver), path)
    if problem:
        raise SchemaMismatch(problem)
