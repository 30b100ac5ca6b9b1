"""hermes-state: an append-only lifecycle log for Hermes profiles.

The package is split by job: the pure domain (``vocabulary``, ``names``,
``events``, ``profile_state``, ``fold``, ``chain``, ``exits``,
``projector.plan``), the store seam (``store``: one way to open, migrate
and read the log, whatever the database) with its backends
(``backends.sqlite``, ``backends.postgresql``), what is built on the
store (``profiles``, ``history``, ``status``, ``legacy``, ``hooks``,
``doctor``) and the s6 shell (``projector``). Importing this package
imports nothing heavy. docs/design.md section 9 has the layers.
"""

__version__ = "0.1.0"
