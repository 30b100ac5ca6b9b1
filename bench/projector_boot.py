"""The boot pass for 1,000 profiles with 10k and with 1M events in the log: its time must not grow with history.

Both logs are loaded in bulk (bench/bulk_log.py: one transaction, chain and
projection computed). Each round starts a fresh s6-svscan on an empty scan
directory on a tmpfs (as a container's /run/service) and times `hermes-state boot` from process
start to exit; rounds alternate between the two logs so drift hits both.

The slots' own hooks are replaced on the scan directory's PATH by a stub
that sleeps (record-start) or exits 0 (record-exit): a thousand real
gateways with their Python hooks cannot start at once on a small machine,
and they start after boot has exited anyway. Boot itself is the real one.

    python bench/projector_boot.py [--rounds 5] [--fixtures DIR]

Target (issue 3): wall-time ratio 1M / 10k <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bulk_log import load_log  # noqa: E402
from projector_common import Scanner, bench_user, environment, give_to, hermes  # noqa: E402

PROFILES = 1000
SIZES = {"10k": 10_000, "1M": 1_000_000}
STUB = """#!/bin/sh
# Stands in for `hermes-state` inside the slots only (see the module docstring).
case "$1" in
  record-start) exec sleep 3600 ;;
  *) exit 0 ;;
esac
"""


def fixture(directory: Path, label: str) -> Path:
    path = directory / f"boot-{label}.db"
    if not path.exists():
        began = time.perf_counter()
        load_log(path, profiles=PROFILES, events=SIZES[label])
        print(f"loaded {label} events over {PROFILES} profiles in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return path


def one_boot(work: Path, scan_parent: Path, db: Path, user, stub_dir: Path) -> tuple[float, float, int]:
    """Wall time of one boot (s), its pass's own duration (ms), slots made."""
    home, scandir = work / "home", scan_parent / "service"
    shutil.rmtree(scandir, ignore_errors=True)
    env = environment(home, scandir, user, HERMES_STATE_DB=str(db))
    scanner_env = dict(env, PATH=f"{stub_dir}:{env['PATH']}")
    scanner = Scanner(scandir, scanner_env)
    try:
        began = time.perf_counter()
        result = hermes(env, "boot")
        wall = time.perf_counter() - began
    finally:
        scanner.stop()
    report = json.loads(result.stdout.splitlines()[-1])
    slots = sum(1 for a in report["actions"] if a["action"].startswith("create-"))
    return wall, report["duration_ms"], slots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fixtures", type=Path, help="keep the two logs here and reuse them")
    parser.add_argument("--scan-on", type=Path, default=Path("/dev/shm"),
                        help="where the scan directory goes: a tmpfs, as /run/service is in the container "
                             "(default /dev/shm; the temporary directory when it does not exist)")
    args = parser.parse_args()

    user = bench_user()
    work = Path(tempfile.mkdtemp(prefix="hermes-bench-boot-"))
    work.chmod(0o755)
    scan_parent = Path(tempfile.mkdtemp(prefix="hermes-bench-scan-", dir=args.scan_on if args.scan_on.is_dir() else work))
    scan_parent.chmod(0o755)
    fixtures = args.fixtures or work
    fixtures.mkdir(parents=True, exist_ok=True)
    stub_dir = work / "stub"
    stub_dir.mkdir()
    (stub_dir / "hermes-state").write_text(STUB)
    (stub_dir / "hermes-state").chmod(0o755)
    (work / "home").mkdir()
    try:
        dbs = {label: fixture(fixtures, label) for label in SIZES}
        for db in dbs.values():
            give_to(db.parent, user)
        give_to(work / "home", user)
        for label, db in dbs.items():
            one_boot(work, scan_parent, db, user, stub_dir)  # warm-up: the first boot also creates `default`
        times: dict[str, list[float]] = {label: [] for label in SIZES}
        passes: dict[str, list[float]] = {label: [] for label in SIZES}
        for _ in range(args.rounds):
            for label, db in dbs.items():
                wall, pass_ms, slots = one_boot(work, scan_parent, db, user, stub_dir)
                assert slots == PROFILES + 1, slots  # every profile and `default`
                times[label].append(wall)
                passes[label].append(pass_ms)
    finally:
        shutil.rmtree(scan_parent, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    for label in SIZES:
        print(f"boot, {PROFILES} profiles, {label:>3} events: median {statistics.median(times[label]) * 1000:7.0f} ms "
              f"(min {min(times[label]) * 1000:.0f}, max {max(times[label]) * 1000:.0f}; "
              f"its projection pass {statistics.median(passes[label]):.0f} ms), {args.rounds} rounds")
    ratio = statistics.median(times["1M"]) / statistics.median(times["10k"])
    print(f"1M / 10k wall-time ratio = {ratio:.2f}")
    print(f"  {'ok  ' if ratio <= 1.2 else 'MISS'} ratio <= 1.2")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
