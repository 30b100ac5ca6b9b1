"""The PostgreSQL backend: a fleet's shared store at ``settings.store_url`` (docs/fleet.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...store.recorder import HOOK, Backend, lock_wait_ms
from .connect import CONNECT_SECONDS, HOOK_CONNECT_SECONDS
from .recorder import PostgresRecorder

if TYPE_CHECKING:
    from ...checks import Report
    from ...settings import Settings
    from .console import PostgresConsole


class PostgresBackend(Backend):
    def open(self, settings: "Settings", *, readonly: bool, purpose: str) -> PostgresRecorder:
        # A hook runs inside s6's finish limit: its connection is bounded as tightly as libpq allows.
        return PostgresRecorder(_url(settings), settings.store_location, readonly=readonly,
                                lock_timeout_ms=lock_wait_ms(purpose, settings.busy_timeout_ms),
                                connect_seconds=HOOK_CONNECT_SECONDS if purpose == HOOK else CONNECT_SECONDS)

    def exists(self, settings: "Settings") -> bool:
        """The database's tables were made: a fleet's database is made (and migrated) by its operator."""
        from .connect import connect
        from .revision import current_revision
        from .translate import translated

        connection = connect(_url(settings), settings.store_location, readonly=True,
                             lock_timeout_ms=settings.busy_timeout_ms)
        try:
            with translated(settings.store_location):
                return current_revision(connection) is not None
        finally:
            connection.close()

    def migrate(self, settings: "Settings") -> tuple[str | None, str | None]:
        from .migrate import migrate

        return migrate(_url(settings), settings.store_location)

    def diagnose(self, settings: "Settings", report: "Report", *, expected_owner: str | None) -> bool:
        from .checks import diagnose_database

        return diagnose_database(_url(settings), settings.store_location, report, settings.busy_timeout_ms)

    def console(self, settings: "Settings") -> "PostgresConsole":
        from .console import PostgresConsole

        return PostgresConsole(_url(settings), settings.store_location, settings.busy_timeout_ms)


def _url(settings: "Settings") -> str:
    assert settings.store_url is not None  # backend_for chose this backend for it
    return settings.store_url
