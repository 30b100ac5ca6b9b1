"""How ``finish`` classifies a gateway's exit: a pure function, no I/O.

The exit is classified by who asked for it, never by its exit code alone (a
well-behaved gateway exits 0 on SIGTERM). docs/design.md section 2, "How
`finish` classifies an exit" and "The crash-loop breaker"; docs/hooks.md
explains each choice.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Sequence

from .crash_loop import CrashLoopPolicy
from .errors import BadInput
from .events import NewEvent, format_time
from .fold import ProfileState
from .records import Record
from .vocabulary import Actor, Desired, EventType

# finish's exit status: 125 tells s6 the failure is permanent (do not restart).
RESTART_AS_USUAL = 0
DO_NOT_RESTART = 125

# s6 passes 256 as the exit code of a process killed by a signal.
KILLED_BY_SIGNAL = 256
EX_CONFIG = 78  # sysexits.h: a configuration error no restart can fix
# sysexits.h's EX_TEMPFAIL: "try again". hermes-agent's gateway exits so to be restarted
# (GATEWAY_SERVICE_RESTART_EXIT_CODE: after /restart, or when its loop-liveness watchdog fires).
EX_TEMPFAIL = 75
# What s6-supervise sends a service it is told to bring down (s6-svc -d, and -r's restart).
SIGTERM = 15

_NUMBER = re.compile(r"[0-9]{1,3}")


class ObservedExit(Record):
    """What s6 told ``finish`` about the process that ended."""

    exit_code: int | None  # 0-255; None when killed by a signal
    signal: int | None  # 1-128 when killed by a signal, else None
    wantedup: bool | None  # what `s6-svstat -o wantedup` said; None: unknown

    @classmethod
    def parse(cls, exit_code: str, signal: str, wantedup: str | None) -> "ObservedExit":
        """Read finish's arguments as s6 gives them: ``$1`` (256 when killed), ``$2`` (0 when none).

        Anything s6 cannot have produced is refused rather than guessed at.
        """
        code = _number(exit_code, "exit code")
        signum = _number(signal, "signal")
        if code == KILLED_BY_SIGNAL:
            if not 1 <= signum <= 128:
                raise BadInput(f"exit code 256 means killed by a signal, but the signal is {signum}")
            observed_code, observed_signal = None, signum
        elif 0 <= code <= 255:
            if signum != 0:
                raise BadInput(f"exit code {code} with signal {signum}: s6 passes 256 as the code of a killed process")
            observed_code, observed_signal = code, None
        else:
            raise BadInput(f"invalid exit code {code}: expected 0-255, or 256 when killed by a signal")
        return cls(observed_code, observed_signal, _wantedup(wantedup))


def _number(text: str, what: str) -> int:
    if not isinstance(text, str) or not _NUMBER.fullmatch(text):
        raise BadInput(f"invalid {what} {text!r}: expected a number as s6 passes it")
    return int(text)


def _wantedup(text: str | None) -> bool | None:
    # The finish script passes what s6-svstat printed; nothing (it failed, or
    # the hook was run by hand) means unknown.
    if text is None or text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    raise BadInput(f"invalid wantedup {text!r}: expected true or false, as s6-svstat -o wantedup prints")


class ExitOutcome(StrEnum):
    """How ``finish`` classified an exit: the rules of ``classify_exit``, in their order."""

    DELETED = "deleted"
    EARLIER_LIFE = "earlier-life"
    REQUESTED = "requested"
    RESTART = "restart"
    SHUTDOWN = "shutdown"
    SELF_RESTART = "self-restart"
    FATAL_CONFIG = "fatal-config"
    EXITED = "exited"
    CRASHED = "crashed"
    CRASH_LOOP = "crash-loop"


class ExitDecision(Record):
    """What ``record-exit`` appends (in order, in one transaction) and the status it exits with."""

    outcome: ExitOutcome
    events: tuple[NewEvent, ...] = ()
    exit_status: int = RESTART_AS_USUAL


def window_start(policy: CrashLoopPolicy, now: datetime) -> str:
    """The oldest crash time the breaker counts at ``now`` (as stored: sortable text)."""
    return format_time(now - timedelta(seconds=policy.window_seconds))


def classify_exit(
    state: ProfileState | None,
    observed: ObservedExit,
    crash_times: Sequence[str],
    policy: CrashLoopPolicy,
    now: datetime,
    *,
    earlier_life: bool = False,
    stop_unanswered: bool = False,
) -> ExitDecision:
    """The order of docs/design.md section 2, first match wins.

    ``crash_times`` are the profile's ``crashed`` times since its latest start
    intent (``state.start_intent_position``); those older than the window are
    ignored here, so a caller may pass more than the window holds.
    ``earlier_life``: the exit is of a run started before the profile's latest
    ``created`` (``hooks.record_exit`` finds out which run ended).
    ``stop_unanswered``: a stop intent came after the newest supervisor event
    of this life (``hooks.record_exit`` reads it from the stream).
    """
    # 1. Deleted (or never existed): its last exit is accepted and recorded nowhere.
    if state is None or state.deleted:
        return ExitDecision(ExitOutcome.DELETED)
    # 1b. The run of a profile since deleted and created again (its gateway was slow to stop):
    #     that life is over, and its exit says nothing of this one. Recorded nowhere, like 1.
    if earlier_life:
        return ExitDecision(ExitOutcome.EARLIER_LIFE)

    def exit_event(type_: EventType, reason: str | None, desired: Desired | None = None, **data: object) -> NewEvent:
        run = state.running_run
        return NewEvent(
            profile=state.profile,
            type=type_,
            actor=Actor.SUPERVISOR,
            desired=desired,
            # A late finish must never land on a newer run: name the run it ends.
            pid=state.run_pid if run is not None else None,
            exit_code=observed.exit_code,
            signal=observed.signal,
            reason=reason,
            data={"run": run, **data} if run is not None else dict(data),
        )

    # 2. Someone asked for it to stop.
    if state.desired == Desired.DOWN:
        return ExitDecision(ExitOutcome.REQUESTED, (exit_event(EventType.STOPPED, "requested"),))
    # 3. Someone asked for a new process after this run began. "This run" is
    #    the latest recorded start: if that start was never recorded (the store
    #    was unavailable then), a pending restart still explains the exit.
    if state.restart_position is not None and state.restart_position > (state.run_position or 0):
        return ExitDecision(ExitOutcome.RESTART, (exit_event(EventType.STOPPED, "restart"),))
    # 3b. A stop killed a run whose start was never recorded: s6's SIGTERM (the projector's
    #     s6-svc -d) reached the run hook before its `started` committed. No run is going and a
    #     stop intent came after the last thing the supervisor recorded, so that stop explains
    #     the SIGTERM, even when a start has landed since and s6 wants the slot up again.
    if stop_unanswered and state.running_run is None and observed.signal == SIGTERM:
        return ExitDecision(ExitOutcome.REQUESTED, (exit_event(EventType.STOPPED, "requested"),))
    # 4. s6 no longer wants it up: container stop, or an operator's s6-svc -d.
    #    Desired stays up, so it comes back at the next boot.
    if observed.wantedup is False:
        return ExitDecision(ExitOutcome.SHUTDOWN, (exit_event(EventType.STOPPED, "shutdown"),))
    # 5. Nobody outside asked. The gateway itself asked for a new process: a restart, not a
    #    crash, so the breaker never counts it; desired stays up and s6 restarts it.
    if observed.exit_code == EX_TEMPFAIL:
        return ExitDecision(ExitOutcome.SELF_RESTART, (exit_event(EventType.STOPPED, "self-restart"),))
    if observed.exit_code == EX_CONFIG:
        return ExitDecision(
            ExitOutcome.FATAL_CONFIG, (exit_event(EventType.STOPPED, "fatal-config", desired=Desired.DOWN),), DO_NOT_RESTART
        )
    if observed.exit_code == 0:
        return ExitDecision(ExitOutcome.EXITED, (exit_event(EventType.STOPPED, "exited", desired=Desired.DOWN),), DO_NOT_RESTART)
    crashed = exit_event(EventType.CRASHED, None)
    since = window_start(policy, now)
    count = sum(1 for moment in crash_times if moment >= since) + 1  # this crash included
    if count < policy.crashes:
        return ExitDecision(ExitOutcome.CRASHED, (crashed,))
    breaker = exit_event(
        EventType.STOPPED,
        "crash-loop",
        desired=Desired.DOWN,
        count=count,
        window_seconds=_plain_number(policy.window_seconds),
        threshold=policy.crashes,
    )
    return ExitDecision(ExitOutcome.CRASH_LOOP, (crashed, breaker), DO_NOT_RESTART)


def _plain_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
