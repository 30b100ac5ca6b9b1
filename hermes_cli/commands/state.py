"""`hermes state migrate | doctor | sql`: the store itself."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from hermes_state.errors import StoreUnavailable

from .. import output
from .common import settings


def migrate(args: argparse.Namespace) -> int:
    from hermes_state.backends.sqlite.migrate import migrate as run_migrations

    path = settings().db_path
    before, after = run_migrations(path)
    if before == after:
        print(f"{path}: at schema {after}, nothing to do")
    else:
        print(f"{path}: migrated from {before or 'an empty file'} to {after}")
    return 0


def doctor(args: argparse.Namespace) -> int:
    from hermes_state.doctor import ERROR, WARNING, diagnose

    config = settings()
    expected_owner = config.gateway_user if os.geteuid() == 0 else None
    closers = []

    def progress_factory(total: int):
        advance, close = output.progress_bar("verifying the log", total)
        closers.append(close)
        return advance

    try:
        report = diagnose(config.db_path, expected_owner=expected_owner, progress_factory=progress_factory)
    finally:
        for close in closers:
            close()
    if args.json:
        output.json_lines([report.as_json()])
    else:
        marks = {"ok": "ok", WARNING: "WARN", ERROR: "FAIL"}
        rows = [{"status": marks[f.status], "check": f.check, "detail": f.detail} for f in report.findings]
        output.table(rows, [("status", ""), ("check", "check"), ("detail", "detail")], title=str(config.db_path))
    if not report.healthy:
        failed = [f.check for f in report.findings if f.status == ERROR]
        print(f"hermes: event store {config.db_path} is unhealthy: {', '.join(failed)}", file=sys.stderr)
        return 5
    return 0


def sql(args: argparse.Namespace) -> int:
    """Read-only access for operators: the sqlite3 shell, or one statement's rows as JSON lines."""
    from hermes_state.backends.sqlite.connect import uri_for
    from hermes_state.backends.sqlite.reader import StoreReader

    path = settings().db_path
    if args.query is None:
        from hermes_state.backends.sqlite.paths import check_store_path

        check_store_path(path, must_exist=True)
        shell = shutil.which("sqlite3")
        if shell is None:
            raise StoreUnavailable("no sqlite3 shell installed (Debian: apt-get install sqlite3)")
        # -readonly and mode=ro both: the shell can write nothing, even by ATTACH or a typo.
        os.execv(shell, [shell, "-readonly", "-header", "-cmd", "PRAGMA trusted_schema=OFF", uri_for(str(path))])
    with StoreReader.open(str(path)) as reader:
        rows = reader.operator_rows(args.query)
    output.json_lines(rows)
    return 0
