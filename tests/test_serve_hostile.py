"""Names and reasons from the log are untrusted: escaped on the page, valid label values in /metrics.

A hostile writer (the file's owner, behind the store's back: raw SQL) puts
markup, quotes, backslashes and newlines where a name and a reason go; the
fold never lets such a name in, but the server must not trust that.
"""

from __future__ import annotations

import json
import sys
from urllib.parse import quote

import pytest

from conftest import run_as
from hermes_lifecycle.fold import STATE_FIELDS
from serve_support import start_server

HOSTILE_NAME = '<script>document.title="pwned"</script>"\\\n'
HOSTILE_REASON = 'crash-loop"} 1\nhermes_injected 1\n<img src=x onerror=alert(1)>\\'

# As the file's owner: a supervisor run of `victim` held down with the hostile reason, and a
# projection row for a profile with the hostile name (a copy of victim's, renamed).
_TAMPER = r"""
import json, sqlite3, sys
db, name, reason, fields = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
zero = "0" * 64
c = sqlite3.connect(db)
position, version = c.execute(
    "SELECT max(position), (SELECT version FROM profile_projection WHERE profile = 'victim') FROM events").fetchone()
insert = ("INSERT INTO events (position, profile, version, type, actor, desired, occurred_at, host, pid, exit_code,"
          " reason, data, hash, chain_version) VALUES (?, 'victim', ?, ?, 'supervisor', ?,"
          " strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'h', 4242, ?, ?, ?, ?, 1)")
c.execute(insert, (position + 1, version + 1, "started", None, None, None, "{}", zero))
c.execute(insert, (position + 2, version + 2, "stopped", "down", 1, reason, json.dumps({"run": position + 1}), zero))
c.execute("UPDATE profile_projection SET version = ?, desired = 'down', intent_actor = 'supervisor',"
          " intent_reason = ?, last_exit_code = 1 WHERE profile = 'victim'", (version + 2, reason))
rest = ", ".join(fields[1:])
c.execute(f"INSERT INTO profile_projection (profile, {rest}) SELECT ?, {rest} FROM profile_projection"
          " WHERE profile = 'victim'", (name,))
c.commit()
"""


@pytest.fixture
def hostile(migrated_home, world_tmp):
    assert migrated_home.hermes("create", "victim").returncode == 0
    result = run_as([sys.executable, "-c", _TAMPER, str(migrated_home.db), HOSTILE_NAME, HOSTILE_REASON,
                     json.dumps(STATE_FIELDS)],
                    migrated_home.user, env=migrated_home.env())
    assert result.returncode == 0, result.stderr
    server = start_server(migrated_home.env(), migrated_home.user, world_tmp / "serve.err")
    yield server
    assert server.stop() == 0, server.stderr()


def test_label_values_round_trip_through_prometheus_clients_parser(hostile):
    families = hostile.metrics()
    held = {(s.labels["profile"], s.labels["reason"]): s.value for s in families["hermes_gateway_held_down"]}
    assert held == {("victim", HOSTILE_REASON): 1.0}
    assert not any(name.startswith("hermes_injected") for name in families)  # nothing broke out of a label
    # The row named like no profile is no gateway: not exported, counted.
    assert {s.labels["profile"] for s in families["hermes_gateway_desired_up"]} == {"victim"}
    assert families["hermes_state_rows_skipped"][0].value == 1.0


def test_a_row_named_like_no_profile_is_not_exported_as_a_running_gateway(migrated_home, world_tmp):
    home = migrated_home
    assert home.hermes("create", "victim").returncode == 0
    started = home.hermes("record-start", "gateway-victim", env={"HERMES_GATEWAY_COMMAND": "/bin/true"})
    assert started.returncode == 0, started.stderr
    copy = (r"import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); f = json.loads(sys.argv[3]); "
            r"rest = ', '.join(f[1:]); c.execute(f'INSERT INTO profile_projection (profile, {rest}) SELECT ?, {rest} '"
            r"'FROM profile_projection WHERE profile = \'victim\'', (sys.argv[2],)); c.commit()")
    for name in ("Not A Profile", "../escape"):
        result = run_as([sys.executable, "-c", copy, str(home.db), name, json.dumps(STATE_FIELDS)], home.user,
                        env=home.env())
        assert result.returncode == 0, result.stderr
    server = start_server(home.env(), home.user, world_tmp / "serve.err")
    try:
        families = server.metrics()
    finally:
        assert server.stop() == 0, server.stderr()
    assert {s.labels["profile"]: s.value for s in families["hermes_gateway_running"]} == {"victim": 1.0}
    assert {s.labels["profile"] for s in families["hermes_gateway_uptime_seconds"]} == {"victim"}
    assert families["hermes_state_rows_skipped"][0].value == 2.0


def test_the_overview_escapes_every_value_and_encodes_links(hostile):
    body = hostile.get("/").body
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert f'href="/profiles/{quote(HOSTILE_NAME, safe="")}"' in body


def test_the_profile_page_escapes_the_reason(hostile):
    page = hostile.get("/profiles/victim?since=1h")
    assert page.status == 200
    assert "<img" not in page.body
    assert "held down: crash-loop&#34;} 1\nhermes_injected 1\n&lt;img src=x onerror=alert(1)&gt;\\" in page.body


def test_a_hostile_name_has_no_page_and_its_404_escapes_it(hostile):
    page = hostile.get(f"/profiles/{quote(HOSTILE_NAME, safe='')}")
    assert page.status == 404
    assert "<script>" not in page.body and "&lt;script&gt;" in page.body
