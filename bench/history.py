"""Benchmark: `hermes-state history NAME --limit 50` on a 1M-event log, against `hermes-state --version`.

`hermes-state --version` is the floor every command pays (the interpreter, the
imports, the argument tree); history must stay within 1.5x of it, so the
query is never what a person waits for. The log: 1,000 profiles, 1,000,000
events, 100,000 of them on `agent-00000` (the heavy profile measured).
Runs are interleaved (version, history, version, ...) so drift in the
machine's load hits both alike; the medians are compared.

    .venv/bin/python bench/history.py            # builds bench/results/history-1m.db once (~2 min), reuses it
    .venv/bin/python bench/history.py --runs 50 --db /tmp/other.db
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bulk_log import load_log  # noqa: E402

HERMES = Path(sys.executable).parent / "hermes-state"
LIMIT_RATIO = 1.5
HEAVY = "agent-00000"


def measure(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode().strip()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=HERE / "results" / "history-1m.db")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()

    if not args.db.exists():
        args.db.parent.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        print(f"building {args.db}: 1000 profiles, {args.events} events ({HEAVY}: 100000) ...", file=sys.stderr)
        load_log(args.db, profiles=1000, events=args.events, heavy_events=100_000)
        print(f"built in {time.perf_counter() - began:.0f} s", file=sys.stderr)

    home = tempfile.mkdtemp(prefix="hermes-bench-")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "HERMES_HOME": home,
        "HERMES_STATE_DB": str(args.db),
        "LANG": "C.UTF-8",
    }
    commands = {
        "hermes-state --version": [str(HERMES), "--version"],
        f"hermes-state history {HEAVY} --limit 50": [str(HERMES), "history", HEAVY, "--limit", "50"],
        f"hermes-state history {HEAVY} --limit 50 --json": [
            str(HERMES), "history", HEAVY, "--limit", "50", "--json"],
        "hermes-state history agent-00500 --limit 50": [
            str(HERMES), "history", "agent-00500", "--limit", "50"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm the page cache and the .pyc files
        measure(argv, env)
    for _ in range(args.runs):
        for name, argv in commands.items():
            times[name].append(measure(argv, env))

    floor = statistics.median(times["hermes-state --version"])
    print(f"log: {args.db} ({args.db.stat().st_size / 1e6:.0f} MB), {args.runs} interleaved runs each, medians:")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {median * 1000:7.1f} ms  (p90 {sorted(samples)[int(len(samples) * 0.9) - 1] * 1000:6.1f})"
              f"  {median / floor:4.2f}x  {name}")
    ratio = statistics.median(times[f"hermes-state history {HEAVY} --limit 50"]) / floor
    verdict = "within" if ratio <= LIMIT_RATIO else "OVER"
    print(f"history / version = {ratio:.2f} ({verdict} the {LIMIT_RATIO}x budget)")
    return 0 if ratio <= LIMIT_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
