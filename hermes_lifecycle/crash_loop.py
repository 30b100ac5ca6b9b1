"""The crash-loop breaker's policy: COUNT crashes within WINDOW seconds (pure; ``settings`` builds it)."""

from __future__ import annotations

import re

from .errors import BadInput
from .records import Record


class CrashLoopPolicy(Record):
    """``HERMES_CRASH_LOOP``: COUNT crashes within WINDOW seconds trip the breaker."""

    crashes: int  # COUNT (not ``count``: a record's field must not shadow tuple.count)
    window_seconds: float

    @classmethod
    def parse(cls, text: str) -> "CrashLoopPolicy":
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text)
        if not match:
            raise BadInput(f"invalid HERMES_CRASH_LOOP {text!r}: expected COUNT/WINDOW such as 5/60s")
        count = int(match.group(1))
        window = float(match.group(2)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(3)]
        if count < 1 or window <= 0:
            raise BadInput(f"invalid HERMES_CRASH_LOOP {text!r}: count and window must be positive")
        return cls(count, window)
