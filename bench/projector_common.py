"""What the projector benchmarks share: a HERMES_HOME, a private s6-svscan, the user the slots drop to.

Run as root, the slots' scripts drop to ``HERMES_USER`` (``HERMES_BENCH_USER``,
else ``hermes-test`` when it exists, else ``nobody``), so the home is given
to that user, as the volume belongs to ``hermes`` in the container.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

BIN_DIR = Path(sys.executable).parent


def bench_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("HERMES_BENCH_USER"), "hermes-test", "nobody"):
        if not name:
            continue
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise SystemExit("running as root needs an unprivileged user for the slots: set HERMES_BENCH_USER")


def give_to(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), user.pw_uid, user.pw_gid)


def environment(home: Path, scandir: Path, user: pwd.struct_passwd | None, **extra: str) -> dict[str, str]:
    env = {
        "PATH": f"{BIN_DIR}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "HERMES_HOME": str(home),
        "S6_PROFILE_GATEWAY_SCANDIR": str(scandir),
        "HERMES_USER": user.pw_name if user else pwd.getpwuid(os.geteuid()).pw_name,
    }
    env.update(extra)
    return env


def hermes(env: dict[str, str], *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN_DIR / "hermes-state"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise SystemExit(f"hermes {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


class Scanner:
    """A private s6-svscan, stopped by its pid with s6-svscanctl -t."""

    def __init__(self, scandir: Path, env: dict[str, str]) -> None:
        scandir.mkdir(parents=True, exist_ok=True)
        self.scandir = scandir
        self.process = subprocess.Popen(
            [shutil.which("s6-svscan"), str(scandir)], env=env, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not (scandir / ".s6-svscan" / "control").exists():
            if time.monotonic() > deadline:
                raise SystemExit("s6-svscan did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process.poll() is None:
            subprocess.run(["s6-svscanctl", "-t", str(self.scandir)], timeout=10)
        self.process.wait(timeout=120)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]
