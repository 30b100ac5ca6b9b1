"""Durable lifecycle writes, one per transaction: the store beside what a user would run instead.

Six writers take turns, round after round (the order rotates each round),
on the same file system, each making the same sequence of lifecycle changes
(supervisor starts and exits over 50 profiles, one seed):

- ``hermes-state``: ``store.append(NewEvent(...))``, WAL, synchronous=FULL.
- ``raw sqlite3``: ``BEGIN IMMEDIATE; INSERT; COMMIT`` of precomputed rows of
  the same shape into a freshly migrated file, same pragmas: the floor.
- ``raw sqlite3, standard library``: the same through the standard
  library's SQLite (the one eventsourcing uses; the store does not, see
  docs/performance.md), to tell the SQLite build's cost from the store's.
- ``eventsourcing (in memory)``: the eventsourcing library (9.x) with its
  SQLite recorder, one Aggregate per profile kept in memory, ``app.save``
  after each change.
- ``eventsourcing (read back)``: the same, but each change reads the
  aggregate back from the repository first, as an application handling a
  request does.
- ``gateway_state.json``: what the store replaces: read the profile's file,
  merge, write a temporary file, fsync, rename.

    .venv/bin/python bench/peers.py [--rounds 12] [--per-round 200] [--under-load] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from append_throughput import RawRows, raw, raw_connection  # noqa: E402
from machine import load_average, log, under_load, write_part  # noqa: E402
from store_access import NewEvent, create_store, home_env, open_store  # noqa: E402

PROFILES = [f"agent-{i:03d}" for i in range(50)]
SIDES = ("hermes-state", "raw sqlite3", "raw sqlite3, standard library", "eventsourcing (in memory)",
         "eventsourcing (read back)", "gateway_state.json")


class Lifecycle:
    """Supervisor starts and the exits of those runs; one seed gives every side the same sequence."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.open_runs: dict[str, int] = {}

    def next(self) -> tuple[str, str, int, int | None]:
        """(profile, started | stopped | crashed, pid, exit code)."""
        name = self.rng.choice(PROFILES)
        pid = self.open_runs.pop(name, None)
        if pid is None:
            pid = self.open_runs[name] = self.rng.randint(100, 4_000_000)
            return name, "started", pid, None
        if self.rng.random() < 0.7:
            return name, "stopped", pid, None
        return name, "crashed", pid, 1


# -- hermes-state ---------------------------------------------------------------
class Ours:
    def __init__(self, directory: Path) -> None:
        env = home_env(directory / "home")
        create_store(env)
        self.store = open_store(env)
        for name in PROFILES:
            self.store.append(NewEvent(name, "created", "cli", "down"))
            self.store.append(NewEvent(name, "started", "cli", "up"))
        self.lifecycle = Lifecycle(1)
        self.run_positions: dict[str, int] = {}

    def run(self, count: int) -> float:
        began = time.perf_counter()
        for _ in range(count):
            name, kind, pid, code = self.lifecycle.next()
            if kind == "started":
                self.run_positions[name] = self.store.append(NewEvent(name, "started", "supervisor", pid=pid)).position
            else:
                run = {"run": self.run_positions.pop(name)}
                reason = "shutdown" if kind == "stopped" else None
                self.store.append(NewEvent(name, kind, "supervisor", pid=pid, exit_code=code, reason=reason, data=run))
        return time.perf_counter() - began

    def close(self) -> None:
        self.store.close()


# -- raw sqlite3 -------------------------------------------------------------------
class Raw:
    def __init__(self, directory: Path, dbapi=None) -> None:
        self.connection = raw_connection(directory / f"raw-{dbapi.__name__ if dbapi else 'store'}.db", dbapi)
        self.rows = RawRows(1)

    def run(self, count: int) -> float:
        return raw(self.connection, self.rows.make(count))  # rows built outside the timing

    def close(self) -> None:
        self.connection.close()


# -- eventsourcing -----------------------------------------------------------------
class EventSourcing:
    def __init__(self, directory: Path, *, read_back: bool) -> None:
        from es_profiles import GatewayProfile, Profiles  # the optional `bench` extra

        profiles_app, self.aggregate = Profiles, GatewayProfile
        path = directory / ("es-read-back.db" if read_back else "es-in-memory.db")
        self.app = profiles_app(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})
        self.read_back = read_back
        self.held = {}
        for name in PROFILES:
            profile = self.aggregate(name)
            self.app.save(profile)
            self.held[name] = profile
        self.lifecycle = Lifecycle(1)

    def settings(self) -> dict:
        """What its SQLite runs with, read from one of its own connections."""
        import eventsourcing
        from importlib.metadata import version
        with self.app.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA journal_mode")
            journal = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cursor.fetchone()[0]]
            cursor.execute("select sqlite_version()")
            sqlite_version = cursor.fetchone()[0]
        return {"version": version("eventsourcing"), "module": eventsourcing.__name__ + ".sqlite",
                "journal_mode": journal, "synchronous": synchronous, "sqlite": sqlite_version}

    def run(self, count: int) -> float:
        began = time.perf_counter()
        for _ in range(count):
            name, kind, pid, code = self.lifecycle.next()
            if self.read_back:
                profile = self.app.repository.get(self.aggregate.create_id(name))
            else:
                profile = self.held[name]
            if kind == "started":
                profile.started(pid=pid)
            elif kind == "stopped":
                profile.stopped(pid=pid, reason="shutdown", run=profile.run_version)
            else:
                profile.crashed(pid=pid, exit_code=code, run=profile.run_version)
            self.app.save(profile)
        return time.perf_counter() - began

    def close(self) -> None:
        self.app.close()


# -- gateway_state.json --------------------------------------------------------------
class JsonFiles:
    """Read, merge, write a temporary file, fsync, rename: the per-profile file the store replaces."""

    def __init__(self, directory: Path) -> None:
        self.root = directory / "json-home" / "profiles"
        for name in PROFILES:
            (self.root / name).mkdir(parents=True)
            self.update(name, {"desired_state": "running", "gateway_state": "starting"})
        self.lifecycle = Lifecycle(1)

    def update(self, name: str, changes: dict) -> None:
        path = self.root / name / "gateway_state.json"
        try:
            state = json.loads(path.read_bytes())
        except FileNotFoundError:
            state = {}
        state.update(changes)
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "w") as handle:
            json.dump(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, path)

    def run(self, count: int) -> float:
        began = time.perf_counter()
        for _ in range(count):
            name, kind, pid, code = self.lifecycle.next()
            state = "running" if kind == "started" else kind
            self.update(name, {"gateway_state": state, "pid": pid, "exit_code": code,
                               "updated_at": time.time()})
        return time.perf_counter() - began

    def close(self) -> None:
        pass


def measure(directory: Path, rounds: int, per_round: int) -> dict:
    makers: dict[str, Callable[[], object]] = {
        "hermes-state": lambda: Ours(directory),
        "raw sqlite3": lambda: Raw(directory),
        "raw sqlite3, standard library": lambda: Raw(directory, sqlite3),
        "eventsourcing (in memory)": lambda: EventSourcing(directory, read_back=False),
        "eventsourcing (read back)": lambda: EventSourcing(directory, read_back=True),
        "gateway_state.json": lambda: JsonFiles(directory),
    }
    writers = {name: make() for name, make in makers.items()}
    peer_settings = writers["eventsourcing (in memory)"].settings()
    for writer in writers.values():  # warm-up, untimed: first statements, first pages
        writer.run(20)
    seconds = {name: 0.0 for name in SIDES}
    cpu = {name: 0.0 for name in SIDES}  # this process's CPU time: the rest of the wall time is waiting (fsync)
    per_round_rates: dict[str, list[float]] = {name: [] for name in SIDES}
    for number in range(rounds):
        order = SIDES[number % len(SIDES):] + SIDES[:number % len(SIDES)]
        for name in order:
            cpu_before = time.process_time()
            elapsed = writers[name].run(per_round)
            cpu[name] += time.process_time() - cpu_before
            seconds[name] += elapsed
            per_round_rates[name].append(per_round / elapsed)
    for writer in writers.values():
        writer.close()
    rates = {name: rounds * per_round / seconds[name] for name in SIDES}
    ours = rates["hermes-state"]
    ours_rounds = per_round_rates["hermes-state"]
    return {
        "cpu_us_per_write": {name: cpu[name] / (rounds * per_round) * 1e6 for name in SIDES},
        "wall_us_per_write": {name: seconds[name] / (rounds * per_round) * 1e6 for name in SIDES},
        # Paired within each round (same minute of the machine's life), then the median: steadier than the totals.
        "median_round_ratios": {
            "hermes-state / eventsourcing (read back)": statistics.median(
                a / b for a, b in zip(ours_rounds, per_round_rates["eventsourcing (read back)"])),
            "hermes-state / eventsourcing (in memory)": statistics.median(
                a / b for a, b in zip(ours_rounds, per_round_rates["eventsourcing (in memory)"])),
            "raw sqlite3 / hermes-state": statistics.median(
                b / a for a, b in zip(ours_rounds, per_round_rates["raw sqlite3"])),
        },
        "rates": rates,
        "median_round_rates": {name: statistics.median(values) for name, values in per_round_rates.items()},
        "ratios": {
            "hermes-state / eventsourcing (read back)": ours / rates["eventsourcing (read back)"],
            "hermes-state / eventsourcing (in memory)": ours / rates["eventsourcing (in memory)"],
            "raw sqlite3 / hermes-state": rates["raw sqlite3"] / ours,
            "raw sqlite3, standard library / raw sqlite3": rates["raw sqlite3, standard library"] / rates["raw sqlite3"],
            "hermes-state / gateway_state.json": ours / rates["gateway_state.json"],
        },
        "eventsourcing": peer_settings,
        "events_per_profile_at_end": (rounds * per_round + 20) / len(PROFILES),
    }


TARGETS = {  # ratio name -> (operator, bound)
    "hermes-state / eventsourcing (read back)": (">=", 1.0),
    "hermes-state / eventsourcing (in memory)": (">=", 0.9),
    "raw sqlite3 / hermes-state": ("<=", 2.0),
}


def verdicts(ratios: dict[str, float]) -> dict[str, bool]:
    return {name: (ratios[name] >= bound if op == ">=" else ratios[name] <= bound)
            for name, (op, bound) in TARGETS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (default: a temp dir)")
    parser.add_argument("--under-load", action="store_true", help="run stress-ng --cpu 2 beside it")
    parser.add_argument("--json", help="write the figures here (for run_all)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="hermes-bench-peers-", dir=args.dir))
    try:
        with under_load(args.under_load) as load:
            before = load_average()
            figures = measure(directory, args.rounds, args.per_round)
            after = load_average()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    figures.update(rounds=args.rounds, per_round=args.per_round, under_load=load,
                   load_average_before=before, load_average_after=after, directory=str(directory))
    log(f"durable writes, one per transaction, {args.rounds} rounds x {args.per_round}, interleaved"
        f"{' under ' + load if load else ''}; load average {before} -> {after}")
    for name in SIDES:
        print(f"  {name:<30} {figures['rates'][name]:8.0f} writes/s   {figures['wall_us_per_write'][name]:6.0f} us each, "
              f"of which CPU {figures['cpu_us_per_write'][name]:5.0f} us")
    passed = verdicts(figures["ratios"])
    for name, ratio in figures["ratios"].items():
        mark = "" if name not in passed else ("  ok" if passed[name] else "  MISS")
        bound = f" (target {TARGETS[name][0]} {TARGETS[name][1]})" if name in TARGETS else ""
        print(f"  {name:<45} {ratio:5.2f}{bound}{mark}")
    print("  median of the per-round ratios: " + ", ".join(
        f"{name} {value:.2f}" for name, value in figures["median_round_ratios"].items()))
    print(f"  eventsourcing: {figures['eventsourcing']}")
    figures["verdicts"] = passed
    write_part(args.json, figures)
    return 0 if all(passed.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
