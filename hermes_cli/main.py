"""Entry point: parse arguments, dispatch to a lazily imported command, turn errors into exit statuses.

Each command is named here as "module:function" and imported only when it
runs, so `hermes --help` never pays for the others. The slot hooks run at
every start and exit of every gateway, and scripts send intents: a
well-formed hook call or `gateway start|stop|restart` skips argparse
altogether (``fast_call``); anything else goes through the parser and its
errors. Expected failures become one line on stderr and their exit
status (docs/design.md section 7), here and nowhere else.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING, Sequence

from hermes_state import __version__

if TYPE_CHECKING:
    import argparse

# The hooks' argument lists (after `state`), as the slot scripts pass them.
HOOK_ARGUMENTS = {
    "record-start": (("slot",), "hermes_cli.commands.hooks:record_start"),
    "record-exit": (("slot", "exit_code", "signal", "wantedup"), "hermes_cli.commands.hooks:record_exit"),
}


# The intents' verbs: `gateway VERB [-p NAME]`, or `-p NAME gateway VERB`.
INTENT_VERBS = ("start", "stop", "restart")
_PROFILE_FLAGS = ("-p", "--profile")


def fast_call(argv: Sequence[str]) -> SimpleNamespace | None:
    """The hooks' and the intents' exact forms, parsed without argparse (building its whole tree
    costs a hook more than its own work); None for anything else, which the parser then handles,
    errors and `--help` included."""
    return _hook_call(argv) or _intent_call(argv)


def _intent_call(argv: Sequence[str]) -> SimpleNamespace | None:
    words = list(argv)
    global_profile = None
    if len(words) >= 2 and words[0] in _PROFILE_FLAGS:
        global_profile, words = words[1], words[2:]
    if len(words) not in (2, 4) or words[0] != "gateway" or words[1] not in INTENT_VERBS:
        return None
    profile = None
    if len(words) == 4:
        if words[2] not in _PROFILE_FLAGS:
            return None
        profile = words[3]
    if any(value is not None and value.startswith("-") for value in (global_profile, profile)):
        return None
    return SimpleNamespace(group="gateway", command=words[1], profile=profile, global_profile=global_profile,
                           handler=f"hermes_cli.commands.gateway:{words[1]}")


def _hook_call(argv: Sequence[str]) -> SimpleNamespace | None:
    """``state record-start SLOT`` / ``state record-exit SLOT CODE SIGNAL [WANTEDUP]``."""
    if len(argv) < 3 or argv[0] != "state" or argv[1] not in HOOK_ARGUMENTS:
        return None
    names, handler = HOOK_ARGUMENTS[argv[1]]
    values = list(argv[2:])
    optional = 1 if argv[1] == "record-exit" else 0
    if not len(names) - optional <= len(values) <= len(names) or any(v.startswith("-") for v in values):
        return None
    values += [None] * (len(names) - len(values))
    return SimpleNamespace(group="state", command=argv[1], handler=handler, **dict(zip(names, values)))


def _parser_class():
    import argparse

    class Parser(argparse.ArgumentParser):
        """argparse, but a usage error is one line on stderr and exit 2."""

        def error(self, message: str) -> None:  # type: ignore[override]
            self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    return Parser


MAX_LIMIT = 2**31 - 1  # a count any store binds as an integer; more rows than that is "all" (0)


def _limit(text: str) -> int:
    """``--limit``: 0 (all) to MAX_LIMIT; anything else is a usage error (one line, exit 2), never a traceback."""
    import argparse

    shown = text if len(text) <= 40 else text[:37] + "..."
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {shown!r}") from None
    if not 0 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"invalid --limit {shown}: expected 0 (all) to {MAX_LIMIT}")
    return value


def _profile_option(parser: "argparse.ArgumentParser", help_text: str = "the profile (default: the root profile, 'default')") -> None:
    parser.add_argument("-p", "--profile", metavar="NAME", help=help_text)


def _json_option(parser: "argparse.ArgumentParser") -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")


def build_parser() -> "argparse.ArgumentParser":
    _Parser = _parser_class()
    parser = _Parser(
        prog="hermes",
        description="Lifecycle of Hermes profiles and their gateways, kept as an append-only event log.",
    )
    parser.add_argument("--version", action="version", version=f"hermes {__version__}")
    parser.add_argument("-p", "--profile", dest="global_profile", metavar="NAME", help="the profile a command acts on")
    groups = parser.add_subparsers(dest="group", metavar="{profile,gateway,state}", parser_class=_Parser)
    groups.required = True

    # -- profile ------------------------------------------------------------
    profile = groups.add_parser("profile", help="create, delete, list profiles; their history")
    profile_commands = profile.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    profile_commands.required = True

    create = profile_commands.add_parser("create", help="create a profile (directory + `created` event)")
    create.add_argument("name", metavar="NAME")
    create.set_defaults(handler="hermes_cli.commands.profile:create")

    delete = profile_commands.add_parser("delete", help="delete a profile (its history stays)")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")
    delete.add_argument("--purge", action="store_true", help="remove the directory instead of moving it to profiles/.deleted/")
    delete.set_defaults(handler="hermes_cli.commands.profile:delete")

    listing = profile_commands.add_parser("list", help="every profile with its desired state and last event")
    _json_option(listing)
    listing.add_argument("--all", action="store_true", help="include deleted profiles")
    listing.add_argument("--all-hosts", action="store_true",
                         help="every host's profiles, with their host (a fleet lists this host's by default)")
    listing.set_defaults(handler="hermes_cli.commands.profile:list_profiles")

    history = profile_commands.add_parser("history", help="what happened to a profile, oldest first")
    history.add_argument("name", metavar="NAME", nargs="?")
    _profile_option(history)
    history.add_argument("--limit", type=_limit, default=50, metavar="N", help="the newest N events (default 50; 0: all)")
    history.add_argument("--since", metavar="TIME", help="ISO time or an age such as 2h, 3d")
    history.add_argument("--until", metavar="TIME", help="ISO time or an age such as 30m")
    history.add_argument("--type", metavar="TYPES", help="comma-separated event types, e.g. crashed,stopped")
    history.add_argument("--boot", metavar="ID", help="only events of one container boot: an id, or 'current'")
    history.add_argument("--follow", action="store_true", help="then print new events as they are appended, until Ctrl-C")
    _json_option(history)
    history.set_defaults(handler="hermes_cli.commands.history:history")

    # -- gateway ------------------------------------------------------------
    gateway = groups.add_parser("gateway", help="start, stop, restart a profile's gateway; its status")
    gateway_commands = gateway.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    gateway_commands.required = True
    for verb, text in (
        ("start", "ask for the gateway to run (appends `started`)"),
        ("stop", "ask for the gateway to stop (appends `stopped`)"),
        ("restart", "ask for a new gateway process (appends `started`, reason restart)"),
    ):
        command = gateway_commands.add_parser(verb, help=text)
        _profile_option(command)
        command.set_defaults(handler=f"hermes_cli.commands.gateway:{verb}")
    status = gateway_commands.add_parser("status", help="desired state against what s6 reports")
    _profile_option(status)
    _json_option(status)
    status.set_defaults(handler="hermes_cli.commands.gateway:status")
    run = gateway_commands.add_parser(
        "run",
        help="the built-in stand-in gateway a slot runs by default (foreground)",
        description="The stand-in for a profile's messaging gateway: holds a lock on the profile, stays in "
        "the foreground, exits 0 on SIGTERM, 4 when another instance runs, 78 when the profile does not "
        "exist. HERMES_GATEWAY_COMMAND replaces it with the real gateway of a full Hermes install.",
    )
    _profile_option(run)
    run.set_defaults(handler="hermes_cli.commands.gateway_run:run")

    # -- state --------------------------------------------------------------
    state = groups.add_parser("state", help="the event store and its projection onto s6")
    state_commands = state.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    state_commands.required = True

    migrate = state_commands.add_parser("migrate", help="create the store or bring it to the code's schema")
    migrate.set_defaults(handler="hermes_cli.commands.state:migrate")

    doctor = state_commands.add_parser("doctor", help="check the store: integrity, schema, chain, projection")
    _json_option(doctor)
    doctor.set_defaults(handler="hermes_cli.commands.state:doctor")

    sql = state_commands.add_parser("sql", help="open the store read-only in the sqlite3 shell")
    sql.add_argument("query", nargs="?", metavar="SQL", help="run one statement and print its rows instead")
    sql.set_defaults(handler="hermes_cli.commands.state:sql")

    import_legacy = state_commands.add_parser("import-legacy", help="import gateway_state.json files, once")
    import_legacy.add_argument("--dry-run", action="store_true", help="say what would be imported; append nothing")
    import_legacy.set_defaults(handler="hermes_cli.commands.legacy:import_legacy")

    boot = state_commands.add_parser("boot", help="container boot: migrate, import, make every slot")
    boot.set_defaults(handler="hermes_cli.commands.projector:boot")

    watch = state_commands.add_parser("watch", help="the watch daemon: reconcile slots as events arrive")
    watch.add_argument("--poll-only", action="store_true", help="do not use inotify; poll only")
    watch.set_defaults(handler="hermes_cli.commands.projector:watch")

    up = state_commands.add_parser("up", help="embedded default: private s6-svscan, boot, then watch")
    up.set_defaults(handler="hermes_cli.commands.projector:up")

    serve = state_commands.add_parser(
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
    serve.set_defaults(handler="hermes_cli.commands.serve:serve")

    record_start = state_commands.add_parser("record-start", help="slot `run` hook: record the start, exec the gateway")
    record_start.add_argument("slot", metavar="SLOT")
    record_start.set_defaults(handler="hermes_cli.commands.hooks:record_start")

    record_exit = state_commands.add_parser("record-exit", help="slot `finish` hook: classify and record the exit")
    record_exit.add_argument("slot", metavar="SLOT")
    record_exit.add_argument("exit_code", metavar="EXIT_CODE")
    record_exit.add_argument("signal", metavar="SIGNAL")
    record_exit.add_argument("wantedup", metavar="WANTEDUP", nargs="?", help="what `s6-svstat -o wantedup` said: true or false")
    record_exit.set_defaults(handler="hermes_cli.commands.hooks:record_exit")

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = fast_call(argv) or build_parser().parse_args(argv)
    module_name, _, function_name = args.handler.partition(":")
    from hermes_state.errors import HermesError

    try:
        handler = getattr(importlib.import_module(module_name), function_name)
        return int(handler(args) or 0)
    except HermesError as error:
        _say(f"hermes: {error}")
        return error.exit_status
    except KeyboardInterrupt:
        _say("hermes: interrupted")
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): nothing left to say, not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _say(line: str) -> None:
    from .output import say  # imported on failure only: `hermes --version` stays light

    say(line)
