"""The fleet on PostgreSQL: durable appends with 1, 4 and 8 writers on one host and two, beside SQLite.

A private PostgreSQL server (Debian's, tests/pg_cluster.py: fsync and
synchronous_commit on, as shipped) and a SQLite store file on the same disk.
Each writer is a process that opens the store through its public API
(``store.writing()`` and ``tx.append``, as bench/writers.py does) and appends
start and stop intents for its own profile, one per transaction, for a fixed
time; all start together. "Two hosts" are two host ids (``HERMES_HOST_ID``)
and two homes on this one machine, the writers split between them: what it
adds is the second host's rows, not a network (see docs/performance.md).
The in-process API rather than the `hermes` command, so the figure is the
store's rate and not the interpreter's start-up (the hooks' part measures that).

Rounds interleave every configuration, the order rotating, so the machine's
drift hits all alike; every rate is printed as a ratio to SQLite with one
writer measured in the same rounds. Per PostgreSQL run the WAL syncs and the
commits are counted (pg_stat_wal, pg_stat_database) to show whether commits
share a sync; one extra run of 8 writers, not counted, samples
pg_stat_activity's wait events to show where the time goes.

Then the hooks: `hermes-state record-start` and `record-exit` (the crash
path) on PostgreSQL and on SQLite, interleaved with `python -c pass` (the
floor), on a log of 10,000 events over 100 profiles loaded through the store.

    .venv/bin/python bench/fleet.py [--rounds 3] [--seconds 2] [--hook-runs 30] [--under-load] [--json PATH]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/pg_cluster.py: no pytest in it

from machine import load_average, log, under_load, write_part  # noqa: E402
from pg_cluster import PostgresCluster  # noqa: E402
from projector_common import percentile  # noqa: E402
from store_access import NewEvent, append_all, create_store, home_env, open_store  # noqa: E402
from timing import run_timed  # noqa: E402
from writers import one_run, summarise as writers_summary  # noqa: E402  (the same writers, spread over hosts)

HOST_A = "00000000-0000-4000-8000-0000000000a1"
HOST_B = "00000000-0000-4000-8000-0000000000b2"
# (backend, writers, hosts); SQLite is one file on one volume, so one host only.
CONFIGS = [("sqlite", 1, 1), ("sqlite", 4, 1), ("sqlite", 8, 1),
           ("postgresql", 1, 1), ("postgresql", 4, 1), ("postgresql", 8, 1),
           ("postgresql", 4, 2), ("postgresql", 8, 2)]
BASELINE = "sqlite, 1 writer, 1 host"
HOOK_PROFILE = "bench-crasher"


def label(backend: str, writers: int, hosts: int) -> str:
    return f"{backend}, {writers} writer{'s' if writers > 1 else ''}, {hosts} host{'s' if hosts > 1 else ''}"


class Postgres:
    """The server's own counters, read as the superuser on a fresh connection each time (never across a fork)."""

    def __init__(self, cluster: PostgresCluster, dbname: str) -> None:
        self.cluster, self.dbname = cluster, dbname

    def counters(self) -> dict:
        with self.cluster.connect() as conn:
            wal = conn.execute("SELECT wal_sync, wal_sync_time, wal_bytes FROM pg_stat_wal").fetchone()
            commits = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                                   (self.dbname,)).fetchone()[0]
        return {"wal_sync": wal[0], "wal_sync_ms": float(wal[1]), "wal_bytes": int(wal[2]), "commits": commits}


class WaitSampler(threading.Thread):
    """pg_stat_activity of the writers' sessions every 10 ms: (state, wait event) -> samples."""

    def __init__(self, cluster: PostgresCluster, dbname: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.cluster, self.dbname, self.seconds = cluster, dbname, seconds
        self.tally: collections.Counter = collections.Counter()

    def run(self) -> None:
        with self.cluster.connect(autocommit=True) as conn:
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                for state, wait, count in conn.execute(
                        "SELECT state, coalesce(wait_event_type || ':' || wait_event, 'on CPU (no wait event)'), "
                        "count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'hermes-state' "
                        "GROUP BY 1, 2", (self.dbname,)):
                    self.tally[f"{state}, {wait}"] += count
                time.sleep(0.01)


def summarise(runs: list[dict]) -> dict:
    """bench/writers.py's row, with the server's WAL syncs per commit where they were counted."""
    row = writers_summary(runs)
    counted = [run["counters"] for run in runs if "counters" in run]
    if counted:
        syncs = sum(c["wal_sync"] for c in counted)
        commits = sum(c["commits"] for c in counted)
        row["wal_syncs"] = syncs
        row["commits"] = commits
        row["commits_per_wal_sync"] = commits / syncs if syncs else None
        row["wal_sync_ms_mean"] = sum(c["wal_sync_ms"] for c in counted) / syncs if syncs else None
        row["wal_bytes_per_commit"] = sum(c["wal_bytes"] for c in counted) / commits if commits else None
    return row


def writers_part(args, directory: Path, cluster: PostgresCluster) -> dict:
    sqlite_env = home_env(directory / "sqlite-home", HERMES_HOST_ID=HOST_A)
    create_store(sqlite_env)
    database = cluster.new_database("hermes_bench")
    pg_envs = [home_env(directory / f"pg-home-{name}", HERMES_STATE_URL=database.url, HERMES_HOST_ID=host)
               for name, host in (("a", HOST_A), ("b", HOST_B))]
    create_store(pg_envs[0])
    stats = Postgres(cluster, database.name)
    runs: dict[tuple, list[dict]] = {config: [] for config in CONFIGS}
    for number in range(args.rounds):
        shift = number % len(CONFIGS)  # each configuration takes every place in the order in turn
        for config in CONFIGS[shift:] + CONFIGS[:shift]:
            backend, writers, hosts = config
            envs = [sqlite_env] if backend == "sqlite" else pg_envs[:hosts]
            before = stats.counters() if backend == "postgresql" else None
            run = one_run(envs, writers, args.seconds, f"{number}")
            if before is not None:
                time.sleep(0.2)  # the writers' sessions have ended and flushed their statistics
                after = stats.counters()
                run["counters"] = {key: after[key] - before[key] for key in after}
            runs[config].append(run)
    rows = {label(*config): summarise(runs[config]) for config in CONFIGS}
    # Every acknowledged append is in the log, and the two-host runs' profiles belong to two hosts.
    acknowledged = sum(run["appends"] + writers for (backend, writers, _), done in runs.items()
                       if backend == "postgresql" for run in done)
    with cluster.connect(database.name) as conn:
        stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        hosts = conn.execute("SELECT count(DISTINCT host) FROM profile_projection WHERE profile LIKE 'w%h2-%'").fetchone()[0]
    if stored != acknowledged or hosts != 2:
        raise SystemExit(f"PostgreSQL: {stored} events stored for {acknowledged} acknowledged; {hosts} hosts in the two-host runs")
    # Not counted: one more run of 8 writers with pg_stat_activity sampled beside it.
    sampler = WaitSampler(cluster, database.name, args.seconds * 0.9)  # within the appends' time
    one_run(pg_envs[:1], 8, args.seconds, "sampled", beside=sampler)
    sampler.join(timeout=30)
    total = sum(sampler.tally.values()) or 1
    waits = {key: round(count / total, 3) for key, count in sampler.tally.most_common()}
    with cluster.connect() as conn:
        settings = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name IN "
                                     "('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes', "
                                     "'commit_delay', 'track_wal_io_timing', 'server_version')").fetchall())
    cluster.drop(database)
    return {"rows": rows, "wait_events_8_writers": waits, "postgresql": settings}


def hooks_part(args, directory: Path, cluster: PostgresCluster) -> dict:
    """record-start and record-exit on both backends, interleaved with `python -c pass`."""
    database = cluster.new_database("hermes_hooks")
    base = {"HERMES_CRASH_LOOP": "1000000/60s",  # never trip the breaker: every exit takes the crash path
            "HERMES_GATEWAY_COMMAND": "/bin/true", "HERMES_HOST_ID": HOST_A,
            "HERMES_STATE_HOOKS_UNSUPERVISED": "1"}  # the hooks run outside a slot here (docs/cli.md)
    envs = {"sqlite": home_env(directory / "hooks-sqlite", **base),
            "postgresql": home_env(directory / "hooks-pg", HERMES_STATE_URL=database.url, **base)}
    for env in envs.values():
        create_store(env)
        Path(env["HERMES_HOME"]).mkdir(parents=True, exist_ok=True)
        with open_store(env) as store:  # the same log on both: 100 profiles, 10,000 events
            batch = []
            for number in range(100):
                batch.append(NewEvent(f"agent-{number:03d}", "created", "cli", "down"))
                for step in range(99):
                    up = step % 2 == 0
                    batch.append(NewEvent(f"agent-{number:03d}", "started" if up else "stopped", "cli",
                                          "up" if up else "down"))
            for start in range(0, len(batch), 1000):
                append_all(store, batch[start:start + 1000])
            append_all(store, [NewEvent(HOOK_PROFILE, "created", "cli", "down"),
                              NewEvent(HOOK_PROFILE, "started", "cli", "up")])
    hermes = str(Path(sys.executable).parent / "hermes-state")
    floor = [sys.executable, "-c", "pass"]
    # What the imports alone cost: the hooks' own (as on SQLite), and the PostgreSQL driver's.
    imports = {"python -c 'import (hooks)'": [sys.executable, "-c", "import hermes_lifecycle_cli.main, hermes_lifecycle.hooks"],
               "python -c 'import psycopg'": [sys.executable, "-c", "import psycopg"]}
    steps = {"stop": [hermes, "stop", HOOK_PROFILE],
             "start": [hermes, "start", HOOK_PROFILE],
             "record-start": [hermes, "record-start", f"gateway-{HOOK_PROFILE}"],
             "record-exit": [hermes, "record-exit", f"gateway-{HOOK_PROFILE}", "1", "0", "true"]}
    times: dict[str, list[float]] = collections.defaultdict(list)
    cpu: dict[str, list[float]] = collections.defaultdict(list)

    def timed(name: str, argv: list[str], env: dict) -> None:
        wall, used, _ = run_timed(argv, env, cwd=env["HERMES_HOME"])  # cwd: never a source tree beside it
        times[name].append(wall)
        cpu[name].append(used)

    for _ in range(2):  # warm the page cache, the server's buffers
        for env in envs.values():
            for argv in (floor, *imports.values(), *steps.values()):
                run_timed(argv, env, cwd=env["HERMES_HOME"])
    for number in range(args.hook_runs):
        order = list(envs) if number % 2 == 0 else list(envs)[::-1]
        timed("python -c pass", floor, envs["sqlite"])
        for name, argv in imports.items():
            timed(name, argv, envs["sqlite"])
        for backend in order:
            env = envs[backend]
            # A stop, then a start: the latest intent is up again, so every exit is a crash.
            run_timed(steps["stop"], env, cwd=env["HERMES_HOME"])
            run_timed(steps["start"], env, cwd=env["HERMES_HOME"])
            timed(f"{backend}: record-start", steps["record-start"], env)
            timed(f"{backend}: record-exit", steps["record-exit"], env)
    for backend, env in envs.items():
        with open_store(env) as store:
            crashes = store.stream(HOOK_PROFILE, types=["crashed"])
        if len(crashes) != args.hook_runs + 2 or any(event.run is None for event in crashes):
            raise SystemExit(f"{backend}: expected {args.hook_runs + 2} crashes, each naming its run; "
                             f"found {len(crashes)}")
    cluster.drop(database)
    floor_p50 = statistics.median(times["python -c pass"])
    return {
        "runs": args.hook_runs,
        "ms": {name: {"p50": statistics.median(values) * 1000, "p95": percentile(values, 0.95) * 1000,
                      "cpu_p50": statistics.median(cpu[name]) * 1000} for name, values in times.items()},
        "ratio_to_floor_p50": {name: statistics.median(values) / floor_p50 for name, values in times.items()},
        "postgresql_over_sqlite_p50": {
            hook: statistics.median(times[f"postgresql: {hook}"]) / statistics.median(times[f"sqlite: {hook}"])
            for hook in ("record-start", "record-exit")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="each run's length")
    parser.add_argument("--hook-runs", type=int, default=30)
    parser.add_argument("--under-load", action="store_true", help="run stress-ng --cpu 2 beside it")
    parser.add_argument("--json", help="write the figures here (for run_all)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="hermes-bench-fleet-"))
    directory.chmod(0o755)
    # As an unprivileged uid ($HERMES_TEST_USER when root), on /tmp's disk, durability as shipped;
    # track_wal_io_timing only times the WAL's syncs (pg_stat_wal.wal_sync_time) for the table.
    cluster = PostgresCluster(settings={"track_wal_io_timing": "on"})
    try:
        cluster.start()
        with under_load(args.under_load) as load:
            before = load_average()
            figures = writers_part(args, directory, cluster)
            middle = load_average()
            figures["hooks"] = hooks_part(args, directory, cluster)
            after = load_average()
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
    rows = figures["rows"]
    baseline = rows[BASELINE]["rate"]
    for row in rows.values():
        row["ratio_to_baseline"] = row["rate"] / baseline
    figures.update({"baseline": BASELINE, "rounds": args.rounds, "seconds": args.seconds, "under_load": load,
                    "load_average_before": before, "load_average_middle": middle, "load_average_after": after,
                    "cores": os.cpu_count()})
    pg = {hosts: {n: rows[label("postgresql", n, hosts)]["rate"] for n in (1, 4, 8) if
                  label("postgresql", n, hosts) in rows} for hosts in (1, 2)}
    figures["ratios"] = {
        "postgresql 1 writer / sqlite 1 writer": pg[1][1] / baseline,
        "postgresql 8 writers / postgresql 1 writer (one host)": pg[1][8] / pg[1][1],
        "postgresql 8 writers, two hosts / one host": pg[2][8] / pg[1][8],
        "sqlite 8 writers / sqlite 1 writer": rows[label("sqlite", 8, 1)]["rate"] / baseline,
    }

    log(f"fleet: durable appends, {args.rounds} rounds of {args.seconds:g} s per configuration, interleaved"
        f"{'; beside ' + load if load else ''}; load average {before} -> {middle} -> {after} on {os.cpu_count()} cores")
    print(f"  {'configuration':<34} {'appends/s':>9} {'/ base':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'lock wait':>9} {'work':>7} {'commits/sync':>12} {'sync ms':>7} {'errors':>6}")
    for name, row in rows.items():
        per_sync, sync_ms = row.get("commits_per_wal_sync"), row.get("wal_sync_ms_mean")
        print(f"  {name:<34} {row['rate']:>9.0f} {row['ratio_to_baseline']:>6.2f}x {row['p50_ms']:>7.1f} "
              f"{row['p99_ms']:>7.1f} {row['lock_wait_ms_mean']:>7.2f}ms {row['work_ms_mean']:>5.2f}ms "
              f"{'' if per_sync is None else f'{per_sync:.2f}':>12} {'' if sync_ms is None else f'{sync_ms:.2f}':>7} "
              f"{row['errors']:>6}")
        for sample in row["error_samples"]:
            print(f"      error: {sample}")
    for name, value in figures["ratios"].items():
        print(f"  {name}: {value:.2f}")
    print("  PostgreSQL, 8 writers on one host: the writers' sessions in pg_stat_activity (share of samples):")
    for key, share in list(figures["wait_events_8_writers"].items())[:8]:
        print(f"      {share:6.1%}  {key}")
    hooks = figures["hooks"]
    print(f"  hooks, {hooks['runs']} runs interleaved, log of 10,000 events:")
    for name, row in hooks["ms"].items():
        print(f"      {name:<36} p50 {row['p50']:6.1f} ms  p95 {row['p95']:6.1f} ms  cpu p50 {row['cpu_p50']:5.1f} ms"
              f"  {hooks['ratio_to_floor_p50'][name]:5.2f}x the floor")
    for hook, value in hooks["postgresql_over_sqlite_p50"].items():
        print(f"      {hook}: postgresql / sqlite (p50) {value:.2f}")
    write_part(args.json, figures)
    return 0 if all(row["errors"] == 0 for row in rows.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
