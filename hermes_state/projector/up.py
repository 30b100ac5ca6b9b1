"""`hermes state up`: the embedded default (`make run`), no root and no container needed.

A private ``s6-svscan`` on the scan directory (``$HERMES_HOME/run/service``
outside a container) when none runs there, then the boot pass, then the
watch daemon in the foreground, printing each event and what it caused.
Ctrl-C (or SIGTERM) stops the watch, then ``s6-svscanctl -t`` on the
s6-svscan this command started, so every gateway's ``finish`` records a
``shutdown``; an s6-svscan it found running is left alone.

The slots' scripts find ``hermes`` and the ``HERMES_*`` settings in the
environment s6-svscan passes down: the one it starts gets this process's
environment, with the directory of this ``hermes`` first on PATH and the
resolved paths spelled out, so a gateway records into the very store this
command projects.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

from ..errors import HermesError
from ..events import Event
from ..names import shown
from ..settings import Settings
from . import plan as planning
from .boot import boot
from .reconcile import PassReport
from .s6 import S6, S6Error, S6Timeout
from .slots import ScanDir
from .watch import WatchOptions, watch

SCANNER_START_TIMEOUT = 5.0
# s6-svscan -t waits for every supervisor, which waits for its finish (5 s at most).
SCANNER_STOP_TIMEOUT = 30.0
_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+=-]{1,80}")


def hermes_bin_dir() -> Path:
    """The directory holding the ``hermes`` command this process runs from."""
    beside = Path(sys.executable).parent
    if (beside / "hermes").exists():
        return beside
    found = shutil.which("hermes")
    if found is None:
        raise HermesError("cannot find the `hermes` command the slots must run (not beside the interpreter, not on PATH)")
    return Path(found).parent


def scanner_environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{hermes_bin_dir()}{os.pathsep}{env.get('PATH') or '/usr/local/bin:/usr/bin:/bin'}"
    env.update(
        HERMES_HOME=str(settings.home),
        HERMES_STATE_DB=str(settings.db_path),
        S6_PROFILE_GATEWAY_SCANDIR=str(settings.scandir),
    )
    return env


def clear_stale_slots(scandir: ScanDir, s6: S6) -> list[str]:
    """With no s6-svscan running, empty the scan directory of our slots, as a container's tmpfs starts empty.

    A slot left from the last run would otherwise start (or not) on its old
    ``down`` file before boot corrects it. A slot something still supervises
    is refused: removing it would orphan that supervisor.
    """
    removed = []
    for profile in scandir.profiles():
        slot = scandir.slot_path(profile)
        if s6.status(slot) is not None:
            raise S6Error(f"s6-supervise still runs on {slot} but no s6-svscan does: stop it first (s6-svc -dx {slot})")
        scandir.delete_hidden(scandir.move_out(profile).name)
        removed.append(profile)
    for entry in scandir.leftovers():
        if s6.status(scandir.path / entry) is not None:
            raise S6Error(f"s6-supervise still runs on {scandir.path / entry}: stop it first")
        scandir.delete_hidden(entry)
    return removed


def start_scanner(settings: Settings, scandir: ScanDir, s6: S6) -> subprocess.Popen:
    program = shutil.which("s6-svscan")
    if program is None:
        raise S6Error("s6-svscan not found on PATH: install s6 (Debian: apt-get install s6)")
    process = subprocess.Popen(
        [program, str(scandir.path)], env=scanner_environment(settings), stdin=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,  # its own session: the terminal's Ctrl-C is ours to relay
    )
    deadline = time.monotonic() + SCANNER_START_TIMEOUT
    while not s6.scanner_running(scandir.path):
        if process.poll() is not None:
            raise S6Error(f"s6-svscan on {scandir.path} exited at once with status {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise S6Timeout(f"s6-svscan on {scandir.path} did not start listening in {SCANNER_START_TIMEOUT:g} s")
        time.sleep(0.01)
    return process


def stop_scanner(process: subprocess.Popen, scandir: ScanDir, s6: S6, say: Callable[[str], None]) -> None:
    """``s6-svscanctl -t`` and wait: every gateway goes down through its finish (recorded ``shutdown``)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan the supervisors
    try:
        if process.poll() is None:
            s6.shut_down_scanner(scandir.path)
        try:
            process.wait(timeout=SCANNER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise S6Timeout(
                f"s6-svscan (pid {process.pid}) on {scandir.path} still runs {SCANNER_STOP_TIMEOUT:g} s after "
                "s6-svscanctl -t: a gateway ignores SIGTERM?"
            ) from None
        say(f"s6-svscan on {scandir.path} stopped; every gateway is down")
    finally:
        signal.signal(signal.SIGINT, previous)


def _plain(text: object) -> str:
    """Database text shown to a terminal: as is when plain, else quoted (no escape sequence gets through)."""
    return text if isinstance(text, str) and _PLAIN.fullmatch(text) else shown(text)


def describe_event(event: Event) -> str:
    parts = [f"#{event.position}", _plain(event.profile), _plain(event.type), f"by {_plain(event.actor)}"]
    if event.desired:
        parts.append(f"desired {_plain(event.desired)}")
    if event.reason:
        parts.append(f"reason {_plain(event.reason)}")
    if event.pid is not None:
        parts.append(f"pid {event.pid}")
    if event.exit_code is not None:
        parts.append(f"exit {event.exit_code}")
    if event.signal is not None:
        parts.append(f"signal {event.signal}")
    return " ".join(str(p) for p in parts)


def readable(out: TextIO) -> Callable[[PassReport], None]:
    """A reporter for people: each event, then the actions it caused, indented."""

    def report(result: PassReport) -> None:
        if not result.events and not result.acted:
            return
        clock = time.strftime("%H:%M:%S")
        for event in result.events:
            out.write(f"{clock}  {describe_event(event)}\n")
        if not result.events:
            out.write(f"{clock}  {result.trigger} pass over every profile\n")
        for row in result.actions:
            if row["action"] == planning.SKIP_INVALID:
                out.write(f"            skipped {row['profile']}: {row.get('detail', '')}\n")
                continue
            line = f"            -> {row['action']} {row['profile']}".rstrip()
            if row.get("error"):
                line += f"  FAILED: {row['error']}"
            out.write(line + "\n")
        if result.events and not result.actions:
            out.write("            (no change to the slots)\n")
        out.flush()

    return report


def up(settings: Settings, options: WatchOptions, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    s6 = S6()
    scandir = ScanDir(settings.scandir, container=settings.in_container)
    scandir.ensure()
    process = None
    if s6.scanner_running(scandir.path):
        say(f"s6-svscan already runs on {scandir.path}: using it (it stays up after this command)")
    else:
        cleared = clear_stale_slots(scandir, s6)
        if cleared:
            say(f"cleared {len(cleared)} slot(s) left from the last run: boot makes them again")
        process = start_scanner(settings, scandir, s6)
        say(f"s6-svscan started on {scandir.path} (pid {process.pid})")
    try:
        status = boot(settings, report=readable(out))
        if status != 0:
            return status
        say(f"boot done; watching {settings.db_path} (Ctrl-C stops)")
        return watch(settings, options, report=readable(out))
    finally:
        if process is not None:
            stop_scanner(process, scandir, s6, say)
