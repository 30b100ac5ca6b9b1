"""One reconciliation pass: observe s6 first, then read the desired states, plan, apply.

The order matters (docs/design.md section 4): a ``stopped`` the breaker appends just
before ``finish`` exits 125 is then either seen with s6 still wanting the
slot up (so the plan brings it down, as it goes anyway) or not seen at all
(so the plan leaves s6 alone); never "s6 holds it down, desired still up".

No action waits for a process: removing a slot takes a step per pass (see
``plan.removal``), and a profile that is waiting for s6 (an ``await``
action), whose action failed, or whose removal is not finished is retried on
its own clock (``Backoff``: exponential per profile, as a controller's
rate-limited work queue). So a gateway that ignores SIGTERM delays nobody
else; s6 kills it after the slot's ``timeout-kill``, and a retry then
finishes the removal.

The database is untrusted input: names are validated again, rows that are
not valid states are skipped and logged, and nothing read from it becomes
part of a path or a script except a name that passed ``validate_name``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..records import Record
from ..errors import HermesError, InvalidName
from ..events import Event, utc_now
from ..fleet import snapshot as snapshots
from ..profile_state import screened
from ..names import shown, validate_name
from ..settings import Settings
from ..store import EventStore
from . import plan as planning
from .observed import SlotView
from .plan import Action, ActionKind
from .s6 import S6
from .slots import ScanDir

# After s6-svscanctl -an, how long a pass waits for the supervisor of a slot that is
# already down (it exits at once); longer and the moved slot is left for a retry.
PRUNE_WAIT = 1.0
LOG_BATCH = 5000
RETRY_FIRST = 0.05  # seconds before a profile's first retry; doubles each time
RETRY_MAX = 5.0
LEFTOVERS = ".leftovers"  # the retry key of the slots an unfinished removal left out of sight (never a name)


class Backoff:
    """Per-key retry times, exponential per key: one stubborn profile backs off alone."""

    def __init__(self, first: float = RETRY_FIRST, limit: float = RETRY_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.first, self.limit, self.clock = first, limit, clock
        self._attempts: dict[str, int] = {}
        self._due: dict[str, float] = {}

    def again(self, key: str) -> None:
        """Look at ``key`` again later: the first retry soon, each next one twice as late (up to the limit)."""
        attempts = self._attempts.get(key, 0)
        self._attempts[key] = attempts + 1
        self._due[key] = self.clock() + min(self.first * 2 ** min(attempts, 30), self.limit)

    def done(self, key: str) -> None:
        self._attempts.pop(key, None)
        self._due.pop(key, None)

    def due(self) -> set[str]:
        now = self.clock()
        return {key for key, when in self._due.items() if when <= now}

    def next_due(self) -> float:
        """When the earliest retry is due (``time.monotonic`` clock; infinity when none is)."""
        return min(self._due.values(), default=math.inf)

    def pending(self) -> set[str]:
        return set(self._due)


class Applied(Record):
    """One planned action and how applying it went (``error`` None: it took effect, or was only logged)."""

    action: Action
    error: str | None = None

    def as_json(self) -> dict:
        row = self.action.as_json()
        if self.error is not None:
            row["error"] = self.error
        return row


@dataclass
class PassReport:
    """What one pass saw and did; ``as_json`` is its log line."""

    trigger: str
    after: int = 0  # positions covered: (after, upto]
    upto: int = 0
    actions: list[Applied] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # not the pass's failure: the fleet snapshot not saved
    events: list[Event] = field(default_factory=list)
    states: list[planning.Screened] = field(default_factory=list)  # the rows planned from, through the gate
    started: float = field(default_factory=time.monotonic)
    duration_ms: float = 0.0
    new_skips: int = 0

    @property
    def acted(self) -> bool:
        """Worth a log line: it changed something, failed, or met a row not reported before."""
        changes = any(a.action.kind not in _QUIET for a in self.actions)
        return changes or bool(self.errors) or bool(self.warnings) or self.new_skips > 0

    def as_json(self) -> dict:
        row = {
            "time": utc_now(),
            "trigger": self.trigger,
            "positions": {"after": self.after, "upto": self.upto},
            "actions": [applied.as_json() for applied in self.actions],
            "errors": self.errors,
            "duration_ms": round(self.duration_ms, 1),
        }
        if self.warnings:
            row["warnings"] = self.warnings
        return row


# Reported only the first time a daemon meets them (a retry that still waits is not news).
_QUIET = (ActionKind.SKIP_INVALID, ActionKind.AWAIT)


def no_report(report: PassReport) -> None:
    """Report nothing: the caller reads the PassReport each pass returns."""


class Reconciler:
    """Passes over one scan directory, from one (read-only) store."""

    def __init__(
        self,
        settings: Settings,
        store: EventStore | None,
        *,
        s6: S6 | None = None,
        scandir: ScanDir | None = None,
        report: Callable[[PassReport], None] = no_report,
        before_reading: Callable[[], None] | None = None,
    ) -> None:
        """``before_reading``: run by every pass after it observed s6 and before it reads the states
        (the watch daemon's spool replay on a fleet host: the host's own facts reach the log first)."""
        self.settings = settings
        self.store = store
        self.s6 = s6 or S6()
        self.scandir = scandir or ScanDir(settings.scandir, container=settings.in_container)
        self.report = report
        self.before_reading = before_reading
        self.position = 0  # the last log position reconciled
        self.retries = Backoff()
        # In a fleet, this host's profiles only; the id is the gateway user's to make (boot's writing
        # steps), never root's: root reads it, and refuses a volume without one.
        self.host = settings.host_id(create=False) if settings.fleet else None
        self._reported: set[str] = set()  # skip-invalid and await lines already reported
        # In a fleet: the snapshot of this host's states on the volume, for a boot with the database away.
        self.snapshot = snapshots.Keeper(settings, self.host) if self.host is not None else None

    # -- the two kinds of pass -------------------------------------------
    def full_pass(self, trigger: str) -> PassReport:
        """Every slot against every profile; the log position is read in the same snapshot as the states."""
        result = PassReport(trigger, after=self.position)
        with self.scandir.locked():
            slots, leftovers = self._observe(None)
            self._before_reading()
            with self.store.reading() as tx:  # type: ignore[union-attr]  # only an offline boot has none
                upto = tx.last_position()
                result.states = planning.owned([screened(state) for state in tx.states()], self.host)
            result.upto = upto
            self._apply_all(result, slots, leftovers)
            if self.snapshot is not None:
                self._warn(result, self.snapshot.after_full_pass(upto, result.states))
        # The pass saw every state as of ``upto``: that is the position now, also when it is lower
        # than the last one read (a failover that lost commits the old primary had acknowledged
        # re-uses their positions; keeping the higher one would skip the new events there).
        self.position = upto
        return self._finish(result)

    def snapshot_pass(self, trigger: str, snapshot: "snapshots.Snapshot") -> PassReport:
        """A full pass from a snapshot's checked states instead of the database (a boot with the
        database away): the same planner, the same actions; nothing is read from the store."""
        result = PassReport(trigger, after=self.position, upto=snapshot.position)
        with self.scandir.locked():
            slots, leftovers = self._observe(None)
            result.states = planning.owned(snapshot.states, self.host)
            self._apply_all(result, slots, leftovers)
        return self._finish(result)

    def _apply_all(self, result: PassReport, slots: dict[str, SlotView], leftovers: list[str]) -> None:
        actions = planning.plan(result.states, slots, leftovers=leftovers)
        scope = set(slots) | {name for state in result.states if isinstance(name := state.profile, str)}
        self._apply(actions, result, scope | {LEFTOVERS})

    def catch_up(self, trigger: str) -> PassReport:
        """Reconcile the profiles that events after the last position touched, and those whose retry is due."""
        result = PassReport(trigger, after=self.position)
        events, result.upto = self._events_after(self.position)
        result.events = events
        due = self.retries.due()
        touched = {name for name in due if name != LEFTOVERS}
        invalid: list[Action] = []
        for event in events:
            try:
                touched.add(validate_name(event.profile))
            except InvalidName:
                invalid.append(Action(ActionKind.SKIP_INVALID, shown(event.profile), f"invalid profile name at position {event.position}"))
        if not touched and not invalid and LEFTOVERS not in due:
            return self._finish(result)
        with self.scandir.locked():
            slots, leftovers = self._observe(touched, leftovers=LEFTOVERS in due)
            self._before_reading()
            with self.store.reading() as tx:  # type: ignore[union-attr]  # only an offline boot has none
                states = [screened(state) for name in sorted(touched) if (state := tx.state(name)) is not None]
            states = planning.owned(states, self.host)
            if self.host is not None:
                # The report says what this host's projector looked at: another host's events are its own.
                mine = {state.profile for state in states}
                result.events = [event for event in events if event.profile in mine]
            actions = invalid + planning.plan(states, slots, leftovers=leftovers)
            self._apply(actions, result, touched | ({LEFTOVERS} if LEFTOVERS in due else set()))
            if self.snapshot is not None:
                self._warn(result, self.snapshot.after_catch_up(result.upto, touched, states))
        self.position = max(self.position, result.upto)
        return self._finish(result)

    def _before_reading(self) -> None:
        # After observing, so a slot s6 was seen holding down was held by a fact already kept:
        # the spool's breaker keeps the exit before its `finish` exits 125 (docs/fleet.md, Outages).
        if self.before_reading is not None:
            self.before_reading()

    @staticmethod
    def _warn(result: PassReport, warning: str | None) -> None:
        if warning is not None:
            result.warnings.append(warning)

    def next_retry(self) -> float:
        """When a profile's retry is due (``time.monotonic``; infinity when none waits): the watch
        daemon runs ``catch_up`` then, with or without new events."""
        return self.retries.next_due()

    # -- steps ---------------------------------------------------------------
    def _events_after(self, position: int) -> tuple[list[Event], int]:
        """Every readable event after ``position``, in one snapshot, and the position read up to:
        past the rows the store skipped as malformed too, so they are neither waited on nor read again."""
        events: list[Event] = []
        with self.store.reading() as tx:  # type: ignore[union-attr]  # only an offline boot has none
            while True:
                events.extend(tx.log_after(position, limit=LOG_BATCH))
                if tx.last_read == position:
                    return events, position
                position = tx.last_read

    def _observe(self, names: set[str] | None, *, leftovers: bool | None = None) -> tuple[dict[str, SlotView], list[str]]:
        """What the scan directory and s6-svstat show, for ``names`` (None: every slot, and the leftovers)."""
        views: dict[str, SlotView] = {}
        for profile in self.scandir.profiles():
            if names is not None and profile not in names:
                continue
            slot = self.scandir.slot_path(profile)
            views[profile] = SlotView(
                profile=profile,
                status=self.s6.status(slot),
                down_file=self.scandir.has_down_file(profile),
                scripts_current=self.scandir.scripts_current(profile),
                restart_applied=self.scandir.restart_applied(profile),
            )
        with_leftovers = names is None if leftovers is None else leftovers
        return views, (self.scandir.leftovers() if with_leftovers else [])

    def _apply(self, actions: Iterable[Action], result: PassReport, scope: set[str]) -> None:
        """Apply each action; then every key in ``scope`` is either settled or queued for a retry."""
        again: set[str] = set()
        for action in actions:
            if action.kind in _QUIET:
                if action.kind is ActionKind.AWAIT:
                    again.add(action.profile)
                key = f"{action.kind.value} {action.profile}: {action.detail}"
                if key not in self._reported:
                    self._reported.add(key)
                    result.new_skips += 1
                result.actions.append(Applied(action))
                continue
            try:
                pending = self._do(action)
            except HermesError as error:
                result.errors.append(f"{action.kind.value} {action.profile}: {error}".strip())
                result.actions.append(Applied(action, str(error)))
                again.add(LEFTOVERS if action.kind is ActionKind.PURGE else action.profile)
                continue
            if pending is not None:
                again.add(pending)
            result.actions.append(Applied(action))
        for key in scope:
            if key in again:
                self.retries.again(key)
            else:
                self.retries.done(key)
                self._reported = {line for line in self._reported if not line.startswith(f"await {key}:")}
        for key in again - scope:
            self.retries.again(key)

    def _do(self, action: Action) -> str | None:
        """Apply one action; returns the retry key when it is not finished yet (nothing here waits)."""
        name, scandir, s6 = action.profile, self.scandir, self.s6
        match action.kind:
            case ActionKind.CREATE_UP | ActionKind.CREATE_DOWN:
                scandir.create(name, up=action.kind is ActionKind.CREATE_UP, restart_applied=action.position)
            case ActionKind.UP:
                scandir.set_down_file(name, False)
                s6.up(scandir.slot_path(name))
                if action.position is not None:
                    scandir.record_restart_applied(name, action.position)
            case ActionKind.ABSORB_RESTART:
                scandir.record_restart_applied(name, action.position)  # type: ignore[arg-type]  # the planner gives one
            case ActionKind.DOWN:
                scandir.set_down_file(name, True)
                s6.down(scandir.slot_path(name))
            case ActionKind.RESTART:
                s6.restart(scandir.slot_path(name))
                scandir.record_restart_applied(name, action.position)  # type: ignore[arg-type]  # the planner gives one
            case ActionKind.MARK_DOWN | ActionKind.MARK_UP:
                scandir.set_down_file(name, action.kind is ActionKind.MARK_DOWN)
            case ActionKind.REPAIR:
                scandir.repair_scripts(name)
            case ActionKind.REMOVE:
                return self._remove(name)
            case ActionKind.PURGE:
                return None if self._retire(self.scandir.path / name) else LEFTOVERS
            case ActionKind.RESCAN:
                s6.rescan(scandir.path)
            case _:
                # SKIP_INVALID and AWAIT never reach here (_apply logs them); anything else is a planner bug.
                raise HermesError(f"no way to apply action {action.kind!r}")
        return None

    def _remove(self, name: str) -> str | None:
        """docs/design.md section 4: down, move out of sight once down and finished, prune its supervisor, delete.

        The planner asked for this on what it observed; s6 is asked again here,
        and anything not finished yet is left for a retry instead of waited for.
        """
        slot = self.scandir.slot_path(name)
        if not self._quiet(slot):
            return name
        hidden = self.scandir.move_out(name)
        return None if self._retire(hidden) else LEFTOVERS

    def _retire(self, hidden: Path) -> bool:
        """A slot out of s6-svscan's sight: down, unsupervised, deleted; False when that is not finished yet.

        Its supervisor is pruned by the scanner (``s6-svscanctl -an``). One the scanner does not know
        (an s6-svscan killed and started again outside ``up`` leaves its supervisors running, and
        the new one never prunes them) is told to exit itself (``s6-svc -x``: the service is down
        already), so a removal always ends, never retried for ever.
        """
        if not self._quiet(hidden):
            return False
        if self.s6.status(hidden) is not None:
            self.s6.rescan_and_prune(self.scandir.path)
            if not self._unsupervised_within(hidden, PRUNE_WAIT):
                self.s6.exit_supervisor(hidden)
                if not self._unsupervised_within(hidden, PRUNE_WAIT):
                    return False
        self.scandir.delete_hidden(hidden.name)
        return True

    def _unsupervised_within(self, slot: Path, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.s6.status(slot) is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _quiet(self, slot: Path) -> bool:
        """The slot is unsupervised, or down with its ``finish`` returned; if s6 still wants it up, ask it down."""
        status = self.s6.status(slot)
        if status is None:
            return True
        if status.wantedup:
            self.s6.down(slot)
            return False
        return not status.up and status.finish_done

    def _finish(self, result: PassReport) -> PassReport:
        result.duration_ms = (time.monotonic() - result.started) * 1000
        self.report(result)
        return result
