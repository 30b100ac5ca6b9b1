"""`hermes-state up`: the embedded default (`make run`), no root and no container needed.

A private ``s6-svscan`` on the scan directory (``$HERMES_HOME/run/service``
outside a container) when none runs there, then the boot pass, then the
watch daemon in the foreground, reporting each pass (the CLI prints each
event and what it caused).
Ctrl-C (or SIGTERM) stops the watch, then ``s6-svscanctl -t`` on the
s6-svscan this command started, so every gateway's ``finish`` records a
``shutdown``; an s6-svscan it found running is left alone.

If the s6-svscan dies under it (killed, out of memory), its ``s6-supervise``
processes and their gateways would run on with nobody to stop them. ``up``
watches it (its own child by pid, an adopted one by its control FIFO), and
when it goes: stops the watch, brings every supervised slot down with
``s6-svc -dx`` (each ``finish`` records ``shutdown``), escalates to
``s6-svc -k`` when a gateway outlives its ``timeout-kill``, checks that no
supervisor, gateway or member of the scanner's session is left, says so,
and exits 1. A later ``up`` that finds supervisors with no s6-svscan (this
command was killed along with it) brings them down the same way first.

The slots' scripts find ``hermes-state`` and the ``HERMES_*`` settings in the
environment s6-svscan passes down: the one it starts gets this process's
environment, with the directory of this ``hermes-state`` first on PATH and the
resolved paths spelled out, so a gateway records into the very store this
command projects.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import HermesError
from ..settings import Settings
from .boot import boot
from .claim import Claim, take as claim_volume
from .reconcile import PassReport
from .s6 import S6, NotSupervised, S6Error, S6Timeout, ServiceStatus
from .slots import KILL_AFTER_MS, READER_SERVICE, ScanDir
from .watch import Watcher, WatchOptions, run_in_foreground

SCANNER_START_TIMEOUT = 5.0
# s6-svscan -t waits for every supervisor, which waits for its finish (5 s at most).
SCANNER_STOP_TIMEOUT = 30.0
# Bringing orphaned supervisors down: the slot's timeout-kill, then finish (5 s at most), and a margin;
# after that, s6-svc -k, and KILL_WAIT more.
ORPHAN_STOP_TIMEOUT = KILL_AFTER_MS / 1000 + 10.0
KILL_WAIT = 10.0
MONITOR_INTERVAL = 0.2


def hermes_bin_dir() -> Path:
    """The directory holding the ``hermes-state`` command this process runs from."""
    beside = Path(sys.executable).parent
    if (beside / "hermes-state").exists():
        return beside
    found = shutil.which("hermes-state")
    if found is None:
        raise HermesError("cannot find the `hermes-state` command the slots must run (not beside the interpreter, not on PATH)")
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


def supervised_slots(scandir: ScanDir, s6: S6) -> dict[Path, ServiceStatus]:
    """Every slot of ours (and every slot a pass moved out of sight), and the gateways' reader, that an
    s6-supervise still runs on."""
    slots = [scandir.slot_path(p) for p in scandir.profiles()] + [scandir.path / e for e in scandir.leftovers()]
    if (scandir.path / READER_SERVICE).is_dir():
        slots.append(scandir.path / READER_SERVICE)
    return {slot: status for slot in slots if (status := s6.status(slot)) is not None}


def session_members(session: int) -> list[int]:
    """Live processes of session ``session`` (s6-supervise stays in its s6-svscan's session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == session and int(entry.name) != session:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def bring_down_supervisors(scandir: ScanDir, s6: S6, session: int | None = None) -> int:
    """With no s6-svscan on ``scandir``: bring every supervised slot down and its supervisor with it, verified.

    ``s6-svc -dx`` on each (the gateway gets SIGTERM, then SIGKILL after the
    slot's ``timeout-kill``; ``finish`` records ``shutdown``; then the
    supervisor exits); a slot still supervised after ORPHAN_STOP_TIMEOUT
    gets ``s6-svc -k``. Then no supervisor, no gateway seen running, and (when
    ``session`` is the dead scanner's) no member of its session may be left:
    raises S6Error naming what is. Returns how many slots were supervised.
    """
    found = supervised_slots(scandir, s6)
    gateways = {status.pid for status in found.values() if status.up and status.pid}
    for slot in found:
        with contextlib.suppress(NotSupervised):
            s6.down_and_exit(slot)
    remaining = _wait_unsupervised(s6, list(found), ORPHAN_STOP_TIMEOUT)
    for slot in remaining:
        with contextlib.suppress(NotSupervised):
            s6.kill(slot)
    remaining = _wait_unsupervised(s6, remaining, KILL_WAIT)
    if session is not None:
        for pid in session_members(session):  # an s6-supervise of a slot no longer in the scan directory
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # s6-supervise's SIGTERM is s6-svc -dx
        deadline = time.monotonic() + ORPHAN_STOP_TIMEOUT
        while session_members(session) and time.monotonic() < deadline:
            time.sleep(0.05)
    left = [f"s6-supervise on {slot}" for slot in remaining]
    left += [f"gateway pid {pid}" for pid in sorted(gateways) if _alive(pid)]
    left += [f"pid {pid} of s6-svscan's session" for pid in (session_members(session) if session is not None else [])]
    if left:
        raise S6Error(f"could not bring down what runs without an s6-svscan on {scandir.path}: still running: "
                      + ", ".join(left))
    return len(found)


def _wait_unsupervised(s6: S6, slots: list[Path], timeout: float) -> list[Path]:
    deadline = time.monotonic() + timeout
    while True:
        remaining = [slot for slot in slots if s6.status(slot) is not None]
        if not remaining or time.monotonic() > deadline:
            return remaining
        time.sleep(0.05)


def clear_stale_slots(scandir: ScanDir, s6: S6, say: Callable[[str], None] = lambda line: None) -> list[str]:
    """With no s6-svscan running, empty the scan directory of our slots, as a container's tmpfs starts empty.

    A slot left from the last run would otherwise start (or not) on its old
    ``down`` file before boot corrects it. Supervisors still running with no
    s6-svscan (an earlier ``up`` killed along with its scanner) are brought
    down first, through their ``finish``: nobody else can stop them.
    """
    orphans = bring_down_supervisors(scandir, s6)
    if orphans:
        say(f"brought down {orphans} service(s) still supervised with no s6-svscan on {scandir.path} "
            "(an earlier run was killed?): their finish recorded the shutdown")
    removed = []
    for profile in scandir.profiles():
        scandir.delete_hidden(scandir.move_out(profile).name)
        removed.append(profile)
    for entry in scandir.leftovers():
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
    """``s6-svscanctl -t`` and wait: every gateway goes down through its finish (recorded ``shutdown``), verified."""
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
        left = bring_down_supervisors(scandir, s6, session=process.pid)
        if left:
            say(f"s6-svscan on {scandir.path} stopped, leaving {left} service(s) supervised: brought them down")
        say(f"s6-svscan on {scandir.path} stopped; every gateway is down")
    finally:
        signal.signal(signal.SIGINT, previous)


class ScannerMonitor:
    """Notices the s6-svscan going away: the one ``up`` started by its pid, an adopted one by its control FIFO."""

    def __init__(self, process: subprocess.Popen | None, scandir: ScanDir, s6: S6, on_gone: Callable[[], None]) -> None:
        self.process, self.scandir, self.s6, self.on_gone = process, scandir, s6, on_gone
        self.gone = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scanner-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(MONITOR_INTERVAL):
            if self._scanner_gone():
                self.gone.set()
                self.on_gone()
                return

    def _scanner_gone(self) -> bool:
        if self.process is not None:
            return self.process.poll() is not None
        try:
            return not self.s6.scanner_running(self.scandir.path)
        except S6Error:
            return False  # cannot tell: not a reason to stop everything

    def describe(self) -> str:
        if self.process is None:
            return f"the s6-svscan this command was using on {self.scandir.path} has gone"
        code = self.process.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return f"s6-svscan (pid {self.process.pid}) on {self.scandir.path} died ({how})"


def up(
    settings: Settings,
    options: WatchOptions,
    *,
    report: Callable[[PassReport], None],
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> int:
    """Boot, then watch until Ctrl-C; ``report`` gets every pass, ``say`` this command's own lines, ``warn`` stderr's.

    Exit 1 when the s6-svscan died under it (after bringing everything it ran down)."""
    s6 = S6()
    scandir = ScanDir(settings.scandir, container=settings.in_container)
    scandir.ensure()
    with claim_volume(settings) as claim:  # before anything is touched: one live projector per volume
        return _up_claimed(settings, options, claim, s6, scandir, report=report, say=say, warn=warn)


def _up_claimed(settings: Settings, options: WatchOptions, claim: Claim, s6: S6, scandir: ScanDir, *,
                report: Callable[[PassReport], None], say: Callable[[str], None], warn: Callable[[str], None]) -> int:
    process = None
    if s6.scanner_running(scandir.path):
        say(f"s6-svscan already runs on {scandir.path}: using it (it stays up after this command)")
        if scandir.ensure_reader_service():
            s6.rescan(scandir.path)
    else:
        cleared = clear_stale_slots(scandir, s6, say)
        if cleared:
            say(f"cleared {len(cleared)} slot(s) left from the last run: boot makes them again")
        scandir.ensure_reader_service()  # the gateways' own accounts (watch-gateways), as the gateway user
        process = start_scanner(settings, scandir, s6)
        say(f"s6-svscan started on {scandir.path} (pid {process.pid})")
    watcher = Watcher(settings, options, report=report, warn=warn)
    monitor = ScannerMonitor(process, scandir, s6, watcher.stop)
    monitor.start()
    try:
        status = boot(settings, report=report, warn=warn, claim=claim)
        if status == 0 and not monitor.gone.is_set():
            say(f"boot done; watching {settings.store_location} (Ctrl-C stops)")
            status = run_in_foreground(watcher)
    except BaseException:
        monitor.stop()
        _shut_down(process, monitor, scandir, s6, say, warn)
        raise
    monitor.stop()
    return _shut_down(process, monitor, scandir, s6, say, warn) or status


def _shut_down(process: subprocess.Popen | None, monitor: ScannerMonitor, scandir: ScanDir, s6: S6,
               say: Callable[[str], None], warn: Callable[[str], None]) -> int | None:
    """Stop what this command started; 1 when its s6-svscan had died (everything it ran is then brought down)."""
    died = monitor.gone.is_set() or (process is not None and process.poll() is not None)
    if not died:
        if process is not None:
            stop_scanner(process, scandir, s6, say)
        return None
    if process is not None:
        process.wait()
    monitor.gone.set()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # no Ctrl-C may cut this short
    try:
        count = bring_down_supervisors(scandir, s6, session=process.pid if process is not None else None)
    finally:
        signal.signal(signal.SIGINT, previous)
    warn(f"hermes-state: up: {monitor.describe()}; brought its {count} supervised service(s) down: no supervisor or "
         "gateway is left running; run `hermes-state up` again")
    return 1
