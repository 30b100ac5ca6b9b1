"""The schema revisions this code knows (the Alembic history), and what to say of any other.

Every backend checks its store against ``HEAD`` when it opens it, without
importing Alembic: ``tests/test_schema.py::test_known_revisions_are_the_alembic_history``
keeps these constants true to the scripts.
"""

from __future__ import annotations

from typing import Any

from ..errors import SchemaMismatch

KNOWN_REVISIONS = (  # oldest first
    "0001_events",
    "0002_chain_version",
    "0003_crash_loops_stopped_for",
    "0004_fleet_hosts",
    "0005_projection_crashes",
    "0006_gateway_reports",
    "0007_fleet_host_roles",
)
HEAD = KNOWN_REVISIONS[-1]


def recorded_revision(driver: Any) -> str:
    """The one revision ``alembic_version`` holds (any DB-API connection, either backend);
    SchemaMismatch when it holds none or several."""
    rows = driver.execute("SELECT version_num FROM alembic_version").fetchall()
    if len(rows) != 1:
        raise SchemaMismatch(f"alembic_version holds {len(rows)} rows, expected one")
    return rows[0][0]


def describe_mismatch(revision: str | None, location: object) -> str | None:
    """None when ``revision`` is the code's; else the one line that says what to do."""
    if revision == HEAD:
        return None
    if revision is None:
        return f"event store {location} is empty: run `hermes-state migrate`"
    if revision in KNOWN_REVISIONS:
        return f"event store {location} is at schema {revision}, this code needs {HEAD}: run `hermes-state migrate`"
    return (
        f"event store {location} has schema {revision}, newer than this code knows ({HEAD}): "
        "upgrade hermes-state; the store was not touched"
    )


def migrations_dir() -> str:
    """The revisions shipped inside the installed package (``migrations/`` in the repository)."""
    import os

    from .. import migrations  # type: ignore[attr-defined]  # installed from migrations/ (pyproject's package-dir)

    return os.path.dirname(migrations.__file__)
