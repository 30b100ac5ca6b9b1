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
    from hermes_state.migrate import migrate as run_migrations

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
    """Read-only access for operators: a shell, or one statement's rows."""
    from urllib.parse import quote

    from hermes_state.db.engine import check_store_path

    path = settings().db_path
    check_store_path(path, must_exist=True)
    if args.query is None:
        shell = shutil.which("sqlite3")
        if shell is None:
            raise StoreUnavailable("no sqlite3 shell installed (Debian: apt-get install sqlite3)")
        uri = f"file:{quote(str(path.absolute()))}?mode=ro"
        os.execv(shell, [shell, "-readonly", "-header", "-cmd", "PRAGMA trusted_schema=OFF", uri])
    from hermes_state.db.engine import make_engine, read_transaction

    engine = make_engine(path, readonly=True)
    try:
        with read_transaction(engine) as conn:
            result = conn.exec_driver_sql(args.query)
            columns = list(result.keys())
            rows = [dict(zip(columns, row)) for row in result]
    finally:
        engine.dispose()
    output.json_lines(rows)
    return 0
