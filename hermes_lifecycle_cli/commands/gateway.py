"""`hermes-state start | stop | restart | status`: intents go to the log; s6 is only read.

start, stop and restart append an intent and exit 0, also when the desired
state already matches: the log records every request. The projector (root)
turns intents into s6 commands; nothing here writes to the scan directory.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from hermes_lifecycle.vocabulary import Actor, Desired, EventType

from .. import humane
from ..output import say
from .common import profile_of, settings

if TYPE_CHECKING:
    from hermes_lifecycle.projector.s6 import ServiceStatus

# verb -> (type, desired, reason) of the cli event it appends
INTENTS = {
    "start": (EventType.STARTED, Desired.UP, None),
    "stop": (EventType.STOPPED, Desired.DOWN, None),
    "restart": (EventType.STARTED, Desired.UP, "restart"),
}

_SAID = {"start": "start", "stop": "stop", "restart": "restart (a new process)"}


def start(args: argparse.Namespace) -> int:
    return _intent("start", args)


def stop(args: argparse.Namespace) -> int:
    return _intent("stop", args)


def restart(args: argparse.Namespace) -> int:
    return _intent("restart", args)


def _intent(verb: str, args: argparse.Namespace, *, actor: Actor = Actor.CLI, data: dict[str, str] | None = None) -> int:
    from hermes_lifecycle.events import NewEvent
    from hermes_lifecycle.fleet import open_writer

    name = profile_of(args)
    kind, desired, reason = INTENTS[verb]
    with open_writer(settings(), say=say) as store:
        with store.writing() as tx:
            prior = tx.state(name)
            event = tx.append(NewEvent(name, kind, actor, desired, reason=reason, data=data or {}))
    note = ""
    if prior is not None and prior.desired == desired and verb != "restart":
        note = f" (it was already desired {desired}; the request is recorded anyway)"
    print(f"asked gateway {name} to {_SAID[verb]}: event {event.position}, desired {desired}{note}")
    return 0


# hermes-agent's s6 manager (hermes_cli/service_manager.py) sends these to a slot; each is the intent.
S6_SVC_INTENTS = {"-u": "start", "-d": "stop", "-t": "restart"}


def s6_svc(args: argparse.Namespace) -> int:
    """`hermes-state s6-svc FLAG SLOT`: what `s6-svc` is for the unprivileged user in this project's
    image. hermes-agent's `hermes gateway start|stop|restart` (and its `profile delete`) send s6-svc
    -u, -d or -t to the slot; the slot is the projector's, so the command becomes that intent in the
    log, by `hermes-agent`, and the projector carries it out (docs/hermes-agent.md). Anything else
    is refused with one line: s6 follows the log here."""
    import os

    from hermes_lifecycle.errors import BadInput
    from hermes_lifecycle.names import profile_of_slot

    words = list(args.words)
    # hermes-agent runs it with HERMES_HOME at the profile's own home (`-p NAME`: <root>/profiles/NAME);
    # the log is the root's, as its own profile commands see it.
    home = os.environ.get("HERMES_HOME")
    if home and os.path.basename(os.path.dirname(os.path.normpath(home))) == "profiles":
        os.environ["HERMES_HOME"] = os.path.dirname(os.path.dirname(os.path.normpath(home)))
    refusal = BadInput(f"s6 follows the event log here: `s6-svc {' '.join(words)}` is refused; "
                       "`hermes state start|stop|restart NAME` asks for a gateway")
    if len(words) != 2 or words[0] not in S6_SVC_INTENTS:
        raise refusal
    flag, slot = words
    directory, base = os.path.split(os.path.normpath(os.path.abspath(slot)))
    if directory != os.path.normpath(os.path.abspath(settings().scandir_dir)):
        raise refusal
    name = profile_of_slot(base)
    if name is None:
        raise refusal
    args.name = name
    return _intent(S6_SVC_INTENTS[flag], args, actor=Actor.HERMES_AGENT, data={"via": f"s6-svc {flag}"})


def observe_slot(slot_dir) -> "ServiceStatus | str":
    """What s6 says of the slot, or why it cannot be known from here (read only: s6-svstat)."""
    import os

    from hermes_lifecycle.projector.s6 import S6, S6Error

    scandir = os.path.dirname(slot_dir)
    if not os.access(scandir, os.R_OK | os.X_OK):
        return f"the scan directory {scandir} is not readable from here"
    if not os.path.isdir(slot_dir):
        return f"no slot {slot_dir}: the projector has not made one"
    supervise = os.path.join(slot_dir, "supervise")
    if os.path.isdir(supervise) and not os.access(supervise, os.X_OK):
        # A slot made before its supervise/ was opened for reading (0711): s6 made it 0700.
        return f"s6's status of {slot_dir} is readable by its owner only ({supervise} is private)"
    try:
        seen = S6().status(slot_dir)
    except S6Error as error:
        return str(error)
    return seen if seen is not None else f"nothing supervises {slot_dir} (is s6-svscan running?)"


def status(args: argparse.Namespace) -> int:
    from hermes_lifecycle.status import STATUS_COLUMNS, an_hour_ago, status_row
    from hermes_lifecycle.store import open_store

    name = profile_of(args)
    config = settings()
    with open_store(config, readonly=True) as store, store.reading() as tx:
        profile = tx.require_state(name)
        crashes = tx.crash_times(name, after_position=0, since=an_hour_ago())
    state = {**status_row(profile, len(crashes)), "intent_actor": profile.intent_actor,
             "intent_reason": profile.intent_reason, "intent_at": profile.intent_at}
    elsewhere = _another_hosts(config, profile.host)
    slot: ServiceStatus | str
    if state["status"] != "live":
        slot = "the profile is deleted: it has no slot"
    elif elsewhere:
        slot = elsewhere
    else:
        slot = observe_slot(config.slot_dir(name))
    if args.json:
        from .. import output

        row = {key: state[key] for key in (*STATUS_COLUMNS, *_INTENT_KEYS)}
        row["s6"] = None if isinstance(slot, str) else slot.as_json()
        row["s6_source"] = None if isinstance(slot, str) else f"s6-svstat {settings().slot_dir(name)}"
        row["s6_unavailable"] = slot if isinstance(slot, str) else None
        output.json_lines([row])
        return 0
    from ..grid import printable

    now = datetime.now(timezone.utc)
    # The log's values (reasons, s6's answer) are the gateway user's text: shown, never obeyed.
    print("\n".join(printable(line) for line in status_lines(state, slot, now, source=settings().slot_dir(name))))
    return 0


def _another_hosts(config, host: str | None) -> str | None:
    """In a fleet, why this host has no slot of another host's profile (its own projector runs it
    there: docs/fleet.md, Hosts); None for this host's profile, and on a SQLite file."""
    if not config.fleet:
        return None
    from hermes_lifecycle.errors import StoreUnavailable

    try:
        here = config.host_id(create=False)
    except StoreUnavailable:
        return None  # no id yet: this host has made nothing, so its scan directory says what there is
    if host == here:
        return None
    return f"the profile belongs to host {host}, not to this one ({here}): that host's projector runs its slot"


# `status --json`: the profile's profile_status row, every column as the view has it, then who set the
# desired state and when (not in the view), then s6's view.
_INTENT_KEYS = ("intent_actor", "intent_reason", "intent_at")


def status_lines(state: dict, slot, now: datetime, source=None) -> list[str]:
    """The human view: ``slot`` is s6's ServiceStatus (read from the slot ``source``), or the reason it is unknown."""
    name = state["profile"]
    setter = state["intent_actor"] + (f" ({state['intent_reason']})" if state["intent_reason"] else "")
    desired = f"{state['desired']}, set by {setter} {humane.when(state['intent_at'], now)}"
    if state["held_down_by"]:
        desired += f"; held down by the supervisor ({state['held_down_by']}): `hermes-state start {name}` asks again"
    if state["status"] == "deleted":
        desired = f"deleted {humane.when(state['intent_at'], now)}"
    lines = [f"profile  {name}", f"desired  {desired}"]
    if not isinstance(slot, str):
        if slot.up:
            seen = f"up for {humane.duration(slot.updownfor)}, pid {slot.pid}"
        elif slot.never_started:
            seen = f"down for {humane.duration(slot.updownfor)}, not started since its supervisor started"
        else:
            seen = f"down for {humane.duration(slot.updownfor)}"
            last = humane.exit_text(slot.exitcode, slot.signum)
            seen += f", last exit: {last}" if last else ""
        if not slot.wantedup:
            seen += " (s6 does not want it up)"
        if source is not None:
            seen += f"  [s6-svstat {source}]"  # the supervisor's own view, unlike the log's lines below
        lines.append(f"s6       {seen}")
        if state["status"] == "live" and (state["desired"] == "up") != slot.up:
            lines.append("         not yet as desired: the projector acts on the log (is `hermes-state watch` running?)")
    else:
        lines.append(f"s6       unknown: {slot}")
    last = f"{state['last_event']} by {state['last_actor']} {humane.when(state['last_event_at'], now)}"
    how = humane.exit_text(state["last_exit_code"], state["last_signal"]) if state["last_event"] in (
        "crashed", "stopped") and state["last_actor"] == "supervisor" else ""
    extra = ", ".join(part for part in (how, state["last_reason"]) if part)
    lines.append(f"last     {last}" + (f", {extra}" if extra else ""))
    if state["pid"] is not None:
        lines.append(f"log      running as pid {state['pid']} since {humane.when(state['running_since'], now)}")
    return lines
