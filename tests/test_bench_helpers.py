"""The benchmarks' helpers that a figure depends on (bench/ itself is not run by `make test`).

- The scaling bench's scanner stand-in must look to boot exactly like a
  listening s6-svscan, or its boot figures would measure an error path.
- The durable-writes bench's workload must be a valid history: the store
  accepts every event and `hermes-state doctor` finds the file healthy.
"""

from __future__ import annotations

import json
import shutil
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
                            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "HERMES_HOME": str(home),
                                 "HERMES_STATE_DOCTOR_DIR": str(tmp_path / "doctor-checkpoints")})
    assert result.returncode == 0, result.stdout + result.stderr
    listing = subprocess.run([str(HERMES), "list", "--json"], capture_output=True, text=True,
                             timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(home), "HERMES_HOME": str(home)})
    assert listing.returncode == 0, listing.stderr
    assert {row["profile"] for row in map(json.loads, listing.stdout.splitlines())} >= set(PROFILES)


# -- how `make bench` runs -----------------------------------------------------------------------
REPO = BENCH.parent
RECORDED = [BENCH / "results.json", BENCH / "results-fleet.json", *sorted((REPO / "docs").glob("perf-*.png"))]


def run_all(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH / "run_all.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_a_bench_run_writes_to_a_temporary_place_and_changes_no_recorded_file():
    before = {path: path.read_bytes() for path in RECORDED}
    result = run_all("--quick", "latency")  # the cheapest item that runs a real measurement
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert {path: path.read_bytes() for path in RECORDED} == before
    wrote = next(line for line in result.stdout.splitlines() if line.startswith("wrote "))
    written = Path(wrote.split()[1])
    try:
        assert REPO not in written.parents and json.loads(written.read_text())["items"]["latency"]["figures"]
        assert "make bench-record" in wrote
    finally:
        shutil.rmtree(written.parent, ignore_errors=True)


def test_help_lists_every_item():
    result = run_all("--help")
    assert result.returncode == 0, result.stderr
    from run_all import ITEMS, LEGACY

    listed = result.stdout.split("items (default", 1)[1]
    for name in [*ITEMS, *LEGACY]:
        assert f"\n  {name} " in listed, name
    assert "--record" in result.stdout


def test_only_the_items_that_need_stress_ng_or_postgresql_ask_for_them():
    from run_all import ITEMS, debian_packages_missing

    with_stress = {name for name in ITEMS if "stress-ng" in debian_packages_missing([name], False)}
    with_postgres = {name for name in ITEMS if "postgresql" in debian_packages_missing([name], False)}
    under_load = {name for name, (_, full, _) in ITEMS.items() if "--under-load" in full}
    if shutil.which("stress-ng") is None:
        assert with_stress == under_load and "peers-under-load" in under_load
        assert "stress-ng" in debian_packages_missing(["hooks"], True)  # --under-load
    assert with_stress <= under_load and with_postgres <= {"fleet", "fleet-under-load"}
    assert debian_packages_missing(["hooks", "latency"], False) == []
