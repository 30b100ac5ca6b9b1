"""Alembic environment: runs revisions on the store's own engine (driver, pragmas, BEGIN IMMEDIATE).

Used both by `alembic upgrade head` at the repository root and by
`hermes state migrate` (hermes_lifecycle.backends.sqlite.migrate passes its connection in).
"""

from alembic import context

from hermes_lifecycle.store.schema import metadata


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy-and-move
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    # Run from the command line: the same engine and refusal of a newer
    # schema as `hermes state migrate`, then whatever command was asked for.
    from hermes_lifecycle.backends.sqlite.migrate import migration_transaction
    from hermes_lifecycle.settings import Settings

    settings = Settings.from_env()
    if settings.store_url is not None:
        raise SystemExit("for a PostgreSQL store run `hermes state migrate` (it takes HERMES_STATE_URL)")
    with migration_transaction(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms) as connection:
        run_migrations(connection)


if context.is_offline_mode():
    raise SystemExit("hermes-state migrations run online only: the triggers and views need a live file")
run_online()
