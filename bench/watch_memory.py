"""The watch daemon's resident size: at start, and as 100k events pass through it.

A real `hermes-state watch` (inotify) on a real s6-svscan; ten profiles,
down. Events are appended through the store in transactions of 1,000
(each profile started and stopped by the CLI in turn, so every transaction
leaves them down and the daemon reads them all without starting a gateway).
Its VmRSS (``/proc/PID/status``) is read after its start pass and after
every 10,000 events; at the end one intent that needs an action makes the
daemon log a pass, which shows it has read up to the last event.

    .venv/bin/python bench/watch_memory.py [--events 100000] [--json PATH]

Targets: under 80 MB; flat: the end within 5% of the size after the first
batch. The first batch fills SQLite's page cache (2 MB by default, a bound
of its own): growth up to there is the cache, not a leak; from there on the
size must not move.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import load_average, log, under_load, write_part  # noqa: E402
from projector_common import BIN_DIR, Scanner, bench_user, environment, give_to, hermes  # noqa: E402
from store_access import NewEvent, append_all, open_store  # noqa: E402

PROFILES = [f"mem-{i}" for i in range(10)]
BATCH = 1000
LIMIT_MB = 80


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for pid {pid}")


def wait_for_up(log_path: Path, profile: str, after_position: int, timeout: float) -> int:
    """Wait for the daemon's pass that brings ``profile`` up; returns the last position that pass had read.

    The pass plans from the projection, which already holds the final intent
    even when its log read stopped one event short; it must have read every
    event of the batches (``after_position``).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                report = json.loads(line)
                if any(a["action"] == "up" and a["profile"] == profile for a in report["actions"]):
                    upto = report["positions"]["upto"]
                    if upto < after_position:
                        raise SystemExit(f"the daemon brought {profile} up having read only up to {upto}")
                    return upto
        time.sleep(0.1)
    tail = log_path.read_text()[-800:]
    raise SystemExit(f"the watch daemon did not bring {profile} up in {timeout:g} s; its log ends: {tail}")


def batch() -> list[NewEvent]:
    """1,000 intents: each profile up then down again, so the batch ends where it began."""
    events = []
    while len(events) < BATCH:
        for name in PROFILES:
            events.append(NewEvent(name, "started", "cli", "up"))
            events.append(NewEvent(name, "stopped", "cli", "down"))
    return events[:BATCH]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--under-load", action="store_true", help="run stress-ng --cpu 2 beside it")
    parser.add_argument("--json", help="write the figures here (for run_all)")
    args = parser.parse_args()

    user = bench_user()
    work = Path(tempfile.mkdtemp(prefix="hermes-bench-memory-"))
    work.chmod(0o755)
    scan_parent = Path(tempfile.mkdtemp(prefix="hermes-bench-scan-", dir="/dev/shm"))
    scan_parent.chmod(0o755)
    home, scandir = work / "home", scan_parent / "service"
    home.mkdir()
    env = environment(home, scandir, user, HERMES_GATEWAY_COMMAND="/bin/sleep 3600")
    give_to(home, user)
    hermes(env, "migrate")
    give_to(home, user)
    scanner = Scanner(scandir, env)
    samples: list[tuple[int, float]] = []
    daemon = None
    try:
        hermes(env, "boot")
        with open_store(env) as store, under_load(args.under_load) as load:
            append_all(store, [NewEvent(name, "created", "cli", "down") for name in PROFILES])
            give_to(home, user)
            before = load_average()
            output = open(work / "watch.log", "w")
            daemon = subprocess.Popen([str(BIN_DIR / "hermes-state"), "watch"], env=env,
                                      stdout=output, stderr=subprocess.STDOUT)
            time.sleep(2.0)  # its start pass
            samples.append((0, resident_mb(daemon.pid)))
            appended = 0
            while appended < args.events:
                with store.writing() as tx:
                    for event in batch():
                        tx.append(event)
                appended += BATCH
                time.sleep(0.02)  # a wake-up per transaction, as a busy host would give it
                if appended % 10_000 == 0:
                    samples.append((appended, resident_mb(daemon.pid)))
            # One intent that does need an action: its log line shows the daemon read up to the end.
            last_of_batches = store.last_position()
            store.append(NewEvent(PROFILES[0], "started", "cli", "up"))
            reached = wait_for_up(work / "watch.log", PROFILES[0], last_of_batches, timeout=60)
            samples.append((appended, resident_mb(daemon.pid)))
            after = load_average()
            if daemon.poll() is not None:
                raise SystemExit(f"the watch daemon exited {daemon.returncode}: {(work / 'watch.log').read_text()[-500:]}")
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
        scanner.stop()
        shutil.rmtree(scan_parent, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    start, warm, end = samples[0][1], samples[min(1, len(samples) - 1)][1], samples[-1][1]
    peak = max(mb for _, mb in samples)
    figures = {"samples": [{"events": n, "rss_mb": mb} for n, mb in samples], "start_mb": start, "warm_mb": warm,
               "end_mb": end, "peak_mb": peak, "end_over_start": end / start, "end_over_warm": end / warm,
               "events": args.events, "daemon_read_up_to": reached, "under_load": load,
               "load_average_before": before, "load_average_after": after}
    figures["verdicts"] = {f"watch daemon under {LIMIT_MB} MB": peak < LIMIT_MB,
                           "watch daemon flat (end within 5% of its size after the first batch)": abs(end / warm - 1) <= 0.05}
    log(f"watch daemon memory across {args.events} events; load average {before} -> {after}")
    print("  " + "  ".join(f"{n // 1000}k: {mb:.1f}" for n, mb in samples) + " (MB)")
    print(f"  start {start:.1f} MB, after the first batch {warm:.1f} MB, end {end:.1f} MB "
          f"({end / warm:.3f}x the first batch's, {end / start:.3f}x the start), peak {peak:.1f} MB")
    write_part(args.json, figures)
    return 0 if all(figures["verdicts"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
