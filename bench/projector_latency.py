"""Event-to-slot latency: from the commit of a `started` intent to s6-svstat reporting the slot up.

The watch daemon (inotify) against the same daemon with ``--poll-only`` at
its default interval, in one run on one machine: real s6-svscan, real slot
hooks, a one-process test gateway. Starts rotate over a few profiles, and
each is stopped (and its finish has run) before it is started again.

    python bench/projector_latency.py [--starts 200] [--poll-starts 20] [--under-load] [--json PATH]

Targets (issue 3): p50 <= 30 ms, p99 <= 100 ms, and >= 10x better than poll-only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import load_average, under_load, write_part  # noqa: E402
from projector_common import BIN_DIR, Scanner, bench_user, environment, give_to, hermes, percentile  # noqa: E402

from store_access import EventStore, NewEvent, append_all, open_store  # noqa: E402

PROFILES = [f"lat-{i}" for i in range(4)]
GATEWAY = "#!/usr/bin/perl\n$SIG{TERM} = sub { exit 0 };\nsleep 1 while 1;\n"


def svstat(slot: Path) -> list[str]:
    result = subprocess.run(["s6-svstat", "-o", "up,wantedup", str(slot)], capture_output=True, text=True, timeout=10)
    return result.stdout.split()


def wait_until(predicate, timeout: float, what: str, pause: float = 0.001) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(pause)


def measure(store: EventStore, scandir: Path, starts: int) -> list[float]:
    latencies = []
    for number in range(starts):
        name = PROFILES[number % len(PROFILES)]
        slot = scandir / f"gateway-{name}"
        # Down, and its finish returned: the start below measures the projector, not leftovers.
        subprocess.run(["s6-svwait", "-D", "-t", "10000", str(slot)], check=True, timeout=15)
        store.append(NewEvent(name, "started", "cli", "up"))  # returns after COMMIT
        committed = time.perf_counter()
        wait_until(lambda: svstat(slot)[:1] == ["true"], 30, f"{name} up")
        latencies.append(time.perf_counter() - committed)
        store.append(NewEvent(name, "stopped", "cli", "down"))
        wait_until(lambda: svstat(slot)[1:2] == ["false"], 30, f"{name} wanted down", pause=0.005)
    return latencies


def run_daemon(env, store, scandir, starts, *args) -> list[float]:
    daemon = subprocess.Popen([str(BIN_DIR / "hermes-state"), "watch", *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # its start pass
        return measure(store, scandir, starts)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)


def summary(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"{label:<22} n={len(ms):<4} p50 {percentile(ms, 0.5):7.1f} ms   p95 {percentile(ms, 0.95):7.1f} ms   "
            f"p99 {percentile(ms, 0.99):7.1f} ms   max {max(ms):7.1f} ms   mean {statistics.mean(ms):7.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=200)
    parser.add_argument("--poll-starts", type=int, default=20)
    parser.add_argument("--under-load", action="store_true", help="run stress-ng --cpu 2 beside it")
    parser.add_argument("--json", help="write the figures here (for run_all)")
    args = parser.parse_args()

    user = bench_user()
    work = Path(tempfile.mkdtemp(prefix="hermes-bench-latency-"))
    work.chmod(0o755)
    home, scandir = work / "home", work / "service"
    home.mkdir()
    gateway = work / "gateway"
    gateway.write_text(GATEWAY)
    gateway.chmod(0o755)
    env = environment(home, scandir, user, HERMES_GATEWAY_COMMAND=f"{gateway} {{profile}}")
    give_to(home, user)
    hermes(env, "migrate")
    give_to(home, user)
    os.environ.update(env)
    scanner = Scanner(scandir, env)
    try:
        hermes(env, "boot")
        with open_store(env) as store, under_load(args.under_load) as load:
            append_all(store, [NewEvent(name, "created", "cli", "down") for name in PROFILES])
            give_to(home, user)  # files SQLite made for this process belong to the user too
            before = load_average()
            inotify = run_daemon(env, store, scandir, args.starts)
            polling = run_daemon(env, store, scandir, args.poll_starts, "--poll-only")
            after = load_average()
    finally:
        scanner.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(summary("watch (inotify)", inotify))
    print(summary("watch --poll-only (2 s)", polling))
    p50, p99 = percentile(inotify, 0.5) * 1000, percentile(inotify, 0.99) * 1000
    ratio = percentile(polling, 0.5) / percentile(inotify, 0.5)
    print(f"poll-only p50 / inotify p50 = {ratio:.1f}x")
    verdicts = [("p50 <= 30 ms", p50 <= 30), ("p99 <= 100 ms", p99 <= 100), (">= 10x better than poll-only", ratio >= 10)]
    for text, ok in verdicts:
        print(f"  {'ok  ' if ok else 'MISS'} {text}")
    write_part(args.json, {
        "latency_ms": {name: {"n": len(values), "p50": percentile(values, 0.5) * 1000,
                              "p95": percentile(values, 0.95) * 1000, "p99": percentile(values, 0.99) * 1000,
                              "max": max(values) * 1000}
                       for name, values in (("inotify", inotify), ("poll-only (2 s)", polling))},
        "poll_over_inotify_p50": ratio, "under_load": load, "load_average_before": before, "load_average_after": after,
        "verdicts": dict(verdicts),
    })
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
