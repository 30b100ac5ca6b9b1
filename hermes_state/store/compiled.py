"""SQLAlchemy Core statements compiled once, executed on the driver's connection.

The store's hot path (an append is four statements and a commit) would
spend most of its time in SQLAlchemy's execution machinery, not in SQLite.
So statements are still written in Core, and compiled by the engine's own
dialect (what keeps them portable to PostgreSQL), but the compiled SQL runs
on the DBAPI cursor with its parameters in the driver's paramstyle.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql import ClauseElement

_REQUIRED = "REQUIRED"


class Compiled:
    """One statement, compiled for one dialect."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None) -> None:
        compiled = statement.compile(
            dialect=dialect,
            column_keys=list(column_keys) if column_keys is not None else None,
            compile_kwargs={"render_postcompile": True},
        )
        self.sql: str = compiled.string
        self._positional = dialect.positional
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ()) if dialect.positional else ()
        # Builds the positional parameter tuple in C: an append runs this on every statement.
        self._pick = _picker(self._names)
        # Values bound into the statement itself (LIMIT 1, IN lists): kept as defaults.
        self._defaults = {
            name: value for name, value in compiled.params.items() if str(value) != _REQUIRED and value is not None
        }

    def parameters(self, values: Mapping[str, Any] | None = None) -> Sequence[Any] | Mapping[str, Any]:
        if values is None:
            merged = self._defaults
        elif self._defaults:
            merged = {**self._defaults, **values}
        else:
            merged = values
        if self._positional:
            return self._pick(merged)
        return merged

    def execute(self, driver_connection: Any, values: Mapping[str, Any] | None = None) -> Any:
        return driver_connection.execute(self.sql, self.parameters(values))


def _picker(names: Sequence[str]):
    if not names:
        return lambda values: ()
    if len(names) == 1:
        only = names[0]
        return lambda values: (values[only],)
    return itemgetter(*names)


def mappings(cursor: Any) -> Iterable[dict[str, Any]]:
    """The cursor's rows as dicts keyed by column name."""
    names = [column[0] for column in cursor.description]
    for row in cursor:
        yield dict(zip(names, row))


def first_mapping(cursor: Any) -> dict[str, Any] | None:
    names = [column[0] for column in cursor.description]
    row = cursor.fetchone()
    return dict(zip(names, row)) if row is not None else None
