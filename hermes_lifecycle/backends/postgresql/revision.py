"""The check every open makes on a PostgreSQL store: at the code's revision, with the tables it reads."""

from __future__ import annotations

from typing import Any

from ...errors import SchemaMismatch
from ...store.revisions import describe_mismatch, recorded_revision

# What the store reads and relies on; doctor checks the rest (views, triggers, roles).
TABLES = ("events", "profile_projection")


def current_revision(driver: Any) -> str | None:
    """The database's Alembic revision; None where the store's tables were never made."""
    present = driver.execute(
        "SELECT to_regclass('alembic_version') IS NOT NULL, to_regclass('events') IS NOT NULL"
    ).fetchone()
    if not present[0]:
        if present[1]:
            raise SchemaMismatch("not a hermes-state database: it has an events table but no alembic_version")
        return None
    return recorded_revision(driver)


def require_head(driver: Any, location: str) -> None:
    """The store is at HEAD and has its tables; SchemaMismatch (exit 5) otherwise."""
    problem = describe_mismatch(current_revision(driver), location)
    if problem:
        raise SchemaMismatch(problem)
    kinds = dict(driver.execute(
        "SELECT c.relname, c.relkind FROM pg_class c "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s)",
        (list(TABLES),),
    ).fetchall())
    for name in TABLES:
        if kinds.get(name) != "r":
            raise SchemaMismatch(f"event store {location} refused: {name} is not the table the migrations make")
