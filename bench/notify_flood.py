"""A change feed flooded with NOTIFYs: what it costs the reader (the watch daemon's feed, in process).

Any role that may connect to a fleet's database may `NOTIFY hermes_events` as often as it likes
(docs/reliability.md, "A fleet host's credentials"). Issue 20 sent 48,888 in 15 s and the watch
daemon spent 2.4 s of CPU on them. This sends that many, paced over that time, from another
process, to a private PostgreSQL server (tests/pg_cluster.py), and prints the CPU time the
process reading the feed spent meanwhile, and how many times it read the newest position. CPU
time, not wall time: the figure holds on a loaded machine.

    .venv/bin/python bench/notify_flood.py [--notifications 48888] [--seconds 15]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/pg_cluster.py: no pytest in it

from machine import load_average  # noqa: E402
from pg_cluster import PostgresCluster  # noqa: E402

from hermes_lifecycle.backends.postgresql.recorder import PostgresRecorder  # noqa: E402
from hermes_lifecycle.settings import Settings  # noqa: E402
from hermes_lifecycle.store import migrate  # noqa: E402

FLOOD = """
import sys, time, psycopg
conninfo, total, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with psycopg.connect(conninfo, autocommit=True) as conn:
    start = time.monotonic()
    for number in range(total):
        conn.execute("NOTIFY hermes_events")
        ahead = start + seconds * (number + 1) / total - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
"""


class CountingRecorder(PostgresRecorder):
    checks = 0

    def current_position(self) -> int:
        CountingRecorder.checks += 1
        return super().current_position()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=48_888)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    with PostgresCluster() as cluster:
        database = cluster.new_database()
        migrate(Settings.from_env({"HERMES_HOME": "/nonexistent", "HERMES_STATE_URL": database.url}))
        recorder = CountingRecorder(database.url, "bench", readonly=True, lock_timeout_ms=1000)
        try:
            with recorder.change_feed(use_notifications=True, poll_interval=2.0) as feed:
                flood = subprocess.Popen([sys.executable, "-c", FLOOD, database.conninfo,
                                          str(args.notifications), str(args.seconds)])
                before, started = cpu_seconds(), time.monotonic()
                while flood.poll() is None:
                    feed.wait(0.5)
                feed.wait(0.2)  # what queued last
                cpu, elapsed = cpu_seconds() - before, time.monotonic() - started
        finally:
            recorder.close()
    print(f"{args.notifications} NOTIFYs in {elapsed:.1f} s: the reader spent {cpu:.2f} s of CPU "
          f"({cpu / args.notifications * 1e6:.1f} us each) and read the newest position {CountingRecorder.checks} "
          f"times; load average {load_average()}")
    return 0 if flood.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
