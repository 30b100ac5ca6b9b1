"""`hermes-state import-legacy [--dry-run]`: gateway_state.json files into the log, once."""

from __future__ import annotations

import argparse
import sys

from .. import grid, output
from .common import settings

# A bar is worth drawing only when the import takes a noticeable time.
PROGRESS_MINIMUM = 50


def import_legacy(args: argparse.Namespace) -> int:
    from hermes_lifecycle.legacy import import_legacy as run_import
    from hermes_lifecycle.fleet import open_writer
    from hermes_lifecycle.store import open_store

    config = settings()
    bar: dict = {}

    def progress(done: int, total: int) -> None:
        if not bar:
            bar["advance"], bar["close"] = output.progress_bar("importing legacy profiles", total, PROGRESS_MINIMUM)
        bar["advance"](1)

    # A dry run only reads: it opens the file read-only and works on a read-only store.
    opened = open_store(config, readonly=True) if args.dry_run else open_writer(config, say=output.say)
    with opened as store:
        try:
            report = run_import(store, config, dry_run=args.dry_run, progress=progress)
        finally:
            if bar:
                bar["close"]()

    shown = [o for o in report.outcomes if o not in report.already]
    rows = [{"profile": o.profile, "outcome": o.head(report.dry_run), "why": o.why} for o in shown]
    if rows:
        grid.table(rows, [grid.Column("profile", "profile"), grid.Column("outcome", "outcome"), grid.Column("why", "why")])
    print(report.summary())
    if report.failed:
        names = ", ".join(o.profile for o in report.failed)
        print(f"hermes-state: import-legacy: could not read {len(report.failed)} profile(s), left for the next run: {names}",
              file=sys.stderr)
        return 1
    return 0
