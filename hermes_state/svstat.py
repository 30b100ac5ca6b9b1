"""What s6 says about one slot, read with `s6-svstat` only (never a command, never a write).

`hermes gateway status` shows it next to the desired state. This is not the
projector's adapter: reading needs no privilege the adapter has, and a
status check must never be able to change a slot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import NamedTuple

FIELDS = ("up", "wantedup", "normallyup", "pid", "exitcode", "signum", "updownfor")
TIMEOUT_SECONDS = 5


class SlotStatus(NamedTuple):
    up: bool
    wanted_up: bool
    normally_up: bool
    pid: int | None  # while up
    exit_code: int | None  # of the last exit, when it exited by itself
    signal: int | None  # of the last exit, when killed by a signal
    seconds: int  # up or down for this long

    def as_json(self) -> dict:
        return {
            "up": self.up,
            "wanted_up": self.wanted_up,
            "normally_up": self.normally_up,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "seconds": self.seconds,
        }


class Unavailable(NamedTuple):
    reason: str


def parse(line: str) -> SlotStatus:
    """One line of ``s6-svstat -o up,wantedup,normallyup,pid,exitcode,signum,updownfor``.

    s6 prints -1 for "none" (pid while down, exitcode after a signal, signum
    after a plain exit)."""
    words = line.split()
    if len(words) != len(FIELDS):
        raise ValueError(f"unexpected s6-svstat output {line.strip()!r}")

    def flag(word: str) -> bool:
        if word not in ("true", "false"):
            raise ValueError(f"unexpected s6-svstat flag {word!r}")
        return word == "true"

    def number(word: str) -> int | None:
        value = int(word)
        return None if value < 0 else value

    up, wanted, normally, pid, exit_code, signum, seconds = words
    return SlotStatus(
        up=flag(up),
        wanted_up=flag(wanted),
        normally_up=flag(normally),
        pid=number(pid) if flag(up) else None,
        exit_code=number(exit_code),
        signal=number(signum) or None,
        seconds=int(seconds),
    )


def read(slot_dir: str | os.PathLike) -> SlotStatus | Unavailable:
    """The slot's status, or why it cannot be known from here."""
    slot = os.fspath(slot_dir)
    scandir = os.path.dirname(slot)
    if not os.access(scandir, os.R_OK | os.X_OK):
        return Unavailable(f"the scan directory {scandir} is not readable from here")
    if not os.path.isdir(slot):
        return Unavailable(f"no slot {slot}: the projector has not made one")
    program = shutil.which("s6-svstat")
    if program is None:
        return Unavailable("s6-svstat is not installed")
    try:
        result = subprocess.run(
            [program, "-o", ",".join(FIELDS), slot],
            capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return Unavailable(f"s6-svstat failed: {error}")
    if result.returncode != 0:
        said = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        return Unavailable(f"s6-svstat: {said.removeprefix('s6-svstat: ')}")
    try:
        return parse(result.stdout)
    except ValueError as error:
        return Unavailable(str(error))
