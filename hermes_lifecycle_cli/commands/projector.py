"""`hermes-state boot | watch | up`: the projector's commands.

hermes_lifecycle.projector does the work and reports each pass; this module
decides where the reports go: a JSON line per pass that acted on stdout
(boot, watch: the daemons' log), or lines for people (up); warnings on
stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import TYPE_CHECKING, Callable, TextIO

from .. import daemon_output, output
from .common import settings

if TYPE_CHECKING:
    from hermes_lifecycle.events import Event
    from hermes_lifecycle.projector.reconcile import PassReport

_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+=-]{1,80}")


def claim(args: argparse.Namespace) -> int:
    from hermes_lifecycle.projector.claim import keep, take
    from hermes_lifecycle.projector.slots import ScanDir

    config = settings().for_projector()
    ScanDir(config.scandir, container=config.in_container).ensure()
    with take(config) as held:
        if not held.kept:  # taken now: a keeper holds it from here (silent, as a start step that went well)
            keep(held, config)
    return 0


def boot(args: argparse.Namespace) -> int:
    from hermes_lifecycle.projector.boot import boot as run_boot

    return run_boot(settings().for_projector(), report=json_reporter(sys.stdout), warn=output.say)


def watch(args: argparse.Namespace) -> int:
    from hermes_lifecycle.projector.watch import WatchOptions, watch as run_watch

    daemon_output.install()  # a log that stops reading must not stop the daemon (docs/reliability.md)
    config = settings().for_projector()
    options = WatchOptions.from_settings(config, poll_only=args.poll_only)
    return run_watch(config, options, report=json_reporter(sys.stdout), warn=output.say)


def up(args: argparse.Namespace) -> int:
    from hermes_lifecycle.projector.up import up as run_up
    from hermes_lifecycle.projector.watch import WatchOptions

    daemon_output.install()
    config = settings().for_projector()
    out = sys.stdout

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    return run_up(config, WatchOptions.from_settings(config), report=readable_reporter(out), say=say, warn=output.say)


# -- rendering ----------------------------------------------------------------
def json_reporter(out: TextIO) -> Callable[["PassReport"], None]:
    """The daemons' log: one compact JSON line per pass that acted; nothing otherwise."""

    def report(result: "PassReport") -> None:
        if result.acted:
            out.write(json.dumps(result.as_json(), separators=(",", ":")) + "\n")
            out.flush()

    return report


def readable_reporter(out: TextIO) -> Callable[["PassReport"], None]:
    """For people: each event, then the actions it caused, indented."""
    from hermes_lifecycle.projector.plan import ActionKind

    def report(result: "PassReport") -> None:
        if not result.events and not result.acted:
            return
        clock = time.strftime("%H:%M:%S")
        for event in result.events:
            out.write(f"{clock}  {describe_event(event)}\n")
        if not result.events and result.trigger == "retry":
            out.write(f"{clock}  retry of the profiles waiting for s6\n")
        elif not result.events:
            out.write(f"{clock}  {result.trigger} pass over every profile\n")
        for applied in result.actions:
            action = applied.action
            if action.kind is ActionKind.SKIP_INVALID:
                out.write(f"            skipped {action.profile}: {action.detail}\n")
                continue
            line = f"            -> {action.kind.value} {action.profile}".rstrip()
            if applied.error:
                line += f"  FAILED: {applied.error}"
            out.write(line + "\n")
        if result.events and not result.actions:
            out.write("            (no change to the slots)\n")
        out.flush()

    return report


def describe_event(event: "Event") -> str:
    parts = [f"#{event.position}", _plain(event.profile), _plain(event.type), f"by {_plain(event.actor)}"]
    if event.desired:
        parts.append(f"desired {_plain(event.desired)}")
    if event.reason:
        parts.append(f"reason {_plain(event.reason)}")
    if event.pid is not None:
        parts.append(f"pid {event.pid}")
    if event.exit_code is not None:
        parts.append(f"exit {event.exit_code}")
    if event.signal is not None:
        parts.append(f"signal {event.signal}")
    return " ".join(str(p) for p in parts)


def _plain(text: object) -> str:
    """Database text shown to a terminal: as is when plain, else quoted (no escape sequence gets through)."""
    from hermes_lifecycle.names import shown

    return text if isinstance(text, str) and _PLAIN.fullmatch(text) else shown(text)
