"""hermes-agent's plugin: this package's commands as ``hermes state ...`` in hermes-agent's own ``hermes``.

hermes-agent finds it through the entry point group ``hermes_agent.plugins``
and loads it once ``hermes plugins enable hermes-state`` has put it in the
home's ``config.yaml``. ``register(ctx)`` adds one top-level command,
``state``, whose subcommands are exactly the standalone ``hermes-state``'s
(``main.add_commands``): ``hermes state history alice`` is
``hermes-state history alice``. docs/hermes-agent.md says how the two fit.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .main import DESCRIPTION, add_commands, dispatch

COMMAND = "state"


def register(ctx: Any) -> None:
    """hermes-agent's plugin entry: one top-level command, ``hermes state``."""
    ctx.register_cli_command(
        name=COMMAND,
        help="the lifecycle log of profiles and gateways (hermes-state)",
        setup_fn=_setup,
        handler_fn=run,
        description=DESCRIPTION,
    )


def _setup(parser: Any) -> None:
    add_commands(parser)
    # hermes-agent made this parser; a usage error at this level is one line too, as everywhere else.
    parser.error = lambda message: parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")


def run(args: Any) -> None:
    """Run ``hermes state COMMAND``; hermes-agent ignores a handler's return value, so exit with its status."""
    # `hermes -p NAME` (or a sticky active profile) points HERMES_HOME at that profile's directory
    # before a plugin runs; the log belongs to the root of the homes, as hermes-agent's own profile
    # commands see it.
    from hermes_constants import get_default_hermes_root

    os.environ["HERMES_HOME"] = str(get_default_hermes_root())
    sys.stdout.flush()
    raise SystemExit(dispatch(args))
