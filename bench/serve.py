"""Benchmark: `hermes-state serve`'s `/`, `/metrics` and a profile page on 1,000 profiles and a 1M-event log.

The budget is 100 ms a request on this machine; the figure to compare across
machines is the ratio to a plain `SELECT count(*) FROM events` of the same
store (a fresh read-only connection each time, the driver the store uses),
measured in the same run. Requests go over HTTP to a real server
subprocess, one at a time, interleaved with the baseline (count, /,
/metrics, ...) so drift in the machine's load hits all alike; medians are
compared. The log ends now (its times are laid out backwards from the
build), so "crashes in the last hour" and the 24-hour timeline see a
realistic slice, and `agent-00000` has 100,000 of the events.

    .venv/bin/python bench/serve.py          # builds bench/results/serve-1m.db once (~1-2 min), reuses it
    .venv/bin/python bench/serve.py --runs 50 --db /tmp/other.db
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bulk_log import load_log  # noqa: E402

from hermes_lifecycle.backends.sqlite.driver import sqlite_module  # noqa: E402

HERMES = Path(sys.executable).parent / "hermes-state"
BUDGET_MS = 100.0
MEAN_GAP_SECONDS = 30.0  # bulk_log spaces events 5 ms to 60 s apart at random
HEAVY = "agent-00000"


def build(db: Path, events: int) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    start = datetime.now(timezone.utc) - timedelta(seconds=events * MEAN_GAP_SECONDS)
    print(f"building {db}: 1000 profiles, {events} events ({HEAVY}: 100000), ending about now ...", file=sys.stderr)
    began = time.perf_counter()
    load_log(db, profiles=1000, events=events, heavy_events=100_000, start=start)
    print(f"built in {time.perf_counter() - began:.0f} s", file=sys.stderr)


def count_events(db: Path) -> float:
    began = time.perf_counter()
    connection = sqlite_module().connect(f"file:{db}?mode=ro", uri=True)
    try:
        connection.execute("SELECT count(*) FROM events").fetchone()
    finally:
        connection.close()
    return time.perf_counter() - began


def fetch(url: str) -> float:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as reply:
        reply.read()
        if reply.status != 200:
            raise SystemExit(f"{url}: HTTP {reply.status}")
    return time.perf_counter() - began


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=HERE / "results" / "serve-1m.db")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    if not args.db.exists():
        build(args.db, args.events)

    home = tempfile.mkdtemp(prefix="hermes-bench-")
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "HERMES_HOME": home,
           "HERMES_STATE_DB": str(args.db), "LANG": "C.UTF-8"}
    server = subprocess.Popen([str(HERMES), "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                fetch(base + "/metrics")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"hermes-state serve did not answer: {server.stderr.read().decode()}")
                time.sleep(0.1)
        probes = {
            "SELECT count(*) FROM events": lambda: count_events(args.db),
            "GET /": lambda: fetch(base + "/"),
            "GET /metrics": lambda: fetch(base + "/metrics"),
            f"GET /profiles/{HEAVY}": lambda: fetch(f"{base}/profiles/{HEAVY}"),
            "GET /profiles/agent-00500": lambda: fetch(f"{base}/profiles/agent-00500"),
        }
        for probe in probes.values():  # warm the page cache
            probe()
        times: dict[str, list[float]] = {name: [] for name in probes}
        for _ in range(args.runs):
            for name, probe in probes.items():
                times[name].append(probe())
    finally:
        server.terminate()
        server.wait(timeout=10)

    floor = statistics.median(times["SELECT count(*) FROM events"])
    load = os.getloadavg()[0]
    print(f"log: {args.db} ({args.db.stat().st_size / 1e6:.0f} MB), {args.runs} interleaved runs each, "
          f"load average {load:.2f}, medians:")
    over = []
    for name, samples in times.items():
        median = statistics.median(samples)
        p90 = sorted(samples)[int(len(samples) * 0.9) - 1]
        print(f"  {median * 1000:7.1f} ms  (p90 {p90 * 1000:6.1f})  {median / floor:5.2f}x  {name}")
        if name.startswith("GET") and median * 1000 > BUDGET_MS:
            over.append(name)
    print("every request within the 100 ms budget" if not over else f"OVER the 100 ms budget: {', '.join(over)}")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
