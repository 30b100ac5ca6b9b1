"""Bring a fleet's database to the code's schema with Alembic (imported only here), as its owner."""

from __future__ import annotations

from ...errors import SchemaMismatch
from ...store.revisions import KNOWN_REVISIONS, describe_mismatch, migrations_dir
from .connect import CONNECT_SECONDS, libpq_url
from .revision import current_revision
from .translate import translated

# Two hosts that start together both migrate: one waits for the other, then finds nothing to do.
MIGRATE_LOCK = 0x6865726D  # "herm"


def migrate(url: str, location: str, target: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database at ``url`` to ``target`` in one transaction; (revision before, after).

    A database whose revision this code does not know is refused before anything is written.
    """
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    config = Config()
    config.set_main_option("script_location", migrations_dir())
    engine = create_engine(
        "postgresql+psycopg://" + libpq_url(url).partition("://")[2],
        connect_args={"connect_timeout": CONNECT_SECONDS, "application_name": "hermes-state migrate"},
        poolclass=None,
    )
    try:
        with translated(location), engine.begin() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None  # a psycopg engine's connection always has its driver's
            driver.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s::bigint)", (MIGRATE_LOCK,))
            before = current_revision(driver)
            if before is not None and before not in KNOWN_REVISIONS:
                raise SchemaMismatch(describe_mismatch(before, location))
            config.attributes["connection"] = conn
            command.upgrade(config, target)
            after = current_revision(driver)
    finally:
        engine.dispose()
    return before, after
