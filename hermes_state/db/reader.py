"""Read-only access to the SQLite store through the driver alone, for readers that must start fast.

`hermes profile history`, `profile list` and `gateway status` are what a
person waits for at a prompt. Importing SQLAlchemy costs about 110 ms, five
times the interpreter's own start-up, so these readers open the file with
the DB-API driver directly: the same path check, connection
(``connect.open_connection``), schema check and error translation as the
engine. This is the SQLite dialect's own module (docs/design.md section 8): a
PostgreSQL store would serve the same reads through ``EventStore``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

from ..errors import BadInput, HermesError
from .connect import busy_timeout_from_env, open_connection
from .driver import sqlite_module
from .paths import check_store_path, store_path_from_env
from .revision import require_head
from .translate import error_name, translate

class _DriverSQL:
    """Lets ``revision.require_head`` (written for a SQLAlchemy Connection) run on a driver connection."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def exec_driver_sql(self, sql: str):
        return self._connection.execute(sql)


class StoreReader:
    """A read-only driver connection on the store. Each ``rows`` call sees the latest commit,
    unless it runs inside ``snapshot()``."""

    def __init__(self, connection: Any, path: str) -> None:
        self._connection = connection
        self.path = path

    @classmethod
    def open(cls, path: str | None = None) -> "StoreReader":
        path = str(path) if path is not None else store_path_from_env()
        check_store_path(path, must_exist=True)
        connection = None
        try:
            connection = open_connection(path, mode="ro", timeout_ms=busy_timeout_from_env())
            require_head(_DriverSQL(connection), path)
        except HermesError:
            if connection is not None:
                connection.close()
            raise
        except sqlite_module().Error as error:
            if connection is not None:
                connection.close()
            raise translate(error, path) from None
        return cls(connection, path)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> "StoreReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator["StoreReader"]:
        """One read transaction: every ``rows`` call inside sees the same state of the file."""
        self._execute("BEGIN")
        try:
            yield self
        finally:
            self._execute("COMMIT")

    def rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of one statement, each a dict keyed by the column names the statement gives."""
        try:
            cursor = self._connection.execute(sql, tuple(parameters))
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        except sqlite_module().Error as error:
            raise translate(error, self.path) from None

    def operator_rows(self, sql: str) -> list[dict[str, Any]]:
        """The rows of one statement an operator typed (`hermes state sql`): a mistake in it is
        bad input (exit 2), a write is refused as one; the store's own failures stay exit 5."""
        dbapi = sqlite_module()
        try:
            cursor = self._connection.execute(sql)
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        except dbapi.Warning as error:  # the driver's word for "more than one statement"
            raise BadInput(f"one SQL statement at a time: {error}") from None
        except dbapi.Error as error:
            name = error_name(error) or ""
            if name == "SQLITE_ERROR":
                raise BadInput(f"SQL error: {error}") from None
            if name.startswith("SQLITE_READONLY"):
                raise BadInput(f"the store is opened read-only here: {error}") from None
            raise translate(error, self.path) from None

    def _execute(self, sql: str, parameters: Sequence[Any] = ()):
        try:
            return self._connection.execute(sql, tuple(parameters))
        except sqlite_module().Error as error:
            raise translate(error, self.path) from None
