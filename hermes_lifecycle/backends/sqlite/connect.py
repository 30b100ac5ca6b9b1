"""Opening a driver connection on the store: the URI, the pragmas, the busy timeout.

Shared by the recorder, doctor's checks and the engine Alembic runs on
(``engine.make_engine``), so all open the file the same way; it imports
neither SQLAlchemy nor pathlib.
"""

from __future__ import annotations

import os
from typing import Any

from .driver import sqlite_module


OCTET_LENGTH_SINCE = (3, 43, 0)


def _octet_length(value: Any) -> int | None:
    """SQLite's octet_length: the bytes of a value as text (UTF-8) or blob; NULL for NULL."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return len(value)
    return len(str(value).encode("utf-8", "surrogatepass"))


def uri_for(path: str, mode: str = "ro") -> str:
    """A SQLite ``file:`` URI for ``path``: '%', '?' and '#' escaped, so no name can add parameters."""
    absolute = os.path.abspath(path)
    escaped = absolute.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    return f"file:{escaped}?mode={mode}"


def open_connection(path: str, *, mode: str, timeout_ms: int) -> Any:
    """A driver connection in autocommit (we issue BEGIN ourselves), with the store's pragmas.

    ``mode`` is SQLite's: ``ro``, ``rw`` or ``rwc`` (create; migration only).
    WAL is not set here: it is a property of the file, set once by the
    migration; setting it on open would write to a file not yet known to be
    ours (a foreign or newer one must be refused untouched).
    """
    module = sqlite_module()
    connection = module.connect(
        uri_for(path, mode), uri=True, timeout=timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        if module.sqlite_version_info < OCTET_LENGTH_SINCE:
            # The bounded reads (store/statements.py) name octet_length, which SQLite reads from a
            # value's header since 3.43; before, this stand-in gives the same answers (loading the value).
            connection.create_function("octet_length", 1, _octet_length, deterministic=True)
        connection.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
        connection.execute("PRAGMA trusted_schema = OFF")
        connection.execute("PRAGMA foreign_keys = ON")
        if mode == "ro":
            connection.execute("PRAGMA query_only = ON")
            # Touch the schema now, so a garbage file fails at open, not later.
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        else:
            connection.execute("PRAGMA synchronous = FULL")  # an audit log: durable commits
    except BaseException:
        connection.close()
        raise
    return connection
