"""Running the SQL ``store.generate`` wrote for a backend: each statement with its parameters picked by name.

Both recorders run their generated module (``backends/*/sql.py``) through
this, on their own DB-API driver; it imports nothing heavier than ``operator``.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Sequence

from ..vocabulary import TYPES
from .recorder import Row, StreamWindow


class Statement:
    """One generated statement: its SQL and how to pick its positional parameters from a mapping."""

    __slots__ = ("sql", "_pick")

    def __init__(self, generated: tuple[str, tuple[str, ...]]) -> None:
        self.sql, names = generated
        if not names:
            self._pick = lambda values: ()
        elif len(names) == 1:
            only = names[0]
            self._pick = lambda values: (values[only],)
        else:
            self._pick = itemgetter(*names)  # builds the tuple in C: an append runs this per statement

    def run(self, driver: Any, values: Row | None = None) -> Any:
        return driver.execute(self.sql, self._pick(values) if values is not None else ())


def statements_of(module: Any) -> dict[str, Statement]:
    """A generated module's statements, by lower-case name."""
    return {name.lower(): Statement(value) for name, value in vars(module).items() if name.isupper()}


def stream_values(profile: str, window: StreamWindow, all_rows: object) -> dict[str, Any]:
    """The stream statements' parameters for ``window``; ``all_rows`` is the backend's LIMIT for "no limit"."""
    values: dict[str, Any] = {
        "name": profile,
        "after_version": window.after_version,
        "after_position": window.after_position,
        "since": window.since,
        "until": window.until,
        "boot_id": window.boot_id,
        "limit": all_rows if window.limit is None else window.limit,
    }
    chosen: Sequence[str] = window.types or TYPES
    # One parameter per type slot; fewer types repeat the first (IN ignores repeats).
    for index in range(len(TYPES)):
        values[f"type{index}"] = chosen[index] if index < len(chosen) else chosen[0]
    return values


def stream_statement(window: StreamWindow) -> str:
    return "stream_newest_first" if window.newest_first else "stream_oldest_first"

