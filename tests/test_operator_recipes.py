"""The ten SQL recipes of docs/operators.md, run against a fixture log built through the real store, on each backend.

The log (``write_log``) is appended through the real store into a SQLite file and into a database of
the session's private PostgreSQL server (tests/contract/backends.py), and each recipe's answer is checked
on both. On SQLite a recipe runs twice: through Debian's `sqlite3 -readonly` shell (what an operator
has), as the unprivileged user, and through the project's driver (pysqlite3); both must give the same
rows. On PostgreSQL its PostgreSQL form (its ```sql postgresql block; the SQLite one where the doc
says "The same on PostgreSQL") runs through Debian's `psql`, as the unprivileged user, in a read-only
session as the doc tells operators, and must give the rows the SQLite recipe gives.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from backends import BACKENDS, PostgresBackend, make_backend, with_env
from cli_support import LogWriter
from conftest import Home, run_as
from pg_cluster import HOST, server_bindir

from hermes_lifecycle.backends.sqlite.driver import sqlite_module

DOCS = Path(__file__).resolve().parent.parent / "docs" / "operators.md"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
BOOT_1 = "11111111-1111-4111-8111-111111111111"
BOOT_2 = "22222222-2222-4222-8222-222222222222"


def recipes() -> list[tuple[str, str]]:
    """(title, sql) of every ```sql block under "## Recipes", in order."""
    text = DOCS.read_text()
    section = text.split("\n## Recipes\n", 1)[1]
    found = re.findall(r"^### (\d+\. [^\n]+)\n(?:(?!^### ).)*?^```sql\n(.*?)^```", section, re.M | re.S)
    return [(title, sql) for title, sql in found]


def test_there_are_ten_single_statement_recipes_without_parameters():
    found = recipes()
    assert len(found) == 10
    # ```sql alone: the SQLite recipes (```sql postgresql: their PostgreSQL forms, ``pg_recipes``)
    assert len(re.findall(r"^```sql$", DOCS.read_text().split("\n## Recipes\n", 1)[1], re.M)) == 10
    for title, sql in found:
        assert sqlite_module().complete_statement(sql), title
        assert sql.rstrip().endswith(";") and sql.rstrip()[:-1].count(";") == 0, title  # one statement
        assert not re.search(r"\?|(?<![:\w]):[a-z_]|[@$][a-z_]", sql), title  # no parameters
        assert not any(line.lstrip().startswith(".") for line in sql.splitlines()), title  # no dot-commands


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


@dataclass(frozen=True)
class RecipeLog:
    """The fixture log in one backend's store; ``home``'s environment reaches it (and, on PostgreSQL, psql too)."""

    backend: str
    home: Home

    def answers(self, number: int) -> list[dict]:
        """Recipe ``number``'s rows, as an operator gets them on this backend."""
        if self.backend == "sqlite":
            return run_both(self.home, by_title(number))
        title, sql = pg_recipes()[number - 1]
        assert title.startswith(f"{number}. ")
        return as_text(psql(self.home, sql))


def build_log(backend: str, request) -> Iterator[RecipeLog]:
    root = Path(tempfile.mkdtemp(prefix="hermes-recipes-"))
    root.chmod(0o755)
    made = make_backend(backend, request, root)
    try:
        write_log(LogWriter(made.home, start=NOW - timedelta(days=3)))
        home = made.home
        if isinstance(made, PostgresBackend):
            home = with_env(home, PGDATABASE=made.database.name, PGUSER=made.database.owner,
                            PGPORT=str(made.cluster.port))
        yield RecipeLog(backend, home)
    finally:
        made.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def sqlite_log(request) -> Iterator[RecipeLog]:
    yield from build_log("sqlite", request)


@pytest.fixture(scope="module")
def postgresql_log(request) -> Iterator[RecipeLog]:
    yield from build_log("postgresql", request)


@pytest.fixture(scope="module", params=BACKENDS)
def log(request) -> RecipeLog:
    """The fixture log (``write_log``) in each backend's store in turn, built once per module."""
    return request.getfixturevalue(f"{request.param}_log")


def write_log(w: LogWriter) -> None:
    """Two container boots of nine profiles, times relative to now, appended through EventStore."""
    # -- boot 1: three days ago until six hours ago
    w.boot(BOOT_1)
    for name in ("alpha", "charlie", "delta", "echo", "golf", "india"):
        w.append(name, "created", "cli", "down")
        w.append(name, "started", "cli", "up")
    w.append("juliet", "created", "cli", "down")
    w.after(seconds=5)
    starts = {name: w.append(name, "started", "supervisor", pid=pid)
              for name, pid in (("alpha", 101), ("delta", 201), ("echo", 301), ("golf", 401), ("india", 501))}
    w.at(NOW - timedelta(days=2))
    w.append("golf", "crashed", "supervisor", pid=401, exit_code=3, data={"run": starts["golf"].position})
    w.after(seconds=1).run("golf", 402, seconds=600, signal=6)
    w.after(seconds=1)
    golf_run = w.append("golf", "started", "supervisor", pid=403)
    w.at(NOW - timedelta(days=1, seconds=60))
    w.append("golf", "stopped", "cli", "down")
    w.after(seconds=1).append("golf", "stopped", "supervisor", pid=403, reason="requested",
                               data={"run": golf_run.position})
    w.at(NOW - timedelta(days=1))
    w.append("golf", "deleted", "cli", "down")
    w.append("india", "stopped", "cli", "down")
    w.after(seconds=1).append("india", "stopped", "supervisor", pid=501, reason="requested",
                              data={"run": starts["india"].position})
    w.at(NOW - timedelta(hours=20))
    w.append("delta", "crashed", "supervisor", pid=201, exit_code=2, data={"run": starts["delta"].position})
    w.after(seconds=1)
    delta_run = w.append("delta", "started", "supervisor", pid=202)
    w.at(NOW - timedelta(hours=6))  # the container stops; echo's exit is never recorded (killed)
    w.append("alpha", "stopped", "supervisor", pid=101, reason="shutdown", data={"run": starts["alpha"].position})
    w.append("delta", "stopped", "supervisor", pid=202, reason="shutdown", data={"run": delta_run.position})

    # -- boot 2: from five hours ago; delta never comes back
    w.boot(BOOT_2).at(NOW - timedelta(hours=5))
    w.append("alpha", "started", "supervisor", pid=102)
    w.append("echo", "started", "supervisor", pid=302)
    w.run("charlie", 601, seconds=1.5, ended_by="stopped", desired="down", reason="fatal-config", exit_code=78)
    w.at(NOW - timedelta(hours=4))
    w.append("foxtrot", "created", "cli", "down")
    w.append("foxtrot", "started", "cli", "up")
    w.at(NOW - timedelta(hours=3))
    for index in range(4):  # a crash every 40 minutes, each run two seconds long
        w.run("foxtrot", 700 + index, seconds=2, exit_code=1)
        w.after(seconds=2400 - 2)
    w.append("foxtrot", "started", "supervisor", pid=799)
    w.at(NOW - timedelta(hours=2))  # kilo is deleted while it runs: its finish records nothing, on purpose
    w.append("kilo", "created", "cli", "down")
    w.append("kilo", "started", "cli", "up")
    w.after(seconds=1).append("kilo", "started", "supervisor", pid=901)
    w.after(seconds=60).append("kilo", "deleted", "cli", "down")
    w.at(NOW - timedelta(hours=1))
    w.append("bravo", "created", "cli", "down")
    w.append("bravo", "started", "cli", "up")
    w.at(NOW - timedelta(minutes=20))
    for pid, seconds, how in ((801, 3, {"exit_code": 1}), (802, 5, {"exit_code": 1}), (803, 8, {"signal": 9}),
                              (804, 2, {"exit_code": 1}), (805, 4, {"signal": 11})):
        w.run("bravo", pid, seconds=seconds, **how)
        w.after(seconds=1)
    w.after(seconds=-1).append("bravo", "stopped", "supervisor", "down", reason="crash-loop",
                               data={"crashes": 5, "window_seconds": 60})
    w.at(NOW - timedelta(minutes=30)).append("hotel", "created", "cli", "down")
    w.at(NOW - timedelta(minutes=10)).append("hotel", "started", "cli", "up")
    w.close()


def run_both(home: Home, sql: str) -> list[dict]:
    """The recipe's rows from the sqlite3 shell (read-only, as the user) and from the driver: the same."""
    shell = run_as(["sqlite3", "-readonly", "-json", str(home.db), sql], home.user, env=home.env())
    assert shell.returncode == 0 and not shell.stderr, shell.stderr
    from_shell = json.loads(shell.stdout) if shell.stdout.strip() else []
    connection = sqlite_module().connect(f"file:{home.db}?mode=ro", uri=True)
    connection.row_factory = sqlite_module().Row
    try:
        from_driver = [dict(row) for row in connection.execute(sql)]
    finally:
        connection.close()
    assert from_shell == from_driver
    return from_driver


def psql(home: Home, sql: str) -> list[dict]:
    """The recipe through `psql --csv`, read-only, as the user; every value as text, NULL as None."""
    env = home.env(PGHOST=HOST, PGOPTIONS="-c default_transaction_read_only=on")
    result = run_as([str(server_bindir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "--csv", "-f", "-"],
                    home.user, env=env, input=sql)
    assert result.returncode == 0 and not result.stderr, result.stderr
    table = list(csv.reader(io.StringIO(result.stdout)))
    return [{name: (value if value != "" else None) for name, value in zip(table[0], row)} for row in table[1:]]


def as_text(rows: list[dict]) -> list[dict]:
    """Rows as psql prints them, numbers compared as numbers (4.0 and 4.000 are one value)."""
    def one(value):
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            return str(value)
    return [{name: one(value) for name, value in row.items()} for row in rows]


def by_title(number: int) -> str:
    title, sql = recipes()[number - 1]
    assert title.startswith(f"{number}. ")
    return sql


def test_the_shell_is_debians_sqlite3():
    version = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split()[0]
    assert tuple(int(n) for n in version.split(".")[:2]) >= (3, 37), version


def test_recipe_1_crashes_per_hour(log):
    rows = log.answers(1)
    totals: dict[str, int] = {}
    for row in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:00Z", row["hour"])
        totals[row["profile"]] = totals.get(row["profile"], 0) + row["crashes"]
    assert totals == {"bravo": 5, "foxtrot": 4, "delta": 1}  # golf's crashes are two days old
    assert [r["hour"] for r in rows] == sorted(r["hour"] for r in rows)


def test_recipe_2_uptime_before_each_crash(log):
    rows = log.answers(2)
    assert len(rows) == 12
    bravo = [r for r in rows if r["profile"] == "bravo"]
    assert [r["uptime_seconds"] for r in bravo] == [4.0, 2.0, 8.0, 5.0, 3.0]  # newest first
    assert [r["signal"] for r in bravo] == [11, None, 9, None, None]
    assert {r["uptime_seconds"] for r in rows if r["profile"] == "foxtrot"} == {2.0}
    [delta] = [r for r in rows if r["profile"] == "delta"]
    assert delta["uptime_seconds"] == (timedelta(days=3) - timedelta(hours=20, seconds=5)).total_seconds()
    assert delta["boot_id"] == BOOT_1 and delta["exit_code"] == 2


def test_recipe_3_most_common_exits(log):
    rows = log.answers(3)
    assert [(r["how"], r["crashes"], r["profiles"]) for r in rows] == [
        ("exit 1", 7, 2), ("SIGABRT", 1, 1), ("SIGKILL", 1, 1), ("SIGSEGV", 1, 1), ("exit 2", 1, 1), ("exit 3", 1, 1),
    ]


def test_recipe_4_which_boot(log):
    rows = log.answers(4)
    assert [(r["boot_id"], r["starts"], r["crashes"], r["profiles_crashed"]) for r in rows] == [
        (BOOT_1, 8, 3, 2),
        (BOOT_2, 14, 9, 2),  # kilo's one run included
    ]
    assert rows[0]["last_event_at"] < rows[1]["first_event_at"]


def test_recipe_5_profiles_that_never_came_back(log):
    rows = log.answers(5)
    assert [(r["profile"], r["last_event"], r["last_actor"], r["last_reason"]) for r in rows] == [
        ("delta", "stopped", "supervisor", "shutdown"),  # stopped with the container, not started in boot 2
        ("hotel", "started", "cli", None),  # asked for, never started
    ]


def test_recipe_6_why_each_down_profile_is_down(log):
    rows = log.answers(6)
    assert [(r["profile"], r["set_down_by"], r["by_event"], r["reason"]) for r in rows] == [
        ("bravo", "supervisor", "stopped", "crash-loop"),
        ("charlie", "supervisor", "stopped", "fatal-config"),
        ("india", "cli", "stopped", None),
        ("juliet", "cli", "created", None),
    ]


def test_recipe_7_every_hold(log):
    rows = log.answers(7)
    assert [(r["profile"], r["reason"], r["exit_code"], r["crashes_10m_before"]) for r in rows] == [
        ("bravo", "crash-loop", None, 5),
        ("charlie", "fatal-config", 78, 0),
    ]
    assert json.loads(rows[0]["data"]) == {"crashes": 5, "window_seconds": 60}


def test_recipe_8_time_between_crashes(log):
    rows = log.answers(8)
    assert [(r["profile"], r["crashes"], r["mean_seconds_between"], r["shortest_seconds_between"]) for r in rows] == [
        ("bravo", 5, 5.75, 3.0),  # crashes at +3, +9, +18, +21, +26 s
        ("golf", 2, 601.0, 601.0),
        ("foxtrot", 4, 2400.0, 2400.0),
    ]


def test_recipe_9_short_runs(log):
    rows = log.answers(9)
    assert [(r["profile"], r["short_runs"], r["mean_uptime_seconds"], r["crashed"]) for r in rows] == [
        ("bravo", 5, 4.4, 5),
        ("foxtrot", 4, 2.0, 4),
        ("charlie", 1, 1.5, 0),
    ]


def test_recipe_10_runs_whose_end_was_never_recorded(log):
    rows = log.answers(10)
    assert [(r["profile"], r["pid"], r["boot_id"]) for r in rows] == [("echo", 301, BOOT_1)]
    assert rows[0]["next_start_at"] == (NOW - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.mark.parametrize("number", range(1, 11))
def test_recipe_on_postgresql_answers_as_on_sqlite(number, sqlite_log, postgresql_log):
    """Every column of every row, not only those the tests above name."""
    on_sqlite = sqlite_log.answers(number)
    assert on_sqlite, number  # the fixture gives every recipe something to find
    assert postgresql_log.answers(number) == as_text(on_sqlite), number


def test_the_postgresql_session_is_read_only(postgresql_log):
    """What the doc's PGOPTIONS buys: a write from that session is refused (the roles are the real bound)."""
    home = postgresql_log.home
    env = home.env(PGHOST=HOST, PGOPTIONS="-c default_transaction_read_only=on")
    result = run_as([str(server_bindir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-c",
                     "CREATE TABLE scratch (x int)"], home.user, env=env)
    assert result.returncode != 0 and "read-only transaction" in result.stderr


def test_a_recipe_through_hermes_state_sql(log):
    """The project's own read-only shell gives the same answer (on SQLite, both ways it can be used)."""
    sql = by_title(5) if log.backend == "sqlite" else pg_recipes()[4][1]
    result = log.home.hermes("sql", sql)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["profile"] for line in result.stdout.splitlines()] == ["delta", "hotel"]
    if log.backend != "sqlite":
        return  # a statement on stdin: SQLite's shell answers in JSON lines (PostgreSQL's is not checked here)
    shell = log.home.hermes("sql", input=by_title(6))
    assert shell.returncode == 0, shell.stderr
    assert [json.loads(line)["profile"] for line in shell.stdout.splitlines()] == ["bravo", "charlie", "india", "juliet"]
