"""Durable appends through the store versus raw sqlite3 INSERT + COMMIT, same file system, same pragmas.

Both sides commit one event per transaction with WAL and synchronous=FULL,
so both pay the same fsync; the ratio shows what the store's validation,
projection update and hash chain cost on top. Runs are interleaved (ours,
raw, ours, raw, ...) so drift on a noisy machine hits both alike.

    python bench/append_throughput.py [--rounds 20] [--per-round 150] [--dir DIR]

Also prints the bytes on disk per event for 100k typical events.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hermes_lifecycle.chain import CHAIN_VERSION, GENESIS, chain_hash
from hermes_lifecycle.backends.sqlite.driver import library_name, sqlite_module
from hermes_lifecycle.events import COLUMNS, utc_now
from hermes_lifecycle.backends.sqlite.migrate import migrate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import store_access  # noqa: E402
from store_access import EventStore, NewEvent, append_all, create_store, home_env  # noqa: E402

PROFILES = [f"agent-{i:03d}" for i in range(50)]
BOOT_ID = "bc26a5d4-732b-4a69-92c3-789b479d455c"


def open_store(home: Path) -> EventStore:
    env = home_env(home)
    create_store(env)
    scandir = Path(env["S6_PROFILE_GATEWAY_SCANDIR"])
    scandir.mkdir(parents=True, exist_ok=True)
    (scandir / ".boot-id").write_text(BOOT_ID + "\n")
    store = store_access.open_store(env)
    append_all(store, [NewEvent(name, "created", "cli", "down") for name in PROFILES])
    append_all(store, [NewEvent(name, "started", "cli", "up") for name in PROFILES])
    return store


class TypicalEvents:
    """What the log mostly holds: supervisor starts and the exits of those runs.

    It follows the runs from the events the store returns, so producing an
    event costs no read inside the measured appends.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.runs: dict[str, tuple[int, int]] = {}

    def next(self) -> NewEvent:
        name = self.rng.choice(PROFILES)
        run = self.runs.get(name)
        if run is None:
            return NewEvent(name, "started", "supervisor", pid=self.rng.randint(100, 4_000_000))
        position, pid = run
        if self.rng.random() < 0.7:
            return NewEvent(name, "stopped", "supervisor", pid=pid, reason="shutdown", data={"run": position})
        return NewEvent(name, "crashed", "supervisor", pid=pid, exit_code=1, data={"run": position})

    def saw(self, event) -> None:
        if event.type == "started":
            self.runs[event.profile] = (event.position, event.pid)
        else:
            self.runs.pop(event.profile, None)


def ours(store: EventStore, count: int, events: TypicalEvents) -> float:
    """One durable append per transaction, through the store's public API."""
    began = time.perf_counter()
    for _ in range(count):
        events.saw(store.append(events.next()))
    return time.perf_counter() - began


def raw_connection(path: Path, dbapi=None):
    """A plain driver connection on a freshly migrated file: the same table, indexes and pragmas.

    ``dbapi``: another SQLite module than the store's (bench/peers.py compares the standard library's).
    """
    migrate(path)
    dbapi = dbapi or sqlite_module()
    connection = dbapi.connect(str(path), isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON", "busy_timeout = 5000"):
        connection.execute(f"PRAGMA {pragma}")
    return connection


class RawRows:
    """Rows of the same shape ours appends, precomputed outside the timed loop."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.position = 0
        self.versions: dict[str, int] = {}
        self.previous = GENESIS

    def make(self, count: int) -> list[list]:
        rows = []
        for _ in range(count):
            name = self.rng.choice(PROFILES)
            self.position += 1
            self.versions[name] = self.versions.get(name, 0) + 1
            row = {
                "position": self.position, "profile": name, "version": self.versions[name],
                "type": "started", "actor": "supervisor", "desired": None, "occurred_at": utc_now(),
                "host": BOOT_ID, "boot_id": BOOT_ID, "pid": self.rng.randint(100, 4_000_000),
                "exit_code": None, "signal": None, "reason": None, "data": "{}", "idempotency_key": None,
                "chain_version": CHAIN_VERSION,
            }
            row["hash"] = self.previous = chain_hash(self.previous, row)
            rows.append([row[c] for c in COLUMNS])
        return rows


def raw(connection, rows: list[list]) -> float:
    """Plain INSERT + COMMIT of precomputed rows, one per transaction."""
    statement = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
    began = time.perf_counter()
    for row in rows:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(statement, row)
        connection.execute("COMMIT")
    return time.perf_counter() - began


def bytes_per_event(directory: Path, count: int = 100_000) -> float:
    """100k typical events appended through the store (in batches of 1,000), file size / events."""
    store = open_store(directory / "size-home")
    events = TypicalEvents(3)
    appended = 2 * len(PROFILES)
    while appended < count:
        with store.writing() as tx:
            for _ in range(min(1000, count - appended)):
                events.saw(tx.append(events.next()))
                appended += 1
    path = store.path
    store.close()
    connection = sqlite_module().connect(str(path))
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return os.path.getsize(path) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=150)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (default: a temp dir)")
    parser.add_argument("--skip-size", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hermes-bench-", dir=args.dir))
    module = sqlite_module()
    print(f"# {library_name(module)}, SQLite {module.sqlite_version}, files in {base}")
    store = open_store(base / "home")
    connection = raw_connection(base / "raw.db")
    typical, raw_rows = TypicalEvents(1), RawRows(1)
    ratios, total_ours, total_raw = [], 0.0, 0.0
    for round_number in range(1, args.rounds + 1):
        t_ours = ours(store, args.per_round, typical)
        t_raw = raw(connection, raw_rows.make(args.per_round))
        ratio = (args.per_round / t_raw) / (args.per_round / t_ours)
        ratios.append(ratio)
        total_ours += t_ours
        total_raw += t_raw
        print(
            f"round {round_number}: ours {args.per_round / t_ours:8.0f} appends/s, "
            f"raw {args.per_round / t_raw:8.0f} inserts/s, raw/ours {ratio:.2f}"
        )
    store.close()
    connection.close()
    median = statistics.median(ratios)
    overall = total_ours / total_raw
    print(f"raw/ours over all rounds {overall:.2f}, median of rounds {median:.2f} "
          f"(target <= 2.0): {'PASS' if overall <= 2.0 else 'FAIL'}")
    if not args.skip_size:
        size = bytes_per_event(base)
        print(f"bytes on disk per event, 100k typical events: {size:.1f} (target <= 300): {'PASS' if size <= 300 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
