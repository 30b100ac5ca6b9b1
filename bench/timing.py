"""Wall and CPU time of one child process, failing loudly on an unexpected exit status."""

from __future__ import annotations

import resource
import subprocess
import time


def run_timed(argv: list[str], env: dict[str, str], *, expect: int = 0, cwd: str | None = None,
              timeout: float = 900) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != expect:
        raise SystemExit(f"{' '.join(argv[:5])} exited {result.returncode}, expected {expect}: "
                         f"{result.stderr.strip()[-500:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, result.stdout
