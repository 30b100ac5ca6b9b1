"""The benchmarks' helpers that a figure depends on (bench/ itself is not run by `make test`).

- The scaling bench's scanner stand-in must look to boot exactly like a
  listening s6-svscan, or its boot figures would measure an error path.
- The durable-writes bench's workload must be a valid history: the store
  accepts every event and `hermes-state doctor` finds the file healthy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from peers import PROFILES, Lifecycle, Ours  # noqa: E402
from scaling import ScannerStandIn  # noqa: E402

from hermes_lifecycle.projector.s6 import S6  # noqa: E402

HERMES = Path(sys.executable).parent / "hermes-state"


def test_scanner_stand_in_accepts_a_rescan_as_s6_svscan_does(tmp_path):
    scandir = tmp_path / "service"
    assert not S6.scanner_running(scandir)
    stand_in = ScannerStandIn(scandir)
    try:
        assert S6.scanner_running(scandir)
        result = subprocess.run(["s6-svscanctl", "-a", str(scandir)], capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr
    finally:
        received = stand_in.close()
    assert received == "a"
    assert not S6.scanner_running(scandir)  # nobody reads the FIFO any more


def test_lifecycle_gives_every_side_the_same_valid_sequence():
    first, second = Lifecycle(5), Lifecycle(5)
    sequence = [first.next() for _ in range(500)]
    assert sequence == [second.next() for _ in range(500)]
    open_runs: dict[str, int] = {}
    for name, kind, pid, code in sequence:
        assert name in PROFILES
        if kind == "started":
            assert name not in open_runs
            open_runs[name] = pid
        else:
            assert open_runs.pop(name) == pid  # an exit always closes that profile's open run
            assert (code == 1) == (kind == "crashed")


def test_the_durable_writes_workload_is_a_healthy_store(tmp_path):
    writer = Ours(tmp_path)
    writer.run(300)
    writer.close()
    home = tmp_path / "home"
    result = subprocess.run([str(HERMES), "doctor"], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "HERMES_HOME": str(home)})
    assert result.returncode == 0, result.stdout + result.stderr
    listing = subprocess.run([str(HERMES), "list", "--json"], capture_output=True, text=True,
                             timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(home), "HERMES_HOME": str(home)})
    assert listing.returncode == 0, listing.stderr
    assert {row["profile"] for row in map(json.loads, listing.stdout.splitlines())} >= set(PROFILES)
