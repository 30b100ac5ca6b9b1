"""A gateway slow to stop outlives its profile's life (issue 11, item 9, the last one).

Real s6-svscan, the real slot hooks, appends as the unprivileged user. The
s6 commands the projector would send are sent here by hand, so the old
gateway's exit lands at a known moment: after the profile was deleted,
created again and asked to start, on the same slot.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from projector_support import rig_for, wait_for
from store_helpers import open_store, settings_for

from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.exits import ObservedExit
from hermes_lifecycle.hooks import record_exit

# After SIGTERM it goes on until the test creates RELEASE (a gateway draining its connections),
# then exits 0: the old run's exit lands exactly when the test says, not after a guessed delay.
RELEASE = "release-the-old-gateway"
SLOW_GATEWAY = r"""#!/usr/bin/perl
my $term = 0;
$SIG{TERM} = sub { $term = 1 };
sleep 1 until $term;
select(undef, undef, undef, 0.05) until -e $ARGV[1];
exit 0;
"""


# -- the rule, in-process on a real file ------------------------------------------
def _second_life(tmp_path, supervisor: int) -> None:
    """slow: a run started by ``supervisor``, deleted while it ran, created again, asked to start."""
    with open_store(tmp_path) as store:
        for event in (
            NewEvent("slow", "created", "cli", "down"),
            NewEvent("slow", "started", "cli", "up"),
            NewEvent("slow", "started", "supervisor", pid=4242, data={"supervisor": supervisor}),
            NewEvent("slow", "deleted", "cli", "down"),
            NewEvent("slow", "created", "cli", "down"),
            NewEvent("slow", "started", "cli", "up"),
        ):
            store.append(event)


def _exit_now(tmp_path, code: str = "0"):
    with open_store(tmp_path) as store:
        return record_exit(store, "slow", ObservedExit.parse(code, "0", "true"),
                           settings_for(tmp_path).crash_loop_policy())


def test_an_exit_from_the_supervisor_of_the_earlier_life_is_recorded_nowhere(tmp_path):
    _second_life(tmp_path, supervisor=os.getppid())  # record_exit's parent here is this test's parent
    decision, appended = _exit_now(tmp_path)
    assert (decision.outcome, appended, decision.exit_status) == ("earlier-life", [], 0)


@pytest.mark.parametrize("code, outcome", [("0", "exited"), ("1", "crashed")])
def test_an_exit_from_another_supervisor_is_this_lifes(tmp_path, code, outcome):
    """A new slot's run whose start went unrecorded: its exit counts, as before."""
    _second_life(tmp_path, supervisor=os.getppid() + 1)
    decision, appended = _exit_now(tmp_path, code)
    assert decision.outcome == outcome and appended


@pytest.fixture
def rig(world_tmp, home):
    command = f"{world_tmp / 'gateway'} {{profile}} {world_tmp / RELEASE}"
    with rig_for(world_tmp, home, HERMES_GATEWAY_COMMAND=command) as rig:
        (rig.root / "gateway").write_text(SLOW_GATEWAY)
        rig.start_scanner()
        yield rig


def supervisor_starts(rig, name: str) -> list[dict]:
    return [row for row in rig.history(name) if row["type"] == "started" and row["actor"] == "supervisor"]


def svc(rig, flag: str, name: str) -> None:
    """What the projector would send; sent by hand here to choose the moment."""
    subprocess.run(["s6-svc", flag, str(rig.scandir / f"gateway-{name}")], check=True, timeout=10)


@pytest.mark.slow
def test_the_old_runs_exit_is_recorded_nowhere_after_delete_and_create(rig):
    rig.cli("create", "slow")
    rig.cli("start", "slow")
    boot = rig.boot()  # makes the slot, up
    assert boot.returncode == 0
    old_pid = wait_for(lambda: rig.running_pid("slow"), 10, "slow up")
    wait_for(lambda: supervisor_starts(rig, "slow"), 10, "its start recorded")

    rig.cli("delete", "slow", "--yes")
    svc(rig, "-d", "slow")  # SIGTERM: the gateway keeps going until released
    rig.cli("create", "slow")
    rig.cli("start", "slow")
    svc(rig, "-u", "slow")  # the new life wants it up: the same slot, still stopping
    created = max(row["position"] for row in rig.history("slow") if row["type"] == "created")
    assert rig.running_pid("slow") == old_pid, "the old gateway stopped before the new life began"
    (rig.root / RELEASE).touch()  # now the old run exits 0, with s6 wanting the slot up

    new_pid = wait_for(lambda: (pid := rig.running_pid("slow")) and pid != old_pid and pid,
                       20, "the new life's gateway")
    wait_for(lambda: [r for r in supervisor_starts(rig, "slow") if r["position"] > created], 10,
             "the new life's start recorded")
    after = [(row["type"], row["actor"], row["reason"], row["pid"]) for row in rig.history("slow")
             if row["position"] > created]
    # The old run's exit 0 with s6 wanting it up would have read as `exited` and held the new life down.
    assert after == [("started", "cli", None, None), ("started", "supervisor", None, new_pid)]
    status = json.loads(rig.as_user("status", "slow", "--json").stdout)
    assert (status["desired"], status["held_down_by"], status["pid"]) == ("up", None, new_pid)
