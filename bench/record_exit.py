"""What `hermes state record-exit` costs inside s6's five-second finish limit.

Wall time of the whole process (interpreter start to exit, as `finish`
pays it), measured beside `python -c pass` with the same interpreter: the
floor no Python hook can beat. The store holds a realistic log (bulk-loaded:
1,000 profiles, 100k events by default) and every measured exit takes the
costliest path: a crash of a recorded run, so the breaker reads the crash
times in its window and appends, all in one write transaction. Each exit
follows a `record-start` (gateway `/bin/true`), timed too, as s6 runs them:
start, exit, start, exit. Runs are interleaved so every series sees the
same machine noise. Target: record-exit p95 <= 0.5 s.

    .venv/bin/python bench/record_exit.py [--runs 100] [--events 100000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bulk_log import load_log  # noqa: E402

from hermes_state.events import NewEvent  # noqa: E402
from hermes_state.settings import Settings  # noqa: E402
from hermes_state.store import EventStore  # noqa: E402

TARGET_P95_SECONDS = 0.5
PROFILE = "bench-crasher"


def wall_time(argv: list[str], env: dict[str, str], expect: int) -> float:
    began = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - began
    if result.returncode != expect:
        raise SystemExit(f"{argv[:4]} exited {result.returncode}, expected {expect}: {result.stderr.strip()}")
    return elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="hermes-bench-record-exit-"))
    try:
        db = home / "state" / "profiles.db"
        db.parent.mkdir(parents=True)
        load_log(db, profiles=args.profiles, events=args.events)
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(home),
            "HERMES_HOME": str(home),
            "S6_PROFILE_GATEWAY_SCANDIR": str(home / "run" / "service"),
            # Never trip the breaker: every run takes the crash path.
            "HERMES_CRASH_LOOP": "1000000/60s",
            "HERMES_GATEWAY_COMMAND": "/bin/true",
        }
        with EventStore.open(Settings.from_env(env)) as store:
            store.append_all([
                NewEvent(PROFILE, "created", "cli", "down"),
                NewEvent(PROFILE, "started", "cli", "up"),
            ])
        hermes = str(Path(sys.executable).parent / "hermes")
        start = [hermes, "state", "record-start", f"gateway-{PROFILE}"]
        hook = [hermes, "state", "record-exit", f"gateway-{PROFILE}", "1", "0", "true"]
        floor = [sys.executable, "-c", "pass"]
        for argv in (floor, start, hook):  # warm the page cache
            wall_time(argv, env, 0)
        hook_times, start_times, floor_times = [], [], []
        for _ in range(args.runs):
            floor_times.append(wall_time(floor, env, 0))
            start_times.append(wall_time(start, env, 0))
            hook_times.append(wall_time(hook, env, 0))
        with EventStore.open(Settings.from_env(env), readonly=True) as store:
            crashes = store.stream(PROFILE, types=["crashed"])
        if len(crashes) != args.runs + 1 or any(event.run is None for event in crashes):
            raise SystemExit(f"expected {args.runs + 1} crashes, each naming its run; found {len(crashes)}")
    finally:
        shutil.rmtree(home, ignore_errors=True)

    def line(name: str, values: list[float]) -> str:
        return (f"{name:<26} p50 {statistics.median(values) * 1000:7.1f} ms   "
                f"p95 {percentile(values, 0.95) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms")

    hook_p95 = percentile(hook_times, 0.95)
    print(f"record-exit wall time, {args.runs} runs interleaved, log of {args.events} events "
          f"over {args.profiles} profiles (crash path: breaker query + append)")
    print(line("python -c pass (floor)", floor_times))
    print(line("hermes state record-start", start_times) + "   (to the gateway's exit)")
    print(line("hermes state record-exit", hook_times))
    print(f"ratio p50 {statistics.median(hook_times) / statistics.median(floor_times):.1f}x the floor, "
          f"p95 {hook_p95 / percentile(floor_times, 0.95):.1f}x; "
          f"above the floor at p95: {(hook_p95 - percentile(floor_times, 0.95)) * 1000:.0f} ms")
    verdict = "ok" if hook_p95 <= TARGET_P95_SECONDS else "OVER TARGET"
    print(f"target p95 <= {TARGET_P95_SECONDS * 1000:.0f} ms: {verdict} ({hook_p95 * 1000:.0f} ms)")
    return 0 if hook_p95 <= TARGET_P95_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
