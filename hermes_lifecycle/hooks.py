"""The slot hooks' shell: what s6's ``run`` and ``finish`` scripts record.

``record_start`` appends the supervisor's ``started`` for the process that
is about to become the gateway; ``record_exit`` classifies an exit
(``exits.classify_exit``) and appends what it decided, in one transaction.
The caller opens the store (``fleet.open_writer``: on a fleet host the kept
facts come first) for the ``HOOK`` purpose (a short lock wait): a hook that cannot record
must say so quickly (s6 gives ``finish`` five seconds in all).
"""

from __future__ import annotations

import os
from typing import NoReturn

from .errors import BadInput, InvalidName, NotFound, ProfileDeleted
from .events import Event, NewEvent, parse_time
from .vocabulary import Actor, EventType
from .exits import EX_CONFIG, SIGTERM, ExitDecision, ObservedExit, classify_exit, window_start
from .fold import ProfileState
from . import names
from .names import validate_name
from .crash_loop import CrashLoopPolicy
from .settings import Settings
from .store import EventStore
from .store.recorder import StreamWindow

# The gateway command cannot be run: exit EX_CONFIG, so finish records
# `fatal-config` and holds the slot down instead of restarting it forever.
EXEC_FAILED_STATUS = EX_CONFIG


def profile_of_slot(slot: object) -> str:
    """The profile a slot belongs to: ``gateway-<valid name>``, else InvalidName."""
    name = names.profile_of_slot(slot)
    if name is None:
        raise InvalidName(f"invalid slot name {names.shown(slot)}: expected {names.SLOT_PREFIX}<profile name>")
    return name


# s6-supervise runs a slot's `run` and `finish` in the slot's directory, and both scripts exec
# all the way down to the hook, so a hook's parent is the slot's supervisor. A person who types
# a hook's command line is not: a start or an exit recorded from a shell would be a gateway s6
# never ran or never saw end (a crash of a gateway still running, a pid that lives on in the log).
SUPERVISOR = b"s6-supervise"
UNSUPERVISED_VARIABLE = "HERMES_STATE_HOOKS_UNSUPERVISED"


class NotInSlot(BadInput):
    """A hook run by anything but its slot's s6-supervise, without the documented override."""


def require_slot_supervisor(hook: str, slot: str, settings: Settings) -> None:
    """Refuse ``hook`` unless its parent is an s6-supervise and it runs in ``slot``'s directory
    (what s6 gives `run` and `finish`), or HERMES_STATE_HOOKS_UNSUPERVISED=1 says it may run
    anywhere (tests, benchmarks, a scratch home: docs/cli.md). Two reads of /proc and a getcwd:
    cheap on the hot path. It stops an honest mistake; the gateway user, who owns the log,
    could append anything anyway."""
    allowed = settings.hooks_unsupervised
    if allowed == "1":
        return
    if allowed is not None:
        raise BadInput(f"invalid {UNSUPERVISED_VARIABLE} {names.shown(allowed)}: expected 1, or unset")
    parent = os.getppid()
    try:
        with open(f"/proc/{parent}/comm", "rb") as handle:
            command = handle.read().rstrip(b"\n")
    except OSError as error:
        command = f"unreadable: {error.strerror}".encode()
    try:
        here = os.getcwd()
    except OSError:
        here = ""
    if command == SUPERVISOR and os.path.basename(here) == slot:
        return
    raise NotInSlot(
        f"{hook} {slot}: refused: not run by the slot's s6-supervise (the parent is "
        f"{names.shown(command.decode('utf-8', 'replace'))}, pid {parent}): "
        f"only the slot's run and finish scripts record starts and exits; to try a hook on a scratch home, "
        f"set {UNSUPERVISED_VARIABLE}=1 (docs/cli.md)"
    )


def record_start(store: EventStore, name: str, pid: int, *, key: str | None = None) -> Event:
    """Append the supervisor's ``started`` for ``pid``.

    Raises NotFound / ProfileDeleted when there is no live profile to start
    (the caller then starts no gateway), StoreUnavailable when the store fails.
    ``key``: the event's idempotency key (a fleet host's, kept with the start if it must be spooled).
    """
    validate_name(name)
    with store.writing() as tx:
        state = tx.state(name)
        if state is None:
            raise NotFound(f"no profile named {name!r}: no gateway started")
        if state.deleted:
            raise ProfileDeleted(f"profile {name!r} was deleted: no gateway started")
        # The supervisor (this process's parent: s6-supervise, as `run` execs) lets a later exit
        # tell whether this run is the one that ended (record_exit, _exit_of_an_earlier_life).
        return tx.append(_supervisor_start(name, pid, os.getppid(), key))


def replay_start(tx, fact) -> Event | None:
    """A start the ``run`` hook kept in the spool (``spool.KeptStart``), appended inside ``tx`` at the
    time and in the boot it was seen. Nothing when the profile is deleted or unknown now: that life is
    over, and its exit is recorded nowhere either (docs/design.md section 2, rule 1)."""
    state = tx.state(fact.profile)
    if state is None or not state.live:
        return None
    event = _supervisor_start(fact.profile, fact.pid, fact.supervisor, fact.key, spooled=True)
    return tx.append(event, observed=(fact.observed_at, fact.boot_id))


def _supervisor_start(name: str, pid: int, supervisor: int, key: str | None, **data: object) -> NewEvent:
    return NewEvent(profile=name, type=EventType.STARTED, actor=Actor.SUPERVISOR, pid=pid,
                    data={"supervisor": supervisor, **data}, idempotency_key=key)


def record_exit(
    store: EventStore, name: str, observed: ObservedExit, policy: CrashLoopPolicy, *, key: str | None = None
) -> tuple[ExitDecision, list[Event]]:
    """Classify an exit and append what was decided, atomically.

    The state, the crash times the breaker counts and the appends share one
    ``BEGIN IMMEDIATE`` transaction, so two exits recorded at once can never
    both see four crashes and both miss the fifth. ``key``: the idempotency key of
    the first event appended (a fleet host's, kept with the exit if it must be spooled).
    """
    validate_name(name)
    with store.writing() as tx:
        return decide_exit(tx, name, observed, policy, now=store.clock(), boot_id=store.boot_id,
                           supervisor=os.getppid(), key=key)


def decide_exit(
    tx, name: str, observed: ObservedExit, policy: CrashLoopPolicy, *, now: str, boot_id: str | None,
    supervisor: int, key: str | None, late: bool = False,
) -> tuple[ExitDecision, list[Event]]:
    """The classification and its appends inside ``tx``, for an exit seen at ``now`` in ``boot_id``
    by the s6-supervise ``supervisor``; ``late``: a spooled exit, appended at the time it was seen."""
    state = tx.state(name)
    moment = parse_time(now)
    crash_times: list[str] = []
    if state is not None and state.live:
        crash_times = tx.crash_times(
            name, after_position=state.start_intent_position or 0, since=window_start(policy, moment)
        )
    earlier_life = state is not None and state.live and _exit_of_an_earlier_life(tx, state, boot_id, supervisor)
    stop_unanswered = (state is not None and state.live and state.running_run is None
                       and observed.signal == SIGTERM and _a_stop_since_the_supervisor_spoke(tx, state))
    decision = classify_exit(state, observed, crash_times, policy, moment, earlier_life=earlier_life,
                             stop_unanswered=stop_unanswered)
    events = decision.events
    if key is not None:
        # One key per event, derived from the fact's: a replay finds the first and appends nothing.
        events = tuple(event._replace(idempotency_key=key if index == 0 else f"{key}/{index}")
                       for index, event in enumerate(events))
    if late:
        events = tuple(event._replace(data={**event.data, "spooled": True}) for event in events)
        return decision, [tx.append(event, observed=(now, boot_id)) for event in events]
    return decision, [tx.append(event) for event in events]


# How many of the newest `started` rows an exit looks through for its run: this life's start
# intents come first, and a life with more than this many before its first run is not real.
_STARTS_LOOKED_AT = 32


def _exit_of_an_earlier_life(tx, state: ProfileState, boot_id: str | None, supervisor: int) -> bool:
    """True when the run that just ended began before the profile's latest ``created``.

    Only asked while this life has recorded no run of its own: a slot runs one process at a
    time, so until this life's first start is recorded, the process that ended may be the
    previous life's, still stopping when the profile was created again. It is, when the last
    recorded start before that ``created`` came from this very supervisor (``finish`` and
    ``run`` share s6-supervise as parent) in this boot. Anything less certain is recorded as
    before: a crash must not go uncounted on a guess.
    """
    if state.run_position is not None:
        return False
    window = StreamWindow(types=("started",), newest_first=True, limit=_STARTS_LOOKED_AT)
    for event in tx.stream(state.profile, window):
        if event.actor != "supervisor" or event.position > state.created_position:
            continue
        return event.data.get("supervisor") == supervisor and event.boot_id == boot_id
    return False


# How many of the newest events a SIGTERM with no run going looks through for a stop intent.
_INTENTS_LOOKED_AT = 32


def _a_stop_since_the_supervisor_spoke(tx, state: ProfileState) -> bool:
    """True when this life's newest events, back to the last one the supervisor recorded, hold a
    stop intent: a stop nothing has answered yet, which a SIGTERM with no run going carried out.

    Asked only for a SIGTERM while the log knows no run going: the run hook was killed before its
    `started` committed, so the exit is the first supervisor event since that stop. A stop already
    answered (by an exit of an earlier run) lies behind a supervisor event and does not count."""
    window = StreamWindow(after_position=state.created_position - 1, newest_first=True, limit=_INTENTS_LOOKED_AT)
    for event in tx.stream(state.profile, window):
        if event.actor == "supervisor" or event.type == "created":
            return False
        if event.type == "stopped" and event.desired == "down":
            return True
    return False


def exec_gateway(argv: list[str], name: str, extra: dict[str, str]) -> NoReturn:
    """Replace this process with the gateway, ``HERMES_PROFILE`` set: the recorded pid becomes its pid."""
    environment = {**os.environ, **extra, "HERMES_PROFILE": validate_name(name)}
    home = _own_home(environment.get("HOME"))
    if home is not None:
        environment["HOME"] = home
    os.execvpe(argv[0], argv, environment)


def _own_home(home: str | None) -> str | None:
    """The gateway user's own home when ``HOME`` is not this user's (s6-setuidgid keeps root's): a
    gateway writing dot-files must not meet root's directory. None: keep ``HOME`` as it is."""
    try:
        if home and os.stat(home).st_uid == os.geteuid():
            return None
    except OSError:
        pass
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None
