"""The seam holds: SQLite lives in its backend, and the hot commands import no SQLAlchemy.

The hooks run at every start and exit of every gateway; `gateway start|stop|restart|status`
and `profile history|list` are what a person waits for. Each is run here for real, with
``python -X importtime``, and must not load SQLAlchemy (nor the hooks argparse).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from conftest import HERMES, HOOKS_UNSUPERVISED, run_as

PACKAGE = Path(__file__).resolve().parent.parent / "hermes_lifecycle"
CLI = PACKAGE.parent / "hermes_lifecycle_cli"

# What only a backend may name: a driver, an engine, a PRAGMA.
BACKEND_ONLY = re.compile(r"\bPRAGMA\b|\bpysqlite3\b|\bimport sqlite3\b|\bmake_engine\b|\bcreate_engine\b|driver_connection")


def _modules_outside_the_backends():
    for root in (PACKAGE, CLI):
        for path in sorted(root.rglob("*.py")):
            if "backends" not in path.relative_to(root).parts:
                yield path


@pytest.mark.parametrize("path", list(_modules_outside_the_backends()), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_outside_the_backends_touches_a_driver_an_engine_or_a_pragma(path):
    offending = [line.strip() for line in path.read_text().splitlines()
                 if BACKEND_ONLY.search(line) and not line.strip().startswith("#")]
    assert offending == []


HOT = [
    ("record-start", "gateway-alice"),
    ("record-exit", "gateway-alice", "1", "0", "true"),
    ("start", "alice"),
    ("stop", "alice"),
    ("restart", "alice"),
    ("status", "alice"),
    ("history", "alice"),
    ("list",),
]


def imported(result) -> set[str]:
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def _hot_command_imports(home, args, *, hooks_without: tuple[str, ...] = ("argparse", "dataclasses"),
                         **env) -> set[str]:
    created = home.hermes("create", "alice", env=env)
    assert created.returncode == 0, created.stderr
    python = Path(HERMES).with_name("python")
    result = run_as([str(python), "-X", "importtime", str(HERMES), *args], home.user,
                    env=home.env(HERMES_GATEWAY_COMMAND="/bin/true", **HOOKS_UNSUPERVISED, **env))
    assert result.returncode == 0, result.stderr[-2000:]
    modules = imported(result)
    assert "hermes_lifecycle.store" in modules  # the measurement saw the store open
    assert not {m for m in modules if m.split(".")[0] in ("sqlalchemy", "alembic", "rich")}
    if args[0] == "state":
        assert not modules & set(hooks_without)
    return modules


@pytest.mark.parametrize("args", HOT, ids=lambda args: " ".join(args[:2]))
def test_hot_commands_import_no_sqlalchemy(migrated_home, args):
    modules = _hot_command_imports(migrated_home, args)
    assert not {m for m in modules if m.split(".")[0] == "psycopg"}  # the file's commands pay for no server driver


@pytest.mark.parametrize("args", HOT, ids=lambda args: " ".join(args[:2]))
def test_hot_commands_import_no_sqlalchemy_on_postgresql(home, pg_database, args):
    from hermes_lifecycle.settings import Settings
    from hermes_lifecycle.store import migrate

    migrate(Settings.from_env({"HERMES_HOME": str(home.path), "HERMES_STATE_URL": pg_database.url}))
    # psycopg itself loads dataclasses (and asyncio): a fleet's hooks pay for the driver they need.
    modules = _hot_command_imports(home, args, hooks_without=("argparse",), HERMES_STATE_URL=pg_database.url)
    assert "hermes_lifecycle.backends.postgresql.recorder" in modules
