"""What the hot commands cost: `record-start`, `record-exit` and `hermes-state start`.

Wall time of the whole process (interpreter start to exit, as `finish`
pays it), measured beside `python -c pass` with the same interpreter: the
floor no Python hook can beat. The store holds a realistic log (bulk-loaded:
1,000 profiles, 100k events by default) and every measured exit takes the
costliest path: a crash of a recorded run, so the breaker reads the crash
times in its window and appends, all in one write transaction. Each exit
follows a `record-start` (gateway `/bin/true`), timed too, as s6 runs them:
start, exit, start, exit. Runs are interleaved so every series sees the
same machine noise. `hermes-state start` (and a `stop`, so the log's
state does not drift) is timed in the same rounds. Targets: each median <=
4x the floor's (moonshot 3x), record-exit p95 <= 0.5 s, quiet and under load.

    .venv/bin/python bench/record_exit.py [--runs 100] [--events 100000] [--load 2]

``--load N`` runs N busy loops beside the measurement (as `stress-ng --cpu N`
would) and stops them at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bulk_log import load_log  # noqa: E402
from store_access import append_all  # noqa: E402

from hermes_lifecycle.events import NewEvent  # noqa: E402
from hermes_lifecycle.settings import Settings  # noqa: E402
from hermes_lifecycle.store import open_store  # noqa: E402

TARGET_P95_SECONDS = 0.5
TARGET_RATIO = 4.0  # median against `python -c pass`, measured in the same run
PROFILE = "bench-crasher"


def wall_time(argv: list[str], env: dict[str, str], expect: int, cpu: list[float] | None = None) -> float:
    """Wall time of one run; its CPU time (user + system) is appended to ``cpu`` when given."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    # cwd: the home, so `python -c` imports the installed package, not a source tree beside it.
    result = subprocess.run(argv, env=env, cwd=env["HERMES_HOME"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
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
    parser.add_argument("--load", type=int, default=0, metavar="N", help="busy loops beside the measurement")
    args = parser.parse_args()
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        return measure(args)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def measure(args: argparse.Namespace) -> int:

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
            "HERMES_STATE_HOOKS_UNSUPERVISED": "1",  # the hooks run outside a slot here (docs/cli.md)
        }
        with open_store(Settings.from_env(env)) as store:
            append_all(store, [
                NewEvent(PROFILE, "created", "cli", "down"),
                NewEvent(PROFILE, "started", "cli", "up"),
            ])
        hermes = str(Path(sys.executable).parent / "hermes-state")
        start = [hermes, "record-start", f"gateway-{PROFILE}"]
        intent_start = [hermes, "start", PROFILE]
        intent_stop = [hermes, "stop", PROFILE]
        hook = [hermes, "record-exit", f"gateway-{PROFILE}", "1", "0", "true"]
        floor = [sys.executable, "-c", "pass"]
        # What the store's imports alone cost (SQLAlchemy Core): the rest is the hook's own work.
        imports = [sys.executable, "-c", "import hermes_lifecycle_cli.main, hermes_lifecycle.hooks"]
        for argv in (floor, imports, intent_stop, intent_start, start, hook):  # warm the page cache
            wall_time(argv, env, 0)
        hook_times, start_times, floor_times, import_times, intent_times = [], [], [], [], []
        cpu: dict[str, list[float]] = {"floor": [], "imports": [], "start": [], "exit": [], "intent": []}
        for _ in range(args.runs):
            floor_times.append(wall_time(floor, env, 0, cpu["floor"]))
            import_times.append(wall_time(imports, env, 0, cpu["imports"]))
            # A stop, then the timed start: the latest intent is up again before the exit is
            # classified, so every exit takes the crash path.
            wall_time(intent_stop, env, 0)
            intent_times.append(wall_time(intent_start, env, 0, cpu["intent"]))
            start_times.append(wall_time(start, env, 0, cpu["start"]))
            hook_times.append(wall_time(hook, env, 0, cpu["exit"]))
        with open_store(Settings.from_env(env), readonly=True) as store:
            crashes = store.stream(PROFILE, types=["crashed"])
        if len(crashes) != args.runs + 1 or any(event.run is None for event in crashes):
            raise SystemExit(f"expected {args.runs + 1} crashes, each naming its run; found {len(crashes)}")
    finally:
        shutil.rmtree(home, ignore_errors=True)

    def line(name: str, values: list[float], cpu_values: list[float]) -> str:
        return (f"{name:<26} p50 {statistics.median(values) * 1000:7.1f} ms   "
                f"p95 {percentile(values, 0.95) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms   "
                f"cpu p50 {statistics.median(cpu_values) * 1000:6.1f} ms")

    hook_p95 = percentile(hook_times, 0.95)
    print(f"hot commands' wall time, {args.runs} runs interleaved, log of {args.events} events "
          f"over {args.profiles} profiles (record-exit: crash path, breaker query + append); "
          f"{args.load} busy loops beside")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cpus (wall times include the machine's other work; cpu times do not)")
    print(line("python -c pass (floor)", floor_times, cpu["floor"]))
    print(line("python -c 'import (hooks)'", import_times, cpu["imports"]) + "   (interpreter + imports)")
    print(line("hermes-state record-start", start_times, cpu["start"]) + "   (to the gateway's exit)")
    print(line("hermes-state record-exit", hook_times, cpu["exit"]))
    print(line("hermes-state start", intent_times, cpu["intent"]))
    floor_p50 = statistics.median(floor_times)
    within = True
    for name, values in (("record-start", start_times), ("record-exit", hook_times), ("gateway start", intent_times)):
        ratio = statistics.median(values) / floor_p50
        within &= ratio <= TARGET_RATIO
        print(f"{name:<14} median {ratio:4.2f}x the floor's (target <= {TARGET_RATIO:.0f}x, moonshot 3x): "
              f"{'ok' if ratio <= TARGET_RATIO else 'OVER TARGET'}")
    verdict = "ok" if hook_p95 <= TARGET_P95_SECONDS else "OVER TARGET"
    print(f"record-exit p95 <= {TARGET_P95_SECONDS * 1000:.0f} ms: {verdict} ({hook_p95 * 1000:.0f} ms)")
    return 0 if within and hook_p95 <= TARGET_P95_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
