"""The event vocabulary: types, actors, desired states, and the two record shapes.

``NewEvent`` is what a caller asks to append; ``Event`` is a stored row, with
every column of the public ``events`` table.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple

from .errors import BadInput
from .names import validate_name, validate_slug
from .vocabulary import ACTORS, COLUMNS, DESIRED, TYPES, format_time, parse_time, utc_now

# Re-exported: the vocabulary lives in a module light enough for fast readers.
__all__ = ["TYPES", "ACTORS", "DESIRED", "COLUMNS", "format_time", "parse_time", "utc_now", "NewEvent", "Event", "encode_data"]


def encode_data(data: object) -> str:
    """Canonical JSON text of ``data``: an object, sorted keys, no NaN."""
    if not isinstance(data, Mapping):
        raise BadInput(f"event data must be a JSON object, not {type(data).__name__}")
    try:
        return json.dumps(dict(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise BadInput(f"event data is not JSON: {error}") from None


def _optional_int(value: object, what: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"invalid {what} {value!r}: expected an integer from {low} to {high}")
    return value


# Named tuples, not dataclasses: importing dataclasses (and with it inspect)
# costs every hook more than the rest of its work.
NO_DATA: Mapping[str, Any] = MappingProxyType({})


class NewEvent(NamedTuple):
    """An event as a caller asks for it; the store adds position, version, time, host, hash."""

    profile: str
    type: str
    actor: str
    desired: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    data: Mapping[str, Any] = NO_DATA
    idempotency_key: str | None = None

    def validated(self) -> str:
        """Check every field's form (not the stream rules: that is the fold's job).

        Returns ``data`` as its canonical JSON text, which the check produces anyway.
        """
        validate_name(self.profile)
        if self.type not in TYPES:
            raise BadInput(f"unknown event type {self.type!r}: expected one of {', '.join(TYPES)}")
        if self.actor not in ACTORS:
            raise BadInput(f"unknown actor {self.actor!r}: expected one of {', '.join(ACTORS)}")
        if self.desired is not None and self.desired not in DESIRED:
            raise BadInput(f"invalid desired state {self.desired!r}: expected up, down or none")
        _optional_int(self.pid, "pid", 1, 2**31 - 1)
        _optional_int(self.exit_code, "exit code", 0, 255)
        _optional_int(self.signal, "signal", 1, 128)
        if self.reason is not None:
            validate_slug(self.reason, "reason")
        key = self.idempotency_key
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200 or not key.isprintable()):
            raise BadInput("invalid idempotency key: expected 1-200 printable characters")
        return "{}" if isinstance(self.data, Mapping) and not self.data else encode_data(self.data)


class Event(NamedTuple):
    """One stored row of ``events``; ``data`` is decoded."""

    position: int
    profile: str
    version: int
    type: str
    actor: str
    desired: str | None
    occurred_at: str
    host: str
    boot_id: str | None
    pid: int | None
    exit_code: int | None
    signal: int | None
    reason: str | None
    data: Mapping[str, Any]
    idempotency_key: str | None
    hash: str
    chain_version: int = 1  # the encoding its hash covers (hermes_state.chain.ENCODINGS)

    @property
    def run(self) -> int | None:
        """The position of the ``started`` this supervisor event belongs to."""
        run = self.data.get("run")
        return run if isinstance(run, int) and not isinstance(run, bool) else None

    def as_row(self) -> dict[str, Any]:
        """Every column, keyed by column name; ``data`` as its canonical text."""
        row = {name: getattr(self, name) for name in COLUMNS}
        row["data"] = encode_data(self.data)
        return row

    def as_json(self) -> dict[str, Any]:
        """Every column, ``data`` as an object: one line of ``--json`` output."""
        row = {name: getattr(self, name) for name in COLUMNS}
        row["data"] = dict(self.data)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Event":
        values = {name: row[name] for name in COLUMNS}
        raw = values["data"]
        values["data"] = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
        return cls(**values)

