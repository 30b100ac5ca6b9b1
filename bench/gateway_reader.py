"""What the gateways' reader (`hermes-state watch-gateways`) costs the host: 100 profiles writing their files.

A real reader (watchdog's inotify observer, as the unprivileged user), a
real store of 100 live profiles, each with a supervised run in the log and
its own profiles/NAME/gateway_state.json. The bench plays the gateways: it
writes each file as hermes-agent does (JSON, a temporary file, a rename).
Two kinds of write, each a round over the 100 files, spread over a few
seconds (time is compressed: a minute's writes of 100 gateways in a round):

- heartbeat: only `updated_at` moves (newer hermes-agent writes every 60 s):
  the reader reads the file and appends nothing;
- transition: the state flips running <-> degraded: every write is one
  `reported` event appended.

Measured from /proc: the reader's CPU time (user + system) per round, and
the writer's own CPU time for the same writes, in the same run: the
baseline, since the gateways pay it anyway. Printed as ratios to it, and as
the share of one core that 100 profiles writing once a minute would take.
Also the reader's CPU while idle, and how long the last report of a
transition round took to land.

    .venv/bin/python bench/gateway_reader.py [--rounds 5] [--under-load] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import load_average, under_load, write_part  # noqa: E402
from projector_common import BIN_DIR, bench_user, give_to  # noqa: E402
from store_access import NewEvent, create_store, db_path, home_env, open_store  # noqa: E402

PROFILES = [f"gw-{i:03d}" for i in range(100)]
SPREAD_SECONDS = 3.0  # a round of 100 writes is spread over this long
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def reports(env: dict[str, str]) -> int:
    """How many reports the log holds (read as an operator would: read-only)."""
    import sqlite3

    connection = sqlite3.connect(f"file:{db_path(env)}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT count(*) FROM events WHERE type = 'reported'").fetchone()[0]
    finally:
        connection.close()


def write_round(home: Path, pids: dict[str, int], state_of: dict[str, str], flip: bool) -> float:
    """One write of each file, spread over SPREAD_SECONDS; returns the writer's own CPU seconds."""
    spent = 0.0
    pause = SPREAD_SECONDS / len(PROFILES)
    for name in PROFILES:
        began = time.process_time()
        if flip:
            state_of[name] = "degraded" if state_of[name] == "running" else "running"
        path = home / "profiles" / name / "gateway_state.json"
        content = {"pid": pids[name], "kind": "hermes-gateway", "argv": ["hermes", "gateway", "run"],
                   "start_time": 1, "gateway_state": state_of[name], "exit_reason": None,
                   "restart_requested": False, "active_agents": 0, "platforms": {"telegram": {"state": "connected"}},
                   "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
        staging = path.with_suffix(".tmp")
        with open(staging, "w") as file:
            json.dump(content, file, separators=(",", ":"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, path)
        spent += time.process_time() - began
        time.sleep(pause)
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--under-load", action="store_true", help="measure beside stress-ng --cpu 2")
    parser.add_argument("--json", metavar="PATH", help="write the figures here (for run_all)")
    args = parser.parse_args()
    user = bench_user()
    work = Path(tempfile.mkdtemp(prefix="hermes-bench-reader-"))
    work.chmod(0o755)
    home = work / "home"
    home.mkdir()
    env = home_env(home)
    reader = None
    try:
        create_store(env)
        pids = {name: 100000 + index for index, name in enumerate(PROFILES)}
        with open_store(env) as store:
            for name in PROFILES:
                store.append(NewEvent(name, "created", "cli", "down"))
                store.append(NewEvent(name, "started", "cli", "up"))
                store.append(NewEvent(name, "started", "supervisor", pid=pids[name]))
        state_of = {name: "running" for name in PROFILES}
        for name in PROFILES:
            (home / "profiles" / name).mkdir(parents=True)
            (home / "profiles" / name / "SOUL.md").write_text("")
        write_round(home, pids, state_of, flip=False)
        give_to(home, user)
        output = (work / "reader.out").open("wb")
        credentials = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        reader = subprocess.Popen([str(BIN_DIR / "hermes-state"), "watch-gateways"], env=env, stdout=output,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **credentials)
        deadline = time.monotonic() + 60
        while reports(env) < len(PROFILES):  # the first look reports every gateway ready
            if time.monotonic() > deadline or reader.poll() is not None:
                raise SystemExit(f"the reader did not report every gateway ready: {(work / 'reader.out').read_text()}")
            time.sleep(0.1)
        figures: dict = {"profiles": len(PROFILES), "rounds": args.rounds, "spread_seconds": SPREAD_SECONDS}
        with under_load(args.under_load) as load:
            figures["load"] = load or "quiet"
            time.sleep(2.0)
            idle_began = cpu_seconds(reader.pid)
            time.sleep(10.0)
            figures["idle_cpu_seconds_per_10s"] = round(cpu_seconds(reader.pid) - idle_began, 4)
            for kind, flip in (("heartbeat", False), ("transition", True)):
                reader_cpu, writer_cpu, landed = [], [], []
                for _ in range(args.rounds):
                    expected = reports(env) + (len(PROFILES) if flip else 0)
                    before = cpu_seconds(reader.pid)
                    writer_cpu.append(write_round(home, pids, state_of, flip))
                    wrote = time.monotonic()
                    while reports(env) < expected:
                        if time.monotonic() - wrote > 60:
                            raise SystemExit(f"{kind}: the reports did not land within 60 s")
                        time.sleep(0.05)
                    landed.append(time.monotonic() - wrote)
                    time.sleep(1.0)  # let the reader settle before reading its clock
                    reader_cpu.append(cpu_seconds(reader.pid) - before)
                    if not flip and reports(env) != expected:
                        raise SystemExit("heartbeat writes appended reports")
                reader_round, writer_round = statistics.median(reader_cpu), statistics.median(writer_cpu)
                figures[kind] = {
                    "reader_cpu_seconds_per_round": round(reader_round, 4),
                    "writer_cpu_seconds_per_round": round(writer_round, 4),
                    "reader_over_writer": round(reader_round / writer_round, 2) if writer_round else None,
                    "share_of_one_core_at_100_writes_a_minute": round(reader_round / 60.0, 5),
                    "last_report_landed_seconds_after_the_round": round(statistics.median(landed), 3),
                }
        figures["load_average"] = load_average()
        print(json.dumps(figures, indent=1))
        for kind in ("heartbeat", "transition"):
            part = figures[kind]
            print(f"{kind:10}: reader {part['reader_cpu_seconds_per_round'] * 1000:.0f} ms CPU per 100 writes "
                  f"= {part['reader_over_writer']}x the writers' own; "
                  f"{part['share_of_one_core_at_100_writes_a_minute'] * 100:.2f}% of one core at 100 writes a minute",
                  file=sys.stderr)
        write_part(args.json, figures)
        return 0
    finally:
        if reader is not None:
            reader.terminate()
            try:
                reader.wait(timeout=10)
            except subprocess.TimeoutExpired:
                reader.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
