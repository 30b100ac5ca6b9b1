"""`hermes state up`: the embedded default (`make run`), no root and no container needed.

A private ``s6-svscan`` on the scan directory (``$HERMES_HOME/run/service``
outside a container) when none runs there, then the boot pass, then the
watch daemon in the foreground, reporting each pass (the CLI prints each
event and what it caused).
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
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ..errors import HermesError
from ..settings import Settings
from .boot import boot
from .reconcile import PassReport
from .s6 import S6, S6Error, S6Timeout
from .slots import ScanDir
from .watch import WatchOptions, watch

SCANNER_START_TIMEOUT = 5.0
# s6-svscan -t waits for every supervisor, which waits for its finish (5 s at most).
SCANNER_STOP_TIMEOUT = 30.0


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


def up(
    settings: Settings,
    options: WatchOptions,
    *,
    report: Callable[[PassReport], None],
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> int:
    """Boot, then watch until Ctrl-C; ``report`` gets every pass, ``say`` this command's own lines, ``warn`` stderr's."""
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
        status = boot(settings, report=report, warn=warn)
        if status != 0:
            return status
        say(f"boot done; watching {settings.db_path} (Ctrl-C stops)")
        return watch(settings, options, report=report, warn=warn)
    finally:
        if process is not None:
            stop_scanner(process, scandir, s6, say)
