"""Load a large, valid event log in bulk: one transaction, the hash chain and projection computed.

Benchmarks need logs of 10k to 1M events; appending them one by one through
the store would take longer than the measurement. Every row still passes
through the real fold (so the stream rules hold) and the real chain, and the
projection is the fold's result, so `hermes-state doctor` accepts the file.

    python bench/bulk_log.py /tmp/big.db --profiles 1000 --events 1000000 --heavy 100000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from hermes_lifecycle.chain import CHAIN_VERSION, GENESIS, chain_hash
from hermes_lifecycle.backends.sqlite.driver import sqlite_module
from hermes_lifecycle.events import COLUMNS, Event, encode_data, format_time
from hermes_lifecycle.fold import ProfileState, apply
from hermes_lifecycle.backends.sqlite.migrate import migrate

HOST = "5b7e3c1a-0d2f-4e8b-9a61-3c5d7e9f1a2b"
_STATE_COLUMNS = ProfileState._fields
_MAX_MEAN_GAP_SECONDS = 35  # the gaps below average 30 s


def profile_names(count: int) -> list[str]:
    return [f"agent-{i:05d}" for i in range(count)]


def _lifecycle(rng: random.Random) -> Iterator[dict]:
    """An endless, valid sequence of events for one profile (without position/version/time)."""
    yield {"type": "created", "actor": "cli", "desired": "down"}
    yield {"type": "started", "actor": "cli", "desired": "up"}
    while True:
        yield {"type": "started", "actor": "supervisor", "pid": rng.randint(100, 4_000_000), "_opens_run": True}
        roll = rng.random()
        if roll < 0.25:
            yield {"type": "crashed", "actor": "supervisor", "exit_code": rng.choice([1, 2, 70]), "_run": True}
        elif roll < 0.35:
            yield {"type": "crashed", "actor": "supervisor", "signal": rng.choice([9, 11, 6]), "_run": True}
        elif roll < 0.85:
            yield {"type": "stopped", "actor": "supervisor", "reason": "shutdown", "_run": True}
        else:
            yield {"type": "stopped", "actor": "cli", "desired": "down"}
            yield {"type": "stopped", "actor": "supervisor", "reason": "requested", "_run": True}
            yield {"type": "started", "actor": "cli", "desired": "up"}


def _pid(spec: dict, prior: ProfileState | None) -> int | None:
    """A supervisor start carries the new pid; an exit carries its run's."""
    if spec["actor"] != "supervisor":
        return None
    if spec["type"] == "started":
        return spec["pid"]
    return prior.run_pid if prior else None


def load_log(
    path: Path,
    *,
    profiles: int,
    events: int,
    heavy_events: int = 0,
    seed: int = 7,
    start: datetime | None = None,
) -> dict[str, int]:
    """Create ``path`` (migrated) holding ``events`` events over ``profiles`` profiles.

    ``heavy_events`` of them go to the first profile (``agent-00000``), the rest
    round-robin-ish at random over the others. Returns counts per profile.
    Events are about 30 s apart; by default the log starts early enough to
    end in the past (a log reaching into the future would count its crashes
    as "in the last hour" in ``profile_status``).
    """
    if start is None:
        start = datetime.now(timezone.utc) - timedelta(seconds=_MAX_MEAN_GAP_SECONDS * events)
    path = Path(path)
    if path.exists():
        raise SystemExit(f"{path} exists: refusing to load into it")
    migrate(path)
    rng = random.Random(seed)
    names = profile_names(profiles)
    streams = {name: _lifecycle(random.Random(f"{seed}-{name}")) for name in names}
    states: dict[str, ProfileState] = {}
    counts = {name: 0 for name in names}
    # Every profile is created first; then the remaining events are spread.
    order: list[str] = list(names)
    light = names[1:] if heavy_events else names
    remaining = events - len(names)
    if heavy_events:
        order += [names[0]] * (heavy_events - 1)
        remaining -= heavy_events - 1
    order += [rng.choice(light) for _ in range(max(0, remaining))]
    tail = order[len(names):]
    rng.shuffle(tail)
    order[len(names):] = tail

    boot_id = str(uuid.UUID(int=rng.getrandbits(128)))
    previous = GENESIS
    moment = start
    rows = []
    for position, name in enumerate(order, start=1):
        if position % 5000 == 0:
            boot_id = str(uuid.UUID(int=rng.getrandbits(128)))
        moment += timedelta(milliseconds=rng.randint(5, 60_000))
        spec = dict(next(streams[name]))
        prior = states.get(name)
        data = {}
        if spec.pop("_run", False) and prior is not None and prior.run_position is not None:
            data["run"] = prior.run_position
        spec.pop("_opens_run", None)
        row = {
            "position": position,
            "profile": name,
            "version": (prior.version if prior else 0) + 1,
            "type": spec["type"],
            "actor": spec["actor"],
            "desired": spec.get("desired"),
            "occurred_at": format_time(moment),
            "host": HOST,
            "boot_id": boot_id,
            "pid": _pid(spec, prior),
            "exit_code": spec.get("exit_code"),
            "signal": spec.get("signal"),
            "reason": spec.get("reason"),
            "data": encode_data(data),
            "idempotency_key": None,
            "chain_version": CHAIN_VERSION,
        }
        row["hash"] = previous = chain_hash(previous, row)
        states[name] = apply(prior, Event.from_row(row))
        counts[name] += 1
        rows.append(tuple(row[c] for c in COLUMNS))

    dbapi = sqlite_module()
    connection = dbapi.connect(str(path), isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("BEGIN IMMEDIATE")
        placeholders = ", ".join("?" for _ in COLUMNS)
        connection.executemany(f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({placeholders})", rows)
        state_placeholders = ", ".join("?" for _ in _STATE_COLUMNS)
        connection.executemany(
            f"INSERT INTO profile_projection ({', '.join(_STATE_COLUMNS)}) VALUES ({state_placeholders})",
            [tuple(getattr(state, c) for c in _STATE_COLUMNS) for state in states.values()],
        )
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--heavy", type=int, default=0, help="events of the first profile")
    args = parser.parse_args()
    began = time.perf_counter()
    load_log(args.path, profiles=args.profiles, events=args.events, heavy_events=args.heavy)
    print(f"loaded {args.events} events over {args.profiles} profiles into {args.path} "
          f"in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
