"""`profile list` and `gateway status` compute the public `profile_status` view's row in Python
(hermes_lifecycle.status, from the fold's state): the two must agree on every column."""

from __future__ import annotations

from store_helpers import open_store, operator_rows

from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.status import STATUS_COLUMNS, an_hour_ago, status_row


def _profiles_in_every_state(store) -> None:
    for name in ("idle", "wanted", "running", "crashed", "looping", "config", "exited", "stopping", "gone"):
        store.append(NewEvent(name, "created", "cli", "down"))
    for name in ("wanted", "running", "crashed", "looping", "config", "exited", "stopping", "gone"):
        store.append(NewEvent(name, "started", "cli", "up"))
    runs = {}
    for name in ("running", "crashed", "looping", "config", "exited", "stopping", "gone"):
        runs[name] = store.append(NewEvent(name, "started", "supervisor", pid=1000 + len(runs))).position
    store.append(NewEvent("crashed", "crashed", "supervisor", exit_code=1, data={"run": runs["crashed"]}))
    store.append(NewEvent("looping", "crashed", "supervisor", signal=9, data={"run": runs["looping"]}))
    store.append(NewEvent("looping", "stopped", "supervisor", "down", reason="crash-loop", data={"count": 5}))
    store.append(NewEvent("config", "stopped", "supervisor", "down", exit_code=78, reason="fatal-config",
                          data={"run": runs["config"]}))
    store.append(NewEvent("exited", "stopped", "supervisor", "down", exit_code=0, reason="exited",
                          data={"run": runs["exited"]}))
    store.append(NewEvent("stopping", "stopped", "cli", "down"))
    store.append(NewEvent("gone", "deleted", "cli", "down"))


def test_the_status_rows_equal_the_profile_status_view(tmp_path):
    with open_store(tmp_path) as store:
        _profiles_in_every_state(store)
        with store.reading() as tx:
            computed = [status_row(state, crashes) for state, crashes in tx.overview(an_hour_ago(), include_deleted=True)]
        db = store.location
    viewed = operator_rows(db, "SELECT * FROM profile_status ORDER BY profile")
    assert list(viewed[0]) == list(STATUS_COLUMNS)
    assert computed == viewed
    held = {row["profile"]: row["held_down_by"] for row in computed if row["held_down_by"]}
    assert held == {"looping": "crash-loop", "config": "fatal-config", "exited": "exited"}
    running = {row["profile"] for row in computed if row["pid"] is not None}
    assert running == {"running", "stopping"}  # a stop intent does not end a run: its exit does


def test_status_json_is_the_profile_status_row_then_the_intent_and_s6(migrated_home):
    """`status --json` as docs/cli.md says: the view's row, every column as the view has it, then more."""
    import json

    for args in (("create", "alice"), ("start", "alice")):
        assert migrated_home.hermes(*args).returncode == 0
    status = migrated_home.hermes("status", "alice", "--json")
    assert status.returncode == 0, status.stderr
    [row] = [json.loads(line) for line in status.stdout.splitlines()]
    viewed = migrated_home.hermes("sql", "SELECT * FROM profile_status WHERE profile = 'alice'")
    assert viewed.returncode == 0, viewed.stderr
    [view] = [json.loads(line) for line in viewed.stdout.splitlines()]
    assert list(row)[:len(STATUS_COLUMNS)] == list(view) == list(STATUS_COLUMNS)
    assert {key: row[key] for key in STATUS_COLUMNS} == view
    assert list(row)[len(STATUS_COLUMNS):] == ["intent_actor", "intent_reason", "intent_at", "s6", "s6_source",
                                               "s6_unavailable"]
