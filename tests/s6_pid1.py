"""s6-svscan as PID 1 of its own PID and mount namespaces: what hermes-agent takes for an s6 container.

hermes-agent decides it runs under s6-overlay from ``/proc/1/comm`` being
``s6-svscan`` and ``/run/s6/basedir`` existing, and then drives its gateways
with ``/command/s6-svc`` on ``/run/service/gateway-NAME``: absolute paths. No
container engine runs here, so this makes those facts true with the kernel's
own namespaces (util-linux ``unshare``, as root): a new PID namespace whose
PID 1 is a real ``s6-svscan``, a private ``/proc``, a private tmpfs on
``/run`` holding ``s6/basedir`` and the scan directory ``service``, and a
private ``/command`` holding Debian's s6 programs, a pass-through
``with-contenv``, and the image's own ``s6-svc``
(docker/rootfs/usr/local/libexec/hermes-state/s6-svc). Everything else is
the host's: the test's home and the virtual environments are at their own
paths. Commands run inside with ``nsenter``, as root or as the unprivileged
user (``setpriv``).

What it is not: the image (no s6-overlay stages, no s6-rc; the projector and
the reader are started by the test, as the image's services would start
them). An empty ``/command`` directory is made on the host as the mount point
when there is none, and removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Mapping, Sequence

from conftest import User

REPO = Path(__file__).resolve().parent.parent
S6_SVC_SHIM = REPO / "docker" / "rootfs" / "usr" / "local" / "libexec" / "hermes-state" / "s6-svc"
PASS_THROUGH = "#!/bin/sh\n# Stand-in for s6-overlay's with-contenv: the environment is already the container's.\nexec \"$@\"\n"
SCANDIR = "/run/service"


class S6Pid1:
    """One namespace with s6-svscan as PID 1; ``start()``, ``run()``, ``spawn()``, ``stop()``."""

    def __init__(self, base: Path, env: Mapping[str, str]) -> None:
        self.base = base
        self.env = dict(env)
        self.commands = base / "command"
        self.unshare: subprocess.Popen | None = None
        self.pid1: int | None = None
        self._made_mount_point = False
        self._spawned: list[subprocess.Popen] = []

    def start(self) -> None:
        self.commands.mkdir()
        for program in sorted(Path("/usr/bin").glob("s6-*")):
            (self.commands / program.name).symlink_to(program)
        (self.commands / "s6-svc").unlink()
        shutil.copy(S6_SVC_SHIM, self.commands / "s6-svc")
        (self.commands / "with-contenv").write_text(PASS_THROUGH)
        (self.commands / "with-contenv").chmod(0o755)
        if not os.path.lexists("/command"):
            os.mkdir("/command", 0o755)
            self._made_mount_point = True
        script = (f"mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/s6/basedir {SCANDIR} && "
                  f"mount --bind {self.commands} /command && exec s6-svscan {SCANDIR}")
        self.unshare = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "/bin/sh", "-c",
             script], env=self.env, start_new_session=True, stdin=subprocess.DEVNULL,
            stdout=(self.base / "svscan.log").open("ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while self.pid1 is None:
            children = Path(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children")
            found = children.read_text().split() if children.exists() else []
            if found and (Path(f"/proc/{found[0]}/root") / SCANDIR.lstrip("/") / ".s6-svscan" / "control").exists():
                self.pid1 = int(found[0])
            elif self.unshare.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"s6-svscan did not start as PID 1: {(self.base / 'svscan.log').read_text()}")
            else:
                time.sleep(0.02)

    def path(self, inside: str) -> Path:
        """A path of the namespace's own mounts (its /run), as the host sees it."""
        assert self.pid1 is not None
        return Path(f"/proc/{self.pid1}/root") / inside.lstrip("/")

    def _argv(self, argv: Sequence[str], user: User | None, env: Mapping[str, str]) -> list[str]:
        assert self.pid1 is not None
        inside = ["nsenter", "--target", str(self.pid1), "--pid", "--mount", "--"]
        if user is not None:
            inside += ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups"]
        return inside + ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]

    def run(self, argv: Sequence[str], user: User | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``argv`` inside the namespace, as root or ``user``, with ``env`` (default: the namespace's)."""
        return subprocess.run(self._argv(argv, user, env or self.env), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def spawn(self, argv: Sequence[str], log: Path, user: User | None = None,
              env: Mapping[str, str] | None = None) -> subprocess.Popen:
        """A daemon inside the namespace (the projector, the reader), stopped by ``stop()`` with the rest."""
        process = subprocess.Popen(self._argv(argv, user, env or self.env), stdout=log.open("ab"),
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._spawned.append(process)
        return process

    def stop(self) -> None:
        """As a container stops: s6-svscanctl -t (every finish runs), then PID 1's end takes the rest."""
        try:
            if self.pid1 is not None and self.unshare is not None and self.unshare.poll() is None:
                self.run(["s6-svscanctl", "-t", SCANDIR], timeout=30)
                try:
                    self.unshare.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.unshare.pid, signal.SIGKILL)
                    self.unshare.wait()
            for process in self._spawned:
                if process.poll() is None:
                    process.kill()
                process.wait()
        finally:
            if self._made_mount_point:
                os.rmdir("/command")
