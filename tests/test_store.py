"""The store's API on real SQLite files: append, reads, expected versions, idempotency, projection."""

from __future__ import annotations

import random

import pytest

from hermes_lifecycle.chain import first_broken_position
from hermes_lifecycle.errors import BadInput, Conflict, NotFound, ProfileExists, StoreMissing, VersionConflict
from hermes_lifecycle.events import NewEvent
from store_helpers import fold
from hermes_lifecycle import store as store_api
from hermes_lifecycle.store import ensure_default_profile

from store_helpers import open_store, settings_for, ticking_clock


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path, clock=ticking_clock()) as store:
        yield store


def rows(store):
    with store.reading() as tx:
        return tx.log_after(0)


def create(store, name, **kw):
    return store.append(NewEvent(name, "created", "cli", "down"), **kw)


def test_append_returns_the_stored_event(store):
    event = create(store, "alice")
    assert (event.position, event.version, event.type, event.actor, event.desired) == (1, 1, "created", "cli", "down")
    assert event.host == "00000000-0000-4000-8000-000000000001"
    assert event.occurred_at == "2026-11-27T00:00:00.000Z"
    assert rows(store) == [event]


def test_versions_count_per_profile_and_positions_globally(store):
    create(store, "alice")
    create(store, "bob")
    started = store.append(NewEvent("alice", "started", "cli", "up"))
    assert (started.position, started.version) == (3, 2)


def test_every_append_extends_the_hash_chain(store):
    create(store, "alice")
    store.append(NewEvent("alice", "started", "cli", "up", data={"note": "ünïcode ✓"}))
    store.append(NewEvent("alice", "started", "supervisor", pid=4242))
    with store.reading() as tx:
        assert first_broken_position(tx.rows_after(0)) is None


def test_expected_version_must_match(store):
    create(store, "alice")
    with pytest.raises(VersionConflict) as caught:
        store.append(NewEvent("alice", "started", "cli", "up"), expected_version=0)
    assert caught.value.exit_status == 4
    assert store.append(NewEvent("alice", "started", "cli", "up"), expected_version=1).version == 2
    assert create(store, "bob", expected_version=0).version == 1


def test_an_idempotency_key_makes_a_retry_a_no_op(store):
    create(store, "alice")
    first = store.append(NewEvent("alice", "started", "cli", "up", idempotency_key="req-1"))
    again = store.append(NewEvent("alice", "started", "cli", "up", idempotency_key="req-1"))
    assert again == first and len(rows(store)) == 2
    with pytest.raises(Conflict, match="another event"):
        store.append(NewEvent("alice", "stopped", "cli", "down", idempotency_key="req-1"))


@pytest.mark.parametrize(
    "new, error",
    [
        (NewEvent("alice", "exploded", "cli", "up"), BadInput),
        (NewEvent("alice", "started", "robot", "up"), BadInput),
        (NewEvent("alice", "started", "cli", "sideways"), BadInput),
        (NewEvent("alice", "started", "cli", "up", data=["not", "an", "object"]), BadInput),
        (NewEvent("alice", "started", "cli", "up", data={"x": float("nan")}), BadInput),
        (NewEvent("alice", "started", "cli", "up", data={"x": object()}), BadInput),
        (NewEvent("alice", "started", "cli", "up", reason="Not A Slug"), BadInput),
        (NewEvent("alice", "crashed", "supervisor", exit_code=300), BadInput),
        (NewEvent("alice", "crashed", "supervisor", pid=-1), BadInput),
        (NewEvent("alice", "started", "cli", "up", idempotency_key=""), BadInput),
        (NewEvent("../x", "created", "cli", "down"), BadInput),
        (NewEvent("alice", "started", "supervisor", "up"), BadInput),
        (NewEvent("ghost", "started", "cli", "up"), NotFound),
        (NewEvent("alice", "created", "cli", "down"), ProfileExists),
    ],
)
def test_refused_appends_store_nothing(store, new, error):
    create(store, "alice")
    before = rows(store)
    with pytest.raises(error):
        store.append(new)
    assert rows(store) == before
    assert store.state("alice").version == 1


def test_appends_in_one_transaction_are_atomic(store):
    create(store, "alice")
    with pytest.raises(NotFound), store.writing() as tx:
        for new in (NewEvent("alice", "started", "cli", "up"), NewEvent("ghost", "started", "cli", "up")):
            tx.append(new)
    assert [e.type for e in rows(store)] == ["created"]


def test_a_decision_and_its_appends_share_one_transaction(store):
    create(store, "alice")
    with pytest.raises(RuntimeError):
        with store.writing() as tx:
            tx.append(NewEvent("alice", "started", "cli", "up"))
            raise RuntimeError("the decision failed half-way")
    assert store.state("alice").version == 1 and len(rows(store)) == 1


def test_stream_filters(store):
    create(store, "alice")
    create(store, "bob")
    for _ in range(3):
        store.append(NewEvent("alice", "started", "cli", "up"))
        store.append(NewEvent("alice", "stopped", "cli", "down"))
    everything = store.stream("alice")
    assert [e.version for e in everything] == list(range(1, 8))
    assert [e.version for e in store.stream("alice", after_version=5)] == [6, 7]
    assert [e.version for e in store.stream("alice", limit=2, newest_first=True)] == [7, 6]
    assert {e.type for e in store.stream("alice", types=["stopped"])} == {"stopped"}
    assert len(store.stream("alice", types=["stopped", "created"])) == 4
    since, until = everything[2].occurred_at, everything[4].occurred_at
    assert [e.version for e in store.stream("alice", since=since, until=until)] == [3, 4, 5]
    assert store.stream("alice", boot_id="no-such-boot") == []
    assert store.stream("nobody") == []


def test_log_after_and_last_position(store):
    create(store, "alice")
    create(store, "bob")
    create(store, "carol")
    assert [e.profile for e in store.log_after(1)] == ["bob", "carol"]
    assert [e.profile for e in store.log_after(0, limit=1)] == ["alice"]
    assert store.last_position() == 3


def test_states_and_deleted_profiles(store):
    create(store, "alice")
    create(store, "bob")
    store.append(NewEvent("bob", "deleted", "cli", "down"))
    assert [s.profile for s in store.states()] == ["alice"]
    assert [s.profile for s in store.states(include_deleted=True)] == ["alice", "bob"]
    assert store.require_state("bob").deleted
    with pytest.raises(NotFound):
        store.require_state("carol")


def test_crash_times_count_only_the_window_and_after_the_intent(store):
    create(store, "alice")
    store.append(NewEvent("alice", "started", "cli", "up"))
    crashes = []
    for _ in range(4):
        run = store.append(NewEvent("alice", "started", "supervisor", pid=10))
        crashes.append(store.append(NewEvent("alice", "crashed", "supervisor", exit_code=1, data={"run": run.position})))
    with store.reading() as tx:
        assert tx.crash_times("alice", after_position=0, since="2000-01-01T00:00:00.000Z") == [c.occurred_at for c in crashes]
        assert tx.crash_times("alice", after_position=crashes[1].position, since="2000-01-01T00:00:00.000Z") == [
            c.occurred_at for c in crashes[2:]
        ]
        assert tx.crash_times("alice", after_position=0, since=crashes[3].occurred_at) == [crashes[3].occurred_at]


@pytest.mark.parametrize("seed", range(5))
def test_projection_equals_the_fold_after_random_valid_appends(store, seed):
    rng = random.Random(seed)
    names = ["alice", "bob", "carol", "default"]
    for _ in range(300):
        name = rng.choice(names)
        state = store.state(name)
        if state is None or state.deleted:
            choice = NewEvent(name, "created", "cli", "down")
        elif state.running_run is not None and rng.random() < 0.6:
            kind = rng.choice(["crashed", "stopped"])
            choice = NewEvent(name, kind, "supervisor", pid=state.run_pid, exit_code=1 if kind == "crashed" else None,
                              reason=None if kind == "crashed" else "shutdown", data={"run": state.running_run})
        else:
            options = [
                NewEvent(name, "started", "cli", "up"),
                NewEvent(name, "started", "cli", "up", reason="restart"),
                NewEvent(name, "stopped", "cli", "down"),
                NewEvent(name, "started", "supervisor", pid=rng.randint(2, 99999)),
            ]
            if name != "default":
                options.append(NewEvent(name, "deleted", "cli", "down"))
            choice = rng.choice(options)
        store.append(choice)
    stored = {s.profile: s for s in store.states(include_deleted=True)}
    assert stored == fold(rows(store))


def test_ensure_default_profile_creates_it_once(store):
    first = ensure_default_profile(store)
    assert (first.profile, first.type, first.actor) == ("default", "created", "boot")
    assert ensure_default_profile(store) is None
    assert len(rows(store)) == 1


def test_a_read_only_store_refuses_to_append(tmp_path):
    open_store(tmp_path).close()
    with open_store(tmp_path, readonly=True) as store:
        with pytest.raises(BadInput, match="read-only"):
            create(store, "alice")


def test_opening_a_missing_store_says_how_to_create_it(tmp_path):
    with pytest.raises(StoreMissing, match="hermes-state migrate"):
        store_api.open_store(settings_for(tmp_path))
