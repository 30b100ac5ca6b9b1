"""The two event record shapes, and the one validating constructor of a stored row.

``NewEvent`` is what a caller asks to append; ``Event`` is a stored row, with
every column of the public ``events`` table.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, Mapping

from .errors import BadInput, StoreCorrupt
from .names import shown as _shown
from .names import validate_name, validate_slug
from .records import Record
from .vocabulary import (
    ACTOR_OF, ACTORS, COLUMNS, DESIRED, DESIRED_OF, TYPE_OF, TYPES, Actor, Desired, EventType, format_time, is_int,
    parse_time, utc_now,
)

# Re-exported: the vocabulary lives in a module light enough for fast readers.
__all__ = [
    "TYPES", "ACTORS", "DESIRED", "COLUMNS", "EventType", "Actor", "Desired", "format_time", "parse_time",
    "utc_now", "NewEvent", "Event", "MalformedRow", "encode_data",
]

# The largest ``data`` an append accepts, as UTF-8: what the watch daemon reads of a row is
# bounded by it (docs/reliability.md), so nothing this code writes is ever too large to read.
MAX_DATA_BYTES = 65536
TIME_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_HASH = re.compile(r"[0-9a-f]{64}")


class MalformedRow(StoreCorrupt):
    """A stored row that is not what this code writes (exit 5): readers skip and report it."""

    def __init__(self, table: str, key: object, problem: str) -> None:
        self.table = table
        self.problem = problem
        if table == "events":  # keyed by position
            self.position = key if is_int(key) else None
            where = f"position {_shown(key)}"
        else:  # profile_projection: keyed by profile
            self.position = None
            where = f"profile {_shown(key)}"
        super().__init__(f"malformed row in {table} at {where}: {problem}")


def encode_data(data: object) -> str:
    """Canonical JSON text of ``data``: an object, sorted keys, no NaN."""
    import json  # here: a reader decodes (``decode_json``), only writers encode

    if not isinstance(data, Mapping):
        raise BadInput(f"event data must be a JSON object, not {type(data).__name__}")
    try:
        return json.dumps(dict(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise BadInput(f"event data is not JSON: {error}") from None


_JSON_SPACE = " \t\n\r"  # the whitespace JSON allows around a value
_JSON_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _JsonDefaults:
    """What the C scanner reads from ``json.JSONDecoder()`` as ``json.loads`` makes it."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _JSON_CONSTANTS.__getitem__


_scan_json = None


def decode_json(text: str) -> Any:
    """``json.loads(text)`` for a str, by the same C scanner with the same settings, without
    importing the ``json`` package: its import compiles six regular expressions, about a
    millisecond of every `profile history`. Text the scanner does not take whole is handed to
    ``json.loads`` itself, which refuses it with its own message (the scanner reports syntax
    errors through ``json.decoder``, so it cannot report them unless json is loaded).
    tests/test_decode_json.py holds the two equal, refusals included."""
    global _scan_json
    if _scan_json is None:
        try:
            from _json import make_scanner
        except ImportError:  # an interpreter without the C scanner: json itself
            return _json_loads(text)
        _scan_json = make_scanner(_JsonDefaults)  # type: ignore[arg-type]  # reads only these attributes, as off a JSONDecoder
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    try:
        value, end = _scan_json(text, start)
    except RecursionError:
        raise  # as json.loads would
    except Exception:  # no value here (StopIteration), or a syntax error (SystemError without json.decoder)
        return _json_loads(text)
    if text[end:].strip(_JSON_SPACE):
        return _json_loads(text)  # extra data after the value: json.loads says so
    return value


def _json_loads(text: str) -> Any:
    import json

    return json.loads(text)


def _optional_int(value: object, what: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not is_int(value) or not low <= value <= high:
        raise BadInput(f"invalid {what} {value!r}: expected an integer from {low} to {high}")
    return value


# Named tuples, not dataclasses: importing dataclasses (and with it inspect)
# costs every hook more than the rest of its work.
NO_DATA: Mapping[str, Any] = MappingProxyType({})


class NewEvent(Record):
    """An event as a caller asks for it; the store adds position, version, time, host, hash."""

    profile: str
    type: EventType
    actor: Actor
    desired: Desired | None = None
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    data: Mapping[str, Any] = NO_DATA
    idempotency_key: str | None = None

    def validated(self) -> str:
        """Check every field's form (not the stream rules: that is the fold's job).

        Returns ``data`` as its canonical JSON text, which the check produces anyway. A caller
        may name the words as text (``"created"``): ``words`` gives them as members.
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
        if isinstance(self.data, Mapping) and not self.data:
            return "{}"
        text = encode_data(self.data)
        if len(text) > MAX_DATA_BYTES // 4 and len(text.encode("utf-8")) > MAX_DATA_BYTES:
            raise BadInput(f"event data is larger than {MAX_DATA_BYTES} bytes as JSON")
        return text

    def words(self) -> tuple[EventType, Actor, Desired | None]:
        """Its type, actor and desired state as members (``validated`` first: each names one)."""
        desired = None if self.desired is None else DESIRED_OF[self.desired]
        return TYPE_OF[self.type], ACTOR_OF[self.actor], desired


class Event(Record):
    """One stored row of ``events``; ``data`` is decoded."""

    position: int
    profile: str
    version: int
    type: EventType
    actor: Actor
    desired: Desired | None
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
    chain_version: int = 1  # the encoding its hash covers (hermes_lifecycle.chain.ENCODINGS)

    @property
    def run(self) -> int | None:
        """The position of the ``started`` this supervisor event belongs to."""
        run = self.data.get("run")
        return run if is_int(run) else None

    def as_json(self) -> dict[str, Any]:
        """Every column, ``data`` as an object: one line of ``--json`` output."""
        row = {name: getattr(self, name) for name in COLUMNS}
        row["data"] = dict(self.data)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Event":
        """A stored row as an Event, every value checked first: MalformedRow names what is wrong.

        The store's file belongs to a less privileged user (and can be damaged), so
        nothing read from it is trusted: a row a CHECK should have refused (inserted
        with ``ignore_check_constraints``, a BLOB, a wrong type) is refused here.
        """
        position = row["position"]
        if not is_int(position) or position < 1:
            raise MalformedRow("events", position, "position is not a positive integer")
        problem = _row_problem(row)
        if problem is not None:
            raise MalformedRow("events", position, problem)
        values = {name: row[name] for name in COLUMNS}
        try:
            data = decode_json(values["data"])
        except (ValueError, RecursionError):
            raise MalformedRow("events", position, "data is not JSON") from None
        if not isinstance(data, dict):
            raise MalformedRow("events", position, f"data is JSON {type(data).__name__}, not an object")
        values["data"] = data
        values["type"] = TYPE_OF[values["type"]]
        values["actor"] = ACTOR_OF[values["actor"]]
        if values["desired"] is not None:
            values["desired"] = DESIRED_OF[values["desired"]]
        return cls(**values)


def _optional(value: object, kind: type) -> bool:
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _row_problem(row: Mapping[str, Any]) -> str | None:
    """What is wrong with an events row's values other than position and data's JSON, or None."""
    if row.get("oversized"):
        return f"{row['oversized'].strip()} larger than a reader takes"
    if not isinstance(row["profile"], str):
        return "profile is not text"
    if not is_int(row["version"]) or row["version"] < 1:
        return "version is not a positive integer"
    if row["type"] not in TYPES:
        return f"unknown type {_shown(row['type'])}"
    if row["actor"] not in ACTORS:
        return f"unknown actor {_shown(row['actor'])}"
    if row["desired"] is not None and row["desired"] not in DESIRED:
        return f"invalid desired {_shown(row['desired'])}"
    if not isinstance(row["occurred_at"], str) or not TIME_FORMAT.fullmatch(row["occurred_at"]):
        return f"occurred_at {_shown(row['occurred_at'])} is not a time in the log's format"
    try:
        parse_time(row["occurred_at"])
    except ValueError:
        return f"occurred_at {_shown(row['occurred_at'])} is not a real time"
    if not isinstance(row["host"], str):
        return "host is not text"
    for name, low, high in (("pid", 1, 2**31 - 1), ("exit_code", 0, 255), ("signal", 1, 128)):
        value = row[name]
        if value is not None and (not is_int(value) or not low <= value <= high):
            return f"{name} {_shown(value)} is not an integer from {low} to {high}"
    for name in ("boot_id", "reason", "idempotency_key"):
        if not _optional(row[name], str):
            return f"{name} is not text"
    if not isinstance(row["data"], str):
        return "data is not text"
    if not isinstance(row["hash"], str) or not _HASH.fullmatch(row["hash"]):
        return "hash is not 64 hex digits"
    if not is_int(row["chain_version"]) or row["chain_version"] < 1:
        return "chain_version is not a positive integer"
    return None
