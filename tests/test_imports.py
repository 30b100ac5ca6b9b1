"""Short-lived processes must not pay for Alembic or rich (docs/design.md section 6), and no table
needs rich: grid.py is the one table renderer (docs/design.md section 9)."""

from __future__ import annotations

import json
import sys

from conftest import run_as

HEAVY = ("alembic", "rich", "mako")

APPEND_ONE = """
import json, sys
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store
with open_store(Settings.from_env()) as store:
    store.append(NewEvent("alice", "created", "cli", "down"))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
"""


def test_appending_one_event_imports_neither_alembic_nor_rich(migrated_home):
    result = run_as([sys.executable, "-c", APPEND_ONE % (HEAVY,)], migrated_home.user, env=migrated_home.env())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


CLI_START = """
import json, sys
from hermes_lifecycle_cli.main import main
status = main(["start", "default"])
print(json.dumps([status, sorted(m for m in sys.modules if m.split(".")[0] in %r)]))
"""


def test_hermes_gateway_start_imports_neither_alembic_nor_rich(migrated_home):
    create = run_as([sys.executable, "-c", APPEND_ONE.replace('"alice"', '"default"') % (HEAVY,)],
                    migrated_home.user, env=migrated_home.env())
    assert create.returncode == 0, create.stderr
    result = run_as([sys.executable, "-c", CLI_START % (HEAVY,)], migrated_home.user, env=migrated_home.env())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [0, []]


CLI_TABLE = """
import json, sys
from hermes_lifecycle_cli.main import main
status = main(%r)
print(json.dumps([status, sorted(m for m in sys.modules if m.split(".")[0] == "rich")]))
"""


def test_doctor_s_table_is_drawn_without_rich(migrated_home):
    # cwd: the home, so `-c` imports the installed package, not the checkout's copy
    result = run_as([sys.executable, "-c", CLI_TABLE % (["doctor"],)], migrated_home.user, env=migrated_home.env(),
                    cwd=migrated_home.path)
    assert result.returncode == 0, result.stderr
    *table, last = result.stdout.splitlines()
    assert json.loads(last) == [0, []]
    assert table[0] == str(migrated_home.db)  # the title: the store's location, then the columns
    assert table[1].split() == ["check", "detail"]
    assert any(line.startswith("ok") and "integrity" in line for line in table[2:])
