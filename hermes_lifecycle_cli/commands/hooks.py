"""`hermes-state record-start | record-exit`: what a slot's run and finish scripts exec.

Kept light on purpose: no argparse (``main.fast_call`` parses these), no
SQLAlchemy, rich or Alembic (a hook runs at every start and exit, inside
s6's finish time limit). docs/hooks.md has the reasoning.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from hermes_lifecycle import hooks
from hermes_lifecycle.errors import HermesError, NotFound, NotThisHost, ProfileDeleted, StoreUnavailable
from hermes_lifecycle.exits import DO_NOT_RESTART, ObservedExit

from ..output import say
from .common import settings

if TYPE_CHECKING:
    import argparse


def record_start(args: "argparse.Namespace") -> int:
    name = hooks.profile_of_slot(args.slot)
    config = settings()
    hooks.require_slot_supervisor("record-start", args.slot, config)  # nothing recorded, nothing run
    argv, environment = config.gateway_launch(name)  # a bad HERMES_GATEWAY(_COMMAND): exit 2, nothing recorded
    kept = _StartKeeper(config, name) if config.fleet else None
    try:
        hooks.record_start(config, name, os.getpid(), key=kept.key if kept else None)
    except (NotFound, ProfileDeleted, NotThisHost):
        raise  # no live profile of this host's: start nothing (one line, exit 3 or 4)
    except StoreUnavailable as error:
        where = kept.keep(error) if kept else ""
        say(f"hermes-state: record-start {args.slot}: start not recorded ({error}){where}; starting the gateway anyway")
    except HermesError as error:
        say(f"hermes-state: record-start {args.slot}: start not recorded ({error}); starting the gateway anyway")
    except Exception as error:  # noqa: BLE001 - a broken log must not take gateways down; it is reported
        say(f"hermes-state: record-start {args.slot}: start not recorded ({type(error).__name__}: {error}); "
             "starting the gateway anyway")
    sys.stdout.flush()
    try:
        hooks.exec_gateway(argv, name, environment)
    except OSError as error:
        say(f"hermes-state: record-start {args.slot}: cannot run the gateway command {argv[0]!r}: {error.strerror}")
        return hooks.EXEC_FAILED_STATUS


class _StartKeeper:
    """A fleet host's start, seen now with its key chosen before the first attempt: kept in the spool
    (spool.py) when the database cannot take it, so the log learns of the run when it returns."""

    def __init__(self, config, name: str) -> None:
        from hermes_lifecycle import spool

        self.config, self.name, self.spool = config, name, spool
        self.seen_at, self.seen_ns = spool.observed_now()
        self.key = spool.new_key(spool.START)

    def keep(self, error: StoreUnavailable) -> str:
        """What the line adds: where the start was kept, or why it was not."""
        spool, config = self.spool, self.config
        try:
            fact = spool.KeptStart(profile=self.name, pid=os.getpid(), observed_at=self.seen_at,
                                   boot_id=config.read_boot_id(), supervisor=os.getppid(), host=config.host_id(),
                                   key=self.key)
            return f"; kept in {spool.keep(config, fact, self.seen_ns)}, to be appended at this host's next write"
        except StoreUnavailable as spool_error:
            return f"; not kept either: {spool_error}"


def record_exit(args: "argparse.Namespace") -> int:
    name = hooks.profile_of_slot(args.slot)
    observed = ObservedExit.parse(args.exit_code, args.signal, args.wantedup)
    config = settings()
    hooks.require_slot_supervisor("record-exit", args.slot, config)
    policy = config.crash_loop_policy()
    if config.fleet:
        return _record_exit_on_a_fleet_host(args, config, name, observed, policy)
    try:
        decision, _ = hooks.record_exit(config, name, observed, policy)
    except StoreUnavailable as error:
        # Any status but 125: s6 restarts the gateway as it would without us.
        raise type(error)(f"record-exit {args.slot}: exit not recorded, s6 restarts as usual: {error}") from None
    return _decided(args, decision)


def _decided(args: "argparse.Namespace", decision) -> int:
    if decision.exit_status == DO_NOT_RESTART:
        say(f"hermes-state: {args.slot}: {decision.outcome}: held down, s6 will not restart it")
    return decision.exit_status


# How long a fleet host's record-exit waits for the database before it keeps the exit instead:
# s6 kills `finish` after five seconds (timeout-finish), and the spool's fsyncs need their share.
FLEET_EXIT_DEADLINE_SECONDS = 3.0


def _record_exit_on_a_fleet_host(args, config, name, observed, policy) -> int:
    """As above, but an exit the shared database cannot take now is kept on the host (spool.py) and
    appended at the host's next write. The key is chosen first: an append whose commit was lost in
    the outage, its replay, even the exit kept twice (the deadline below) are one event."""
    import signal

    from hermes_lifecycle import spool

    seen_at, seen_ns = spool.observed_now()
    key = spool.new_key()

    def keep(error: StoreUnavailable) -> int:
        try:
            fact = spool.KeptExit(
                profile=name, exit_code=args.exit_code, signal=args.signal, wantedup=args.wantedup or "",
                observed_at=seen_at, boot_id=config.read_boot_id(), supervisor=os.getppid(),
                host=config.host_id(), key=key,
            )
            earlier = spool.recent_exits(config, name, seen_ns - int(policy.window_seconds * 1e9))
            path = spool.keep(config, fact, seen_ns)
        except StoreUnavailable as spool_error:
            say(f"hermes-state: record-exit {args.slot}: exit not recorded and not kept, s6 restarts as usual: "
                f"{error}; {spool_error}")
            return StoreUnavailable.exit_status
        if observed.wantedup is not False and earlier + 1 >= policy.crashes:
            # The breaker, offline: the store cannot count the crashes now, the spool can. Every
            # exit s6 would restart counts (a clean exit or 78 would have held it down at once).
            say(f"hermes-state: record-exit {args.slot}: exit kept in {path}; {earlier + 1} exits within "
                f"{policy.window_seconds:g}s while the store is unavailable: held down, s6 will not restart "
                f"it: {error}")
            return DO_NOT_RESTART
        # Exit 5, as every command in an outage; s6 restarts as usual (only 125 changes what it does).
        say(f"hermes-state: record-exit {args.slot}: exit kept in {path}, to be appended at this host's next "
            f"write; s6 restarts as usual: {error}")
        return StoreUnavailable.exit_status

    def past_deadline(signum, frame) -> None:
        # A server that accepted the connection and then went silent: keep the exit and leave
        # now, without unwinding through the driver (a ROLLBACK could wait as long again).
        signal.setitimer(signal.ITIMER_REAL, 0)
        os._exit(keep(StoreUnavailable(f"event store {config.store_location} did not answer within "
                                       f"{FLEET_EXIT_DEADLINE_SECONDS:g}s")))

    signal.signal(signal.SIGALRM, past_deadline)
    signal.setitimer(signal.ITIMER_REAL, FLEET_EXIT_DEADLINE_SECONDS)
    try:
        decision, _ = hooks.record_exit(config, name, observed, policy, key=key)
    except StoreUnavailable as error:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return keep(error)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return _decided(args, decision)
