"""Connections to a fleet's PostgreSQL: the URL as libpq reads it, and the session's bounds."""

from __future__ import annotations

from typing import Any

from ...errors import BadInput
from .translate import translated

CONNECT_SECONDS = 5  # an unreachable server must fail a command fast, not after TCP's minutes
# The hooks' bound: libpq's least. `finish` has five seconds in all, and must still keep the
# exit on the host (docs/fleet.md, "Outages"); `run` should not hold a gateway back longer.
HOOK_CONNECT_SECONDS = 2
STATEMENT_SECONDS = 10  # as on SQLite: the store's statements take milliseconds
APPLICATION_NAME = "hermes-state"


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as libpq takes it (``postgresql://``)."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in ("postgresql", "postgresql+psycopg"):
        raise BadInput(f"not a PostgreSQL URL: {scheme}://...")
    return "postgresql://" + rest


def connect(url: str, location: str, *, readonly: bool, lock_timeout_ms: int,
            statement_seconds: float = STATEMENT_SECONDS, connect_seconds: int = CONNECT_SECONDS) -> Any:
    """An autocommit connection (the recorder issues BEGIN itself), bounded in every wait.

    ``readonly``: the session refuses writes (``default_transaction_read_only``); the
    roles are what really forbid them (docs/fleet.md).
    """
    import psycopg

    options = [
        f"-c statement_timeout={int(statement_seconds * 1000)}",
        f"-c lock_timeout={int(lock_timeout_ms)}",
        "-c idle_in_transaction_session_timeout=60000",
    ]
    if readonly:
        options.append("-c default_transaction_read_only=on")
    with translated(location):
        return psycopg.connect(
            libpq_url(url),
            autocommit=True,
            connect_timeout=connect_seconds,
            application_name=APPLICATION_NAME,
            options=" ".join(options),
        )
