"""Concurrent writers: 1, 2, 4 and 8 processes appending to one store at once.

Each writer process opens the store as every writer does and appends one
event per transaction to its own profile for a fixed time; all start
together. Per append it notes the lock wait (entering ``store.writing()``,
which is ``BEGIN IMMEDIATE`` and its busy waits) and the work (the append
and the COMMIT with its fsync). Rounds interleave the writer counts, the
order rotating each round (1 2 4 8, 2 4 8 1, ...), so drift hits every
count alike.

    .venv/bin/python bench/writers.py [--rounds 4] [--seconds 2] [--json PATH]

Targets: zero errors at 8 writers; their aggregate rate >= 0.7x one writer's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import load_average, log, under_load, write_part  # noqa: E402
from projector_common import percentile  # noqa: E402
from store_access import NewEvent, create_store, home_env, open_store  # noqa: E402

COUNTS = (1, 2, 4, 8)


def writer(env: dict, profile: str, start_at, seconds: float, results) -> None:
    """One process: append until the time is up; report (lock waits, works, errors)."""
    waits, works, errors = [], [], []
    try:
        store = open_store(env)
        store.append(NewEvent(profile, "created", "cli", "down"))
        desired = "down"
    except Exception as error:  # noqa: BLE001 - reported as an error, never hidden
        results.put((profile, [], [], [f"open: {error!r}"]))
        return
    start_at.wait()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        desired = "up" if desired == "down" else "down"
        event = NewEvent(profile, "started" if desired == "up" else "stopped", "cli", desired)
        began = time.perf_counter()
        try:
            with store.writing() as tx:
                locked = time.perf_counter()
                tx.append(event)
            done = time.perf_counter()
        except Exception as error:  # noqa: BLE001 - counted: the target is zero
            errors.append("".join(traceback.format_exception_only(error)).strip())
            desired = "up" if desired == "down" else "down"
            continue
        waits.append(locked - began)
        works.append(done - locked)
    store.close()
    results.put((profile, waits, works, errors))


def one_run(envs: list[dict], writers: int, seconds: float, tag: str, beside=None) -> dict:
    """``writers`` processes at once, spread over ``envs`` (one per host); ``beside``: a thread
    started with the appends (bench/fleet.py samples the server's wait events with it)."""
    context = multiprocessing.get_context("fork")
    start_at = context.Event()
    results = context.Queue()
    processes = [context.Process(target=writer, args=(envs[i % len(envs)], f"w{writers}h{len(envs)}-{tag}-{i}",
                                                      start_at, seconds, results))
                 for i in range(writers)]
    for process in processes:
        process.start()
    time.sleep(0.3 + 0.1 * writers)  # every writer has opened the store and made its profile
    start_at.set()
    if beside is not None:  # started with the appends, not while the writers connect
        beside.start()
    gathered = [results.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    waits = [w for _, ws, _, _ in gathered for w in ws]
    works = [w for _, _, ws, _ in gathered for w in ws]
    errors = [e for _, _, _, es in gathered for e in es]
    return {"appends": len(works), "seconds": seconds, "waits": waits, "works": works, "errors": errors}


def summarise(runs: list[dict]) -> dict:
    waits = [w for run in runs for w in run["waits"]]
    works = [w for run in runs for w in run["works"]]
    latencies = [a + b for a, b in zip(waits, works)]
    appends = sum(run["appends"] for run in runs)
    seconds = sum(run["seconds"] for run in runs)
    return {
        "appends": appends,
        "rate": appends / seconds,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "lock_wait_ms_mean": statistics.mean(waits) * 1000,
        "work_ms_mean": statistics.mean(works) * 1000,
        "lock_wait_share": sum(waits) / (sum(waits) + sum(works)),
        "errors": sum(len(run["errors"]) for run in runs),
        "error_samples": sorted({e for run in runs for e in run["errors"]})[:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0, help="each run's length")
    parser.add_argument("--under-load", action="store_true", help="run stress-ng --cpu 2 beside it")
    parser.add_argument("--json", help="write the figures here (for run_all)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="hermes-bench-writers-"))
    env = home_env(directory / "home")
    create_store(env)
    runs: dict[int, list[dict]] = {count: [] for count in COUNTS}
    try:
        with under_load(args.under_load) as load:
            before = load_average()
            for number in range(args.rounds):
                shift = number % len(COUNTS)  # each count takes every place in the order in turn
                for count in COUNTS[shift:] + COUNTS[:shift]:
                    runs[count].append(one_run([env], count, args.seconds, str(number)))
            after = load_average()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    figures = {"writers": {str(count): summarise(runs[count]) for count in COUNTS},
               "rounds": args.rounds, "seconds": args.seconds, "under_load": load,
               "load_average_before": before, "load_average_after": after}
    one, eight = figures["writers"]["1"], figures["writers"]["8"]
    figures["ratio_8_to_1"] = eight["rate"] / one["rate"]
    figures["verdicts"] = {"8 writers: zero errors": eight["errors"] == 0,
                           "8 writers: aggregate rate >= 0.7x one writer's": figures["ratio_8_to_1"] >= 0.7}
    log(f"concurrent writers, {args.rounds} rounds of {args.seconds:g} s each, interleaved; "
        f"load average {before} -> {after}")
    print(f"  {'writers':>7} {'appends/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'lock wait':>10} {'work':>8} {'errors':>7}")
    for count in COUNTS:
        row = figures["writers"][str(count)]
        print(f"  {count:>7} {row['rate']:>10.0f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
              f"{row['lock_wait_ms_mean']:>8.2f}ms {row['work_ms_mean']:>6.2f}ms {row['errors']:>7}")
        for sample in row["error_samples"]:
            print(f"          error: {sample}")
    print(f"  8 writers / 1 writer aggregate rate: {figures['ratio_8_to_1']:.2f} (target >= 0.7)")
    write_part(args.json, figures)
    return 0 if all(figures["verdicts"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
