"""The SQLite backend: a store that is one file (``settings.db_path``), opened through the driver alone."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ...store.recorder import COMMAND, Backend, lock_wait_ms
from .recorder import SqliteRecorder

if TYPE_CHECKING:
    from ...checks import Report
    from ...settings import Settings
    from .console import SqliteConsole


class SqliteBackend(Backend):
    def open(self, settings: "Settings", *, readonly: bool, purpose: str) -> SqliteRecorder:
        timeout = lock_wait_ms(purpose, settings.busy_timeout_ms)
        return SqliteRecorder(settings.store_file, readonly=readonly, busy_timeout_ms=timeout,
                              chain=_root_chain(settings))

    def exists(self, settings: "Settings") -> bool:
        return os.path.lexists(settings.store_file)

    def migrate(self, settings: "Settings") -> tuple[str | None, str | None]:
        from .migrate import migrate

        chain = _root_chain(settings)
        if chain is not None:
            # Root writing through a directory the gateway user swapped for a link would write anywhere.
            chain.check(must_exist=False)

        return migrate(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms)

    def diagnose(self, settings: "Settings", report: "Report", *, expected_owner: str | None) -> bool:
        from .checks import diagnose_file

        return diagnose_file(settings.db_path, report, expected_owner=expected_owner,
                             busy_timeout_ms=settings.busy_timeout_ms, chain=_root_chain(settings))

    def console(self, settings: "Settings") -> "SqliteConsole":
        from .console import SqliteConsole

        # The console reads through the same checked open as every root reader.
        return SqliteConsole(settings.store_file, lambda: self.open(settings, readonly=True, purpose=COMMAND))


def _root_chain(settings: "Settings"):
    """As root, the chain of directories to the store that must be checked before any open; else None."""
    if os.geteuid() != 0:
        return None
    # The root side reads a file the gateway user controls: only through a checked chain.
    from .paths import StoreChain

    return StoreChain.for_root(settings.store_file, settings.home_dir, settings.gateway_user)
