"""`hermes state ...` inside hermes-agent's own `hermes` (the plugin), as the unprivileged user.

hermes-agent 0.19.0 as installed from the package index, this package beside
it; its plugins are opt-in, so each test enables this one in its home as a
person would. The subcommands are the standalone `hermes-state`'s: the same
output, the same one stderr line and the same exit statuses.
"""

from __future__ import annotations

import json

import pytest

from cli_support import one_stderr_line
from hermes_agent_support import agent_hermes, enable_plugin

pytestmark = pytest.mark.slow


@pytest.fixture
def agent_home(home):
    enable_plugin(home)
    return home


def test_hermes_state_is_refused_until_the_plugin_is_enabled(home):
    result = agent_hermes(home, "state", "list")
    assert result.returncode == 2
    assert "invalid choice: 'state'" in result.stderr
    assert not home.db.exists()


def test_the_lifecycle_through_hermes_state_lands_in_the_log_as_hermes_state_would(agent_home):
    home = agent_home
    for args in (("state", "create", "alice"), ("state", "start", "alice"), ("state", "restart", "alice"),
                 ("state", "stop", "alice")):
        result = agent_hermes(home, *args)
        assert result.returncode == 0, result.stderr
    through_agent = agent_hermes(home, "state", "history", "alice", "--json")
    standalone = home.hermes("history", "alice", "--json")
    assert through_agent.returncode == standalone.returncode == 0, through_agent.stderr
    assert through_agent.stdout == standalone.stdout
    rows = [json.loads(line) for line in through_agent.stdout.splitlines()]
    assert [(row["type"], row["actor"], row["desired"], row["reason"]) for row in rows] == [
        ("created", "cli", "down", None), ("started", "cli", "up", None), ("started", "cli", "up", "restart"),
        ("stopped", "cli", "down", None),
    ]
    table = agent_hermes(home, "state", "history", "alice")
    assert table.returncode == 0 and "started" in table.stdout and "restart" in table.stdout
    listed = agent_hermes(home, "state", "list", "--json")
    assert [json.loads(line)["profile"] for line in listed.stdout.splitlines()] == ["alice"]


def test_a_profile_flag_does_not_move_the_log(agent_home):
    """`hermes -p alice ...` points HERMES_HOME at alice's directory before a plugin runs: the log is
    still the root's, as hermes-agent's own profile commands see it. (Plugins are enabled per home, so
    `-p alice` needs it enabled in alice's too: without, hermes-agent does not know `state`.)"""
    home = agent_home
    assert agent_hermes(home, "state", "create", "alice").returncode == 0
    assert agent_hermes(home, "-p", "alice", "state", "list").returncode == 2
    assert agent_hermes(home, "-p", "alice", "plugins", "enable", "hermes-state").returncode == 0
    result = agent_hermes(home, "-p", "alice", "state", "history", "alice", "--json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["type"] for line in result.stdout.splitlines()] == ["created"]
    assert not (home.path / "profiles" / "alice" / "state" / "profiles.db").exists()


@pytest.mark.parametrize(("args", "status", "said"), [
    (("state", "history", "nobody"), 3, "no profile named 'nobody'"),
    (("state", "create", "Alice!"), 2, "invalid profile name"),
    (("state", "history", "alice", "--limit", "x"), 2, "invalid int value"),
    (("state",), 2, "the following arguments are required: COMMAND"),
])
def test_bad_input_is_one_line_and_the_designs_exit_status(agent_home, args, status, said):
    assert agent_hermes(agent_home, "state", "create", "alice").returncode == 0
    result = agent_hermes(agent_home, *args)
    assert result.returncode == status, result.stderr
    assert said in one_stderr_line(result)


def test_doctor_sql_and_metrics_answer_through_hermes_state(agent_home):
    home = agent_home
    assert agent_hermes(home, "state", "create", "alice").returncode == 0
    doctor = agent_hermes(home, "state", "doctor", "--json")
    assert doctor.returncode == 0, doctor.stderr
    assert json.loads(doctor.stdout)["healthy"] is True
    sql = agent_hermes(home, "state", "sql", "SELECT profile, type FROM events")
    assert sql.returncode == 0, sql.stderr
    assert [json.loads(line) for line in sql.stdout.splitlines()] == [{"profile": "alice", "type": "created"}]
    metrics = agent_hermes(home, "state", "serve", "--once", "/metrics")
    assert metrics.returncode == 0, metrics.stderr
    assert 'hermes_gateway_uptime_seconds{profile="alice"} 0.0' in metrics.stdout
