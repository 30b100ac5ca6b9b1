"""The values of the command line's options, as the library's typed values: one parser each.

`history`'s ``--since``/``--until``/``--type``/``--boot``/``--limit`` and
`serve`'s ``since``; the library takes the result (``history.HistoryFilter``)
and never sees an option's name.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from hermes_lifecycle.errors import BadInput
from hermes_lifecycle.names import BOOT_ID_PATTERN
from hermes_lifecycle.vocabulary import TYPE_OF, TYPES, EventType, format_time

MAX_LIMIT = 2**31 - 1  # a count any store binds as an integer; more rows than that is "all" (0)
CURRENT_BOOT = "current"

# Patterns as text: re compiles (and caches) them only when --since or --until is given.
_AGE = r"(?:\d{1,9}[smhdw])+"
_AGE_PART = r"(\d+)([smhdw])"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WHEN_HELP = "expected an ISO time such as 2026-11-27T14:00 or an age such as 30m, 2h, 3d"


# -- times ------------------------------------------------------------------
def parse_when(text: str, option: str, now: datetime) -> str:
    """``--since``/``--until``: an ISO time (local when it names no zone) or an age before ``now``."""
    value = text.strip()
    if re.fullmatch(_AGE, value):
        seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in re.findall(_AGE_PART, value))
        try:
            return format_time(now - timedelta(seconds=seconds))
        except OverflowError:
            raise BadInput(f"invalid {option} {text!r}: that age reaches before year 1") from None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise BadInput(f"invalid {option} {text!r}: {_WHEN_HELP}") from None
    # A time without a zone is what the person's clock shows: local time.
    return format_time(moment if moment.tzinfo else moment.astimezone())


def parse_types(text: str) -> tuple[EventType, ...]:
    """``--type crashed,stopped``: known event types, in the order given, each once."""
    chosen: list[EventType] = []
    for part in text.split(","):
        name = part.strip()
        kind = TYPE_OF.get(name)
        if kind is None:
            shown = repr(name) if name else "an empty name"
            raise BadInput(f"unknown event type {shown} in --type: expected some of {', '.join(TYPES)}")
        if kind not in chosen:
            chosen.append(kind)
    return tuple(chosen)


def parse_boot(text: str) -> str:
    """``--boot``: ``current`` or a boot id as the projector writes them."""
    value = text.strip()
    if value == CURRENT_BOOT or BOOT_ID_PATTERN.fullmatch(value):
        return value
    raise BadInput(f"invalid --boot {text!r}: expected 'current' or a boot id (hex digits and '-')")
