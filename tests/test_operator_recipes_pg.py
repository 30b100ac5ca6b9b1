"""docs/operators.md's recipes on PostgreSQL, through Debian's `psql`, against the same fixture log.

Each recipe's PostgreSQL form (its ```sql postgresql block; the SQLite one
where the doc says "The same on PostgreSQL") runs through the real `psql`,
as the unprivileged user, in a read-only session as the doc tells operators,
against a migrated PostgreSQL store holding the log tests/test_operator_recipes.py
builds (``write_log``, appended through the real store). Its rows must be the
rows the SQLite recipe gives on the SQLite file, whose exact answers that
module checks.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from cli_support import LogWriter
from conftest import Home, give_to, run_as
from pg_cluster import HOST, server_bindir
from test_operator_recipes import DOCS, NOW, log, recipes, run_both, write_log  # noqa: F401 - log: the SQLite fixture

from hermes_lifecycle import store
from hermes_lifecycle.settings import Settings

HOST_ID = "00000000-0000-4000-8000-0000000000c3"


def pg_recipes() -> list[tuple[str, str]]:
    """(title, sql) per recipe: its PostgreSQL form, or the SQLite one when the doc says it is the same."""
    section = DOCS.read_text().split("\n## Recipes\n", 1)[1]
    chunks = re.split(r"^### (?=\d+\. )", section, flags=re.M)[1:]
    found = []
    for chunk in chunks:
        title = chunk.splitlines()[0]
        own = re.search(r"^```sql postgresql\n(.*?)^```", chunk, re.M | re.S)
        if own:
            found.append((title, own.group(1)))
        else:
            assert "The same on PostgreSQL" in chunk, title  # said, not assumed
            found.append((title, re.search(r"^```sql\n(.*?)^```", chunk, re.M | re.S).group(1)))
    return found


def test_each_recipe_has_a_postgresql_form_where_its_sql_differs():
    found = pg_recipes()
    assert [title for title, _ in found] == [title for title, _ in recipes()]
    for title, sql in found:
        assert sql.rstrip().endswith(";") and sql.rstrip()[:-1].count(";") == 0, title  # one statement
        assert not re.search(r"strftime|julianday|json_extract", sql), title  # SQLite's functions


@pytest.fixture(scope="module")
def pg_log(hermes_user, pg_cluster) -> Home:
    """The same fixture log in a freshly migrated PostgreSQL database."""
    database = pg_cluster.new_database("hermes_recipes")
    root = Path(tempfile.mkdtemp(prefix="hermes-recipes-pg-"))
    root.chmod(0o755)
    home = Home(root / "home", hermes_user, extra_env={"HERMES_STATE_URL": database.url, "HERMES_HOST_ID": HOST_ID})
    home.path.mkdir()
    store.migrate(Settings.from_env(home.env()))
    give_to(home.path, hermes_user)
    write_log(LogWriter(home, start=NOW - timedelta(days=3)))
    yield dataclasses.replace(home, extra_env={**home.extra_env, "PGDATABASE": database.name,
                                               "PGUSER": database.owner, "PGPORT": str(pg_cluster.port)})
    shutil.rmtree(root, ignore_errors=True)
    pg_cluster.drop(database)


def psql(home: Home, sql: str) -> list[dict]:
    """The recipe through `psql --csv`, read-only, as the user; every value as text, NULL as None."""
    env = home.env(PGHOST=HOST, PGOPTIONS="-c default_transaction_read_only=on")
    result = run_as([str(server_bindir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "--csv", "-f", "-"],
                    home.user, env=env, input=sql)
    assert result.returncode == 0 and not result.stderr, result.stderr
    table = list(csv.reader(io.StringIO(result.stdout)))
    return [{name: (value if value != "" else None) for name, value in zip(table[0], row)} for row in table[1:]]


def as_text(rows: list[dict]) -> list[dict]:
    """SQLite's rows as psql prints them, numbers compared as numbers (4.0 and 4.000 are one value)."""
    def one(value):
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            return str(value)
    return [{name: one(value) for name, value in row.items()} for row in rows]


@pytest.mark.parametrize("number", range(1, 11))
def test_recipe_on_postgresql_answers_as_on_sqlite(number, pg_log, log):  # noqa: F811 - log: the SQLite fixture
    title, sql = pg_recipes()[number - 1]
    assert title.startswith(f"{number}. ")
    on_postgresql = psql(pg_log, sql)
    on_sqlite = run_both(log, recipes()[number - 1][1])
    assert on_sqlite, title  # the fixture gives every recipe something to find
    assert as_text(on_postgresql) == as_text(on_sqlite), title


def test_the_session_is_read_only(pg_log):
    """What the doc's PGOPTIONS buys: a write from that session is refused (the roles are the real bound)."""
    env = pg_log.env(PGHOST=HOST, PGOPTIONS="-c default_transaction_read_only=on")
    result = run_as([str(server_bindir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-c",
                     "CREATE TABLE scratch (x int)"], pg_log.user, env=env)
    assert result.returncode != 0 and "read-only transaction" in result.stderr


def test_a_recipe_through_hermes_state_sql_on_postgresql(pg_log):
    """`hermes-state sql` with HERMES_STATE_URL gives the recipe's rows too."""
    result = pg_log.hermes("sql", pg_recipes()[4][1])
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["profile"] for line in result.stdout.splitlines()] == ["delta", "hotel"]
