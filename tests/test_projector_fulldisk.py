"""A full volume at boot: boot stops before it acts and says why; freed, the next boot brings every slot.

The volume is a real 4 MiB tmpfs in a private mount namespace (root only:
`unshare -m` and `mount`), filled by the unprivileged user as a gateway
would fill it. Every command of the test, s6-svscan included, runs inside
that namespace, so the gateways s6 starts see the same volume.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HERMES, Home, give_to
from projector_support import GATEWAY, IS_ROOT, processes_under, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="a private tmpfs needs root and unshare"),
]


class Namespace:
    """A mount namespace kept alive by a sleeping process; commands enter it with nsenter."""

    def __init__(self, root: Path, user) -> None:
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "600"],
                                       stdin=subprocess.DEVNULL)
        self.user = user
        wait_for(lambda: os.readlink(f"/proc/{self.holder.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"), 5,
                 "the namespace")

    def argv(self, argv: list[str], *, as_user: bool) -> list[str]:
        enter = ["nsenter", "-t", str(self.holder.pid), "-m", "--"]
        if as_user:
            enter += ["setpriv", f"--reuid={self.user.uid}", f"--regid={self.user.gid}", "--clear-groups", "--"]
        return enter + argv

    def run(self, argv: list[str], env: dict[str, str], *, as_user: bool) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(argv, as_user=as_user), env=env, capture_output=True, text=True, timeout=120)

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


def test_a_full_volume_stops_boot_before_it_acts_and_the_next_boot_recovers(world_tmp, hermes_user):
    volume = world_tmp / "volume"
    volume.mkdir()
    scandir = world_tmp / "service"
    scandir.mkdir()
    gateway = world_tmp / "gateway"
    gateway.write_text(GATEWAY)
    gateway.chmod(0o755)
    home = Home(volume / "home", hermes_user)
    env = home.env(S6_PROFILE_GATEWAY_SCANDIR=str(scandir), HERMES_GATEWAY_COMMAND=f"{gateway} {{profile}}")
    space = Namespace(world_tmp, hermes_user)
    scanner = None
    try:
        assert space.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(volume)], env,
                         as_user=False).returncode == 0
        assert space.run(["install", "-d", "-o", str(hermes_user.uid), "-g", str(hermes_user.gid), str(home.path)],
                         env, as_user=False).returncode == 0

        def user(*args: str) -> subprocess.CompletedProcess[str]:
            return space.run([str(HERMES), *args], env, as_user=True)

        for args in (["migrate"], ["create", "alice"], ["start", "alice"],
                     ["create", "bob"]):
            result = user(*args)
            assert result.returncode == 0, result.stderr
        fill = space.run(["dd", "if=/dev/zero", f"of={home.path / 'filler'}", "bs=4k"], env, as_user=True)
        assert "No space left on device" in fill.stderr
        before = space.run(["sha256sum", str(home.db)], env, as_user=True).stdout

        scanner = subprocess.Popen(space.argv(["s6-svscan", str(scandir)], as_user=False), env=env,
                                   start_new_session=True, stdin=subprocess.DEVNULL)
        wait_for(lambda: (scandir / ".s6-svscan" / "control").exists(), 5, "s6-svscan")

        full = space.run([str(HERMES), "boot"], env, as_user=False)
        assert full.returncode == 5, full.stdout + full.stderr
        failure = [line for line in full.stderr.splitlines() if "boot failed" in line]
        assert len(failure) == 1 and "is full" in failure[0] and "no slot was created" in failure[0], full.stderr
        assert "Traceback" not in full.stderr
        assert not [entry for entry in os.listdir(scandir) if not entry.startswith(".s6-svscan")]  # nothing acted on
        assert space.run(["sha256sum", str(home.db)], env, as_user=True).stdout == before  # the store is as it was

        assert space.run(["rm", str(home.path / "filler")], env, as_user=True).returncode == 0
        freed = space.run([str(HERMES), "boot"], env, as_user=False)
        assert freed.returncode == 0, freed.stdout + freed.stderr
        wait_for(lambda: subprocess.run(["s6-svstat", "-o", "up", str(scandir / "gateway-alice")],
                                        capture_output=True, text=True).stdout.strip() == "true", 10, "alice up")
        assert (scandir / "gateway-bob" / "down").exists()
        doctor = user("doctor")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    finally:
        if scanner is not None:
            subprocess.run(["s6-svscanctl", "-t", str(scandir)], timeout=10)
            scanner.wait(timeout=30)
        space.close()
        wait_for(lambda: not processes_under(scandir), 10, "nothing left in the scan directory")
