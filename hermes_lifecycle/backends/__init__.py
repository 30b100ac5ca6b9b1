"""The store's backends: each implements ``hermes_lifecycle.store.recorder`` for one database.

``BACKENDS`` is the one table of them, by the scheme of ``HERMES_STATE_URL``
(``None``: no URL, the SQLite file under ``HERMES_HOME``): the module and class
``store.backend_for`` imports, only when chosen, so a process pays only for the
backend it uses. ``settings`` refuses any other scheme.
"""

BACKENDS = {
    None: ("hermes_lifecycle.backends.sqlite.backend", "SqliteBackend"),
    "postgresql": ("hermes_lifecycle.backends.postgresql.backend", "PostgresBackend"),
    "postgresql+psycopg": ("hermes_lifecycle.backends.postgresql.backend", "PostgresBackend"),
}
