"""The pure fold, exhaustively: every type x actor x desired x prior state.

The expectations are docs/design.md section 2's rules restated as data here ("Who appends
what" and the stream rules), independently of hermes_lifecycle.fold.ALLOWED.
"""

from __future__ import annotations

import contextlib
import itertools

import pytest

from hermes_lifecycle.errors import BadInput, Conflict, NotFound, ProfileDeleted, ProfileExists, VersionConflict
from hermes_lifecycle.events import ACTORS, TYPES, Event
from hermes_lifecycle.fold import ProfileState, apply
from store_helpers import fold

# docs/design.md section 2, "Who appends what": (type, actor) -> desired values it carries.
WHO_APPENDS_WHAT = {
    ("created", "cli"): {"down"},
    ("created", "import"): {"down"},
    ("created", "boot"): {"down"},
    ("created", "api"): {"down"},
    ("started", "cli"): {"up"},
    ("started", "import"): {"up"},
    ("started", "api"): {"up"},
    ("started", "supervisor"): {None},
    ("crashed", "supervisor"): {None},
    ("stopped", "cli"): {"down"},
    ("stopped", "api"): {"down"},
    ("stopped", "supervisor"): {None, "down"},
    ("deleted", "cli"): {"down"},
    ("deleted", "api"): {"down"},
    # hermes-agent's commands (docs/hermes-agent.md): the intents cli appends.
    ("created", "hermes-agent"): {"down"},
    ("started", "hermes-agent"): {"up"},
    ("stopped", "hermes-agent"): {"down"},
    ("deleted", "hermes-agent"): {"down"},
    # A gateway's own report: an observation.
    ("reported", "gateway"): {None},
}
DESIRED_VALUES = ("up", "down", None)
T0 = "2026-11-27T10:00:00.000Z"
T1 = "2026-11-27T10:00:01.000Z"


def event(profile, version, type_, actor, desired, *, position=100, reason=None, data=None, pid=None,
          exit_code=None, signal=None, occurred_at=T1) -> Event:
    return Event(
        position=position, profile=profile, version=version, type=type_, actor=actor, desired=desired,
        occurred_at=occurred_at, host="h", boot_id="b", pid=pid, exit_code=exit_code, signal=signal,
        reason=reason, data=data or {}, idempotency_key=None, hash="0" * 64,
    )


def live(profile: str, desired: str, *, running: bool = False) -> ProfileState:
    state = ProfileState(
        profile=profile, version=3, deleted=False, desired=desired, created_position=1, last_position=3,
        last_type="started", last_actor="cli", last_reason=None, last_at=T0, intent_position=3,
        intent_actor="cli", intent_reason=None, intent_at=T0,
    )
    if running:
        state = state._replace(run_position=50, run_pid=4242, run_started_at=T0, run_boot_id="b")
    return state


PRIORS = {
    "absent": lambda name: None,
    "live-down": lambda name: live(name, "down"),
    "live-up": lambda name: live(name, "up"),
    "live-up-running": lambda name: live(name, "up", running=True),
    "deleted": lambda name: live(name, "down")._replace(deleted=True, last_type="deleted"),
}


def expected_outcome(type_, actor, desired, prior_kind, profile):
    """The design's verdict: an exception class, or "ok"."""
    allowed = WHO_APPENDS_WHAT.get((type_, actor))
    if allowed is None or desired not in allowed:
        return BadInput
    if type_ == "created":
        return ProfileExists if prior_kind.startswith("live") else "ok"
    if prior_kind == "absent":
        return NotFound
    if prior_kind == "deleted":
        return ProfileDeleted
    if type_ == "deleted" and profile == "default":
        return Conflict
    return "ok"


CASES = list(itertools.product(TYPES, ACTORS, DESIRED_VALUES, PRIORS, ["alice", "default"]))


@pytest.mark.parametrize("type_, actor, desired, prior_kind, profile", CASES)
def test_every_combination(type_, actor, desired, prior_kind, profile):
    prior = PRIORS[prior_kind](profile)
    version = 1 if prior is None else prior.version + 1
    outcome = expected_outcome(type_, actor, desired, prior_kind, profile)
    new = event(profile, version, type_, actor, desired, reason="some-reason")
    if outcome != "ok":
        with pytest.raises(outcome):
            apply(prior, new)
        return
    state = apply(prior, new)
    assert state.profile == profile
    assert state.version == version
    assert state.last_position == new.position and state.last_type == type_ and state.last_actor == actor
    assert state.deleted is (type_ == "deleted")
    if type_ == "created":
        assert state.desired == "down" and state.created_position == new.position
        assert state.run_position is None
    elif desired is None:
        assert state.desired == prior.desired
        assert state.intent_position == prior.intent_position
    else:
        assert state.desired == desired
        assert (state.intent_position, state.intent_actor) == (new.position, actor)


def test_a_supervisor_hold_without_a_reason_is_refused():
    with pytest.raises(BadInput, match="needs a reason"):
        apply(live("alice", "up"), event("alice", 4, "stopped", "supervisor", "down"))


def test_the_table_covers_every_type():
    assert {t for t, _ in WHO_APPENDS_WHAT} == set(TYPES)


def test_reserved_names_cannot_be_created():
    with pytest.raises(BadInput, match="reserved"):
        apply(None, event("root", 1, "created", "cli", "down"))


@pytest.mark.parametrize("version", [0, 2, 5])
def test_a_version_that_does_not_follow_is_a_conflict(version):
    with pytest.raises(VersionConflict):
        apply(None, event("alice", version, "created", "cli", "down"))


def test_an_event_folded_into_another_profiles_state_is_refused():
    with pytest.raises(BadInput):
        apply(live("alice", "up"), event("bob", 4, "started", "cli", "up"))


def test_a_profile_can_be_created_again_after_deletion_and_versions_continue():
    deleted = PRIORS["deleted"]("alice")
    state = apply(deleted, event("alice", deleted.version + 1, "created", "cli", "down", position=200))
    assert state.live and state.version == deleted.version + 1 and state.created_position == 200


class TestRuns:
    """Supervisor events track the run; an exit ends only the run it names."""

    def started(self, prior, position, pid=7):
        return apply(prior, event("alice", prior.version + 1, "started", "supervisor", None, position=position, pid=pid))

    def test_a_supervisor_start_opens_a_run(self):
        state = self.started(live("alice", "up"), 60, pid=99)
        assert (state.run_position, state.run_pid, state.running_run) == (60, 99, 60)
        assert state.desired == "up" and state.intent_position == 3

    @pytest.mark.parametrize("type_", ["crashed", "stopped"])
    def test_an_exit_naming_the_run_ends_it(self, type_):
        running = self.started(live("alice", "up"), 60)
        state = apply(running, event("alice", running.version + 1, type_, "supervisor", None,
                                     position=61, data={"run": 60}, exit_code=3))
        assert state.run_ended and state.running_run is None
        assert state.last_exit_code == 3

    @pytest.mark.parametrize("run", [None, 59, 61, "60", True])
    def test_an_exit_naming_another_run_is_recorded_but_ends_nothing(self, run):
        running = self.started(live("alice", "up"), 60)
        data = {} if run is None else {"run": run}
        state = apply(running, event("alice", running.version + 1, "crashed", "supervisor", None,
                                     position=61, data=data, signal=9))
        assert state.running_run == 60 and state.last_signal == 9 and state.version == running.version + 1

    def test_deleting_the_profile_ends_its_run(self):
        running = self.started(live("alice", "up"), 60)
        state = apply(running, event("alice", running.version + 1, "deleted", "cli", "down", position=61))
        assert state.deleted and state.run_ended and state.running_run is None
        never_ran = apply(live("bob", "down"), event("bob", 4, "deleted", "cli", "down", position=62))
        assert not never_ran.run_ended and never_ran.run_position is None

    def test_a_second_exit_for_an_ended_run_changes_no_run(self):
        running = self.started(live("alice", "up"), 60)
        ended = apply(running, event("alice", running.version + 1, "crashed", "supervisor", None,
                                     position=61, data={"run": 60}))
        again = apply(ended, event("alice", ended.version + 1, "stopped", "supervisor", "down",
                                   position=62, data={"run": 60}, reason="crash-loop"))
        assert again.run_ended and again.desired == "down" and again.held_down_by == "crash-loop"


class TestIntents:
    def test_start_and_restart_intents_are_remembered(self):
        state = apply(live("alice", "down"), event("alice", 4, "started", "cli", "up", position=10))
        assert state.start_intent_position == 10 and state.restart_position is None
        state = apply(state, event("alice", 5, "started", "cli", "up", position=11, reason="restart"))
        assert state.start_intent_position == 11 and state.restart_position == 11

    def test_a_breaker_stop_holds_the_profile_down_until_the_next_start(self):
        state = apply(live("alice", "up"), event("alice", 4, "stopped", "supervisor", "down",
                                                 position=10, reason="crash-loop"))
        assert state.held_down_by == "crash-loop"
        state = apply(state, event("alice", 5, "started", "cli", "up", position=11))
        assert state.held_down_by is None and state.desired == "up"

    def test_a_cli_stop_is_not_a_hold(self):
        state = apply(live("alice", "up"), event("alice", 4, "stopped", "cli", "down", position=10))
        assert state.desired == "down" and state.held_down_by is None

    def test_hermes_agents_intents_count_as_intents(self):
        state = apply(live("alice", "up"), event("alice", 4, "stopped", "supervisor", "down", position=10,
                                                 reason="crash-loop"))
        state = apply(state, event("alice", 5, "started", "hermes-agent", "up", position=11, reason="restart"))
        assert (state.desired, state.held_down_by, state.intent_actor) == ("up", None, "hermes-agent")
        assert state.start_intent_position == 11 and state.restart_position == 11


class TestReports:
    def test_a_report_is_the_last_event_and_changes_nothing_else(self):
        running = live("alice", "up", running=True)
        state = apply(running, event("alice", 4, "reported", "gateway", None, position=60, pid=4242,
                                     reason="degraded", data={"run": 50}))
        assert (state.last_type, state.last_actor, state.last_reason) == ("reported", "gateway", "degraded")
        unchanged = ("desired", "intent_position", "run_position", "run_pid", "run_ended", "crashes",
                     "start_intent_position", "restart_position", "last_exit_code", "last_signal")
        assert {f: getattr(state, f) for f in unchanged} == {f: getattr(running, f) for f in unchanged}

    def test_a_report_that_says_it_stopped_does_not_end_the_run(self):
        """Only the supervisor, which saw the process end, ends a run; the gateway only says why."""
        running = live("alice", "up", running=True)
        state = apply(running, event("alice", 4, "reported", "gateway", None, position=60, reason="stopped",
                                     data={"run": 50}))
        assert state.running_run == 50

    def test_a_report_without_a_reason_is_refused(self):
        with pytest.raises(BadInput, match="needs a reason"):
            apply(live("alice", "up"), event("alice", 4, "reported", "gateway", None, position=60))


def test_fold_of_a_log_gives_each_profiles_last_state():
    log = [
        event("alice", 1, "created", "cli", "down", position=1),
        event("bob", 1, "created", "cli", "down", position=2),
        event("alice", 2, "started", "cli", "up", position=3),
        event("bob", 2, "deleted", "cli", "down", position=4),
    ]
    states = fold(log)
    assert states["alice"].desired == "up" and states["alice"].version == 2
    assert states["bob"].deleted
    assert fold([]) == {}


# -- "held down": the fold's definition and the operators' views ------------------
# Every kind of event a profile can receive after its creation: each intent
# (an event carrying desired) and each supervisor fact (one that carries none).
STEPS = {
    "start": ("started", "cli", "up", None),
    "start-by-api": ("started", "api", "up", None),
    "start-by-import": ("started", "import", "up", None),
    "restart": ("started", "cli", "up", "restart"),
    "stop": ("stopped", "cli", "down", None),
    "stop-by-api": ("stopped", "api", "down", None),
    "delete": ("deleted", "cli", "down", None),
    "create-again": ("created", "cli", "down", None),
    "run-started": ("started", "supervisor", None, None),
    "crashed": ("crashed", "supervisor", None, None),
    "stopped-requested": ("stopped", "supervisor", None, "requested"),
    "stopped-restart": ("stopped", "supervisor", None, "restart"),
    "stopped-shutdown": ("stopped", "supervisor", None, "shutdown"),
    "crash-loop": ("stopped", "supervisor", "down", "crash-loop"),
    "fatal-config": ("stopped", "supervisor", "down", "fatal-config"),
    "exited": ("stopped", "supervisor", "down", "exited"),
}


def _histories(length: int):
    """Every sequence of up to ``length`` steps after a ``created`` by each creating actor."""
    for creator in ("cli", "import", "boot", "api"):
        for size in range(length + 1):
            for steps in itertools.product(STEPS, repeat=size):
                yield creator, steps


def _build(store, name: str, creator: str, steps) -> bool:
    """Append the history through the store (whose fold refuses what cannot arise); False when it refused."""
    from hermes_lifecycle.errors import HermesError
    from hermes_lifecycle.events import NewEvent

    store.append(NewEvent(name, "created", creator, "down"))
    for step in steps:
        type_, actor, desired, reason = STEPS[step]
        try:
            store.append(NewEvent(name, type_, actor, desired, reason=reason, pid=7 if actor == "supervisor" else None))
        except HermesError:
            return False  # e.g. anything after `delete` but a new `created`: cannot arise
    return True


def _view_column(db, view: str, column: str = "held_down_by") -> dict[str, str | None]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return dict(conn.execute(f"SELECT profile, {column} FROM {view}").fetchall())


def _view_columns(db, view: str) -> list[str]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({view})")]


def test_the_views_hold_down_exactly_the_profiles_the_fold_holds_down(migrated_home):
    """On a store the real migration built, for every state two steps after a creation can reach.

    "Held down" depends only on the last intent and what followed it, so
    every intent, and every intent followed by every other event, covers
    every combination that can arise (created, started, crash-loop stop,
    fatal-config, exited, requested stop, restart, deleted, created again...).
    """
    from cli_support import LogWriter

    writer = LogWriter(migrated_home)
    histories: dict[str, tuple] = {}
    try:
        for number, (creator, steps) in enumerate(_histories(2)):
            name = f"p{number}"
            if _build(writer.store, name, creator, steps):
                histories[name] = (creator, *steps)
        folded = {name: writer.store.state(name) for name in histories}
    finally:
        writer.close()
    held = {name: state.held_down_by for name, state in folded.items()}
    assert {"crash-loop", "fatal-config", "exited", None} <= set(held.values())
    assert any(state.deleted for state in folded.values())

    status = _view_column(migrated_home.db, "profile_status")
    assert {name: status[name] for name in histories} == held

    # crash_loops lists live profiles only, and only the breaker's and exit 78's stops, under a
    # name of its own (stopped_for): a clean exit holds a profile down without being a crash loop.
    loops = _view_column(migrated_home.db, "crash_loops", "stopped_for")
    for name, state in folded.items():
        if state.deleted:
            continue
        expected = held[name] if held[name] in ("crash-loop", "fatal-config") else None
        assert loops.get(name) == expected, histories[name]


def test_crash_loops_does_not_list_a_profile_that_exited_cleanly(migrated_home):
    """Held down (the fold's word) but not in a crash loop: the view names its own narrower column."""
    from cli_support import LogWriter

    writer = LogWriter(migrated_home)
    try:
        assert _build(writer.store, "alice", "cli", ("start", "run-started", "exited"))
        assert writer.store.state("alice").held_down_by == "exited"
    finally:
        writer.close()
    assert "alice" not in _view_column(migrated_home.db, "crash_loops", "stopped_for")
    assert "held_down_by" not in _view_columns(migrated_home.db, "crash_loops")
