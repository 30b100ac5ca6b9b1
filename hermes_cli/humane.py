"""Times, durations and exits in words a person reads at a glance (tables only; JSON keeps raw values)."""

from __future__ import annotations

from datetime import datetime

from hermes_state.vocabulary import parse_time


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


def signal_name(number: int | None) -> str:
    if number is None:
        return ""
    try:
        import signal as signals  # here: only an exit by a signal pays for its enum

        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


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
