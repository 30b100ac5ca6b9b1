"""The hash chain: each row's hash covers the previous row's hash and its own content.

A change made behind the triggers' back (or a row removed or reordered)
breaks the chain from that row on; ``doctor`` names the first bad position.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping

from .vocabulary import COLUMNS

GENESIS = "0" * 64

# Every column but ``hash``, in table order; ``data`` as its stored text.
HASHED_COLUMNS = tuple(name for name in COLUMNS if name != "hash")


def canonical_encoding(row: Mapping[str, Any]) -> bytes:
    """A stable byte string for one row: a JSON array of its hashed columns."""
    values = [row[name] for name in HASHED_COLUMNS]
    return json.dumps(values, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def chain_hash(previous_hash: str, row: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(previous_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_encoding(row))
    return digest.hexdigest()


def first_broken_position(rows: Iterable[Mapping[str, Any]], previous: str = GENESIS) -> int | None:
    """Position of the first row (in position order) whose hash does not verify, or None.

    ``previous`` is the hash of the row before the first one: the genesis
    hash when ``rows`` start at position 1.
    """
    for row in rows:
        if chain_hash(previous, row) != row["hash"]:
            return int(row["position"])
        previous = row["hash"]
    return None
