"""Times, durations and exits in words a person reads at a glance (tables only; JSON keeps raw values)."""

from __future__ import annotations

from datetime import datetime

from hermes_lifecycle.vocabulary import parse_time


def local_time(stored: str | None) -> str:
    """A stored UTC time as local wall-clock time, to the second."""
    if not stored:
        return ""
    return parse_time(stored).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def local_zone(now: datetime) -> str:
    """The local zone's name for a column header, e.g. CET or UTC."""
    return now.astimezone().tzname() or "local"


def duration(seconds: float | None) -> str:
    """``3d 4h``, ``2h 13m``, ``4m 12s``, ``12s``, ``0.4s``: the two largest units."""
    if seconds is None:
        return ""
    if seconds < 0:
        seconds = 0.0
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    whole = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        # The largest unit present, then the next one down even when it is 0: "2h 0m", not "2h".
        if parts or whole >= size or unit == "s":
            parts.append(f"{whole // size}{unit}")
            whole %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def age(stored: str | None, now: datetime) -> str:
    """How long before ``now`` a stored time was: ``12s ago``, ``3h 5m ago``; ``in 5s`` for a clock skew."""
    if not stored:
        return ""
    seconds = (now - parse_time(stored)).total_seconds()
    if seconds < 0:
        return f"in {duration(-seconds)}"
    return f"{duration(float(int(seconds)))} ago"


_SIGNAL_NAMES: dict[int, str] | None = None


def signal_name(number: int | None) -> str:
    """``SIGKILL`` for 9: the name ``signal.Signals`` gives, ``signal 99`` for a number it has none for."""
    global _SIGNAL_NAMES
    if number is None:
        return ""
    if _SIGNAL_NAMES is None:
        _SIGNAL_NAMES = signal_names()
    return _SIGNAL_NAMES.get(number) or f"signal {number}"


def signal_names() -> dict[int, str]:
    """``signal.Signals``' names by number, read from ``_signal``, which the interpreter loads at
    start-up: importing ``signal`` builds its enums, a third of a millisecond for a table of
    names. Where aliases share a number (SIGABRT, SIGIOT) the enum keeps the name that sorts
    first, and so does this; tests/test_history_unit.py compares the two."""
    import _signal

    names: dict[int, str] = {}
    for name in sorted(vars(_signal)):
        value = getattr(_signal, name)
        if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(value, int):
            names.setdefault(value, name)
    return names


def exit_text(exit_code: int | None, signal: int | None) -> str:
    """``exit 1``, ``SIGKILL``, or nothing when the event is not an exit."""
    if signal is not None:
        return signal_name(signal)
    if exit_code is not None:
        return f"exit {exit_code}"
    return ""


def when(stored: str | None, now: datetime) -> str:
    """``2026-11-27 14:02:11 (3h 5m ago)``"""
    if not stored:
        return "never"
    return f"{local_time(stored)} ({age(stored, now)})"
