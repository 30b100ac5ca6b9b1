"""The watch daemon: converges after SIGKILL, polls without inotify, stays silent when idle.

The tests that take ``rig`` run once per backend (tests/contract/backends.py); staying silent when
idle is measured on SQLite's files.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time

import pytest

from backends import backend  # noqa: F401 (a fixture)
from projector_support import daemon_with_a_full_log, rig_for, stops_on_sigterm_within, wait_for

from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store

pytestmark = pytest.mark.slow

NAMES = [f"w{i}" for i in range(6)]


@pytest.fixture
def rig(world_tmp, backend):
    with rig_for(world_tmp, backend.home, booted=True, database=getattr(backend, "database", None),
                 HERMES_WATCH_POLL_INTERVAL="0.5") as rig:
        yield rig


@pytest.fixture
def sqlite_rig(world_tmp, home):
    with rig_for(world_tmp, home, booted=True, HERMES_WATCH_POLL_INTERVAL="0.5") as rig:
        yield rig


def desired_states(rig) -> dict[str, str]:
    with open_store(Settings.from_env(rig.env()), readonly=True) as store:
        return {s.profile: s.desired for s in store.states()}


def converged(rig) -> bool:
    """Every profile's slot: s6 wants it up exactly when its desired state is up."""
    for name, desired in desired_states(rig).items():
        status = rig.status(name)
        if status is None or status["wantedup"] != (desired == "up"):
            return False
    return True


def test_killed_with_sigkill_while_events_arrive_then_restarted_it_misses_nothing(rig):
    rig.append("create", *NAMES)
    first = rig.start_watch()
    wait_for(lambda: all(rig.status(name) for name in NAMES), 5, "the slots of the new profiles")
    stop = threading.Event()
    failures: list[BaseException] = []

    def appender():
        chooser = random.Random(3)
        try:
            while not stop.is_set():
                names = chooser.sample(NAMES, 3)
                rig.append(chooser.choice(["start", "stop"]), *names)
        except BaseException as error:  # reported by the test below
            failures.append(error)

    thread = threading.Thread(target=appender)
    thread.start()
    try:
        time.sleep(1.0)
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=5) == -signal.SIGKILL
        time.sleep(1.0)  # events keep arriving while no daemon runs
        # and one that surely leaves s6 behind (the writer's seeded run can end all down, as s6 was left)
        rig.append("create", "gap")
        second = rig.start_watch()
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not failures, failures
    wait_for(lambda: converged(rig), 10, "every slot as desired")
    assert rig.stop_watch(second) == 0
    first_pass = json.loads(rig.watch_output().splitlines()[0])
    assert first_pass["trigger"] == "start" and first_pass["positions"]["after"] == 0


def test_poll_only_converges_within_its_interval(rig):
    rig.append("create", "polly")
    watch = rig.start_watch("--poll-only", HERMES_WATCH_POLL_INTERVAL="1")
    wait_for(lambda: rig.status("polly"), 5, "the start pass (full) to make polly's slot")
    rig.append("start", "polly")
    committed = time.monotonic()
    wait_for(lambda: rig.running_pid("polly"), 3, "polly up")
    elapsed = time.monotonic() - committed
    assert rig.stop_watch(watch) == 0
    passes = [json.loads(line) for line in rig.watch_output().splitlines()]
    assert [p["trigger"] for p in passes] == ["start", "poll"]
    assert elapsed < 1.0 + 0.5, elapsed  # the interval, and the pass itself


def _fingerprint(paths):
    result = {}
    for path in paths:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            result[str(path)] = None
            continue
        result[str(path)] = (info.st_size, info.st_mtime_ns)
    return result


def test_an_idle_daemon_writes_nothing_and_exits_cleanly_on_sigterm(sqlite_rig):
    rig = sqlite_rig
    rig.append("create", "idle")
    rig.append("start", "idle")
    watch = rig.start_watch(HERMES_WATCH_POLL_INTERVAL="0.1", HERMES_WATCH_FULL_PASS_INTERVAL="0.5")
    wait_for(lambda: rig.running_pid("idle"), 5, "idle up")
    wait_for(lambda: rig.history("idle")[-1]["type"] == "started" and rig.history("idle")[-1]["actor"] == "supervisor",
             5, "the start recorded")
    time.sleep(0.6)  # the pass the supervisor's event caused
    lines = len(rig.watch_output().splitlines())
    db = rig.home.db
    watched = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"), rig.scandir, *rig.scandir.iterdir(),
               *(rig.scandir / "gateway-idle").iterdir(), rig.home.path / "state"]
    before = _fingerprint(watched)
    time.sleep(2.0)  # some 20 polls and 4 full passes
    assert _fingerprint(watched) == before
    assert len(rig.watch_output().splitlines()) == lines
    assert rig.stop_watch(watch) == 0
    assert rig.watch_output().count("\n") == lines


def test_a_log_that_stops_reading_never_stops_the_daemon_acting(rig):
    """The container's watch logger crash-looped (a read-only log directory): the pipe to it filled,
    the daemon blocked writing its next line, and s6 was left as it was while the log asked otherwise."""
    from conftest import HERMES

    with daemon_with_a_full_log([str(HERMES), "watch"], rig.env()) as daemon:
        rig.append("create", "logjam")
        for _ in range(3):  # each acting pass writes a line nobody reads
            rig.append("start", "logjam")
            wait_for(lambda: rig.running_pid("logjam"), 10, "logjam brought up by the daemon")
            rig.append("stop", "logjam")
            wait_for(lambda: rig.status("logjam") == {"up": False, "pid": -1, "wantedup": False}, 10,
                     "logjam brought down by the daemon")
        stops_on_sigterm_within(daemon)
