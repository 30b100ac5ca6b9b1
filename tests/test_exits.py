"""classify_exit and ObservedExit.parse: table tests over every branch and the order between them.

Profile states are built by folding real events with the real fold, so each
row starts from a state the store can actually hold, and every decision is
folded back in to prove the store accepts what the hook would append.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from hermes_lifecycle.errors import BadInput
from hermes_lifecycle.events import Event, format_time
from hermes_lifecycle.exits import DO_NOT_RESTART, RESTART_AS_USUAL, ObservedExit, classify_exit, window_start
from hermes_lifecycle.fold import ProfileState, apply
from hermes_lifecycle.settings import CrashLoopPolicy

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
POLICY = CrashLoopPolicy(5, 60.0)
PID = 4321


class Log:
    """A profile's stream, folded as it grows."""

    def __init__(self, profile: str = "alice") -> None:
        self.profile = profile
        self.state: ProfileState | None = None
        self.position = 100  # other profiles' events came first

    def add(self, type_, actor, desired=None, *, reason=None, pid=None, run=None, exit_code=None, signal=None):
        self.position += 3
        event = Event(
            position=self.position, profile=self.profile,
            version=1 if self.state is None else self.state.version + 1,
            type=type_, actor=actor, desired=desired, occurred_at=format_time(NOW - timedelta(minutes=5)),
            host="h", boot_id=None, pid=pid, exit_code=exit_code, signal=signal, reason=reason,
            data={} if run is None else {"run": run}, idempotency_key=None, hash="0" * 64,
        )
        self.state = apply(self.state, event)
        return self

    # the usual steps
    def created(self):
        return self.add("created", "cli", "down")

    def start(self, reason=None):
        return self.add("started", "cli", "up", reason=reason)

    def stop(self):
        return self.add("stopped", "cli", "down")

    def run(self):
        return self.add("started", "supervisor", pid=PID)

    def end_run(self):
        return self.add("crashed", "supervisor", run=self.state.run_position, exit_code=1)

    def delete(self):
        return self.add("deleted", "cli", "down")


def running():
    return Log().created().start().run()


# Named starting points: (state, the run position the exit belongs to, or None).
def scenario(name: str) -> Log | None:
    return {
        "absent": lambda: None,
        "deleted": lambda: running().delete(),
        "running": running,
        "stopped-by-cli": lambda: running().stop(),
        "never-started": lambda: Log().created(),
        "restart-pending": lambda: running().start("restart"),
        "restart-then-stop": lambda: running().start("restart").stop(),
        "restart-already-applied": lambda: Log().created().start().run().start("restart").end_run().run(),
        "restart-run-unrecorded": lambda: Log().created().start("restart"),
        "imported-up": lambda: Log().add("created", "import", "down").add("started", "import", "up").run(),
        "late-finish": lambda: running().end_run(),
        "start-again-while-up": lambda: running().start(),
    }[name]()


CLEAN = ("0", "0")
FAILED = ("1", "0")
CONFIG = ("78", "0")
TEMPFAIL = ("75", "0")  # hermes-agent's "restart me"
TERM = ("256", "15")
KILL = ("256", "9")
EVERY_EXIT = (CLEAN, FAILED, CONFIG, TEMPFAIL, TERM, KILL)
EVERY_WANTEDUP = ("true", "false", None)


@dataclass(frozen=True)
class Expected:
    outcome: str
    status: int
    types: tuple[tuple[str, str | None, str | None], ...]  # (type, desired, reason)


DELETED = Expected("deleted", RESTART_AS_USUAL, ())
REQUESTED = Expected("requested", RESTART_AS_USUAL, (("stopped", None, "requested"),))
RESTART = Expected("restart", RESTART_AS_USUAL, (("stopped", None, "restart"),))
SHUTDOWN = Expected("shutdown", RESTART_AS_USUAL, (("stopped", None, "shutdown"),))
SELF_RESTART = Expected("self-restart", RESTART_AS_USUAL, (("stopped", None, "self-restart"),))
FATAL = Expected("fatal-config", DO_NOT_RESTART, (("stopped", "down", "fatal-config"),))
EXITED = Expected("exited", DO_NOT_RESTART, (("stopped", "down", "exited"),))
CRASHED = Expected("crashed", RESTART_AS_USUAL, (("crashed", None, None),))
CRASH_LOOP = Expected("crash-loop", DO_NOT_RESTART, (("crashed", None, None), ("stopped", "down", "crash-loop")))


def nobody_asked(exit_args, wantedup) -> Expected:
    """Step 4 then step 5, for a profile nobody asked to stop or restart."""
    if wantedup == "false":
        return SHUTDOWN
    return {CLEAN: EXITED, CONFIG: FATAL, TEMPFAIL: SELF_RESTART}.get(exit_args, CRASHED)


def expected_for(name: str, exit_args, wantedup) -> Expected:
    """The order of docs/design.md section 2, written out as a second, independent statement of it."""
    if name in ("absent", "deleted"):
        return DELETED
    if name in ("stopped-by-cli", "never-started", "restart-then-stop"):
        return REQUESTED  # 2 comes before 3, 4 and 5
    if name in ("restart-pending", "restart-run-unrecorded"):
        return RESTART  # 3 comes before 4 and 5
    return nobody_asked(exit_args, wantedup)


SCENARIOS = (
    "absent", "deleted", "running", "stopped-by-cli", "never-started", "restart-pending", "restart-then-stop",
    "restart-already-applied", "restart-run-unrecorded", "imported-up", "late-finish", "start-again-while-up",
)


@pytest.mark.parametrize("wantedup", EVERY_WANTEDUP)
@pytest.mark.parametrize("exit_args", EVERY_EXIT, ids=lambda a: "/".join(a))
@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_exit_and_wantedup(name, exit_args, wantedup):
    log = scenario(name)
    state = log.state if log else None
    observed = ObservedExit.parse(*exit_args, wantedup)
    decision = classify_exit(state, observed, [], POLICY, NOW)
    expected = expected_for(name, exit_args, wantedup)

    assert (decision.outcome, decision.exit_status) == (expected.outcome, expected.status)
    assert tuple((e.type, e.desired, e.reason) for e in decision.events) == expected.types
    for event in decision.events:
        assert event.actor == "supervisor" and event.profile == "alice"
        # every exit event says how the process ended
        assert (event.exit_code, event.signal) == (observed.exit_code, observed.signal)
        # it names the run it ends (when one is going) and that run's pid
        run = state.running_run
        assert event.data.get("run") == run
        assert event.pid == (PID if run is not None else None)
    # the store accepts what the hook appends, in that order
    for offset, event in enumerate(decision.events, start=1):
        log.add(event.type, event.actor, event.desired, reason=event.reason, pid=event.pid,
                run=event.data.get("run"), exit_code=event.exit_code, signal=event.signal)
    if decision.exit_status == DO_NOT_RESTART:
        assert log.state.desired == "down" and log.state.held_down_by == decision.outcome
    if decision.events and state.running_run is not None:
        assert log.state.running_run is None  # the run is over


def test_killed_by_a_signal_is_recorded_with_its_signal_and_no_exit_code():
    decision = classify_exit(running().state, ObservedExit.parse("256", "9", "true"), [], POLICY, NOW)
    (crashed,) = decision.events
    assert (crashed.type, crashed.exit_code, crashed.signal) == ("crashed", None, 9)


def test_a_late_finish_does_not_name_a_newer_run():
    log = running().end_run()  # the run is already over: this finish is for nothing going
    decision = classify_exit(log.state, ObservedExit.parse("1", "0", "true"), [], POLICY, NOW)
    assert decision.events[0].data == {} and decision.events[0].pid is None


def times_ago(*seconds: float) -> list[str]:
    return [format_time(NOW - timedelta(seconds=s)) for s in seconds]


@pytest.mark.parametrize(
    "policy, earlier_crashes, expected, counted",
    [
        (POLICY, times_ago(), CRASHED, None),
        (POLICY, times_ago(50, 40, 30), CRASHED, None),  # the 4th crash
        (POLICY, times_ago(50, 40, 30, 20), CRASH_LOOP, 5),  # the 5th trips it
        (POLICY, times_ago(59, 40, 30, 20, 10, 5), CRASH_LOOP, 7),  # more than enough
        (POLICY, times_ago(61, 40, 30, 20), CRASHED, None),  # one is outside the window
        (POLICY, times_ago(60, 40, 30, 20), CRASH_LOOP, 5),  # the window's edge is inside
        (POLICY, times_ago(3600, 3000, 2000, 1000), CRASHED, None),  # slow crashes never trip it
        (CrashLoopPolicy(1, 60.0), times_ago(), CRASH_LOOP, 1),  # 1/60s: the first crash
        (CrashLoopPolicy(2, 0.5), times_ago(0.4), CRASH_LOOP, 2),  # fractional windows
        (CrashLoopPolicy(2, 0.5), times_ago(0.6), CRASHED, None),
        (CrashLoopPolicy(3, 3600.0), times_ago(3000, 100), CRASH_LOOP, 3),
    ],
)
def test_breaker(policy, earlier_crashes, expected, counted):
    decision = classify_exit(running().state, ObservedExit.parse("1", "0", "true"), earlier_crashes, policy, NOW)
    assert (decision.outcome, decision.exit_status) == (expected.outcome, expected.status)
    assert tuple((e.type, e.desired, e.reason) for e in decision.events) == expected.types
    if counted is not None:
        stop = decision.events[-1]
        window = int(policy.window_seconds) if policy.window_seconds.is_integer() else policy.window_seconds
        assert stop.data == {"run": running().state.running_run, "count": counted,
                             "window_seconds": window, "threshold": policy.crashes}
        assert (stop.exit_code, stop.pid) == (1, PID)  # the exit that tripped it


@pytest.mark.parametrize("exit_args", [CLEAN, CONFIG, TEMPFAIL], ids=["exit-0", "exit-78", "exit-75"])
def test_clean_config_and_restart_me_exits_never_count_towards_the_breaker(exit_args):
    many = times_ago(10, 9, 8, 7, 6, 5)
    decision = classify_exit(running().state, ObservedExit.parse(*exit_args, "true"), many, POLICY, NOW)
    assert decision.outcome in ("exited", "fatal-config", "self-restart")
    assert [e.type for e in decision.events] == ["stopped"]


def test_a_gateway_that_asks_for_a_restart_is_restarted_with_desired_left_up():
    decision = classify_exit(running().state, ObservedExit.parse(*TEMPFAIL, "true"), [], POLICY, NOW)
    assert decision.exit_status == RESTART_AS_USUAL
    (stopped,) = decision.events
    assert (stopped.type, stopped.desired, stopped.reason, stopped.exit_code) == ("stopped", None, "self-restart", 75)


@pytest.mark.parametrize("name", ["stopped-by-cli", "restart-pending"])
def test_crashes_do_not_trip_the_breaker_when_someone_asked(name):
    many = times_ago(10, 9, 8, 7, 6, 5)
    decision = classify_exit(scenario(name).state, ObservedExit.parse("1", "0", "true"), many, POLICY, NOW)
    assert decision.outcome in ("requested", "restart") and decision.exit_status == RESTART_AS_USUAL


def test_window_start_is_in_the_stored_time_format():
    assert window_start(POLICY, NOW) == "2026-11-27T11:59:00.000Z"


@pytest.mark.parametrize(
    "args, expected",
    [
        (("0", "0", "true"), (0, None, True)),
        (("1", "0", "false"), (1, None, False)),
        (("255", "0", ""), (255, None, None)),
        (("78", "0", None), (78, None, None)),
        (("256", "9", "true"), (None, 9, True)),
        (("256", "15", "false"), (None, 15, False)),
        (("256", "128", None), (None, 128, None)),
    ],
)
def test_parse_what_s6_passes(args, expected):
    observed = ObservedExit.parse(*args)
    assert (observed.exit_code, observed.signal, observed.wantedup) == expected


@pytest.mark.parametrize(
    "args",
    [
        ("abc", "0", "true"), ("", "0", "true"), ("1", "", "true"), ("-1", "0", "true"), ("1.5", "0", "true"),
        ("300", "0", "true"), ("1000", "0", "true"), (" 1", "0", "true"), ("1\n", "0", "true"),
        ("٣", "0", "true"),  # a digit, but not one s6 prints
        ("256", "0", "true"),  # killed, by no signal
        ("256", "129", "true"), ("1", "9", "true"),  # a code and a signal at once
        ("0", "0", "yes"), ("0", "0", "TRUE"), ("0", "0", "1"),
    ],
)
def test_parse_refuses_what_s6_cannot_have_passed(args):
    with pytest.raises(BadInput):
        ObservedExit.parse(*args)


def a_stop_then_an_unrecorded_run_then_stop_and_start() -> Log:
    """A run stopped and its exit recorded; a start whose run s6 forked but never recorded; stop; start."""
    log = running().stop()
    log.add("stopped", "supervisor", reason="requested", run=log.state.run_position, pid=PID, signal=15)
    return log.start().stop().start()


@pytest.mark.parametrize("wantedup", EVERY_WANTEDUP)
def test_a_sigterm_with_no_run_going_after_an_unanswered_stop_is_that_stop(wantedup):
    """The run hook was killed by the stop's SIGTERM before its start was recorded; a start came since."""
    log = a_stop_then_an_unrecorded_run_then_stop_and_start()
    decision = classify_exit(log.state, ObservedExit.parse(*TERM, wantedup), [], POLICY, NOW, stop_unanswered=True)
    assert (decision.outcome, decision.exit_status) == ("requested", RESTART_AS_USUAL)
    (stopped,) = decision.events
    assert (stopped.type, stopped.desired, stopped.reason, stopped.signal, stopped.pid, stopped.data) == (
        "stopped", None, "requested", 15, None, {})


@pytest.mark.parametrize("exit_args", [KILL, FAILED, CLEAN], ids=["sigkill", "exit-1", "exit-0"])
def test_an_unanswered_stop_explains_only_a_sigterm(exit_args):
    log = a_stop_then_an_unrecorded_run_then_stop_and_start()
    decision = classify_exit(log.state, ObservedExit.parse(*exit_args, "true"), [], POLICY, NOW, stop_unanswered=True)
    assert decision.outcome == nobody_asked(exit_args, "true").outcome


def test_an_unanswered_stop_does_not_explain_the_exit_of_a_run_the_log_knows_is_going():
    decision = classify_exit(running().state, ObservedExit.parse(*TERM, "true"), [], POLICY, NOW, stop_unanswered=True)
    assert decision.outcome == "crashed"
