"""The tooling a newcomer meets first: `make test` from a checkout the test user cannot reach says so
in one line, and the Debian packages are installed through tools/apt-install, which waits for
another apt or dpkg instead of failing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import HERMES, cannot_run
from projector_support import wait_for

REPO = Path(__file__).resolve().parent.parent
APT_INSTALL = REPO / "tools" / "apt-install"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root meets these (the suite runs as root in CI)")


def plain_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return {**env, **extra}


@needs_root
def test_make_test_in_a_private_directory_says_why_in_one_line_before_installing_anything(world_tmp, hermes_user):
    private = world_tmp / "root-home"
    checkout = private / "hermes-state"
    checkout.mkdir(parents=True)
    private.chmod(0o700)  # as /root is
    shutil.copy(REPO / "Makefile", checkout / "Makefile")
    result = subprocess.run(["make", "-C", str(checkout), "test", f"TEST_USER={hermes_user.name}"],
                            env=plain_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if not line.startswith("make:")]
    assert len(ours) == 1 and ours[0].startswith(f"make test: the test user {hermes_user.name} cannot reach "), result.stderr
    assert "/var/tmp" in ours[0] and ".ci/run" in ours[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (checkout / ".venv").exists()  # said before anything was installed


@needs_root
def test_the_suites_own_probe_names_an_unreachable_command_instead_of_raising(world_tmp, hermes_user):
    private = world_tmp / "private"
    private.mkdir(mode=0o700)
    hidden = private / "hermes-state"
    shutil.copy(HERMES, hidden)
    reason = cannot_run(hidden, hermes_user)
    assert reason is not None and "Permission denied" in reason
    assert cannot_run(HERMES, hermes_user) is None


def test_every_apt_step_goes_through_tools_apt_install():
    for path in ("Makefile", ".ci/run"):
        text = (REPO / path).read_text()
        assert "apt-get" not in text, f"{path} calls apt-get directly: use tools/apt-install, which waits for the lock"
    assert "tools/apt-install" in (REPO / "Makefile").read_text() and "tools/apt-install" in (REPO / ".ci/run").read_text()


@needs_root
def test_apt_install_waits_for_the_lists_and_dpkg_locks_another_apt_holds(world_tmp):
    """apt pointed at lists, sources and a dpkg status of its own (nothing fetched, nothing
    installed: sqlite3 is there already), whose locks this test holds as an unattended upgrade
    would: each until the step that needs it is seen waiting for it. Without waiting, `apt-get
    update` fails on the lists lock at once."""
    lists, parts, dpkg = world_tmp / "lists", world_tmp / "sources.list.d", world_tmp / "dpkg"
    for directory in (lists / "partial", parts, dpkg):
        directory.mkdir(parents=True)
    shutil.copy("/var/lib/dpkg/status", dpkg / "status")
    options = (f"-o Dir::State::Lists={lists} -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts={parts} "
               f"-o Dir::State::status={dpkg / 'status'}")
    held = {}
    for name, lock in (("lists", lists / "lock"), ("dpkg", dpkg / "lock-frontend")):
        held[name] = os.open(lock, os.O_RDWR | os.O_CREAT, 0o640)
        fcntl.lockf(held[name], fcntl.LOCK_EX)  # apt's own kind of lock (fcntl), as another apt holds it
    script = subprocess.Popen([str(APT_INSTALL), "sqlite3"], env=plain_env(APT_OPTIONS=options, APT_LOCK_WAIT="60"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(script.stderr), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("waiting for another apt" in line for line in stderr), 60, "update waiting for the lists")
        os.close(held.pop("lists"))
        wait_for(lambda: _apt_installing(str(dpkg)), 60, "apt-get install started")
        time.sleep(1)  # a moment inside apt's wait for the dpkg lock, which it says on stdout
        os.close(held.pop("dpkg"))
        stdout, _ = script.communicate(timeout=120)
    finally:
        for fd in held.values():
            os.close(fd)
        if script.poll() is None:
            script.kill()
            script.wait()
    reader.join(timeout=10)
    assert script.returncode == 0, stdout + "".join(stderr)
    assert f"Could not get lock {dpkg / 'lock-frontend'}" in stdout  # install: apt said it waits
    assert "sqlite3 is already the newest version" in stdout


def _apt_installing(marker: str) -> bool:
    """An `apt-get ... install` of this test's (its options name ``marker``) is running."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if words and words[0].endswith(b"apt-get") and b"install" in words and any(
                    marker.encode() in word for word in words):
                return True
    return False
