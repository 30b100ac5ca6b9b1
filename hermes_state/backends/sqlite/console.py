"""`hermes state sql` on a SQLite file: Debian's sqlite3 shell, or one statement's rows, read-only."""

from __future__ import annotations

import os
import shutil
from typing import Any

from ...errors import BadInput, StoreUnavailable
from ...store.recorder import Console
from .connect import uri_for
from .driver import sqlite_module
from .paths import check_store_path
from .recorder import SqliteRecorder
from .translate import error_name, translate


class SqliteConsole(Console):
    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms

    def rows(self, sql: str) -> list[dict[str, Any]]:
        recorder = SqliteRecorder(self.path, readonly=True, busy_timeout_ms=self.busy_timeout_ms)
        dbapi = sqlite_module()
        try:
            cursor = recorder._connection.execute(sql)
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
        finally:
            recorder.close()

    def interactive(self) -> int:
        check_store_path(self.path, must_exist=True)
        shell = shutil.which("sqlite3")
        if shell is None:
            raise StoreUnavailable("no sqlite3 shell installed (Debian: apt-get install sqlite3)")
        # -readonly and mode=ro both: the shell can write nothing, even by ATTACH or a typo.
        os.execv(shell, [shell, "-readonly", "-header", "-cmd", "PRAGMA trusted_schema=OFF", uri_for(self.path)])
        return 0  # not reached: execv replaces this process
