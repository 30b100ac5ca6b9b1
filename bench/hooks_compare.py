"""The slot hooks beside what they replace: `record-start` and `record-exit` against `python -c pass` and a shell finish.

Wall time from process start to exit (what s6's ``run`` delays the gateway
by, and what ``finish`` spends of its five seconds), four series
interleaved run by run so they share the machine's noise:

- ``python -c pass``: the floor of any Python hook, same interpreter;
- ``sh finish``: a plain POSIX-shell finish script of the kind shipped
  before the store (written here: it writes ``gateway_state.json`` with
  printf, a temporary file and mv; no fsync, no history);
- ``hermes-state record-start`` (the gateway is ``/bin/true``);
- ``hermes-state record-exit``, a crash of a recorded run: the costliest
  path (breaker query and append in one write transaction).

The store holds a bulk-loaded log (1,000 profiles, 100k events by default).
bench/record_exit.py measures the same hooks in more detail (CPU, imports).

    .venv/bin/python bench/hooks_compare.py [--runs 40] [--events 100000] [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bulk_log import load_log  # noqa: E402
from machine import load_average, log, under_load, write_part  # noqa: E402
from projector_common import percentile  # noqa: E402
from store_access import NewEvent, db_path, home_env, open_store  # noqa: E402
from timing import run_timed  # noqa: E402

PROFILE = "bench-crasher"
SH_FINISH = """#!/bin/sh
# finish: $1 is the exit code (256 when a signal killed it), $2 the signal.
state_file="$HERMES_HOME/gateway_state.json"
if [ "$1" -eq 0 ]; then state=stopped; else state=crashed; fi
printf '{"gateway_state": "%s", "exit_code": %s, "signal": %s, "updated_at": "%s"}\\n' \\
  "$state" "$1" "$2" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$state_file.tmp"
mv "$state_file.tmp" "$state_file"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--under-load", action="store_true", help="run stress-ng --cpu 2 beside it")
    parser.add_argument("--json", help="write the figures here (for run_all)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="hermes-bench-hooks-"))
    try:
        env = home_env(home, HERMES_CRASH_LOOP="1000000/60s",  # never trip the breaker: every exit is a crash
                       HERMES_GATEWAY_COMMAND="/bin/true",
                       HERMES_STATE_HOOKS_UNSUPERVISED="1")  # run outside a slot (docs/cli.md)
        db = db_path(env)
        db.parent.mkdir(parents=True)
        load_log(db, profiles=args.profiles, events=args.events)
        with open_store(env) as store:
            store.append(NewEvent(PROFILE, "created", "cli", "down"))
            store.append(NewEvent(PROFILE, "started", "cli", "up"))
        finish = home / "finish"
        finish.write_text(SH_FINISH)
        finish.chmod(0o755)
        hermes = str(Path(sys.executable).parent / "hermes-state")
        series = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "sh finish (gateway_state.json)": ["/bin/sh", str(finish), "1", "0"],
            "hermes-state record-start": [hermes, "record-start", f"gateway-{PROFILE}"],
            "hermes-state record-exit": [hermes, "record-exit", f"gateway-{PROFILE}", "1", "0", "true"],
        }
        times: dict[str, list[float]] = {name: [] for name in series}
        cpu: dict[str, list[float]] = {name: [] for name in series}
        with under_load(args.under_load) as load:
            before = load_average()
            for argv in series.values():  # warm the page cache and the .pyc files
                run_timed(argv, env, cwd=str(home))
            for _ in range(args.runs):
                for name, argv in series.items():
                    wall, cpu_seconds, _ = run_timed(argv, env, cwd=str(home))
                    times[name].append(wall * 1000)
                    cpu[name].append(cpu_seconds * 1000)
            after = load_average()
    finally:
        shutil.rmtree(home, ignore_errors=True)

    figures = {"hooks_ms": {name: {"p50": statistics.median(v), "p95": percentile(v, 0.95), "max": max(v),
                                   "cpu_p50": statistics.median(cpu[name])} for name, v in times.items()},
               "runs": args.runs, "events": args.events, "under_load": load,
               "load_average_before": before, "load_average_after": after}
    p50 = {name: row["p50"] for name, row in figures["hooks_ms"].items()}
    figures["ratios_p50"] = {
        "record-start / python -c pass": p50["hermes-state record-start"] / p50["python -c pass"],
        "record-exit / python -c pass": p50["hermes-state record-exit"] / p50["python -c pass"],
        "record-exit / sh finish": p50["hermes-state record-exit"] / p50["sh finish (gateway_state.json)"],
    }
    figures["verdicts"] = {"record-exit p95 <= 500 ms": figures["hooks_ms"]["hermes-state record-exit"]["p95"] <= 500}
    log(f"hooks, {args.runs} runs interleaved, log of {args.events} events; load average {before} -> {after}")
    for name, row in figures["hooks_ms"].items():
        print(f"  {name:<32} p50 {row['p50']:7.1f} ms  p95 {row['p95']:7.1f} ms  max {row['max']:7.1f} ms  "
              f"cpu p50 {row['cpu_p50']:6.1f} ms")
    for name, ratio in figures["ratios_p50"].items():
        print(f"  {name:<32} {ratio:6.1f}x (p50)")
    write_part(args.json, figures)
    return 0 if all(figures["verdicts"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
