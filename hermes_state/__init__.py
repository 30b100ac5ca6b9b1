"""hermes-state: an append-only lifecycle log for Hermes profiles.

The package is split by job: the pure domain (``names``, ``events``,
``fold``, ``chain``, ``exits``, ``projector.plan``), the SQLite shell
(``db``, ``store``, ``migrate``, ``doctor``) and the s6 shell
(``projector``). Importing this package imports nothing heavy.
"""

__version__ = "0.1.0"
