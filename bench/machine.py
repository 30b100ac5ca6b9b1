"""What every figure is reported with: the machine, its load, and an optional load of our own.

The load average goes beside each figure because wall times on a shared
machine follow it; ``under_load`` runs ``stress-ng --cpu N`` beside a
measurement, bounded in time, and stops it (by its own process group) when
the measurement ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from hermes_lifecycle.backends.sqlite.driver import library_name, sqlite_module


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def file_system(path: Path) -> str:
    """The mount's type and source for ``path`` (``ext4 /dev/vda``), from findmnt."""
    result = subprocess.run(["findmnt", "-n", "--first-only", "-o", "FSTYPE,SOURCE", "-T", str(path)],
                            capture_output=True, text=True, check=True)
    return " ".join(result.stdout.split())


def s6_version() -> str | None:
    result = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "s6"], capture_output=True, text=True)
    return result.stdout.strip() or None


def describe(work_dir: Path) -> dict:
    """Cores, file systems, SQLite versions, interpreter, kernel, load average."""
    ours = sqlite_module()
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_mb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "file_system": {
            f"{work_dir} (the stores and files measured)": file_system(work_dir),
            "/var/tmp (the bulk-loaded logs)": file_system(Path("/var/tmp")),
            "/dev/shm (scan directories)": file_system(Path("/dev/shm")),
        },
        "sqlite": {
            "the store's (" + library_name(ours) + ")": ours.sqlite_version,
            "the standard library's (eventsourcing's)": sqlite3.sqlite_version,
        },
        "s6": s6_version(),
        "load_average": load_average(),
    }


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


@contextlib.contextmanager
def under_load(enabled: bool, cpus: int = 2, limit_seconds: int = 900) -> Iterator[str | None]:
    """``stress-ng --cpu cpus`` beside the block when ``enabled``; yields a description, or None.

    ``--timeout`` bounds it even if this process dies; the block's end stops it sooner.
    """
    if not enabled:
        yield None
        return
    stress = shutil.which("stress-ng")
    if stress is None:
        raise SystemExit("--under-load needs stress-ng (`make bench` installs it: apt-get install stress-ng)")
    process = subprocess.Popen([stress, "--cpu", str(cpus), "--timeout", f"{limit_seconds}s", "--quiet"],
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"stress-ng --cpu {cpus}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def write_part(path: str | None, part: dict) -> None:
    """A benchmark's figures for run_all (``--json PATH``); nothing when not asked."""
    if path:
        Path(path).write_text(json.dumps(part, indent=1) + "\n")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
