"""`hermes-state migrate | doctor | sql`: the store itself."""

from __future__ import annotations

import argparse
import os
import sys

from .. import grid, output
from .common import settings


def migrate(args: argparse.Namespace) -> int:
    from hermes_lifecycle.store import migrate as run_migrations

    config = settings()
    path = config.store_location
    before, after = run_migrations(config)
    if before == after:
        print(f"{path}: at schema {after}, nothing to do")
    else:
        print(f"{path}: migrated from {before or ('an empty database' if config.fleet else 'an empty file')} to {after}")
    return 0


def doctor(args: argparse.Namespace) -> int:
    from hermes_lifecycle.checkpoint import directory_for
    from hermes_lifecycle.checks import ERROR, WARNING
    from hermes_lifecycle.doctor import diagnose

    config = settings()
    expected_owner = config.gateway_user if os.geteuid() == 0 else None
    closers = []

    def progress_factory(total: int):
        advance, close = output.progress_bar("verifying the log", total)
        closers.append(close)
        return advance

    try:
        report = diagnose(config, expected_owner=expected_owner, progress_factory=progress_factory,
                          checkpoints=directory_for(os.environ), full=args.full)
    finally:
        for close in closers:
            close()
    if args.json:
        output.json_lines([report.as_json()])
    else:
        marks = {"ok": "ok", WARNING: "WARN", ERROR: "FAIL"}
        rows = [{"status": marks[f.status], "check": f.check, "detail": f.detail} for f in report.findings]
        grid.table(rows, [grid.Column("status", ""), grid.Column("check", "check"), grid.Column("detail", "detail")],
                   title=config.store_location)
    if not report.healthy:
        failed = [f for f in report.findings if f.status == ERROR]
        unreachable = [f.detail for f in failed if f.check == "connect"]
        # A store that cannot be reached was not checked at all: the line says why, not "unhealthy".
        line = unreachable[0] if unreachable else (
            f"event store {config.store_location} is unhealthy: {', '.join(f.check for f in failed)}")
        print(f"hermes-state: {' '.join(line.split())}", file=sys.stderr)
        return 5
    return 0


def sql(args: argparse.Namespace) -> int:
    """Read-only access for operators: the database's own shell, or one statement's rows as JSON lines."""
    from hermes_lifecycle.store import backend_for

    config = settings()
    console = backend_for(config).console(config)
    if args.query is None:
        return console.interactive(show=_show_rows, say=output.say)
    output.json_lines(console.rows(args.query))
    return 0


TABLE_ROWS = 10_000  # rows a terminal's table holds (its widths need them all); JSON lines stream


def _show_rows(rows) -> None:
    """An interactive statement's rows: a table on a terminal (every value and header escaped by
    ``grid.table``), JSON lines for a program."""
    if not sys.stdout.isatty():
        output.json_lines(rows)
        return
    import itertools

    shown = list(itertools.islice(rows, TABLE_ROWS + 1))
    more = len(shown) > TABLE_ROWS
    close = getattr(rows, "close", None)
    if close is not None:
        close()  # the rest is never fetched
    if shown:
        grid.table(shown[:TABLE_ROWS], [grid.Column(name, name) for name in shown[0]])
    if more:
        output.say(f"hermes-state: more than {TABLE_ROWS} rows: the first shown; add a LIMIT, or pipe the "
                   "output for every row as JSON lines")
