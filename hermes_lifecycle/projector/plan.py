"""The pure planner: (desired states, what the scan directory and s6 show) -> actions.

No I/O here: ``reconcile`` observes, calls ``plan``, and applies. Desired
state is compared with s6's own intent (``wantedup``), never with ``up``, so
the projector does not fight s6 while it waits to restart a crashed process.

Decisions for one live profile whose slot is supervised (D desired, W
s6's wantedup):

| D    | W     | also                                            | action             |
|------|-------|-------------------------------------------------|--------------------|
| down | true  |                                                 | down               |
| down | false | no ``down`` file                                | mark-down          |
| up   | true  | restart intent newer than the running run,      | restart            |
|      |       | not applied yet, process up                     |                    |
| up   | true  | same, process down (s6 restarting it)           | restart-absorbed   |
| up   | true  | ``down`` file present                           | mark-up            |
| up   | false | process up or its ``finish`` running, and the   | await: the exit's  |
|      |       | log has not recorded that run's exit yet        | event, or a retry  |
| up   | false | otherwise                                       | up                 |

A profile with no slot gets one (``create-up`` / ``create-down``); a slot
nobody supervises yet has its ``down`` file set and the scan directory is
rescanned, and when the file had to change the profile is looked at again
(``await``): a supervisor that had just started may have read the old one. A slot whose profile is deleted or unknown is removed in steps,
one per pass, none of which waits: ``down`` while s6 still wants it up,
``await`` while its process or ``finish`` still runs, then ``remove``.
``await`` (nothing to do yet) tells the reconciler to look at that profile
again, with backoff, so one slow gateway never holds up the others.
Anything read from the database is untrusted: the planner takes rows through
the one gate (``profile_state.screened``), and a row it refused is skipped
(``skip-invalid``) and its slot left alone.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Iterable, Mapping, Sequence

from ..records import Record
from ..names import shown
from ..profile_state import ProfileState, RefusedRow
from .observed import ServiceStatus, SlotView


class ActionKind(StrEnum):
    """What one action does; the value is the word in the JSON log line.

    Declared in the order actions are applied: removals before creations
    (a rescan then sees both), the rescan last, after every slot it must
    pick up.
    """

    SKIP_INVALID = "skip-invalid"
    AWAIT = "await"  # nothing to do until s6 has finished something: look at this profile again soon
    REMOVE = "remove"
    PURGE = "purge"
    CREATE_UP = "create-up"
    CREATE_DOWN = "create-down"
    REPAIR = "repair-scripts"
    MARK_DOWN = "mark-down"
    MARK_UP = "mark-up"
    DOWN = "down"
    UP = "up"
    RESTART = "restart"
    ABSORB_RESTART = "restart-absorbed"
    RESCAN = "rescan"

    @property
    def rank(self) -> int:
        """Its place in the apply order."""
        return _RANK[self]


_RANK = {kind: rank for rank, kind in enumerate(ActionKind)}

# A projection row through the gate: a state to act on, or a row refused and why.
Screened = ProfileState | RefusedRow


class Action(Record):
    kind: ActionKind
    profile: str  # for skip-invalid: the row's name as shown (repr, shortened); for purge: the entry
    detail: str = ""
    position: int | None = None  # create, up, restart: the restart intent the new process covers

    def as_json(self) -> dict[str, str | int]:
        row: dict[str, str | int] = {"action": self.kind.value, "profile": self.profile}
        if self.detail:
            row["detail"] = self.detail
        if self.position is not None:
            row["position"] = self.position
        return row


def restart_pending(state: ProfileState, view: SlotView) -> bool:
    """A ``reason=restart`` intent newer than the running run's ``started``, not applied to this slot yet."""
    intent = state.restart_position
    run = state.running_run
    if intent is None or run is None or intent <= run:
        return False
    return view.restart_applied is None or intent > view.restart_applied


def exit_pending(state: ProfileState, status: ServiceStatus) -> bool:
    """The process is going down and its ``finish`` has not recorded the exit yet.

    ``finish`` classifies the exit by what ``s6-svstat -o wantedup`` says when
    it starts; an ``s6-svc -u`` before then would make a requested stop look
    like an exit nobody asked for. So ``up`` waits until the log shows the
    run ended (the exit's event wakes the next pass) or the finish returned.
    A process still up is waited for even when the log knows no run of it:
    it may be a deleted life's (a re-created profile's slot before the old
    gateway ended), and ``s6-svc -u`` would adopt it as the new life's.
    """
    return status.up or (not status.finish_done and state.running_run is not None)


def decide(state: ProfileState, view: SlotView | None) -> list[Action]:
    """Actions for one valid, live profile (``view`` None: it has no slot)."""
    name = state.profile
    if view is None:
        if state.desired == "up":
            return [Action(ActionKind.CREATE_UP, name, "desired up, no slot", state.restart_position)]
        return [Action(ActionKind.CREATE_DOWN, name, "desired down, no slot", state.restart_position)]

    actions: list[Action] = []
    if not view.scripts_current:
        actions.append(Action(ActionKind.REPAIR, name, "run/finish are not this version's"))
    want_down_file = state.desired == "down"
    status = view.status
    if status is None:
        if view.down_file != want_down_file:
            actions.append(Action(ActionKind.MARK_DOWN if want_down_file else ActionKind.MARK_UP, name, f"desired {state.desired}, not supervised yet"))
            # "No status" also covers an s6-supervise that has started and read ``down`` (once,
            # at its start) but not yet written its status: then the file changed here comes too
            # late, and only a look at its status, once written, shows what it holds.
            actions.append(Action(ActionKind.AWAIT, name, "not supervised yet: look again once s6-supervise has read the slot"))
        if state.desired == "up" and restart_pending(state, view):
            # the rescan starts a fresh process: that is the restart asked for.
            actions.append(Action(ActionKind.ABSORB_RESTART, name, "not supervised yet: its first process is new", state.restart_position))
        return actions

    if state.desired == "down":
        if status.wantedup:
            actions.append(Action(ActionKind.DOWN, name, "desired down, s6 wants it up"))
        elif not view.down_file:
            actions.append(Action(ActionKind.MARK_DOWN, name, "desired down, s6 holds it down"))
        return actions

    if status.wantedup:
        if restart_pending(state, view):
            if status.up:
                actions.append(Action(ActionKind.RESTART, name, f"restart intent {state.restart_position} is newer than run {state.running_run}", state.restart_position))
            else:
                # s6 is about to start a fresh process anyway: that is the restart asked for.
                actions.append(Action(ActionKind.ABSORB_RESTART, name, "s6 is restarting it", state.restart_position))
        if view.down_file:
            actions.append(Action(ActionKind.MARK_UP, name, "desired up, s6 wants it up"))
        return actions

    if exit_pending(state, status):
        actions.append(Action(ActionKind.AWAIT, name, "desired up; its last run's exit is not recorded yet"))
        return actions
    # A process started now is newer than any restart intent: the up covers it.
    actions.append(Action(ActionKind.UP, name, "desired up, s6 wants it down", state.restart_position))
    return actions


def removal(name: str, view: SlotView) -> list[Action]:
    """The next step in removing the slot of a deleted or unknown profile; none of them waits.

    A slot is moved out of s6-svscan's sight only once its process is down
    and its ``finish`` has returned: moving it earlier would leave a
    supervisor and a gateway nobody can reach by the slot's name.
    """
    status = view.status
    if status is None:
        return [Action(ActionKind.REMOVE, name, "profile deleted or unknown")]
    if status.wantedup:
        return [Action(ActionKind.DOWN, name, "profile deleted or unknown: down before removal"),
                Action(ActionKind.AWAIT, name, "profile deleted or unknown: removal waits for the process to end")]
    if status.up or not status.finish_done:
        return [Action(ActionKind.AWAIT, name, "profile deleted or unknown: removal waits for the process to end")]
    return [Action(ActionKind.REMOVE, name, "profile deleted or unknown")]


def owned(states: Iterable[Screened], host: str | None) -> list[Screened]:
    """The states this host's projector acts on: every one on a single host (``host`` None); in a
    fleet, the profiles whose created event this host appended (docs/fleet.md). Another host's
    profile is out of scope: a slot of its name here is removed, as for an unknown profile. A
    refused row is in scope when its host is this one, and is reported (``skip-invalid``)."""
    if host is None:
        return list(states)
    return [state for state in states if state.host == host]


def plan(
    states: Iterable[Screened],
    slots: Mapping[str, SlotView],
    *,
    leftovers: Sequence[str] = (),
) -> list[Action]:
    """Every action that brings ``slots`` to the desired ``states``, in the order to apply them.

    ``states`` are the projection rows in scope, through the gate (``profile_state.screened``):
    a refused row is reported and its slot left alone. ``slots`` are the slots observed in the
    same scope, by profile name. A slot whose profile is absent from ``states`` or deleted is removed.
    """
    states = list(states)
    counts = Counter(state.profile for state in states)
    actions: list[Action] = []
    live: dict[str, ProfileState] = {}
    untouchable: set[str] = set()
    for state in states:
        name = state.profile
        problem = state.problem if isinstance(state, RefusedRow) else None
        if problem is None and counts[name] > 1:
            problem = "more than one row for this name"
        if problem is not None or isinstance(state, RefusedRow):
            actions.append(Action(ActionKind.SKIP_INVALID, shown(name), problem or ""))
            if isinstance(name, str):
                untouchable.add(name)  # a valid-looking slot of a garbled row is left alone
            continue
        if state.live:
            live[state.profile] = state

    unsupervised = False
    for name in sorted(set(slots) | set(live)):
        if name in untouchable:
            continue
        view = slots.get(name)
        live_state = live.get(name)
        if live_state is None:
            actions.extend(removal(name, slots[name]))  # a slot without a live state
            continue
        actions.extend(decide(live_state, view))
        unsupervised = unsupervised or (view is not None and view.status is None)

    for entry in leftovers:
        actions.append(Action(ActionKind.PURGE, entry, "left behind by an interrupted pass"))
    if unsupervised or any(a.kind in (ActionKind.CREATE_UP, ActionKind.CREATE_DOWN) for a in actions):
        actions.append(Action(ActionKind.RESCAN, "", "new or unsupervised slots"))
    return sorted(actions, key=lambda a: a.kind.rank)
