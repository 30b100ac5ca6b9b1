"""`hermes state boot | watch | up`: the projector's commands (hermes_state.projector does the work)."""

from __future__ import annotations

import argparse

from .common import settings


def boot(args: argparse.Namespace) -> int:
    from hermes_state.projector.boot import boot as run_boot

    return run_boot(settings())


def watch(args: argparse.Namespace) -> int:
    from hermes_state.projector.watch import WatchOptions, watch as run_watch

    return run_watch(settings(), WatchOptions.from_env(poll_only=args.poll_only))


def up(args: argparse.Namespace) -> int:
    from hermes_state.projector.up import up as run_up
    from hermes_state.projector.watch import WatchOptions

    return run_up(settings(), WatchOptions.from_env())
