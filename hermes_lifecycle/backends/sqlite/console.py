"""`hermes-state sql` on a SQLite file: one statement's rows, or statements read one by one, read-only.

Read-only means nothing is written anywhere, not only to the store: often
root runs this on a file the gateway user owns. Every statement runs under an
authorizer that allows reads and nothing else (no ATTACH, so no file is
created by it or by ``VACUUM INTO``; no pragma that sets a value), on a
connection opened as every root reader's is (the checked chain, the bounds).
The interactive form reads statements itself rather than run the sqlite3
shell (see ``SqliteConsole.interactive``). Ctrl-C stops a statement that
would not end (a view the gateway user made recursive, say); SIGTERM ends
the process as usual.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Any, Callable, Generator, Iterable, Iterator

from ...errors import BadInput, HermesError
from ...store.recorder import Console
from .connect import out_of_memory
from .driver import sqlite_module
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
FETCH_ROWS = 500  # rows taken from SQLite at a time, as the caller reads them

_SHELL_COMMANDS = ".tables, .schema [NAME], .help, .quit"

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
    def __init__(self, path: str, open_recorder: Callable[[], SqliteRecorder]) -> None:
        self.path = path
        self.open_recorder = open_recorder  # the backend's open: as root, through the checked chain

    def rows(self, sql: str) -> Iterator[dict[str, Any]]:
        """The statement's rows, streamed: it runs now (a mistake or a refusal raises here), and its
        rows are fetched as the caller takes them, so no query, however many rows it makes (a view
        the gateway user made endless), fills this process's memory; the connection and the Ctrl-C
        handler go when the rows are taken or the iterator is closed."""
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

        def close() -> None:
            signal.signal(signal.SIGINT, previous)
            recorder.bound.disarm()
            connection.set_authorizer(None)
            recorder.close()

        def translated_error(error: BaseException) -> BaseException:
            if isinstance(error, dbapi.Warning):  # the driver's word for "more than one statement"
                return BadInput(f"one SQL statement at a time: {error}")
            if isinstance(error, MemoryError):
                return out_of_memory(self.path)
            if interrupted:
                return KeyboardInterrupt()  # main's "interrupted", 130
            if authorizer.refused is not None:
                return BadInput(f"the store is read-only here: {authorizer.refused} is not allowed")
            name = error_name(error) or ""
            if name == "SQLITE_ERROR":
                return BadInput(f"SQL error: {error}")
            if name.startswith("SQLITE_READONLY"):
                return BadInput(f"the store is opened read-only here: {error}")
            return translate(error, self.path)

        try:
            cursor = connection.execute(sql)
            names = [column[0] for column in cursor.description or ()]
            first = cursor.fetchmany(FETCH_ROWS)
        except (dbapi.Error, MemoryError) as error:
            close()
            raise translated_error(error) from None
        except BaseException:
            close()
            raise

        def stream() -> Generator[dict[str, Any], None, None]:
            try:
                batch = first
                while batch:
                    for row in batch:
                        yield dict(zip(names, row))
                    try:
                        batch = cursor.fetchmany(FETCH_ROWS)
                    except (dbapi.Error, MemoryError) as error:
                        raise translated_error(error) from None
            finally:
                close()

        return _Closing(stream(), close)

    def interactive(self, show: Callable[[Iterable[dict[str, Any]]], None], say: Callable[[str], None]) -> int:
        """Statements read from stdin, each run as ``rows`` runs one; ``show`` renders its rows,
        ``say`` writes one line for each failure; the first failure's status (0: none).

        Not Debian's sqlite3 shell (3.40): it writes a row's bytes raw (escape sequences, bidi
        overrides) to the terminal of whoever reads them, often root's, and parses the file's
        schema with no bound. Here every statement goes through the checked open, the authorizer
        and the bounds, and ``show`` (the CLI) escapes what it prints. On a terminal: a prompt,
        line editing, Ctrl-C stops a statement (or clears the line) and the session goes on.
        Shell commands: ``.tables``, ``.schema [NAME]``, ``.help``, ``.quit``.
        """
        terminal = sys.stdin.isatty()
        if terminal:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (input() edits lines and keeps a history with it)
        complete = sqlite_module().complete_statement
        status = 0
        pending = ""
        while True:
            try:
                line = input(("...> " if pending else "sql> ") if terminal else "")
            except EOFError:
                break
            except KeyboardInterrupt:
                if not terminal:
                    raise
                print()
                pending = ""
                continue
            if not pending and line.strip().startswith("."):
                words = line.split()
                if words[0] in (".quit", ".exit"):
                    break
                statement = self._shell_command(words)
                if statement is None:
                    say(f"hermes-state: {words[0][:40]} is not a command here: {_SHELL_COMMANDS}")
                    status = status or BadInput.exit_status
                    continue
            else:
                pending += line + "\n"
                if not complete(pending):
                    continue
                statement, pending = pending, ""
            status = self._run(statement, show, say, terminal) or status
        if pending.strip():  # the input ended inside a statement: run it, SQLite says what is missing
            status = self._run(pending, show, say, terminal) or status
        return status

    def _run(self, statement: str, show: Callable[[Iterable[dict[str, Any]]], None], say: Callable[[str], None],
             terminal: bool) -> int:
        try:
            show(self.rows(statement))
        except HermesError as error:
            say(f"hermes-state: {error}")
            return error.exit_status
        except KeyboardInterrupt:
            if not terminal:
                raise
            say("hermes-state: interrupted")
            return 130
        return 0

    @staticmethod
    def _shell_command(words: list[str]) -> str | None:
        """The statement a shell command stands for; None when it is not one of them."""
        if words == [".tables"]:
            return ("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
        if words[0] == ".schema" and len(words) <= 2:
            where = "" if len(words) == 1 else " AND name = '" + words[1].replace("'", "''") + "'"
            return f"SELECT sql FROM sqlite_master WHERE sql IS NOT NULL{where} ORDER BY type DESC, name"
        if words == [".help"]:
            return f"SELECT '{_SHELL_COMMANDS}' AS help"
        return None


class _Closing:
    """The stream of a statement's rows, whose connection goes when it is closed, also if it was
    never iterated (a generator never started would not run its ``finally``)."""

    def __init__(self, rows: Generator[dict[str, Any], None, None], close: Callable[[], None]) -> None:
        self._rows: Generator[dict[str, Any], None, None] | None = rows
        self._close = close
        self._started = False

    def __iter__(self) -> "_Closing":
        return self

    def __next__(self) -> dict[str, Any]:
        if self._rows is None:
            raise StopIteration
        self._started = True
        return next(self._rows)

    def close(self) -> None:
        rows, self._rows = self._rows, None
        if rows is None:
            return
        rows.close()  # a started stream closes its connection in its own ``finally``
        if not self._started:
            self._close()

    def __del__(self) -> None:
        self.close()
