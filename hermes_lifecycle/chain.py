"""The hash chain: each row's hash covers the previous row's hash and its own content.

A change made behind the triggers' back (or a row removed or reordered)
breaks the chain from that row on; ``doctor`` names the first bad position.

The encoding is versioned: each row records in ``chain_version`` which
frozen column list its hash covers. A migration that adds a column adds an
encoding (the new list) and appends use it from then on; rows written
before keep verifying under theirs.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from .digest import sha256

GENESIS = "0" * 64

# chain version -> the columns its hash covers, in this order, ``data`` as its stored text.
# Frozen: a new column means a new version here, never an edit of an old one.
ENCODINGS: Mapping[int, tuple[str, ...]] = {
    1: (
        "position", "profile", "version", "type", "actor", "desired", "occurred_at", "host", "boot_id",
        "pid", "exit_code", "signal", "reason", "data", "idempotency_key",
    ),
}
CHAIN_VERSION = max(ENCODINGS)  # what appends write

# One encoder, made once: json.dumps with any option builds a new JSONEncoder per call, which
# was a third of verifying a row (doctor reads a million). The same options, the same bytes.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


def canonical_encoding(row: Mapping[str, Any]) -> bytes:
    """A stable byte string for one row: a JSON array of the columns its chain version covers.

    A row whose version this code does not know has no encoding: KeyError, which
    verification reports as a broken chain at that row.
    """
    values = [row[name] for name in ENCODINGS[row["chain_version"]]]
    return _ENCODER.encode(values).encode("ascii")


def chain_hash(previous_hash: str, row: Mapping[str, Any]) -> str:
    digest = sha256(previous_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_encoding(row))
    return digest.hexdigest()


def first_broken_position(rows: Iterable[Mapping[str, Any]], previous: str = GENESIS) -> int | None:
    """Position of the first row (in position order) whose hash does not verify, or None.

    ``previous`` is the hash of the row before the first one: the genesis
    hash when ``rows`` start at position 1.
    """
    for row in rows:
        if not verifies(previous, row):
            return int(row["position"])
        previous = row["hash"]
    return None


def verifies(previous_hash: str, row: Mapping[str, Any]) -> bool:
    """Whether ``row``'s hash is what its chain version computes after ``previous_hash``."""
    if row.get("oversized"):  # a value too long to read (statements.READ_BOUND) came back NULL
        return False
    try:
        return chain_hash(previous_hash, row) == row["hash"]
    except (KeyError, TypeError, ValueError, AttributeError):
        # A chain version this code does not know, or a value no append writes (a BLOB, a number
        # where text belongs, a hash that is not text): the row was not written by this code.
        return False
