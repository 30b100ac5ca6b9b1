"""The cheap schema check short-lived processes make on a SQLite file.

Hooks and CLI commands must not import Alembic: they read
``alembic_version`` with one query and refuse a file that is not at
``HEAD`` (``store.revisions``). The functions take a driver (DB-API)
connection, so the check needs no SQLAlchemy either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the revision check must import without pathlib
    from pathlib import Path

from ...errors import SchemaMismatch

from ...store.revisions import HEAD, KNOWN_REVISIONS, describe_mismatch, recorded_revision  # noqa: F401  (re-exported)

# The tables every reader reads, as the migrations make them at HEAD: the sha256 of their
# ``sqlite_master.sql``. A file whose table was renamed and replaced (a view over a runaway
# query, a table without its CHECKs) is refused before a row is read.
# tests/test_hostile_store.py::test_the_recorded_tables_are_what_the_migrations_make keeps them true.
VERSION_TABLE = ("alembic_version", "2178ac174921dbea44557d477730d868fc34f8605138a794f77fa6b1e0fbdbee")
TABLES_AT_HEAD = {
    "events": "9cb0a36b550869c6f0827ebd4761eb829034f0fe3375f80a91057fef65989329",
    "profile_projection": "54ac386420b65605f88aa476e9b474b12035f4a898aa1c86372f5f0e701dc95d",
}


def current_revision(driver: Any) -> str | None:
    """The file's Alembic revision; None for a file with no tables at all."""
    tables = {name for (name,) in driver.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "alembic_version" not in tables:
        if tables - {"sqlite_sequence"}:
            raise SchemaMismatch("not a hermes-state database: it has tables but no alembic_version")
        return None
    return recorded_revision(driver)


def schema_objects(driver: Any) -> dict[str, tuple[str, str | None]]:
    """``sqlite_master``'s type and sql of the tables the store reads, by name."""
    names = (VERSION_TABLE[0], *TABLES_AT_HEAD)
    rows = driver.execute(
        f"SELECT name, type, sql FROM sqlite_master WHERE name IN ({', '.join('?' * len(names))})", names
    ).fetchall()
    return {str(name): (str(kind), sql if isinstance(sql, str) else None) for name, kind, sql in rows}


def _problem(name: str, found: tuple[str, str | None] | None, expected_sha256: str) -> str | None:
    from ...digest import sha256  # the interpreter's own: hashlib would load OpenSSL in every hook

    if found is None:
        return f"it has no table {name}"
    kind, sql = found
    if kind != "table":
        return f"{name} is a {kind}, not the table the migrations make"
    if sql is None or sha256(sql.encode("utf-8", "surrogatepass")).hexdigest() != expected_sha256:
        return f"table {name} is not the one the migrations make (its definition was changed)"
    return None


def require_head(driver: Any, path: Path | str) -> None:
    """The file is at HEAD and its tables are the migrations' own; SchemaMismatch (exit 5) otherwise."""
    objects = schema_objects(driver)
    if VERSION_TABLE[0] in objects:
        problem = _problem(VERSION_TABLE[0], objects[VERSION_TABLE[0]], VERSION_TABLE[1])
        if problem:
            raise SchemaMismatch(f"event store {path} refused: {problem}")
    problem = describe_mismatch(current_revision(driver), path)
    if problem:
        raise SchemaMismatch(problem)
    for name, expected in TABLES_AT_HEAD.items():
        problem = _problem(name, objects.get(name), expected)
        if problem:
            raise SchemaMismatch(f"event store {path} refused: {problem}; run `hermes-state doctor`")
