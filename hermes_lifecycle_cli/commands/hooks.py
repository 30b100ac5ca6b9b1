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
from hermes_lifecycle.fleet import open_writer

from ..output import say
from .common import settings

if TYPE_CHECKING:
    import argparse


def record_start(args: "argparse.Namespace") -> int:
    name = hooks.profile_of_slot(args.slot)
    config = settings()
    hooks.require_slot_supervisor("record-start", args.slot, config)  # nothing recorded, nothing run
    argv, environment = config.gateway_launch(name)  # a bad HERMES_GATEWAY(_COMMAND): exit 2, nothing recorded
    kept = None
    if config.fleet:
        from hermes_lifecycle.fleet.outage import StartKeeper

        kept = StartKeeper(config, name)
    try:
        with open_writer(config, say=say, busy_timeout_ms=hooks.HOOK_BUSY_TIMEOUT_MS) as store:
            hooks.record_start(store, name, os.getpid(), key=kept.key if kept else None)
    except (NotFound, ProfileDeleted, NotThisHost):
        raise  # no live profile of this host's: start nothing (one line, exit 3 or 4)
    except StoreUnavailable as error:
        where = _kept_start(kept) if kept else ""
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


def _kept_start(kept) -> str:
    """What record-start's line adds on a fleet host: where the start was kept, or why it was not."""
    try:
        return f"; kept in {kept.keep()}, to be appended at this host's next write"
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
        with open_writer(config, say=say, busy_timeout_ms=hooks.HOOK_BUSY_TIMEOUT_MS) as store:
            decision, _ = hooks.record_exit(store, name, observed, policy)
    except StoreUnavailable as error:
        # Any status but 125: s6 restarts the gateway as it would without us.
        raise type(error)(f"record-exit {args.slot}: exit not recorded, s6 restarts as usual: {error}") from None
    return _decided(args, decision)


def _decided(args: "argparse.Namespace", decision) -> int:
    if decision.exit_status == DO_NOT_RESTART:
        say(f"hermes-state: {args.slot}: {decision.outcome}: held down, s6 will not restart it")
    return decision.exit_status


def _record_exit_on_a_fleet_host(args, config, name, observed, policy) -> int:
    """As above, but an exit the shared database cannot take now (or within the deadline) is kept
    on the host (fleet/outage.py) and appended at the host's next write."""
    from hermes_lifecycle.fleet import outage

    keeper = outage.ExitKeeper(config, name, args.exit_code, args.signal, args.wantedup, policy)

    def keep(error: StoreUnavailable) -> int:
        try:
            kept = keeper.keep(observed)
        except StoreUnavailable as spool_error:
            say(f"hermes-state: record-exit {args.slot}: exit not recorded and not kept, s6 restarts as usual: "
                f"{error}; {spool_error}")
            return StoreUnavailable.exit_status
        if kept.held_down:
            say(f"hermes-state: record-exit {args.slot}: exit kept in {kept.path}; {kept.exits_in_window} exits within "
                f"{policy.window_seconds:g}s while the store is unavailable: held down, s6 will not restart "
                f"it: {error}")
            return DO_NOT_RESTART
        # Exit 5, as every command in an outage; s6 restarts as usual (only 125 changes what it does).
        say(f"hermes-state: record-exit {args.slot}: exit kept in {kept.path}, to be appended at this host's next "
            f"write; s6 restarts as usual: {error}")
        return StoreUnavailable.exit_status

    seconds = outage.EXIT_DEADLINE_SECONDS
    silent = StoreUnavailable(f"event store {config.store_location} did not answer within {seconds:g}s")
    try:
        with outage.deadline(seconds, lambda: keep(silent)):
            with open_writer(config, say=say, busy_timeout_ms=hooks.HOOK_BUSY_TIMEOUT_MS) as store:
                decision, _ = hooks.record_exit(store, name, observed, policy, key=keeper.key)
    except StoreUnavailable as error:
        return keep(error)
    return _decided(args, decision)
