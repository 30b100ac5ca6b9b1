"""Gateways end to end: real s6-svscan, the real hooks, the watch daemon, appends as the unprivileged user.

Each runs once per backend (tests/contract/backends.py): the store a SQLite file on the volume, or a
database of the session's private PostgreSQL server, which the hooks, boot and the watch daemon reach
by HERMES_STATE_URL. (What only PostgreSQL meets, the database going away, is tests/test_pg_projector.py's.)

These need `hermes-state record-start` / `record-exit` (the hooks) installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from backends import Backend, backend  # noqa: F401 (backend: a fixture)
from projector_support import IS_ROOT, rig_for, processes_under, types, wait_for

pytestmark = pytest.mark.slow


def backend_rig(world_tmp, backend: Backend, **extra_env: str):
    """A booted rig on ``backend``'s store."""
    return rig_for(world_tmp, backend.home, booted=True, database=getattr(backend, "database", None), **extra_env)


@pytest.fixture
def rig(world_tmp, backend):
    with backend_rig(world_tmp, backend, HERMES_WATCH_POLL_INTERVAL="0.5") as rig:
        yield rig


def supervisor_runs(history):
    return [row for row in history if row["type"] == "started" and row["actor"] == "supervisor"]


def running(rig, name: str) -> int:
    """Wait until ``name``'s gateway is up and its start is in the log; its pid. A wait that
    fails shows what the watch daemon said, which is where the reason is."""
    try:
        pid = wait_for(lambda: rig.running_pid(name), 5, f"{name} up")
        wait_for(lambda: supervisor_runs(rig.history(name)), 5, f"{name}'s start recorded")
    except AssertionError as error:
        said = rig.watch_output()[-3000:] if rig.daemons else "(no watch daemon)"
        raise AssertionError(f"{error}; the log: {rig.history(name)}; the watch daemon said:\n{said}") from None
    return pid


def created_and_running(rig, name: str) -> int:
    rig.append("create", name)
    rig.append("start", name)
    return running(rig, name)


def test_create_start_restart_stop_delete(rig):
    watch = rig.start_watch()
    rig.cli("create", "alice")
    wait_for(lambda: rig.status("alice"), 5, "alice's slot")
    assert rig.status("alice") == {"up": False, "pid": -1, "wantedup": False}

    rig.cli("start", "alice")
    first = wait_for(lambda: rig.running_pid("alice"), 5, "alice up")
    started = wait_for(lambda: supervisor_runs(rig.history("alice")), 5, "alice's supervisor started")
    assert started[-1]["pid"] == first  # record-start execs the gateway in its own process

    rig.cli("restart", "alice")
    second = wait_for(lambda: (pid := rig.running_pid("alice")) and pid != first and pid, 5, "a new pid")
    wait_for(lambda: len(supervisor_runs(rig.history("alice"))) == 2, 5, "the second run recorded")
    assert supervisor_runs(rig.history("alice"))[-1]["pid"] == second

    rig.cli("stop", "alice")
    wait_for(lambda: rig.status("alice") == {"up": False, "pid": -1, "wantedup": False}, 5, "alice down")
    wait_for(lambda: rig.history("alice")[-1]["reason"] == "requested", 5, "the stop recorded")
    assert not os.path.exists(f"/proc/{second}")

    rig.cli("delete", "alice", "--yes")
    # The slot goes out of sight first, then its supervisor, then the moved directory: wait for the last step.
    wait_for(lambda: not [name for name in os.listdir(rig.scandir) if "alice" in name], 10, "alice's slot removed")
    assert not [p for p in processes_under(rig.scandir) if "gateway-alice" in p]  # no supervisor left behind

    # The gateway exits 0 on SIGTERM: a stop and a restart are recorded as asked, never as a crash or an exit.
    assert types(rig.history("alice")) == [
        ("created", "cli", None),
        ("started", "cli", None),
        ("started", "supervisor", None),
        ("started", "cli", "restart"),
        ("stopped", "supervisor", "restart"),
        ("started", "supervisor", None),
        ("stopped", "cli", None),
        ("stopped", "supervisor", "requested"),
        ("deleted", "cli", None),
    ]
    assert rig.stop_watch(watch) == 0
    output = rig.watch_output()
    for action in ("create-down", '"up"', "restart", '"down"', "remove"):
        assert action in output


def test_kill_9_is_a_crash_and_s6_starts_it_again(rig):
    watch = rig.start_watch()
    victim = created_and_running(rig, "kilo")
    time.sleep(1.0)  # a gateway in service (up > 1 s): s6 restarts it without its 1 s backoff
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)

    def recovered():
        history = rig.history("kilo")
        crashes = [row for row in history if row["type"] == "crashed"]
        return crashes and len(supervisor_runs(history)) == 2 and history

    history = wait_for(recovered, 3, "crashed + a new supervisor start")
    print(f"kill -9 to the new run's started in the log: {time.monotonic() - killed_at:.2f} s")
    assert time.monotonic() - killed_at < 3
    crash = next(row for row in history if row["type"] == "crashed")
    assert (crash["signal"], crash["exit_code"], crash["actor"]) == (9, None, "supervisor")
    assert rig.running_pid("kilo") not in (None, victim)
    assert rig.stop_watch(watch) == 0


def test_crash_loop_and_fatal_config_hold_the_slot_down(rig):
    watch = rig.start_watch()
    rig.append("create", "crashy", "config")
    rig.append("start", "crashy", "config")

    def breaker_tripped():
        return rig.history("crashy")[-1]["reason"] == "crash-loop"

    wait_for(breaker_tripped, 15, "the crash-loop breaker")
    history = rig.history("crashy")
    assert [row["type"] for row in history].count("crashed") == 5  # HERMES_CRASH_LOOP's default, 5/60s
    assert all(row["exit_code"] == 1 for row in history if row["type"] == "crashed")
    assert history[-1]["desired"] == "down" and history[-1]["actor"] == "supervisor"

    # Its own hooks, not crashy's breaker, decide when config's one run is recorded: wait for it too.
    wait_for(lambda: types(rig.history("config"))[-1] == ("stopped", "supervisor", "fatal-config"), 15,
             "config held down for a fatal configuration")
    config = rig.history("config")
    assert len(supervisor_runs(config)) == 1

    # Held down: s6 does not want them up, and the projector does not fight it.
    for name in ("crashy", "config"):
        wait_for(lambda: rig.status(name) == {"up": False, "pid": -1, "wantedup": False}, 5, f"{name} held down")
    settled = (len(rig.history("crashy")), len(rig.history("config")))
    time.sleep(1.5)  # s6 would have restarted them by now (1 s backoff)
    assert (len(rig.history("crashy")), len(rig.history("config"))) == settled
    assert rig.status("crashy")["wantedup"] is False and (rig.scandir / "gateway-crashy" / "down").exists()
    assert rig.stop_watch(watch) == 0


def test_a_gateway_that_asks_for_restarts_is_restarted_every_time_and_never_held_down(rig):
    """Exit 75 is the gateway asking for a new process: more of them than the breaker's count
    within its window are restarts, not crashes, and nothing holds the slot down."""
    watch = rig.start_watch()
    rig.append("create", "restarts")
    rig.append("start", "restarts")
    wait_for(lambda: len(supervisor_runs(rig.history("restarts"))) > 7, 30, "eight runs of restarts")
    history = rig.history("restarts")
    exits = [row for row in history if row["actor"] == "supervisor" and row["type"] != "started"]
    assert len(exits) >= 7 and {(row["type"], row["desired"], row["reason"], row["exit_code"]) for row in exits} == {
        ("stopped", None, "self-restart", 75)}
    assert all(json.loads(row["data"])["run"] == run["position"] for row, run in zip(exits, supervisor_runs(history)))
    assert rig.status("restarts")["wantedup"] is True
    listed = {row["profile"]: row for row in map(json.loads, rig.cli("list", "--json").splitlines())}
    assert (listed["restarts"]["desired"], listed["restarts"]["held_down_by"]) == ("up", None)
    assert rig.stop_watch(watch) == 0


def test_container_restart_simulated(world_tmp, backend):
    with backend_rig(world_tmp, backend, HERMES_CRASH_LOOP="2/60s") as rig:
        _container_restart(rig)


def _container_restart(rig):
    watch = rig.start_watch()
    rig.append("create", "uno", "dos", "tres", "crashy")
    rig.append("start", "uno", "dos", "crashy")
    rig.append("stop", "dos")
    wait_for(lambda: rig.history("crashy")[-1]["reason"] == "crash-loop", 15, "crashy's breaker")
    running(rig, "uno")
    assert rig.stop_watch(watch) == 0
    old_boot = (rig.scandir / ".boot-id").read_text().strip()

    # docker restart: s6 stops everything, /run/service is a fresh tmpfs, boot runs again.
    rig.stop_scanner()
    shutil.rmtree(rig.scandir)
    rig.start_scanner()
    rig.boot()
    new_boot = (rig.scandir / ".boot-id").read_text().strip()
    assert new_boot != old_boot

    wait_for(lambda: rig.running_pid("uno"), 5, "uno up again")
    wait_for(lambda: len(supervisor_runs(rig.history("uno"))) == 2, 5, "uno's new run recorded")
    for name in ("dos", "tres", "crashy"):
        assert rig.status(name)["wantedup"] is False and rig.status(name)["up"] is False, name
    uno = rig.history("uno")
    assert ("stopped", "supervisor", "shutdown") in types(uno)
    assert "crashed" not in [row["type"] for row in uno]
    assert supervisor_runs(uno)[-1]["boot_id"] == new_boot
    time.sleep(1.2)
    assert rig.status("crashy")["up"] is False  # the crash-looped one stays down


def test_gateway_that_exits_0_on_sigterm_records_shutdown_and_runs_again(rig):
    rig.append("create", "tango")
    rig.append("start", "tango")
    watch = rig.start_watch()
    running(rig, "tango")
    rig.stop_watch(watch)
    rig.stop_scanner()
    assert types(rig.history("tango"))[-1] == ("stopped", "supervisor", "shutdown")
    assert rig.history("tango")[-1]["desired"] is None  # desired stays up: it comes back at next boot
    rig.start_scanner()
    rig.boot()
    wait_for(lambda: rig.running_pid("tango"), 5, "tango up after the restart")
    assert "exited" not in [row["reason"] for row in rig.history("tango")]


def test_an_operator_s6_svc_d_is_recorded_as_shutdown_and_undone_while_desired_is_up(rig):
    watch = rig.start_watch()
    first = created_and_running(rig, "oscar")
    subprocess.run(["s6-svc", "-d", str(rig.scandir / "gateway-oscar")], check=True, timeout=10)
    wait_for(lambda: len(supervisor_runs(rig.history("oscar"))) == 2, 5, "oscar started again")
    history = rig.history("oscar")
    assert types(history)[-2:] == [("stopped", "supervisor", "shutdown"), ("started", "supervisor", None)]
    assert rig.running_pid("oscar") not in (None, first)
    assert rig.stop_watch(watch) == 0


def test_a_start_while_the_stopped_gateway_is_still_exiting_runs_it_again(rig):
    """s6 was told down; the start lands before finish has recorded the exit: up waits for that record."""
    watch = rig.start_watch()
    first = created_and_running(rig, "sierra")
    rig.append("stop", "sierra")
    wait_for(lambda: rig.status("sierra")["wantedup"] is False, 5, "the projector to bring sierra down")
    rig.append("start", "sierra")
    wait_for(lambda: len(supervisor_runs(rig.history("sierra"))) == 2, 5, "sierra started again")
    assert rig.running_pid("sierra") not in (None, first)
    exits = [row["reason"] for row in rig.history("sierra") if row["type"] in ("stopped", "crashed") and row["actor"] == "supervisor"]
    assert len(exits) == 1 and exits[0] in ("requested", "shutdown")  # never `exited` nor a crash
    assert rig.stop_watch(watch) == 0


def test_a_stop_superseded_before_the_projector_acts_changes_nothing(rig):
    watch = rig.start_watch()
    first = created_and_running(rig, "tango")
    rig.append("stop:tango", "start:tango")  # one transaction: the projector never sees the stop alone
    time.sleep(0.5)
    assert rig.running_pid("tango") == first  # level-triggered: desired up, s6 has it up
    assert rig.stop_watch(watch) == 0


@pytest.mark.skipif(not IS_ROOT, reason="privilege separation needs root: as one user, the user owns the scan directory")
def test_the_user_cannot_write_the_scan_directory_but_starts_and_stops_gateways(rig):
    from conftest import run_as

    probe = run_as(["/bin/sh", "-c", f"touch {rig.scandir}/gateway-evil"], rig.user, env=rig.env())
    assert probe.returncode != 0 and "Permission denied" in probe.stderr
    probe = run_as(["s6-svc", "-u", str(rig.scandir / "gateway-default")], rig.user, env=rig.env())
    assert probe.returncode != 0
    watch = rig.start_watch()
    rig.cli("create", "uma")
    rig.cli("start", "uma")
    pid = running(rig, "uma")  # its start recorded: s6-setuidgid has dropped to the user by then
    owner = os.stat(f"/proc/{pid}").st_uid
    assert owner == rig.user.uid  # the gateway runs as the user, dropped by s6-setuidgid
    rig.cli("stop", "uma")
    wait_for(lambda: rig.status("uma")["up"] is False, 5, "uma down")
    assert rig.stop_watch(watch) == 0
    for root, dirs, files in os.walk(rig.home.path):
        for name in dirs + files:
            assert os.lstat(os.path.join(root, name)).st_uid == rig.user.uid, os.path.join(root, name)


# Appends as the unprivileged user from one long-lived process (one line in, "ok" out), so that an
# intent lands within a millisecond or two of the test deciding it, not a process start later.
_APPENDER = r"""
import sys
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store
shapes = {"start": ("started", "up"), "stop": ("stopped", "down")}
with open_store(Settings.from_env()) as store:
    for line in sys.stdin:
        kind, name = line.split()
        event_type, desired = shapes[kind]
        store.append(NewEvent(name, event_type, "cli", desired))
        print("ok", flush=True)
"""


def test_fast_start_stop_cycles_record_every_stop_as_a_stop_never_as_a_crash(rig):
    """A stop that lands while the run hook is still recording its start: s6's SIGTERM kills the
    hook before its `started` commits, so that run is never in the log. Its exit (SIGTERM, no run
    going) must be recorded as the stop it was, also when a start lands before `finish` reads s6's
    state: it was once recorded `crashed ... SIGTERM` with no pid, counted by the breaker."""
    import sys

    from conftest import HERMES  # noqa: F401 (the rig's own hermes)

    watch = rig.start_watch()
    name = "cycling"
    rig.append("create", name)
    kwargs = {} if rig.user.is_self else {"user": rig.user.uid, "group": rig.user.gid, "extra_groups": []}
    appender = subprocess.Popen([sys.executable, "-c", _APPENDER], env=rig.env(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, **kwargs)

    def intent(kind: str) -> None:
        appender.stdin.write(f"{kind} {name}\n")
        appender.stdin.flush()
        assert appender.stdout.readline() == "ok\n", f"the appender failed ({appender.poll()})"

    try:
        for _ in range(25):
            before = rig.status(name)
            intent("start")
            # s6 has forked the run hook: stop at once, while it is still recording the start.
            wait_for(lambda: (st := rig.status(name)) and st["up"] and st != before, 5, "the run hook forked",
                     interval=0.001)
            intent("stop")
            wait_for(lambda: rig.status(name)["wantedup"] is False, 5, "the projector's s6-svc -d", interval=0.001)
            intent("start")  # lands while the killed hook's finish may still be reading s6's state
            wait_for(lambda: rig.status(name)["wantedup"] is True, 5, "the projector's s6-svc -u", interval=0.001)
            intent("stop")
            wait_for(lambda: rig.status(name) == {"up": False, "pid": -1, "wantedup": False}, 10, "down")
    finally:
        appender.stdin.close()
        appender.wait(timeout=10)

    def settled():
        history = rig.history(name)
        # Every start intent's process, recorded or not, has an exit (recorded ones by their run).
        return history if history[-1]["actor"] == "supervisor" else None

    history = wait_for(settled, 10, "the last exit recorded")
    exits = [row for row in history if row["actor"] == "supervisor" and row["type"] in ("stopped", "crashed")]
    assert not [row for row in history if row["type"] == "crashed"], [
        (row["type"], row["reason"], row["pid"], row["signal"]) for row in exits if row["type"] == "crashed"]
    unrecorded = [row for row in exits if row["pid"] is None]
    assert unrecorded, "no stop landed before a run was recorded: the test did not make the race it is about"
    assert {(row["type"], row["reason"], row["signal"]) for row in unrecorded} == {("stopped", "requested", 15)}
    assert rig.stop_watch(watch) == 0
