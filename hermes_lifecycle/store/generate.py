"""Compile ``statements`` with one backend's dialect into a plain Python module of SQL text.

    python -m hermes_lifecycle.store.generate sqlite > hermes_lifecycle/backends/sqlite/sql.py
    python -m hermes_lifecycle.store.generate postgresql > hermes_lifecycle/backends/postgresql/sql.py

(`make sql` runs it.) The module it writes imports nothing, so running its
SQL needs only the database driver.
"""

from __future__ import annotations

import sys

from .statements import definitions

HEADER = '''"""The SQL the {backend} recorder runs: generated from hermes_lifecycle/store/statements.py; do not edit.

Regenerate with `make sql`; tests/test_generated_sql.py fails when this file is stale.
Each entry is (SQL text, parameter names in the order the driver takes them).
"""

'''


def dialect_for(backend: str):
    if backend == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.dialect(paramstyle="qmark")
    if backend == "postgresql":
        from sqlalchemy.dialects.postgresql import psycopg

        # Positional, as the SQLite module: one recorder code path picks parameters by name.
        return psycopg.dialect(paramstyle="format")
    raise SystemExit(f"unknown backend {backend!r}: expected sqlite or postgresql")


def compiled(backend: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every statement's SQL and parameter names, compiled for ``backend``."""
    dialect = dialect_for(backend)
    result = {}
    for name, (statement, column_keys) in definitions(typed=backend != "sqlite").items():
        unit = statement.compile(
            dialect=dialect,
            column_keys=list(column_keys) if column_keys is not None else None,
            compile_kwargs={"render_postcompile": True},
        )
        constants = {key for key, value in unit.params.items() if value is not None and not unit.binds[key].required}
        if constants:
            # A constant bound as a parameter would be lost in the generated text (and hides
            # a literal from SQLite's partial-index matching): write it as literal SQL.
            raise SystemExit(f"statement {name!r} binds constants {sorted(constants)}: use literal SQL")
        names = tuple(unit.positiontup or ()) if dialect.positional else tuple(unit.params)
        result[name] = (unit.string, names)
    return result


def module_text(backend: str) -> str:
    lines = [HEADER.format(backend=backend)]
    for name, (sql, names) in sorted(compiled(backend).items()):
        lines.append(f"{name.upper()} = (\n    {sql!r},\n    {names!r},\n)\n")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m hermes_lifecycle.store.generate BACKEND", file=sys.stderr)
        return 2
    sys.stdout.write(module_text(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
