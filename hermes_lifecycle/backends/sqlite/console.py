"""`hermes-state sql` on a SQLite file: Debian's sqlite3 shell, or one statement's rows, read-only.

Read-only means nothing is written anywhere, not only to the store: often
root runs this on a file the gateway user owns. One statement runs under an
authorizer that allows reads and nothing else (no ATTACH, so no file is
created by it or by ``VACUUM INTO``; no pragma that sets a value); the shell
runs in its ``-safe`` mode (no ``.open``, ``.output``, ``.shell``, ATTACH).
Ctrl-C stops a statement that would not end (a view the gateway user made
recursive, say); SIGTERM ends the process as usual.
"""

from __future__ import annotations

import os
import shutil
import signal
from typing import Any, Callable

from ...errors import BadInput, StoreUnavailable
from ...store.recorder import Console
from .connect import out_of_memory, uri_for
from .driver import sqlite_module
from .paths import StoreChain, check_store_path
from .recorder import SqliteRecorder
from .translate import error_name, translate

# The sqlite3 authorizer's action codes a read needs (sqlite3.h; the same in every version).
_READ = 20
_SELECT = 21
_FUNCTION = 31
_RECURSIVE = 33
_PRAGMA = 19
_READ_ACTIONS = frozenset({_READ, _SELECT, _FUNCTION, _RECURSIVE})
# An operator's statement may read the whole log, but not forever: a view the gateway user made
# endless stops here (or at Ctrl-C: SQLite's progress handler is where Python's signal handlers run).
CONSOLE_SECONDS = 600.0

# Pragmas that only report, allowed without an argument ...
_REPORTING_PRAGMAS = frozenset({
    "application_id", "auto_vacuum", "busy_timeout", "cache_size", "collation_list", "compile_options",
    "data_version", "database_list", "encoding", "foreign_keys", "freelist_count", "function_list",
    "journal_mode", "module_list", "page_count", "page_size", "pragma_list", "query_only", "schema_version",
    "synchronous", "table_list", "trusted_schema", "user_version", "wal_autocheckpoint",
})
# ... and those whose argument names what to report on (a table, an index, a row limit).
_REPORTING_ON = frozenset({
    "foreign_key_check", "foreign_key_list", "index_info", "index_list", "index_xinfo", "integrity_check",
    "quick_check", "table_info", "table_list", "table_xinfo",
})
_ACTION_NAMES = {
    0: "COPY", 1: "CREATE INDEX", 2: "CREATE TABLE", 3: "CREATE TEMP INDEX", 4: "CREATE TEMP TABLE",
    5: "CREATE TEMP TRIGGER", 6: "CREATE TEMP VIEW", 7: "CREATE TRIGGER", 8: "CREATE VIEW", 9: "DELETE",
    10: "DROP INDEX", 11: "DROP TABLE", 12: "DROP TEMP INDEX", 13: "DROP TEMP TABLE", 14: "DROP TEMP TRIGGER",
    15: "DROP TEMP VIEW", 16: "DROP TRIGGER", 17: "DROP VIEW", 18: "INSERT", 22: "a transaction",
    23: "UPDATE", 24: "ATTACH", 25: "DETACH", 26: "ALTER TABLE", 27: "REINDEX", 28: "ANALYZE",
    29: "CREATE VIRTUAL TABLE", 30: "DROP VIRTUAL TABLE", 32: "SAVEPOINT",
}


class ReadOnlyAuthorizer:
    """Allows what a read needs; remembers the first thing it refused, for the one line."""

    def __init__(self, ok: int, deny: int) -> None:
        self.ok, self.deny = ok, deny
        self.refused: str | None = None

    def __call__(self, action: int, first: str | None, second: str | None, database: str | None, source: str | None) -> int:
        if action in _READ_ACTIONS:
            return self.ok
        if action == _PRAGMA:
            name = (first or "").lower()
            if (second is None and name in _REPORTING_PRAGMAS) or name in _REPORTING_ON:
                return self.ok
            self.refused = f"PRAGMA {name}" + ("" if second is None else f" = {second}")
            return self.deny
        self.refused = self.refused or _ACTION_NAMES.get(action, f"action {action}")
        return self.deny


class SqliteConsole(Console):
    def __init__(self, path: str, open_recorder: Callable[[], SqliteRecorder], chain: StoreChain | None) -> None:
        self.path = path
        self.open_recorder = open_recorder  # the backend's open: as root, through the checked chain
        self.chain = chain

    def rows(self, sql: str) -> list[dict[str, Any]]:
        recorder = self.open_recorder()
        dbapi = sqlite_module()
        authorizer = ReadOnlyAuthorizer(dbapi.SQLITE_OK, dbapi.SQLITE_DENY)
        connection = recorder._connection
        connection.set_authorizer(authorizer)
        interrupted: list[int] = []

        def on_sigint(number: int, frame: object) -> None:
            interrupted.append(number)
            recorder.interrupt()

        # The connection's own bound stays its progress handler: Ctrl-C interrupts through it,
        # and an operator's long query still ends (CONSOLE_SECONDS), as every read of the store does.
        previous = signal.signal(signal.SIGINT, on_sigint)
        recorder.bound.arm(CONSOLE_SECONDS)
        try:
            cursor = connection.execute(sql)
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        except dbapi.Warning as error:  # the driver's word for "more than one statement"
            raise BadInput(f"one SQL statement at a time: {error}") from None
        except MemoryError:
            raise out_of_memory(self.path) from None
        except dbapi.Error as error:
            if interrupted:
                raise KeyboardInterrupt from None  # main's "interrupted", 130
            if authorizer.refused is not None:
                raise BadInput(f"the store is read-only here: {authorizer.refused} is not allowed") from None
            name = error_name(error) or ""
            if name == "SQLITE_ERROR":
                raise BadInput(f"SQL error: {error}") from None
            if name.startswith("SQLITE_READONLY"):
                raise BadInput(f"the store is opened read-only here: {error}") from None
            raise translate(error, self.path) from None
        finally:
            signal.signal(signal.SIGINT, previous)
            recorder.bound.disarm()
            connection.set_authorizer(None)
            recorder.close()

    def interactive(self) -> int:
        check_store_path(self.path, must_exist=True)
        if self.chain is not None:
            self.chain.check()  # root: no link or foreign owner on the way to the file the shell opens
        shell = shutil.which("sqlite3")
        if shell is None:
            raise StoreUnavailable("no sqlite3 shell installed (Debian: apt-get install sqlite3)")
        # -readonly and mode=ro: the store cannot be written. -safe: no .open (which would
        # reopen it writable), no ATTACH or VACUUM INTO (which create files), no .output,
        # .shell or writefile(). query_only covers what a typo could still try.
        os.execv(shell, [
            shell, "-safe", "-readonly", "-header",
            "-cmd", "PRAGMA trusted_schema=OFF", "-cmd", "PRAGMA query_only=ON",
            uri_for(self.path),
        ])
        return 0  # not reached: execv replaces this process
