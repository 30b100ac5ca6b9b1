"""`hermes-state sql` on a fleet's database: psql, or one statement's rows, in a read-only transaction.

The session is read-only (``default_transaction_read_only``) and the statement
runs in a READ ONLY transaction that is rolled back; the role the operator
connects as is what really bounds them (docs/fleet.md).
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable, Iterable

from ...errors import BadInput, StoreUnavailable
from ...store.recorder import Console
from .connect import connect, libpq_url
from .translate import translate

# A statement's mistakes (SQLSTATE classes): the operator's input, not the store's failure.
_INPUT_CLASSES = ("42", "22", "25006", "0A")


class PostgresConsole(Console):
    def __init__(self, url: str, location: str, lock_timeout_ms: int) -> None:
        self.url = url
        self.location = location
        self.lock_timeout_ms = lock_timeout_ms

    def rows(self, sql: str) -> list[dict[str, Any]]:
        import psycopg

        connection = connect(self.url, self.location, readonly=True, lock_timeout_ms=self.lock_timeout_ms)
        try:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                cursor = connection.execute(sql)
                if cursor.description is None:
                    raise BadInput("the statement returned no rows (state sql runs queries only)")
                names = [column.name for column in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
            except psycopg.Error as error:
                state = error.sqlstate or ""
                if state.startswith(_INPUT_CLASSES):
                    first = str(error).strip().splitlines()[0] if str(error).strip() else state
                    raise BadInput(f"state sql: {first}") from None
                raise translate(error, self.location) from None
        finally:
            connection.close()

    def interactive(self, show: Callable[[Iterable[dict[str, Any]]], None], say: Callable[[str], None]) -> int:
        # psql renders its own rows: neither callback is needed.
        psql = shutil.which("psql")
        if psql is None:
            raise StoreUnavailable("psql is not installed (Debian: apt-get install postgresql-client)")
        env = dict(os.environ, PGOPTIONS="-c default_transaction_read_only=on", PGAPPNAME="hermes-state sql")
        os.execvpe(psql, [psql, libpq_url(self.url)], env)
