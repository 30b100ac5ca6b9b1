"""`hermes state record-start | record-exit`: what a slot's run and finish scripts exec.

Kept light on purpose: no argparse (``main.fast_call`` parses these), no
SQLAlchemy, rich or Alembic (a hook runs at every start and exit, inside
s6's finish time limit). docs/hooks.md has the reasoning.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from hermes_state import hooks
from hermes_state.errors import HermesError, NotFound, ProfileDeleted, StoreUnavailable
from hermes_state.exits import DO_NOT_RESTART, ObservedExit

from ..output import say
from .common import settings

if TYPE_CHECKING:
    import argparse


def record_start(args: "argparse.Namespace") -> int:
    name = hooks.profile_of_slot(args.slot)
    config = settings()
    argv = config.gateway_argv(name)  # a bad HERMES_GATEWAY_COMMAND: exit 2, nothing recorded
    try:
        hooks.record_start(config, name, os.getpid())
    except (NotFound, ProfileDeleted):
        raise  # no live profile: start nothing (one line, exit 3 or 4)
    except HermesError as error:
        say(f"hermes: record-start {args.slot}: start not recorded ({error}); starting the gateway anyway")
    except Exception as error:  # noqa: BLE001 - a broken log must not take gateways down; it is reported
        say(f"hermes: record-start {args.slot}: start not recorded ({type(error).__name__}: {error}); "
             "starting the gateway anyway")
    sys.stdout.flush()
    try:
        hooks.exec_gateway(argv, name)
    except OSError as error:
        say(f"hermes: record-start {args.slot}: cannot run the gateway command {argv[0]!r}: {error.strerror}")
        return hooks.EXEC_FAILED_STATUS


def record_exit(args: "argparse.Namespace") -> int:
    name = hooks.profile_of_slot(args.slot)
    observed = ObservedExit.parse(args.exit_code, args.signal, args.wantedup)
    config = settings()
    policy = config.crash_loop_policy()
    try:
        decision, _ = hooks.record_exit(config, name, observed, policy)
    except StoreUnavailable as error:
        # Any status but 125: s6 restarts the gateway as it would without us.
        raise type(error)(f"record-exit {args.slot}: exit not recorded, s6 restarts as usual: {error}") from None
    if decision.exit_status == DO_NOT_RESTART:
        say(f"hermes: {args.slot}: {decision.outcome}: held down, s6 will not restart it")
    return decision.exit_status
