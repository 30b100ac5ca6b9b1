"""The fleet wing's seams (hermes_lifecycle/fleet/): a replay that returns what it has to say, and a
boot child that reports its error's kind, so root needs no second connection to learn it.

The outages themselves run on a real PostgreSQL in test_pg_outage.py and test_pg_fleet*.py."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import run_as

from hermes_lifecycle.errors import BadInput, StoreUnavailable, StoreUnreachable
from hermes_lifecycle.projector import dropped
from hermes_lifecycle.settings import Settings

REPLAY = """
import json, os
from hermes_lifecycle.fleet import spool
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store
settings = Settings.from_env()
os.makedirs(settings.spool_dir)
with open(os.path.join(settings.spool_dir, "not-a-kept-fact"), "w") as planted:
    planted.write("{}")
with open_store(settings) as store:
    replayed = spool.replay(store, settings)
print(json.dumps([replayed.appended, replayed.refused]))
"""


def test_a_replay_says_nothing_itself_and_returns_the_lines_to_say(migrated_home):
    result = run_as([sys.executable, "-c", REPLAY], migrated_home.user, env=migrated_home.env())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the library prints nothing: its caller says the lines
    spool_dir = migrated_home.path / "state" / "spool"
    assert json.loads(result.stdout) == [0, [
        f"hermes-state: spool {spool_dir}: not-a-kept-fact refused (not a spool file name): set aside in refused/"]]
    assert (spool_dir / "refused" / "not-a-kept-fact").exists()


def test_a_failed_child_reports_its_errors_kind_in_one_json_object(home):
    result = run_as([sys.executable, "-m", "hermes_lifecycle.projector.dropped", "nonsense"], home.user,
                    env=home.env())
    assert result.returncode == BadInput.exit_status
    assert json.loads(result.stdout) == {
        "error": "bad-input", "message": "usage: python -m hermes_lifecycle.projector.dropped steps | replay | log PATH"}


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="root's side of the child")
def test_boots_child_says_a_fleet_database_away_is_unreachable(home, monkeypatch):
    """Root raises what the child reported: StoreUnreachable (boot then boots from the snapshot),
    not a bare exit status 5 it would have to ask the database about itself."""
    environment = home.env(HERMES_STATE_URL="postgresql+psycopg://hermes@127.0.0.1:1/fleet")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)  # the child's environment is made from this process's
    settings = Settings.from_env(environment)
    with pytest.raises(StoreUnreachable) as caught:
        dropped.run_writing_steps(settings)
    assert "is unreachable" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("out", [
    b'{"error": "root", "message": "x"}',  # not a kind of the table
    b'{"error": "unreachable", "message": 5}',
    b'{"error": "unreachable", "message": "x", "more": 1}',
    b'["unreachable", "x"]',
    b"\xff",
    b"[" * 100_000,
])
def test_a_childs_report_that_is_not_one_is_not_believed(out):
    assert dropped._reported_error(out) is None


def test_a_childs_report_picks_only_a_kind_of_the_table():
    reported = dropped._reported_error(b'{"error": "unavailable", "message": "event store\\nlocked"}')
    assert type(reported) is StoreUnavailable and str(reported) == "event store locked"
