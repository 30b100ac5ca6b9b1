"""The pure planner: a decision table, every combination, and hostile rows."""

from __future__ import annotations

import itertools


import pytest

from hermes_lifecycle.fold import ProfileState
from hermes_lifecycle.profile_state import screened
from hermes_lifecycle.projector import plan as planner
from hermes_lifecycle.projector.plan import SlotView
from hermes_lifecycle.projector.observed import ServiceStatus

T0, T1 = 1000, 2000  # TAI64N stamps, only their order matters


def state(
    name: str = "alice",
    desired: str = "up",
    *,
    deleted: bool = False,
    restart: int | None = None,
    run: int | None = 10,
    run_ended: bool = False,
    last: tuple[str, str, str | None] = ("started", "supervisor", None),
) -> ProfileState:
    last_type, last_actor, last_reason = last
    return ProfileState(
        profile=name, version=5, deleted=deleted, desired=desired, created_position=1,
        last_position=20, last_type=last_type, last_actor=last_actor, last_reason=last_reason,
        last_at="2026-01-01T00:00:00.000Z", intent_position=5, intent_actor="cli", intent_reason=None,
        intent_at="2026-01-01T00:00:00.000Z", start_intent_position=5, restart_position=restart,
        run_position=run, run_pid=1234 if run else None, run_started_at=None, run_boot_id=None,
        run_ended=run_ended,
    )


def plan(states, slots, **options):
    """The planner on rows through the one gate, as the reconciler hands them over."""
    return planner.plan([screened(state) for state in states], slots, **options)


def status(*, wantedup: bool, up: bool, finish_done: bool = True) -> ServiceStatus:
    if up:
        return ServiceStatus(True, 4321, wantedup, True, None, None, T1, T0, 1)
    # down: finish has returned when readysince >= updownsince
    return ServiceStatus(False, None, wantedup, True, None, 15, T1, T1 if finish_done else T0, 1)


def view(name: str = "alice", st: ServiceStatus | None = None, *, down_file: bool = False,
         scripts: bool = True, applied: int | None = None) -> SlotView:
    return SlotView(name, st, down_file, scripts, applied)


def kinds(actions) -> list[str]:
    return [a.kind for a in actions]


SHUTDOWN = ("stopped", "supervisor", "shutdown")
CRASH_LOOP = ("stopped", "supervisor", "crash-loop")

# (case, desired state, slot) -> action kinds, in order.
TABLE = [
    ("no slot, desired up", state(desired="up"), None, ["create-up", "rescan"]),
    ("no slot, desired down", state(desired="down"), None, ["create-down", "rescan"]),
    ("unsupervised, down file right", state(desired="down"), view(down_file=True), ["rescan"]),
    ("unsupervised, desired up, down file left", state(desired="up"), view(down_file=True), ["await", "mark-up", "rescan"]),
    ("unsupervised, desired down, no down file", state(desired="down"), view(down_file=False), ["await", "mark-down", "rescan"]),
    ("up and wanted up", state(), view(st=status(wantedup=True, up=True)), []),
    ("s6 restarting after a crash", state(run_ended=True), view(st=status(wantedup=True, up=False)), []),
    ("desired up, s6 holds it down", state(last=("stopped", "cli", None)), view(st=status(wantedup=False, up=False)), ["up"]),
    ("desired up, process still stopping", state(), view(st=status(wantedup=False, up=True)), ["await"]),
    ("desired up, finish running", state(), view(st=status(wantedup=False, up=False, finish_done=False)), ["await"]),
    ("desired up, finish running, its exit logged", state(run_ended=True), view(st=status(wantedup=False, up=False, finish_done=False)), ["up"]),
    # It may be a deleted life's gateway still ending: s6-svc -u would adopt it as the new life's.
    ("desired up, no run in the log, still stopping", state(run=None), view(st=status(wantedup=False, up=True)), ["await"]),
    ("desired up, no run in the log, finish running", state(run=None),
     view(st=status(wantedup=False, up=False, finish_done=False)), ["up"]),
    ("after a shutdown: desired is still up", state(last=SHUTDOWN, run_ended=True), view(st=status(wantedup=False, up=False)), ["up"]),
    ("a stale run from an earlier boot, finish done", state(run=3), view(st=status(wantedup=False, up=False)), ["up"]),
    ("desired down, wanted up", state(desired="down"), view(st=status(wantedup=True, up=True)), ["down"]),
    ("desired down, wanted up, restarting", state(desired="down"), view(st=status(wantedup=True, up=False)), ["down"]),
    ("desired down, held down", state(desired="down", last=CRASH_LOOP), view(st=status(wantedup=False, up=False), down_file=True), []),
    ("breaker held it down: mark", state(desired="down", last=CRASH_LOOP), view(st=status(wantedup=False, up=False)), ["mark-down"]),
    ("desired up, down file left", state(), view(st=status(wantedup=True, up=True), down_file=True), ["mark-up"]),
    ("restart intent newer than the run", state(restart=30, run=10), view(st=status(wantedup=True, up=True)), ["restart"]),
    ("restart intent applied already", state(restart=30, run=10), view(st=status(wantedup=True, up=True), applied=30), []),
    ("newer restart than the one applied", state(restart=40, run=10), view(st=status(wantedup=True, up=True), applied=30), ["restart"]),
    ("restart intent older than the run", state(restart=5, run=10), view(st=status(wantedup=True, up=True)), []),
    ("restart, the run ended", state(restart=30, run=10, run_ended=True), view(st=status(wantedup=True, up=True)), []),
    ("restart, process down (s6 restarting)", state(restart=30, run=10), view(st=status(wantedup=True, up=False)), ["restart-absorbed"]),
    ("restart absorbed already", state(restart=30, run=10), view(st=status(wantedup=True, up=False), applied=30), []),
    ("restart of a stopped gateway: just up", state(restart=30, run=10, run_ended=True, last=("started", "cli", "restart")),
     view(st=status(wantedup=False, up=False)), ["up"]),
    ("old scripts", state(), view(st=status(wantedup=True, up=True), scripts=False), ["repair-scripts"]),
    # A removal takes a step per pass and none of them waits (a gateway may ignore SIGTERM).
    ("deleted profile, s6 wants it up", state(deleted=True, desired="down"), view(st=status(wantedup=True, up=True)), ["await", "down"]),
    ("deleted profile, still stopping", state(deleted=True, desired="down"), view(st=status(wantedup=False, up=True)), ["await"]),
    ("deleted profile, finish running", state(deleted=True, desired="down"),
     view(st=status(wantedup=False, up=False, finish_done=False)), ["await"]),
    ("deleted profile, down and finished", state(deleted=True, desired="down"), view(st=status(wantedup=False, up=False)), ["remove"]),
    ("deleted profile, unsupervised slot", state(deleted=True, desired="down"), view(), ["remove"]),
    ("deleted profile without a slot", state(deleted=True, desired="down"), None, []),
]


@pytest.mark.parametrize("case, desired, slot, expected", TABLE, ids=[row[0] for row in TABLE])
def test_decision_table(case, desired, slot, expected):
    slots = {} if slot is None else {slot.profile: slot}
    assert kinds(plan([desired], slots)) == expected


def test_create_carries_the_restart_intent_so_a_fresh_slot_is_never_restarted():
    [create, _] = plan([state(restart=30, run=10)], {})
    assert (create.kind, create.position) == ("create-up", 30)
    [restart] = plan([state(restart=30, run=10)], {"alice": view(st=status(wantedup=True, up=True))})
    assert (restart.kind, restart.position) == ("restart", 30)


@pytest.mark.parametrize("desired", ["up", "down"])
def test_a_supervisor_that_read_the_old_down_file_is_corrected_by_the_look_again(desired):
    """s6-svstat finds no status both before s6-supervise starts and just after, when it has read
    ``down`` but not written its status: a mark made then comes too late for it. The ``await``
    brings the next pass, which sees what s6 holds and sets it right."""
    stale = desired == "up"  # the down file the supervisor read: the one the mark replaced
    first = plan([state(desired=desired)], {"alice": view(down_file=stale)})
    assert kinds(first) == ["await", f"mark-{desired}", "rescan"]
    supervised = view(st=status(wantedup=not stale, up=not stale), down_file=not stale)
    assert kinds(plan([state(desired=desired)], {"alice": supervised})) == [desired]


def test_slot_of_an_unknown_profile_is_removed_and_other_slots_untouched():
    actions = plan([state("bob")], {"ghost": view("ghost", status(wantedup=False, up=False)),
                                    "bob": view("bob", status(wantedup=True, up=True))})
    assert [(a.kind, a.profile) for a in actions] == [("remove", "ghost")]
    running = plan([], {"ghost": view("ghost", status(wantedup=True, up=True))})
    assert [(a.kind, a.profile) for a in running] == [("await", "ghost"), ("down", "ghost")]


def test_leftovers_are_purged_and_actions_come_in_apply_order():
    actions = plan(
        [state("b", "up"), state("a", "down"), state("c", "down")],
        {"c": view("c", status(wantedup=True, up=True)), "z": view("z", None)},
        leftovers=[".gateway-x.tmp-0123456789abcdef"],
    )
    assert [(a.kind, a.profile) for a in actions] == [
        ("remove", "z"),
        ("purge", ".gateway-x.tmp-0123456789abcdef"),
        ("create-up", "b"),
        ("create-down", "a"),
        ("down", "c"),
        ("rescan", ""),
    ]


HOSTILE_NAMES = ["../etc", "a/b", "x;rm -rf /", "$(reboot)", "a" * 300, "", "Alice", "alice\n", ".hidden", None, 7]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_a_hostile_name_is_skipped_and_valid_profiles_still_served(name):
    hostile = state()._replace(profile=name)
    actions = plan([hostile, state("bob")], {})
    assert [a.kind for a in actions] == ["skip-invalid", "create-up", "rescan"]
    assert actions[0].detail == "invalid profile name"
    assert len(actions[0].profile) <= 80 and "\n" not in actions[0].profile
    assert actions[1].profile == "bob"


@pytest.mark.parametrize(
    "garbage, problem",
    [
        ({"desired": "sideways"}, "invalid desired state"),
        ({"restart_position": "30; rm"}, "restart_position is not a positive integer"),
        ({"run_position": True}, "run_position is not a positive integer"),
        ({"version": 0}, "version is not a positive integer"),
        ({"last_type": "exploded"}, "invalid last type or actor"),
        ({"deleted": "yes"}, "deleted or run_ended is not a flag"),
        # What only the store's check saw before there was one gate: the planner acted on these.
        ({"last_at": "yesterday"}, "a time is not in the log's format"),
        ({"crashes": 2}, "last_crash_position does not match crashes"),
        ({"run_boot_id": 7}, "run_boot_id is not text"),
    ],
)
def test_a_garbled_row_is_skipped_and_its_slot_left_alone(garbage, problem):
    garbled = state("alice")._replace(**garbage)
    slots = {"alice": view(st=status(wantedup=True, up=True))}
    actions = plan([garbled], slots)
    assert kinds(actions) == ["skip-invalid"]
    assert actions[0].detail.startswith(problem)


def test_two_rows_for_one_name_are_both_skipped():
    actions = plan([state("alice"), state("alice", "down")], {})
    assert kinds(actions) == ["skip-invalid", "skip-invalid"]


# -- every combination ------------------------------------------------------------
def _apply_to_model(actions, states, slots):
    """What s6 and the scan directory look like once the actions took effect (and processes settled)."""
    slots = dict(slots)
    by_name = {s.profile: s for s in states}
    for action in actions:
        name = action.profile
        current = slots.get(name)
        if action.kind in ("create-up", "create-down"):
            up = action.kind == "create-up"
            slots[name] = view(name, None, down_file=not up, applied=action.position)
        elif action.kind == "rescan":
            for key, slot in list(slots.items()):
                if slot.status is None:
                    slots[key] = slot._replace(status=status(wantedup=not slot.down_file, up=not slot.down_file))
        elif action.kind == "up":
            slots[name] = current._replace(status=status(wantedup=True, up=True), down_file=False,
                                  restart_applied=action.position if action.position is not None else current.restart_applied)
        elif action.kind == "down":
            slots[name] = current._replace(status=status(wantedup=False, up=False), down_file=True)
        elif action.kind in ("restart", "restart-absorbed"):
            slots[name] = current._replace(restart_applied=action.position)
        elif action.kind in ("mark-up", "mark-down"):
            slots[name] = current._replace(down_file=action.kind == "mark-down")
        elif action.kind == "repair-scripts":
            slots[name] = current._replace(scripts_current=True)
        elif action.kind == "remove":
            del slots[name]
        elif action.kind == "await" and current.status is None:  # the look again finds what rescan starts
            pass
        elif action.kind == "await":  # the process and its finish end, as s6 makes them
            slots[name] = current._replace(status=status(wantedup=current.status.wantedup, up=False))
        assert name in by_name or action.kind in ("remove", "rescan", "purge")
    return slots


def _all_cases():
    desireds = ["up", "down"]
    lasts = [("started", "supervisor", None), SHUTDOWN, CRASH_LOOP, ("stopped", "cli", None)]
    restarts = [(None, None), (30, None), (30, 30), (5, None)]
    slot_shapes = ["missing", "unsupervised"] + [
        (w, u, f) for w, u, f in itertools.product([True, False], repeat=3) if not (u and not f)
    ]
    for desired, last, (restart, applied), shape, down_file, scripts, run_ended, run, deleted in itertools.product(
        desireds, lasts, restarts, slot_shapes, [True, False], [True, False], [True, False], [10, None], [True, False]
    ):
        st = state(desired=desired, last=last, restart=restart, run=run, run_ended=run_ended, deleted=deleted)
        if shape == "missing":
            slot = None
        elif shape == "unsupervised":
            slot = view(down_file=down_file, scripts=scripts, applied=applied)
        else:
            w, u, f = shape
            slot = view(st=status(wantedup=w, up=u, finish_done=f), down_file=down_file, scripts=scripts, applied=applied)
        yield st, slot


ALL_CASES = list(_all_cases())


def test_every_combination_obeys_the_invariants():
    assert len(ALL_CASES) > 2000
    for st, slot in ALL_CASES:
        slots = {} if slot is None else {"alice": slot}
        actions = plan([st], slots)
        got = kinds(actions)
        case = (st.desired, st.deleted, st.last_reason, st.restart_position, st.running_run, slot)
        if st.deleted:
            # A removal never waits: it moves the slot only once down and finished, else asks s6 and looks again.
            if slot is None:
                assert got == [], case
            elif slot.status is None or not (slot.status.wantedup or slot.status.up or not slot.status.finish_done):
                assert got == ["remove"], case
            else:
                assert got == (["await", "down"] if slot.status.wantedup else ["await"]), case
            continue
        # Never against the desired state.
        if st.desired == "down":
            assert not {"up", "create-up", "mark-up", "restart"} & set(got), case
        else:
            assert not {"down", "create-down", "mark-down"} & set(got), case
        # s6's intent already matches and nothing is pending: no command to s6.
        if slot is not None and slot.status is not None and slot.status.wantedup == (st.desired == "up"):
            assert not {"up", "down"} & set(got), case
        # s6's intent is never flipped up before finish has recorded the exit it is classifying.
        if "up" in got:
            assert not slot.status.up, case
            assert slot.status.finish_done or st.running_run is None, case
        # A restart only of a process that is up, for an intent not applied yet.
        if "restart" in got:
            assert slot.status.up and (slot.restart_applied or 0) < st.restart_position, case
        assert got.count("rescan") <= 1 and (not got or got[-1] == "rescan" or "rescan" not in got), case


def test_planning_again_after_the_actions_took_effect_does_nothing():
    """Level-triggered: at most three passes (down, await the process, remove) reach a plan with nothing to do."""
    for st, slot in ALL_CASES:
        slots = {} if slot is None else {"alice": slot}
        rounds = [plan([st], slots)]
        while rounds[-1] and len(rounds) <= 3:
            slots = _apply_to_model(rounds[-1], [st], slots)
            rounds.append(plan([st], slots))
        assert kinds(rounds[-1]) == [], (st, slot, [kinds(r) for r in rounds])
        # Only a removal or a wait for s6 takes more than one pass.
        if len(rounds) > 2:
            assert st.deleted or "await" in kinds(rounds[0]), (st, slot, [kinds(r) for r in rounds])
