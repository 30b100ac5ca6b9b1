"""Issue 11, item 5: one gateway that ignores SIGTERM must not stall every other profile.

Real s6-svscan, real hooks, the watch daemon as the projector's uid, every
append as the unprivileged user. Before the work queue, deleting such a
profile blocked each pass about 12 s (s6-svwait -D under the scan
directory's lock) and every other start and stop waited behind it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from projector_support import processes_under, rig_for, types, wait_for
from hermes_lifecycle.projector.slots import KILL_AFTER_MS

pytestmark = pytest.mark.slow

STUBBORN_KILL_MS = 2 * KILL_AFTER_MS  # what this test's slot is given (see below)
PROMPT = 2.0  # seconds: "the usual latency" is milliseconds; this only absorbs a loaded machine
RETRIES_SEEN = 3.5  # seconds of stubborn's removal being retried before the test ends it


@pytest.fixture
def rig(world_tmp, home):
    with rig_for(world_tmp, home, booted=True, HERMES_WATCH_POLL_INTERVAL="0.5") as rig:
        yield rig


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_deleting_a_gateway_that_ignores_sigterm_delays_no_other_profile(rig):
    rig.append("create", "stubborn", "alice", "bob")
    rig.append("start", "stubborn", "alice")
    watch = rig.start_watch()
    stubborn = wait_for(lambda: rig.running_pid("stubborn"), 10, "stubborn up")
    wait_for(lambda: rig.running_pid("alice"), 10, "alice up")
    for name in ("stubborn", "alice"):  # no pass for them is still to come (it would repair timeout-kill)
        wait_for(lambda: ("started", "supervisor", None) in types(rig.history(name)), 10, f"{name}'s start recorded")
    # s6 reads timeout-kill when it is told to go down: raised here from the slot's 10 s so that the
    # checks below, on a loaded machine, surely run while stubborn is still alive.
    (rig.scandir / "gateway-stubborn" / "timeout-kill").write_text(f"{STUBBORN_KILL_MS}\n")

    rig.cli("delete", "stubborn", "--yes")
    deleted_at = time.monotonic()
    wait_for(lambda: (st := rig.status("stubborn")) and not st["wantedup"], PROMPT, "s6 asked to bring stubborn down")
    assert _alive(stubborn)  # it ignores SIGTERM: its removal is now in progress, for seconds

    # Meanwhile the other profiles' starts and stops take effect at once, one after the other.
    rig.cli("start", "bob")
    wait_for(lambda: rig.running_pid("bob"), PROMPT, "bob up while stubborn's removal waits")
    rig.cli("stop", "alice")
    wait_for(lambda: rig.status("alice") == {"up": False, "pid": -1, "wantedup": False}, PROMPT,
             "alice down while stubborn's removal waits")
    rig.cli("stop", "bob")
    wait_for(lambda: rig.status("bob") == {"up": False, "pid": -1, "wantedup": False}, PROMPT, "bob down")
    assert _alive(stubborn), "the test proves nothing if stubborn was gone already"

    # The removal is retried meanwhile (after 0.05, 0.1, 0.2 ... s): give it RETRIES_SEEN seconds, some
    # six retries, which must not each log a line (checked below). Then its end, as s6's timeout-kill
    # would bring it 20 s after the stop (raised above for the checks' sake; the rest of those
    # seconds would be waiting for nothing): SIGKILL now. A retry then finishes the removal.
    time.sleep(max(0.0, RETRIES_SEEN - (time.monotonic() - deleted_at)))
    assert _alive(stubborn)
    subprocess.run(["s6-svc", "-k", str(rig.scandir / "gateway-stubborn")], check=True, timeout=10)
    wait_for(lambda: not _alive(stubborn), 10, "stubborn gone after its SIGKILL")
    wait_for(lambda: not [e for e in os.listdir(rig.scandir) if "stubborn" in e], 10, "stubborn's slot removed")
    assert not [p for p in processes_under(rig.scandir) if "stubborn" in p]
    assert rig.stop_watch(watch) == 0

    lines = [json.loads(line) for line in rig.watch_output().splitlines() if line.startswith("{")]
    done = [(a["action"], a["profile"]) for line in lines for a in line["actions"]]
    assert ("down", "stubborn") in done and ("remove", "stubborn") in done
    assert ("await", "stubborn") in done
    # A retry that still waits is not news: no log line made only of waiting after the first.
    only_waiting = [line for line in lines if {a["action"] for a in line["actions"]} == {"await"}]
    assert len(only_waiting) <= 1, only_waiting
    assert not [line for line in lines if line["errors"]]  # waiting is not a failure
