"""`hermes-state watch-gateways`: the gateways' own accounts into the log (hermes_lifecycle/gateway_watch.py)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from hermes_lifecycle.errors import BadInput

from .. import daemon_output
from ..output import say
from .common import settings


def watch_gateways(args: argparse.Namespace) -> int:
    if os.geteuid() == 0:
        raise BadInput("watch-gateways reads the gateways' own files, which root never parses: run it as the "
                       "gateway user (the container and `hermes-state up` do)")
    from hermes_lifecycle.gateway_watch import GatewayWatcher

    daemon_output.install()  # a log that stops reading must not stop the reader (docs/reliability.md)
    config = settings()
    intervals = config.watch_intervals()

    def line(text: str) -> None:
        print(text, flush=True)

    watcher = GatewayWatcher(config, poll_only=args.poll_only, full_pass_interval=intervals.full_pass,
                             say=line, warn=say)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: watcher.stop())
    status = watcher.run()
    sys.stdout.flush()
    return status
