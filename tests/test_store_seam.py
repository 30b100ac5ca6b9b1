"""The seam says what a backend really does: who opens the store is said, never guessed; a check a
database lacks is absent, not passed; the backends are one table; the SQL names no event type."""

from __future__ import annotations

import pytest

from hermes_lifecycle.backends import BACKENDS
from hermes_lifecycle.backends.postgresql import sql as pg_sql
from hermes_lifecycle.backends.postgresql.connect import CONNECT_SECONDS, HOOK_CONNECT_SECONDS
from hermes_lifecycle.backends.sqlite import sql as sqlite_sql
from hermes_lifecycle.errors import BadInput
from hermes_lifecycle.settings import STORE_URL_SCHEMES, Settings
from hermes_lifecycle.store import HOOK, PAGE, backend_for, migrate, open_store
from hermes_lifecycle.vocabulary import TYPES


def pg_settings(url: str, **env: str) -> Settings:
    return Settings.from_env({"HERMES_HOME": "/nonexistent", "HERMES_STATE_URL": url, **env})


def test_serve_on_postgresql_connects_with_a_commands_bound_whatever_its_lock_wait(pg_database):
    """Before: a lock wait under a second was taken for a hook, so serve (which waits at most a
    second) on a store with HERMES_STATE_BUSY_TIMEOUT_MS=800 gave up connecting after 2 s."""
    from hermes_lifecycle_cli.commands.serve import OperatorsView

    settings = pg_settings(pg_database.url, HERMES_STATE_BUSY_TIMEOUT_MS="800")
    migrate(settings)
    with OperatorsView(settings, check_interval=300).open() as store:
        assert (store.recorder.connect_seconds, store.recorder.lock_timeout_ms) == (CONNECT_SECONDS, 800)
    with open_store(settings, readonly=True, purpose=HOOK) as store:
        assert (store.recorder.connect_seconds, store.recorder.lock_timeout_ms) == (HOOK_CONNECT_SECONDS, 500)
    with open_store(pg_settings(pg_database.url), readonly=True, purpose=PAGE) as store:
        assert store.recorder.lock_timeout_ms == 1000


def test_postgresql_has_no_quick_check_and_does_not_pretend_to_pass_one(pg_database):
    """Before: quick_check returned [] ("checked, sound") from a database it never asked."""
    from hermes_lifecycle_cli.operators_metrics import StoreHealth

    settings = pg_settings(pg_database.url)
    migrate(settings)
    with open_store(settings, readonly=True) as store:
        assert store.recorder.quick_check() is None

        health = StoreHealth(store.recorder.quick_check, 300)
        health.check_now()
    ok, _, detail = health.snapshot()
    assert ok and detail == "reachable (the database checks its own pages)"


def test_sqlite_runs_its_quick_check(migrated_home):
    with open_store(Settings.from_env(migrated_home.env()), readonly=True) as store:
        assert store.recorder.quick_check() == []


def test_the_backends_are_one_table_by_scheme():
    """Before: any URL at all chose PostgreSQL; now the scheme is looked up, and the same table is
    what Settings accepts."""
    assert set(STORE_URL_SCHEMES) == set(BACKENDS) - {None}
    settings = Settings.from_env({"HERMES_HOME": "/nonexistent"})
    assert type(backend_for(settings)).__name__ == "SqliteBackend"
    assert type(backend_for(settings._replace(store_url="postgresql://h/db"))).__name__ == "PostgresBackend"
    with pytest.raises(BadInput, match="no backend for the scheme mysql://"):
        backend_for(settings._replace(store_url="mysql://h/db"))


@pytest.mark.parametrize("module", [sqlite_sql, pg_sql], ids=["sqlite", "postgresql"])
def test_no_statement_names_an_event_type_but_the_crash_index_own(module):
    """A new event type needs no SQL: the stream's type filter is one parameter, a list; only the
    partial index on crashes is named by its literal (SQLite matches a partial index by it)."""
    text = "\n".join(value for name, value in vars(module).items() if name.isupper())
    assert [kind for kind in TYPES if f"'{kind}'" in text] == ["crashed"]
