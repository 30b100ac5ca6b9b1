"""`hermes-state boot`: the container boot pass.

Migrate, import legacy ``gateway_state.json`` once, make sure ``default``
exists (those three write, so as root they run as the gateway user), write
a fresh boot id, then give every live profile a slot, up exactly when its
desired state is up. One line per profile goes to
``$HERMES_HOME/logs/container-boot.log``.

Boot reads the projection, never the whole log, so its time does not grow
with history; the hash chain is checked over the newest events only (a
break is a warning here, an error in ``doctor``). A store that is corrupt
or at another schema stops boot before it acts on anything: no slot is
created or brought up, the reason goes to the boot log and stderr, exit 5.
What goes to stderr is handed to the caller's ``warn``: the CLI writes it.

In a fleet, a database that cannot be reached (``StoreUnreachable``) does
not stop boot: it brings the slots up from this host's snapshot
(``fleet/offline_boot.py``), says so in the boot log and on stderr, and exits
0 so the container goes on and its watch daemon reconciles when the database
returns. With no valid snapshot it acts on nothing and exits 5, as for any
store it cannot read.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Callable

from ..chain import first_broken_position
from ..errors import HermesError, StoreUnavailable, StoreUnreachable
from ..events import utc_now
from ..fleet import offline_boot
from ..profile_state import ProfileState
from ..settings import Settings
from ..store import EventStore, open_store
from .claim import Claim, VolumeClaimed, take as claim_volume
from .dropped import run_writing_steps, write_boot_log
from .plan import ActionKind
from .reconcile import Applied, PassReport, Reconciler
from .slots import ScanDir

CHAIN_TAIL = 1000  # newest events whose hashes boot re-checks: constant work, whatever the history


def chain_tail_break(store: EventStore, window: int = CHAIN_TAIL) -> int | None:
    """Position of the first of the newest ``window`` events whose hash does not verify, or None.

    The row just before the window anchors it; a window that reaches the
    first row starts from the genesis hash, so that row is checked too.
    """
    with store.reading() as tx:
        anchor = tx.last_position() - window
        rows = tx.rows_after(max(1, anchor) - 1)
    if anchor >= 1 and rows:
        return first_broken_position(rows[1:], previous=rows[0]["hash"])
    return first_broken_position(rows)


FULL_BELOW = 64 * 1024  # bytes free under which the volume counts as full (SQLite's -shm alone needs 32 KiB)


def volume_full(settings: Settings) -> str:
    """A clause naming a full volume, for a boot that failed there (SQLite's own word is "disk I/O error")."""
    if settings.fleet:
        return ""  # the database's disk is its server's
    try:
        info = os.statvfs(settings.db_path.parent)
    except OSError:
        return ""
    free = info.f_bavail * info.f_frsize
    if free >= FULL_BELOW:
        return ""
    return (f"; the file system holding {settings.db_path.parent} is full ({free} bytes free): "
            "free space there and boot again")


class BootLog:
    """Lines for container-boot.log, written at the end (as the gateway user when root)."""

    def __init__(self, boot_id: str) -> None:
        self.boot_id = boot_id
        self.lines: list[str] = []

    def add(self, text: str) -> None:
        self.lines.append(f"{utc_now()} boot={self.boot_id} {' '.join(text.split())}\n")

    def text(self) -> str:
        return "".join(self.lines)


def boot(
    settings: Settings,
    *,
    report: Callable[[PassReport], None],
    warn: Callable[[str], None],
    claim: Claim | None = None,
) -> int:
    """The boot pass: 0, or 1 when an action failed; ``report`` gets the pass, ``warn`` each line for stderr.

    ``claim``: the volume's, held by the caller (``up``); without one, boot takes it once the scan
    directory is made, before the writing steps (its container's, from the keeper), and holds it
    to the end. Another live projector on the volume: VolumeClaimed (exit 4), with nothing recorded,
    started or written, not even the boot log (the volume is the other projector's)."""
    boot_id = str(uuid.uuid4())
    log = BootLog(boot_id)
    log.add(f"start: store {settings.store_location}, scan directory {settings.scandir}")
    with contextlib.ExitStack() as held:
        def claimed() -> None:
            if claim is None:
                held.enter_context(claim_volume(settings))

        try:
            status = _boot(settings, boot_id, log, warn, report, claimed)
        except VolumeClaimed:
            raise
        except HermesError as error:
            why = "; no slot was created or brought up" if isinstance(error, StoreUnavailable) else ""
            why += volume_full(settings)
            log.add(f"FAILED: {error}{why}")
            try:
                write_boot_log(settings, log.text())
            except HermesError as log_error:
                warn(f"hermes-state: cannot write the boot log: {log_error}")
            raise type(error)(f"boot failed: {error}{why}") from None
        write_boot_log(settings, log.text())
        return status


def _boot(settings: Settings, boot_id: str, log: BootLog, warn: Callable[[str], None],
          report_to: Callable[[PassReport], None], claimed: Callable[[], None]) -> int:
    scandir = ScanDir(settings.scandir, container=settings.in_container)
    scandir.ensure()
    claimed()  # before anything is recorded: one live projector per volume

    try:
        steps = run_writing_steps(settings)  # a fleet's database away: StoreUnreachable, from the child
    except StoreUnreachable as error:
        if not settings.fleet:
            raise
        return _boot_offline(settings, scandir, boot_id, log, warn, report_to, error)
    schema = steps["schema"]
    if schema["before"] != schema["after"]:
        log.add(f"migrated store from {schema['before'] or 'nothing'} to {schema['after']}")
    log.add(f"legacy import: {steps['legacy']['summary']}")
    for line in steps["legacy"]["lines"]:
        log.add(f"legacy import: {line}")
    if steps["default_created"]:
        log.add("created profile 'default'")
    for line in steps.get("spool", []):  # a spool file set aside by the replay of the writing steps
        log.add(line.removeprefix("hermes-state: "))
        warn(line)

    try:
        with open_store(settings, readonly=True) as store:
            broken = chain_tail_break(store)
            if broken is not None:
                warning = (f"warning: hash chain broken at position {broken}: a row was changed behind the "
                           "triggers' back; run `hermes-state doctor`")
                log.add(warning)
                warn(f"hermes-state: {warning}")

            scandir.write_boot_id(boot_id)
            log.add(f"boot id written to {settings.boot_id_file}")
            reconciler = Reconciler(settings, store, scandir=scandir, report=report_to)
            report = reconciler.full_pass("boot")
    except StoreUnreachable as error:
        # Gone after the writing steps: the pass reads the states before it applies anything,
        # so nothing was acted on from the database yet.
        if not settings.fleet:
            raise
        return _boot_offline(settings, scandir, boot_id, log, warn, report_to, error)
    return _finish(log, report, warn)


def _finish(log: BootLog, report: PassReport, warn: Callable[[str], None]) -> int:
    for line in report.warnings:
        log.add(f"warning: {line}")
        warn(f"hermes-state: boot: warning: {line}")
    _log_profiles(log, report)
    if report.errors:
        log.add(f"finished with {len(report.errors)} error(s)")
        for line in report.errors:
            warn(f"hermes-state: boot: {line}")
        return 1
    log.add("finished")
    return 0


def _boot_offline(settings: Settings, scandir: ScanDir, boot_id: str, log: BootLog, warn: Callable[[str], None],
                  report_to: Callable[[PassReport], None], error: StoreUnreachable) -> int:
    """The database cannot be reached: the slots this host's snapshot justifies, or none (exit 5)."""
    log.add(f"database unreachable: {error}")
    offline = offline_boot.from_snapshot(settings, error)
    for line in offline.log:
        log.add(line)
    for line in offline.warnings:
        warn(line)
    scandir.write_boot_id(boot_id)
    log.add(f"boot id written to {settings.boot_id_file}")
    report = Reconciler(settings, None, scandir=scandir, report=report_to).snapshot_pass("boot-snapshot",
                                                                                          offline.snapshot)
    return _finish(log, report, warn)


def _log_profiles(log: BootLog, report: PassReport) -> None:
    """One line per profile: its desired state (as the pass planned from it) and what boot did to its slot."""
    by_profile: dict[str, list[Applied]] = {}
    for applied in report.actions:
        by_profile.setdefault(applied.action.profile, []).append(applied)
    for state in report.states:
        if not isinstance(state, ProfileState):  # refused by the gate: its skip-invalid is logged below
            continue
        rows = by_profile.pop(state.profile, [])
        done = ", ".join(_describe(applied) for applied in rows) or "slot unchanged"
        log.add(f"profile {state.profile}: desired {state.desired}; {done}")
    for name, rows in sorted(by_profile.items()):
        if name:
            log.add(f"profile {name}: " + ", ".join(_describe(applied) for applied in rows))


def _describe(applied: Applied) -> str:
    action = applied.action
    text = action.kind.value
    if action.detail and action.kind is ActionKind.SKIP_INVALID:
        text += f" ({action.detail})"
    if applied.error:
        text += f" FAILED: {applied.error}"
    return text
