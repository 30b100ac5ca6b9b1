"""Run every benchmark, one after the other, each printing its ratios against its own baseline.

    .venv/bin/python bench/run_all.py [NAME ...]     # `make bench`; names as below, default all

Each benchmark measures its baseline in the same run (these machines are
noisy; absolute times drift), so the ratios are what to compare across
machines. `docs/performance.md` records what they printed and when.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> script (run with its defaults)
BENCHMARKS = {
    "append": "append_throughput.py",
    "record-exit": "record_exit.py",
    "history": "history.py",
    "latency": "projector_latency.py",
    "boot": "projector_boot.py",
}


def main(names: list[str]) -> int:
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = []
    for name in names or list(BENCHMARKS):
        script = HERE / BENCHMARKS[name]
        print(f"\n=== {name}: {script.name}", flush=True)
        began = time.monotonic()
        status = subprocess.run([sys.executable, str(script)]).returncode
        print(f"=== {name}: exit {status} after {time.monotonic() - began:.0f} s", flush=True)
        if status != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
