"""One reconciliation pass: observe s6 first, then read the desired states, plan, apply.

The order matters (docs/design.md section 4): a ``stopped`` the breaker appends just
before ``finish`` exits 125 is then either seen with s6 still wanting the
slot up (so the plan brings it down, as it goes anyway) or not seen at all
(so the plan leaves s6 alone); never "s6 holds it down, desired still up".

The database is untrusted input: names are validated again, rows that are
not valid states are skipped and logged, and nothing read from it becomes
part of a path or a script except a name that passed ``validate_name``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..errors import HermesError, InvalidName
from ..events import Event, utc_now
from ..fold import ProfileState
from ..names import shown, validate_name
from ..settings import Settings
from ..store import EventStore
from . import plan as planning
from .observed import SlotView
from .plan import Action, ActionKind
from .s6 import S6, S6Timeout
from .slots import ScanDir

# s6-svwait -D for a slot being removed: the default finish limit (5 s) and
# the time the process takes to go down.
REMOVE_WAIT_MS = 12_000
UNSUPERVISED_WAIT = 5.0
LOG_BATCH = 5000


@dataclass(frozen=True)
class Applied:
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
    events: list[Event] = field(default_factory=list)
    states: list[ProfileState] = field(default_factory=list)  # the rows planned from (untrusted)
    started: float = field(default_factory=time.monotonic)
    duration_ms: float = 0.0
    new_skips: int = 0

    @property
    def acted(self) -> bool:
        """Worth a log line: it changed something, failed, or met a row not reported before."""
        changes = any(a.action.kind is not ActionKind.SKIP_INVALID for a in self.actions)
        return changes or bool(self.errors) or self.new_skips > 0

    def as_json(self) -> dict:
        return {
            "time": utc_now(),
            "trigger": self.trigger,
            "positions": {"after": self.after, "upto": self.upto},
            "actions": [applied.as_json() for applied in self.actions],
            "errors": self.errors,
            "duration_ms": round(self.duration_ms, 1),
        }


def no_report(report: PassReport) -> None:
    """Report nothing: the caller reads the PassReport each pass returns."""


class Reconciler:
    """Passes over one scan directory, from one (read-only) store."""

    def __init__(
        self,
        settings: Settings,
        store: EventStore,
        *,
        s6: S6 | None = None,
        scandir: ScanDir | None = None,
        report: Callable[[PassReport], None] = no_report,
    ) -> None:
        self.settings = settings
        self.store = store
        self.s6 = s6 or S6()
        self.scandir = scandir or ScanDir(settings.scandir, container=settings.in_container)
        self.report = report
        self.position = 0  # the last log position reconciled
        self._reported_invalid: set[str] = set()

    # -- the two kinds of pass -------------------------------------------
    def full_pass(self, trigger: str) -> PassReport:
        """Every slot against every profile; the log position is read in the same snapshot as the states."""
        result = PassReport(trigger, after=self.position)
        with self.scandir.locked():
            slots, leftovers = self._observe(None)
            with self.store.reading() as tx:
                upto = tx.last_position()
                result.states = tx.states()
            result.upto = upto
            actions = planning.plan(result.states, slots, leftovers=leftovers)
            self._apply(actions, result)
        self.position = max(self.position, upto)
        return self._finish(result)

    def catch_up(self, trigger: str) -> PassReport:
        """Reconcile only the profiles that events after the last position touched."""
        result = PassReport(trigger, after=self.position)
        events = self._events_after(self.position)
        result.events = events
        if not events:
            result.upto = self.position
            return self._finish(result)
        result.upto = events[-1].position
        touched: set[str] = set()
        invalid: list[Action] = []
        for event in events:
            try:
                touched.add(validate_name(event.profile))
            except InvalidName:
                invalid.append(Action(ActionKind.SKIP_INVALID, shown(event.profile), f"invalid profile name at position {event.position}"))
        with self.scandir.locked():
            slots, _ = self._observe(touched)
            with self.store.reading() as tx:
                states = [state for name in sorted(touched) if (state := tx.state(name)) is not None]
            actions = invalid + planning.plan(states, slots)
            self._apply(actions, result)
        self.position = max(self.position, result.upto)
        return self._finish(result)

    # -- steps ---------------------------------------------------------------
    def _events_after(self, position: int) -> list[Event]:
        events: list[Event] = []
        while True:
            batch = self.store.log_after(position, limit=LOG_BATCH)
            events.extend(batch)
            if len(batch) < LOG_BATCH:
                return events
            position = batch[-1].position

    def _observe(self, names: set[str] | None) -> tuple[dict[str, SlotView], list[str]]:
        """What the scan directory and s6-svstat show, for ``names`` (None: every slot)."""
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
        leftovers = self.scandir.leftovers() if names is None else []
        return views, leftovers

    def _apply(self, actions: Iterable[Action], result: PassReport) -> None:
        for action in actions:
            if action.kind is ActionKind.SKIP_INVALID:
                key = f"{action.profile}: {action.detail}"
                if key not in self._reported_invalid:
                    self._reported_invalid.add(key)
                    result.new_skips += 1
                result.actions.append(Applied(action))
                continue
            try:
                self._do(action)
            except HermesError as error:
                result.errors.append(f"{action.kind.value} {action.profile}: {error}".strip())
                result.actions.append(Applied(action, str(error)))
                continue
            result.actions.append(Applied(action))

    def _do(self, action: Action) -> None:
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
                scandir.record_restart_applied(name, action.position)  # type: ignore[arg-type]
            case ActionKind.DOWN:
                scandir.set_down_file(name, True)
                s6.down(scandir.slot_path(name))
            case ActionKind.RESTART:
                s6.restart(scandir.slot_path(name))
                scandir.record_restart_applied(name, action.position)  # type: ignore[arg-type]
            case ActionKind.MARK_DOWN | ActionKind.MARK_UP:
                scandir.set_down_file(name, action.kind is ActionKind.MARK_DOWN)
            case ActionKind.REPAIR:
                scandir.repair_scripts(name)
            case ActionKind.REMOVE:
                self._remove(name)
            case ActionKind.PURGE:
                self._purge(name)
            case ActionKind.RESCAN:
                s6.rescan(scandir.path)
            case _:
                # SKIP_INVALID never reaches here (_apply logs it); anything else is a planner bug.
                raise HermesError(f"no way to apply action {action.kind!r}")

    def _remove(self, name: str) -> None:
        """docs/design.md section 4: down and wait, move out of sight, prune its supervisor, then delete."""
        slot = self.scandir.slot_path(name)
        supervised = self.s6.status(slot) is not None
        if supervised:
            self.s6.down(slot)
            self.s6.wait_down(slot, REMOVE_WAIT_MS)
        hidden = self.scandir.move_out(name)
        if supervised:
            self._prune(hidden)
        self.scandir.delete_hidden(hidden.name)

    def _purge(self, entry: str) -> None:
        """A staging or half-removed slot an interrupted pass left: same end as a removal."""
        hidden = self.scandir.path / entry
        status = self.s6.status(hidden)
        if status is not None:
            self.s6.down(hidden)
            self.s6.wait_down(hidden, REMOVE_WAIT_MS)
            self._prune(hidden)
        self.scandir.delete_hidden(entry)

    def _prune(self, hidden) -> None:
        """``s6-svscanctl -an``, then wait until no s6-supervise runs on the moved slot."""
        self.s6.rescan_and_prune(self.scandir.path)
        deadline = time.monotonic() + UNSUPERVISED_WAIT
        while self.s6.status(hidden) is not None:
            if time.monotonic() > deadline:
                raise S6Timeout(f"s6-supervise still runs on {hidden} {UNSUPERVISED_WAIT:g} s after s6-svscanctl -an")
            time.sleep(0.01)

    def _finish(self, result: PassReport) -> PassReport:
        result.duration_ms = (time.monotonic() - result.started) * 1000
        self.report(result)
        return result
