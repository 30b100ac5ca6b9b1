"""Entry point: parse arguments, dispatch to a lazily imported command, turn errors into exit statuses.

One grammar, two ways in: the standalone ``hermes-state COMMAND ...`` and,
inside hermes-agent's own ``hermes``, ``hermes state COMMAND ...`` (the
plugin, ``plugin.py``, fills its subcommand with ``add_commands``). Each
command is named here as "module:function" and imported only when it runs,
so ``hermes-state --help`` never pays for the others. The slot hooks run at
every start and exit of every gateway, and scripts send intents: a
well-formed hook call or ``start|stop|restart [NAME]`` skips argparse
altogether (``fast_call``); anything else goes through the parser and its
errors. Expected failures become one line on stderr and their exit status
(docs/design.md section 7), here and nowhere else.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NoReturn, Sequence

from hermes_lifecycle import __version__

if TYPE_CHECKING:
    import argparse

PROGRAM = "hermes-state"

# The hooks' argument lists, as the slot scripts pass them: (required, optional, handler). The one
# statement of their grammar: ``fast_call`` reads them, and so does ``add_commands`` for argparse.
HOOK_ARGUMENTS = {
    "record-start": (("slot",), (), "hermes_lifecycle_cli.commands.hooks:record_start"),
    "record-exit": (("slot", "exit_code", "signal"), ("wantedup",), "hermes_lifecycle_cli.commands.hooks:record_exit"),
}
_HOOK_HELP = {
    "record-start": "slot `run` hook: record the start, exec the gateway",
    "record-exit": "slot `finish` hook: classify and record the exit",
    "wantedup": "what `s6-svstat -o wantedup` said: true or false",
}

# The intents' verbs: ``VERB [NAME]``, each with its help.
INTENTS = {
    "start": "ask for the profile's gateway to run (appends `started`)",
    "stop": "ask for the profile's gateway to stop (appends `stopped`)",
    "restart": "ask for a new gateway process (appends `started`, reason restart)",
}
INTENT_VERBS = tuple(INTENTS)


def fast_call(argv: Sequence[str]) -> SimpleNamespace | None:
    """The hooks' and the intents' exact forms, parsed without argparse (building its whole tree
    costs a hook more than its own work); None for anything else, which the parser then handles,
    errors and `--help` included."""
    return _hook_call(argv) or _intent_call(argv) or _s6_svc_call(argv)


def _s6_svc_call(argv: Sequence[str]) -> SimpleNamespace | None:
    """``s6-svc ARG...``: its words are s6-svc's own (``-u``, ``-d``...), which argparse would take for
    this command's options; ``--help`` still goes to the parser."""
    if not argv or argv[0] != "s6-svc" or any(word in ("-h", "--help") for word in argv[1:]):
        return None
    return SimpleNamespace(command="s6-svc", words=list(argv[1:]), handler="hermes_lifecycle_cli.commands.gateway:s6_svc")


def _intent_call(argv: Sequence[str]) -> SimpleNamespace | None:
    if len(argv) not in (1, 2) or argv[0] not in INTENT_VERBS:
        return None
    name = argv[1] if len(argv) == 2 else None
    if name is not None and name.startswith("-"):
        return None
    return SimpleNamespace(command=argv[0], name=name, handler=f"hermes_lifecycle_cli.commands.gateway:{argv[0]}")


def _hook_call(argv: Sequence[str]) -> SimpleNamespace | None:
    """``record-start SLOT`` / ``record-exit SLOT CODE SIGNAL [WANTEDUP]``."""
    if len(argv) < 2 or argv[0] not in HOOK_ARGUMENTS:
        return None
    required, optional, handler = HOOK_ARGUMENTS[argv[0]]
    names = required + optional
    values: list[str | None] = list(argv[1:])
    if not len(required) <= len(values) <= len(names) or any(v is not None and v.startswith("-") for v in values):
        return None
    values += [None] * (len(names) - len(values))
    return SimpleNamespace(command=argv[0], handler=handler, **dict(zip(names, values)))


def _parser_class():
    import argparse

    class Parser(argparse.ArgumentParser):
        """argparse, but a usage error is one line on stderr and exit 2."""

        def error(self, message: str) -> NoReturn:
            self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    return Parser


def _limit(text: str) -> int:
    """``--limit``: 0 (all) to MAX_LIMIT; anything else is a usage error (one line, exit 2), never a traceback."""
    import argparse

    from .options import MAX_LIMIT

    shown = text if len(text) <= 40 else text[:37] + "..."
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {shown!r}") from None
    if not 0 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"invalid --limit {shown}: expected 0 (all) to {MAX_LIMIT}")
    return value


def _name_argument(parser: "argparse.ArgumentParser") -> None:
    parser.add_argument("name", metavar="NAME", nargs="?", help="the profile (default: the root profile, 'default')")


def _json_option(parser: "argparse.ArgumentParser") -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")


def build_parser() -> "argparse.ArgumentParser":
    """The standalone command: ``hermes-state [--version] COMMAND ...``."""
    parser = _parser_class()(prog=PROGRAM, description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    add_commands(parser)
    return parser


DESCRIPTION = "Lifecycle of Hermes profiles and their gateways, kept as an append-only event log."


def add_commands(parser: "argparse.ArgumentParser") -> None:
    """Every command under ``parser``: the standalone program's top level, or hermes-agent's ``hermes state``."""
    _Parser = _parser_class()
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    # -- profiles -----------------------------------------------------------
    create = commands.add_parser("create", help="create a profile (directory + `created` event)")
    create.add_argument("name", metavar="NAME")
    create.set_defaults(handler="hermes_lifecycle_cli.commands.profile:create")

    delete = commands.add_parser("delete", help="delete a profile (its history stays)")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")
    delete.add_argument("--purge", action="store_true", help="remove the directory instead of moving it to profiles/.deleted/")
    delete.set_defaults(handler="hermes_lifecycle_cli.commands.profile:delete")

    listing = commands.add_parser("list", help="every profile with its desired state and last event")
    _json_option(listing)
    listing.add_argument("--all", action="store_true", help="include deleted profiles")
    listing.add_argument("--all-hosts", action="store_true",
                         help="every host's profiles, with their host (a fleet lists this host's by default)")
    listing.set_defaults(handler="hermes_lifecycle_cli.commands.profile:list_profiles")

    history = commands.add_parser("history", help="what happened to a profile, oldest first")
    _name_argument(history)
    history.add_argument("--limit", type=_limit, default=50, metavar="N", help="the newest N events (default 50; 0: all)")
    history.add_argument("--since", metavar="TIME", help="ISO time or an age such as 2h, 3d")
    history.add_argument("--until", metavar="TIME", help="ISO time or an age such as 30m")
    history.add_argument("--type", metavar="TYPES", help="comma-separated event types, e.g. crashed,stopped")
    history.add_argument("--boot", metavar="ID", help="only events of one container boot: an id, or 'current'")
    history.add_argument("--follow", action="store_true", help="then print new events as they are appended, until Ctrl-C")
    _json_option(history)
    history.set_defaults(handler="hermes_lifecycle_cli.commands.history:history")

    # -- gateways -----------------------------------------------------------
    for verb, text in INTENTS.items():
        command = commands.add_parser(verb, help=text)
        _name_argument(command)
        command.set_defaults(handler=f"hermes_lifecycle_cli.commands.gateway:{verb}")
    status = commands.add_parser("status", help="a profile's desired state against what s6 reports")
    _name_argument(status)
    _json_option(status)
    status.set_defaults(handler="hermes_lifecycle_cli.commands.gateway:status")
    stand_in = commands.add_parser(
        "stand-in",
        help="the built-in stand-in gateway a slot runs by default (foreground)",
        description="The stand-in for a profile's messaging gateway: holds a lock on the profile, stays in "
        "the foreground, exits 0 on SIGTERM, 4 when another instance runs, 78 when the profile does not "
        "exist. HERMES_GATEWAY=hermes-agent (or HERMES_GATEWAY_COMMAND) replaces it with a real gateway.",
    )
    stand_in.add_argument("name", metavar="NAME", nargs="?",
                          help="the profile (default: $HERMES_PROFILE, else the root profile, 'default')")
    stand_in.set_defaults(handler="hermes_lifecycle_cli.commands.gateway_run:run")

    # -- the store and the projector -----------------------------------------
    migrate = commands.add_parser("migrate", help="create the store or bring it to the code's schema")
    migrate.set_defaults(handler="hermes_lifecycle_cli.commands.state:migrate")

    doctor = commands.add_parser("doctor", help="check the store: integrity, schema, chain, projection")
    _json_option(doctor)
    doctor.add_argument("--full", action="store_true",
                        help="verify every row from the first, not only those after root's checkpoint")
    doctor.set_defaults(handler="hermes_lifecycle_cli.commands.state:doctor")

    sql = commands.add_parser("sql", help="read the store: statements from the input (or psql on a fleet), read-only")
    sql.add_argument("query", nargs="?", metavar="SQL", help="run one statement and print its rows instead")
    sql.set_defaults(handler="hermes_lifecycle_cli.commands.state:sql")

    import_legacy = commands.add_parser("import-legacy", help="import gateway_state.json files, once")
    import_legacy.add_argument("--dry-run", action="store_true", help="say what would be imported; append nothing")
    import_legacy.set_defaults(handler="hermes_lifecycle_cli.commands.legacy:import_legacy")

    claim = commands.add_parser(
        "claim", help="container start: claim the volume for this scan directory's projector, or exit 4",
        description="Takes the volume's claim (a lock on HERMES_HOME) and leaves a keeper holding it while the "
        "scan directory's s6-svscan lives, for boot and the watch daemon of the same container. Exits 4, "
        "touching nothing, when another live projector holds the volume.",
    )
    claim.set_defaults(handler="hermes_lifecycle_cli.commands.projector:claim")

    boot = commands.add_parser("boot", help="container boot: migrate, import, make every slot")
    boot.set_defaults(handler="hermes_lifecycle_cli.commands.projector:boot")

    watch = commands.add_parser("watch", help="the watch daemon: reconcile slots as events arrive")
    watch.add_argument("--poll-only", action="store_true", help="do not use inotify; poll only")
    watch.set_defaults(handler="hermes_lifecycle_cli.commands.projector:watch")

    up = commands.add_parser("up", help="embedded default: private s6-svscan, boot, then watch")
    up.set_defaults(handler="hermes_lifecycle_cli.commands.projector:up")

    watch_gateways = commands.add_parser(
        "watch-gateways", help="as the gateway user: the gateways' own accounts into the log, the log into their files")
    watch_gateways.add_argument("--poll-only", action="store_true", help="do not use inotify; poll only")
    watch_gateways.set_defaults(handler="hermes_lifecycle_cli.commands.gateways:watch_gateways")

    s6_svc = commands.add_parser(
        "s6-svc", help="what s6-svc is for the gateway user in the image: hermes-agent's -u/-d/-t become intents",
        description="hermes-agent's `hermes gateway start|stop|restart` send `s6-svc -u|-d|-t SLOT`; in this "
        "project's image that is this command for any user but root, and it appends the intent, by "
        "hermes-agent. Anything else is refused with one line: s6 follows the event log here.")
    s6_svc.add_argument("words", nargs="*", metavar="ARG", help="s6-svc's own arguments: -u, -d or -t, and a slot")
    s6_svc.set_defaults(handler="hermes_lifecycle_cli.commands.gateway:s6_svc")

    serve = commands.add_parser(
        "serve",
        help="read-only HTTP view for operators: /metrics (Prometheus), / and /profiles/NAME",
        description="Serves the store read-only: /metrics in the Prometheus text format, / (every live "
        "profile) and /profiles/NAME (its runs over time, ?since=2h). It never writes.",
    )
    serve.add_argument("--listen", default="127.0.0.1:9130", metavar="HOST:PORT",
                       help="where to listen (default 127.0.0.1:9130; any other address must be named here)")
    serve.add_argument("--check-interval", type=float, default=300.0, metavar="SECONDS",
                       help="how often the store's quick_check runs for hermes_state_store_ok (default 300)")
    serve.add_argument("--once", metavar="PATH", help="answer one request for PATH (e.g. /metrics) on stdout and exit")
    serve.set_defaults(handler="hermes_lifecycle_cli.commands.serve:serve")

    for hook, (required, optional, handler) in HOOK_ARGUMENTS.items():
        command = commands.add_parser(hook, help=_HOOK_HELP[hook])
        for name in required:
            command.add_argument(name, metavar=name.upper())
        for name in optional:
            command.add_argument(name, metavar=name.upper(), nargs="?", help=_HOOK_HELP.get(name))
        command.set_defaults(handler=handler)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return dispatch(fast_call(argv) or build_parser().parse_args(argv))


def dispatch(args: Any) -> int:
    """Run the command ``args`` names; an expected failure is one line on stderr and its status."""
    module_name, _, function_name = args.handler.partition(":")
    from hermes_lifecycle.errors import HermesError

    try:
        handler = getattr(importlib.import_module(module_name), function_name)
        return int(handler(args) or 0)
    except HermesError as error:
        _say(f"{PROGRAM}: {error}")
        return error.exit_status
    except KeyboardInterrupt:
        _say(f"{PROGRAM}: interrupted")
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): nothing left to say, not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _say(line: str) -> None:
    from .output import say  # imported on failure only: `hermes-state --version` stays light

    say(line)
