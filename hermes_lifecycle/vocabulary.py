"""The log's words and its time format, importing nothing heavy.

Kept apart from ``events.py`` (dataclasses, json) so that the commands a
person waits for at a prompt (`hermes-state history`) can use the same
definitions without paying for more than ``datetime``.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

# The five lifecycle types, then the gateway's own account of itself (``reported``, migration 0006).
TYPES = ("created", "started", "crashed", "stopped", "deleted", "reported")
# ``gateway``: the gateway itself, through its gateway_state.json; ``hermes-agent``: hermes-agent's own
# commands (docs/hermes-agent.md).
ACTORS = ("cli", "supervisor", "boot", "import", "api", "gateway", "hermes-agent")
DESIRED = ("up", "down")

# Columns of `events`, in table order: a public interface (docs/design.md section 2).
COLUMNS = (
    "position",
    "profile",
    "version",
    "type",
    "actor",
    "desired",
    "occurred_at",
    "host",
    "boot_id",
    "pid",
    "exit_code",
    "signal",
    "reason",
    "data",
    "idempotency_key",
    "hash",
    "chain_version",
)


def format_time(moment: datetime) -> str:
    """UTC with milliseconds and a ``Z`` (``YYYY-MM-DDTHH:MM:SS.sssZ``): sorts as text, SQLite's date functions read it."""
    text = moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return text[:-6] + "Z"  # "+00:00" -> "Z"


def parse_time(text: str) -> datetime:
    """A stored time as an aware UTC datetime."""
    return datetime.fromisoformat(text)


def utc_now() -> str:
    """The current time in the log's format (every append asks: kept cheap)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000)
