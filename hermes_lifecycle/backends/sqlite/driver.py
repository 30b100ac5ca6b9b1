"""Which SQLite this process uses: the pysqlite3 wheel's where it installs, else the stdlib's."""

from __future__ import annotations

from types import ModuleType

# SQLite before 3.51.3 can corrupt a WAL database when several processes
# write and checkpoint it at once: exactly this project's pattern.
WAL_RESET_FIXED = (3, 51, 3)


def sqlite_module() -> ModuleType:
    try:
        from pysqlite3 import dbapi2
    except ImportError:
        import sqlite3 as dbapi2
    return dbapi2


def library_name(module: ModuleType) -> str:
    return "pysqlite3" if module.__name__.startswith("pysqlite3") else "sqlite3 (standard library)"


def has_wal_reset_bug(version_info: tuple[int, ...]) -> bool:
    return tuple(version_info) < WAL_RESET_FIXED
