"""Running the SQL ``store.generate`` wrote for a backend: each statement with its parameters picked by name.

Both recorders run their generated module (``backends/*/sql.py``) through
this, on their own DB-API driver: ``GeneratedTransaction`` is every read and
write of ``RecorderTransaction`` as one generated statement each, and a
backend says only how a statement runs (its time bound, its driver) and what
its LIMIT for "all rows" is. It imports nothing heavier than ``operator``.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Sequence

from ..vocabulary import TYPES
from .recorder import RecorderTransaction, Row, StreamWindow


class Statement:
    """One generated statement: its SQL and how to pick its positional parameters from a mapping."""

    __slots__ = ("sql", "_pick")

    def __init__(self, generated: tuple[str, tuple[str, ...]]) -> None:
        self.sql, names = generated
        if not names:
            self._pick = lambda values: ()
        elif len(names) == 1:
            only = names[0]
            self._pick = lambda values: (values[only],)
        else:
            self._pick = itemgetter(*names)  # builds the tuple in C: an append runs this per statement

    def run(self, driver: Any, values: Row | None = None) -> Any:
        return driver.execute(self.sql, self._pick(values) if values is not None else ())


def statements_of(module: Any) -> dict[str, Statement]:
    """A generated module's statements, by lower-case name."""
    return {name.lower(): Statement(value) for name, value in vars(module).items() if name.isupper()}


def _mappings(cursor: Any) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _first(cursor: Any) -> dict[str, Any] | None:
    names = [column[0] for column in cursor.description]
    row = cursor.fetchone()
    return dict(zip(names, row)) if row is not None else None


class GeneratedTransaction(RecorderTransaction):
    """``RecorderTransaction`` on a backend's generated statements; the backend provides ``_run``."""

    __slots__ = ()
    ALL_ROWS: object = None  # the LIMIT that means "every row" (SQLite: -1; PostgreSQL: NULL)

    def _run(self, name: str, values: Row | None = None) -> Any:
        """Run statement ``name`` with ``values``; its cursor."""
        raise NotImplementedError

    def _rows(self, name: str, values: Row | None = None) -> list[dict[str, Any]]:
        return _mappings(self._run(name, values))

    def _row(self, name: str, values: Row | None = None) -> dict[str, Any] | None:
        return _first(self._run(name, values))

    def _limit(self, limit: int | None) -> object:
        return self.ALL_ROWS if limit is None else limit

    # -- the projection ------------------------------------------------------
    def state_row(self, profile: str) -> Row | None:
        return self._row("state", {"name": profile})

    def state_rows(self, include_deleted: bool) -> list[Row]:
        return self._rows("states_all" if include_deleted else "states_live")

    def overview_rows(self, include_deleted: bool, crashes_since: str) -> list[Row]:
        return self._rows("overview_all" if include_deleted else "overview_live", {"since": crashes_since})

    def crash_count_rows(self, crashes_since: str) -> list[Row]:
        return self._rows("crash_counts_live", {"since": crashes_since})

    # -- an append -------------------------------------------------------------
    def row_by_key(self, key: str) -> Row | None:
        return self._row("by_key", {"key": key})

    def append_context(self, profile: str) -> Row:
        return self._row("append_context", {"name": profile})  # type: ignore[return-value]  # always one row

    def insert_event(self, row: Row) -> None:
        self._run("insert_event", row)

    def insert_state(self, values: Row) -> None:
        self._run("insert_state", values)

    def update_state(self, values: Row) -> None:
        self._run("update_state", {**values, "where_profile": values["profile"]})

    # -- the log -----------------------------------------------------------------
    def rows_after(self, position: int, limit: int | None) -> list[Row]:
        return self._rows("rows_after", {"after": position, "limit": self._limit(limit)})

    def events_after(self, position: int, limit: int | None) -> list[Row]:
        return self._rows("events_after", {"after": position, "limit": self._limit(limit)})

    def last_position(self) -> int:
        return int(self._run("last_position").fetchone()[0])

    def stream_rows(self, profile: str, window: StreamWindow) -> list[Row]:
        name = "stream_newest_first" if window.newest_first else "stream_oldest_first"
        return self._rows(name, _stream_values(profile, window, self._limit(window.limit)))

    # -- crashes -------------------------------------------------------------------
    def crash_times(self, profile: str, after_position: int, since: str) -> list[str]:
        cursor = self._run("crash_times", {"name": profile, "since": since, "after": after_position})
        return [row[0] for row in cursor.fetchall()]

    def crashes_row(self, profile: str) -> Row | None:
        return self._row("crashes", {"name": profile})


def _stream_values(profile: str, window: StreamWindow, limit: object) -> dict[str, Any]:
    """The stream statements' parameters for ``window``."""
    values: dict[str, Any] = {
        "name": profile,
        "after_version": window.after_version,
        "after_position": window.after_position,
        "since": window.since,
        "until": window.until,
        "boot_id": window.boot_id,
        "limit": limit,
    }
    chosen: Sequence[str] = window.types or TYPES
    # One parameter per type slot; fewer types repeat the first (IN ignores repeats).
    for index in range(len(TYPES)):
        values[f"type{index}"] = chosen[index] if index < len(chosen) else chosen[0]
    return values
