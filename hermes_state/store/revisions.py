"""The schema revisions this code knows (the Alembic history), and what to say of any other.

Every backend checks its store against ``HEAD`` when it opens it, without
importing Alembic: ``tests/test_schema.py::test_known_revisions_are_the_alembic_history``
keeps these constants true to the scripts.
"""

from __future__ import annotations

KNOWN_REVISIONS = (  # oldest first
    "0001_events",
    "0002_chain_version",
    "0003_crash_loops_stopped_for",
    "0004_fleet_hosts",
    "0005_projection_crashes",
)
HEAD = KNOWN_REVISIONS[-1]


def describe_mismatch(revision: str | None, location: object) -> str | None:
    """None when ``revision`` is the code's; else the one line that says what to do."""
    if revision == HEAD:
        return None
    if revision is None:
        return f"event store {location} is empty: run `hermes state migrate`"
    if revision in KNOWN_REVISIONS:
        return f"event store {location} is at schema {revision}, this code needs {HEAD}: run `hermes state migrate`"
    return (
        f"event store {location} has schema {revision}, newer than this code knows ({HEAD}): "
        "upgrade hermes-state; the store was not touched"
    )


def migrations_dir() -> str:
    """The revisions shipped inside the installed package (``migrations/`` in the repository)."""
    import os

    from .. import migrations

    return os.path.dirname(migrations.__file__)
