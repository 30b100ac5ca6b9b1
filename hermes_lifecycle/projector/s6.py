"""A thin adapter over Debian's s6 commands: every call has a timeout, every failure raises.

Only the projector (and the container's stop step) sends s6 commands
(docs/design.md section 3); reading a slot's
status (``S6.status``) is also what `hermes-state status` shows. Parsing
what s6 prints is pure and lives in ``observed``, so the planner needs
nothing from this module. A command that fails raises ``S6Error`` carrying
its stderr; the two failures a caller must tell apart (no supervisor on a
slot, no s6-svscan on a scan directory) have their own subclasses.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

# S6Error, ServiceStatus and parse_status are re-exported: callers catch and read them here.
from .observed import STATUS_FIELDS, S6Error, ServiceStatus, parse_status

__all__ = ["S6", "S6Error", "NotSupervised", "ScannerNotRunning", "S6Timeout", "ServiceStatus", "parse_status"]

COMMAND_TIMEOUT = 10.0  # seconds; s6 commands answer in milliseconds

# Exit statuses documented by s6 (S6-NOTES.md).
_SVC_NOT_SUPERVISED = {100, 102}
_SVSCANCTL_NOT_LISTENING = 100


class NotSupervised(S6Error):
    """No s6-supervise runs on the slot."""


class ScannerNotRunning(S6Error):
    """No s6-svscan listens on the scan directory."""


class S6Timeout(S6Error):
    """An s6 command or wait did not finish in time."""


class S6:
    """The s6 commands the projector sends, each run with a timeout."""

    def __init__(self, timeout: float = COMMAND_TIMEOUT) -> None:
        self.timeout = timeout

    # -- s6-svscan ---------------------------------------------------------
    def rescan(self, scandir: Path) -> None:
        """``s6-svscanctl -a``: supervise slots that appeared."""
        self._svscanctl("-a", scandir)

    def rescan_and_prune(self, scandir: Path) -> None:
        """``s6-svscanctl -an``: also stop the supervisors of slots that disappeared."""
        self._svscanctl("-an", scandir)

    def shut_down_scanner(self, scandir: Path) -> None:
        """``s6-svscanctl -t``: bring every service down (``finish`` sees wantedup false), then exit."""
        self._svscanctl("-t", scandir)

    @staticmethod
    def scanner_running(scandir: Path) -> bool:
        """Whether an s6-svscan listens on ``scandir``, without sending it anything.

        s6-svscanctl writes to ``.s6-svscan/control``, a FIFO s6-svscan keeps
        open for reading; opening it for writing without blocking fails with
        ENXIO exactly when nobody reads it.
        """
        control = Path(scandir) / ".s6-svscan" / "control"
        try:
            fd = os.open(control, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            if error.errno in (errno.ENXIO, errno.ENOENT):
                return False
            raise S6Error(f"cannot probe {control}: {error.strerror}") from None
        os.close(fd)
        return True

    def _svscanctl(self, option: str, scandir: Path) -> None:
        result = self._run(["s6-svscanctl", option, str(scandir)])
        if result.returncode == _SVSCANCTL_NOT_LISTENING:
            raise ScannerNotRunning(_failure(result, f"no s6-svscan runs on {scandir}"))
        if result.returncode != 0:
            raise S6Error(_failure(result))

    # -- one slot ----------------------------------------------------------
    def up(self, slot: Path) -> None:
        self._svc("-u", slot)

    def down(self, slot: Path) -> None:
        self._svc("-d", slot)

    def down_and_exit(self, slot: Path) -> None:
        """``s6-svc -dx``: bring it down (``finish`` sees wantedup false), then the supervisor exits."""
        self._svc("-dx", slot)

    def exit_supervisor(self, slot: Path) -> None:
        """``s6-svc -x``: the slot's supervisor exits once its service is down (at once when it is)."""
        self._svc("-x", slot)

    def kill(self, slot: Path) -> None:
        """``s6-svc -k``: SIGKILL the slot's process (the escalation when SIGTERM and timeout-kill did not end it)."""
        self._svc("-k", slot)

    def restart(self, slot: Path) -> None:
        """``s6-svc -r``: signal the process; s6 starts it again since it is still wanted up."""
        self._svc("-r", slot)

    def _svc(self, option: str, slot: Path) -> None:
        result = self._run(["s6-svc", option, str(slot)])
        if result.returncode in _SVC_NOT_SUPERVISED:
            raise NotSupervised(_failure(result, f"nothing supervises {slot}"))
        if result.returncode != 0:
            raise S6Error(_failure(result))

    def status(self, slot: Path) -> ServiceStatus | None:
        """The slot's status, or None when no s6-supervise runs on it (or it has not written a status yet)."""
        result = self._run(["s6-svstat", "-o", ",".join(STATUS_FIELDS), str(slot)])
        if result.returncode == 1 and "supervise not running" in result.stderr:
            return None
        if result.returncode == 111 and "unable to read status" in result.stderr and "No such file" in result.stderr:
            return None  # s6-supervise has just started and not written supervise/status yet
        if result.returncode != 0:
            raise S6Error(_failure(result))
        return parse_status(result.stdout)

    # -- plumbing ----------------------------------------------------------
    def _run(self, argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        program = shutil.which(argv[0])
        if program is None:
            raise S6Error(f"{argv[0]} not found on PATH: install s6 (Debian: apt-get install s6)")
        limit = self.timeout if timeout is None else timeout
        try:
            return subprocess.run(
                [program, *argv[1:]], capture_output=True, text=True, timeout=limit,
                stdin=subprocess.DEVNULL, close_fds=True,
            )
        except subprocess.TimeoutExpired:
            raise S6Timeout(f"{' '.join(argv)} did not answer in {limit:g} s") from None
        except OSError as error:
            raise S6Error(f"cannot run {argv[0]}: {error.strerror}") from None


def _failure(result: subprocess.CompletedProcess[str], summary: str | None = None) -> str:
    argv = result.args if isinstance(result.args, list) else [str(result.args)]
    command = " ".join([os.path.basename(str(argv[0])), *map(str, argv[1:])])
    detail = " ".join(result.stderr.split()) or "no message"
    head = f"{summary}: " if summary else ""
    return f"{head}{command} exited {result.returncode}: {detail}"
