"""The SQLite recorder: the store's statements (generated, ``sql.py``) run on one driver connection.

No SQLAlchemy here: the hooks and the commands a person waits for open the
store through this module, and importing SQLAlchemy would cost them several
times the interpreter's own start-up.
"""

from __future__ import annotations

import contextlib
from operator import itemgetter
from typing import Any, Iterator, Sequence

from ...errors import HermesError
from ...store.recorder import ChangeFeed, Recorder, RecorderTransaction, Row, StreamWindow
from ...vocabulary import TYPES
from . import sql
from .connect import open_connection
from .driver import sqlite_module
from .paths import check_store_path
from .revision import require_head
from .transactions import driver_transaction
from .translate import translate, translated

NO_LIMIT = -1  # SQLite's LIMIT for "all rows"


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


def _compile_all() -> dict[str, Statement]:
    return {name.lower(): Statement(value) for name, value in vars(sql).items() if name.isupper()}


_STATEMENTS: dict[str, Statement] | None = None


def statements() -> dict[str, Statement]:
    global _STATEMENTS
    if _STATEMENTS is None:
        _STATEMENTS = _compile_all()
    return _STATEMENTS


def _mappings(cursor: Any) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _first(cursor: Any) -> dict[str, Any] | None:
    names = [column[0] for column in cursor.description]
    row = cursor.fetchone()
    return dict(zip(names, row)) if row is not None else None


class SqliteTransaction(RecorderTransaction):
    __slots__ = ("_driver", "_sql")

    def __init__(self, driver: Any) -> None:
        self._driver = driver
        self._sql = statements()

    def _rows(self, name: str, values: Row | None = None) -> list[dict[str, Any]]:
        return _mappings(self._sql[name].run(self._driver, values))

    def _row(self, name: str, values: Row | None = None) -> dict[str, Any] | None:
        return _first(self._sql[name].run(self._driver, values))

    def _scalar(self, name: str, values: Row | None = None) -> Any:
        return self._sql[name].run(self._driver, values).fetchone()[0]

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
        self._sql["insert_event"].run(self._driver, row)

    def insert_state(self, values: Row) -> None:
        self._sql["insert_state"].run(self._driver, values)

    def update_state(self, values: Row) -> None:
        self._sql["update_state"].run(self._driver, {**values, "where_profile": values["profile"]})

    # -- the log -----------------------------------------------------------------
    def rows_after(self, position: int, limit: int | None) -> list[Row]:
        return self._rows("rows_after", {"after": position, "limit": NO_LIMIT if limit is None else limit})

    def last_position(self) -> int:
        return int(self._scalar("last_position"))

    def stream_rows(self, profile: str, window: StreamWindow) -> list[Row]:
        values = {
            "name": profile,
            "after_version": window.after_version,
            "after_position": window.after_position,
            "since": window.since,
            "until": window.until,
            "boot_id": window.boot_id,
            "limit": NO_LIMIT if window.limit is None else window.limit,
        }
        chosen: Sequence[str] = window.types or TYPES
        # One parameter per type slot; fewer types repeat the first (IN ignores repeats).
        for index in range(len(TYPES)):
            values[f"type{index}"] = chosen[index] if index < len(chosen) else chosen[0]
        return self._rows("stream_newest_first" if window.newest_first else "stream_oldest_first", values)

    # -- crashes -------------------------------------------------------------------
    def crash_times(self, profile: str, after_position: int, since: str) -> list[str]:
        cursor = self._sql["crash_times"].run(self._driver, {"name": profile, "since": since, "after": after_position})
        return [row[0] for row in cursor]

    def crash_count(self, profile: str) -> int:
        return int(self._scalar("crash_count", {"name": profile}))

    def last_crash_row(self, profile: str) -> Row | None:
        return self._row("last_crash", {"name": profile})


class SqliteRecorder(Recorder):
    """One driver connection on the store file, held for the recorder's life."""

    def __init__(self, path: str, *, readonly: bool, busy_timeout_ms: int) -> None:
        self.location = path
        self.readonly = readonly
        self.busy_timeout_ms = busy_timeout_ms
        check_store_path(path, must_exist=True)
        connection = None
        try:
            connection = open_connection(path, mode="ro" if readonly else "rw", timeout_ms=busy_timeout_ms)
            require_head(connection, path)
        except HermesError:
            if connection is not None:
                connection.close()
            raise
        except sqlite_module().Error as error:
            if connection is not None:
                connection.close()
            raise translate(error, path) from None
        self._connection = connection

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[SqliteTransaction]:
        with driver_transaction(self._connection, self.location, self.busy_timeout_ms, write=write) as driver:
            yield SqliteTransaction(driver)

    def data_version(self) -> int:
        """``PRAGMA data_version``: moves when another connection commits."""
        with translated(self.location):
            return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def change_feed(self, *, use_notifications: bool, poll_interval: float) -> ChangeFeed:
        from .feed import SqliteChangeFeed

        return SqliteChangeFeed(
            self.location, self.data_version, use_notifications=use_notifications, poll_interval=poll_interval
        )

    def quick_check(self) -> list[str]:
        with translated(self.location):
            rows = [str(row[0]) for row in self._connection.execute("PRAGMA quick_check")]
        return [] if rows == ["ok"] else rows

    def close(self) -> None:
        self._connection.close()
