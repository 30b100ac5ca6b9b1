"""What the projector observes of a slot, as plain values: parsed, never fetched here.

Pure: no subprocess, no file system. ``s6.py`` runs ``s6-svstat`` and hands
its output to ``parse_status``; ``reconcile`` gathers a ``SlotView`` per
slot; ``plan`` decides from those values alone.
"""

from __future__ import annotations


from ..records import Record
from ..errors import HermesError

# The fields asked of s6-svstat, in this order.
STATUS_FIELDS = (
    "up", "pid", "wantedup", "normallyup", "exitcode", "signum", "updownsince", "readysince", "updownfor",
)


class S6Error(HermesError):
    """An s6 command failed, or printed what it never prints; the message says which."""


class ServiceStatus(Record):
    """What ``s6-svstat -o`` says about one supervised slot.

    ``updownsince`` and ``readysince`` are TAI64N labels as integers: only
    their order matters here; ``updownfor`` is in seconds.
    """

    up: bool
    pid: int | None
    wantedup: bool
    normallyup: bool
    exitcode: int | None
    signum: int | None
    updownsince: int
    readysince: int
    updownfor: int

    def as_json(self) -> dict:
        """The status as a JSON object, under the names shown to operators (no exit when none happened)."""
        ran = not self.never_started
        return {
            "up": self.up, "wanted_up": self.wantedup, "normally_up": self.normallyup,
            "pid": self.pid if self.up else None, "exit_code": self.exitcode if ran else None,
            "signal": self.signum if ran else None, "seconds": self.updownfor,
        }

    @property
    def never_started(self) -> bool:
        """Down since its supervisor started, having run nothing: s6-supervise stamps ``updownsince``
        and ``readysince`` alike when it starts, and a run's death and its finish stamp them apart.
        s6-svstat says "exitcode 0" then, for an exit that never happened."""
        return not self.up and self.readysince == self.updownsince

    @property
    def finish_done(self) -> bool:
        """Down, and its ``finish`` has returned.

        s6 stamps ``readysince`` when ``finish`` ends ("down and ready", what
        ``s6-svwait -D`` waits for). ``-o ready`` itself prints false for a
        down service on s6 2.11, so the two stamps are compared instead.
        """
        return not self.up and self.readysince >= self.updownsince


class SlotView(Record):
    """What the scan directory and ``s6-svstat`` show for one slot."""

    profile: str
    status: ServiceStatus | None  # None: no s6-supervise runs on it (yet)
    down_file: bool
    scripts_current: bool = True
    restart_applied: int | None = None  # the last restart intent applied to this slot


def parse_status(line: str) -> ServiceStatus:
    """Parse one line of ``s6-svstat -o`` + STATUS_FIELDS; raise S6Error on anything else."""
    words = line.split()
    if len(words) != len(STATUS_FIELDS):
        raise S6Error(f"s6-svstat printed {line.strip()!r}: expected {len(STATUS_FIELDS)} fields")
    values = dict(zip(STATUS_FIELDS, words))
    return ServiceStatus(
        up=_boolean(values["up"]),
        pid=_number(values["pid"], "pid"),
        wantedup=_boolean(values["wantedup"]),
        normallyup=_boolean(values["normallyup"]),
        exitcode=_number(values["exitcode"], "exitcode"),
        signum=_number(values["signum"], "signum"),
        updownsince=_tai64n(values["updownsince"]),
        readysince=_tai64n(values["readysince"]),
        updownfor=_seconds(values["updownfor"]),
    )


def _boolean(word: str) -> bool:
    if word == "true":
        return True
    if word == "false":
        return False
    raise S6Error(f"s6-svstat printed {word!r} where true or false was expected")


def _number(word: str, what: str) -> int | None:
    """s6 prints -1 for "none" (no pid while down, no exit code after a signal)."""
    try:
        value = int(word)
    except ValueError:
        raise S6Error(f"s6-svstat printed {word!r} as {what}: not a number") from None
    return None if value < 0 else value


def _seconds(word: str) -> int:
    if not word.isdigit():
        raise S6Error(f"s6-svstat printed {word!r} as seconds: not a number")
    return int(word)


def _tai64n(word: str) -> int:
    if len(word) != 25 or not word.startswith("@"):
        raise S6Error(f"s6-svstat printed {word!r}: not a TAI64N label")
    try:
        return int(word[1:], 16)
    except ValueError:
        raise S6Error(f"s6-svstat printed {word!r}: not a TAI64N label") from None
