"""README's quick start, as written: `make run` in one terminal; in another, `make shell` and the
commands README lists after it. Both reach the same user, home, PATH and venv, as root (the
unprivileged RUN_USER, its home and venv under RUN_ROOT) and as an ordinary user (that user,
~/.hermes, the checkout's .venv), so the commands' events are the ones `make run`'s watch daemon
projects onto its slots.

As root, RUN_USER is the test user and RUN_ROOT a temporary directory: `make` makes RUN_ROOT's venv
from this checkout for real (a plain `pip install .`). As an ordinary user the test user runs
`make` itself, with the suite's own .venv (``-o .venv/.installed``: it is the package under test
and must not be rebuilt by a user who cannot write it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN_DIR, User, give_to
from projector_support import wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
VENV = BIN_DIR.parent
MARKER = "In another terminal, while `make run` runs:"


def readme_commands() -> list[str]:
    """The commands README's "another terminal" block runs in `make shell` (comments dropped)."""
    after = (REPO / "README.md").read_text().split(MARKER, 1)[1]
    block = after.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    lines = [line for line in lines if line]
    assert lines[0] == "make shell", lines
    return lines[1:]


def make_env(home: Path) -> dict[str, str]:
    """This environment without its hermes-state and make settings: a person's terminal."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("HERMES_", "S6_")) and key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(HOME=str(home), LANG="C.UTF-8", PATH="/usr/local/bin:/usr/bin:/bin")
    return env


def make_argv(*targets: str, **variables: str) -> list[str]:
    argv = ["make", "-s", "-C", str(REPO), *targets, *(f"{k}={v}" for k, v in variables.items())]
    if "VENV" in variables:  # the suite's own venv: used as it is (see the module's note)
        argv += ["-o", f"{variables['VENV']}/.installed"]
    return argv


def quick_start(user: User, home: Path, hermes_home: Path, venv: Path, *, make_as: User | None,
                **variables: str) -> None:
    """`make run`, then README's block in `make shell` (both run by ``make_as``, None: this process):
    the shell is ``user`` in ``hermes_home`` with ``venv`` first on PATH, and what it appends is what
    the running daemon projects (alice's slot appears)."""
    as_user = {} if make_as is None or make_as.is_self else {"user": make_as.uid, "group": make_as.gid,
                                                             "extra_groups": []}
    log = home / "make-run.log"
    with log.open("w") as out:
        runner = subprocess.Popen(make_argv("run", **variables), env=make_env(home), stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                  **as_user)
    scandir = hermes_home / "run" / "service"
    try:
        wait_for(lambda: "boot done; watching" in log.read_text() or runner.poll() is not None, 240,
                 "make run's boot")
        assert runner.poll() is None, log.read_text()
        script = "set -e\nid -un\necho \"home=$HERMES_HOME\"\ncommand -v hermes-state\n" + "\n".join(readme_commands())
        shell = subprocess.run(make_argv("shell", **variables), env=make_env(home), input=script + "\n",
                               capture_output=True, text=True, timeout=120, **as_user)
        assert shell.returncode == 0, shell.stdout + shell.stderr
        lines = shell.stdout.splitlines()
        assert lines[1:4] == [user.name, f"home={hermes_home}", str(venv / "bin" / "hermes-state")], lines
        assert "alice" in shell.stdout
        # The daemon `make run` started saw the shell's events: it made alice's slot in its scan directory.
        wait_for(lambda: (scandir / "gateway-alice").is_dir(), 30, "alice's slot made by make run's daemon")
        db = hermes_home / "state" / "profiles.db"
        assert db.stat().st_uid == user.uid
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGINT)  # Ctrl-C in make run's terminal
        try:
            runner.wait(timeout=60)
        except subprocess.TimeoutExpired:
            subprocess.run(["s6-svscanctl", "-t", str(scandir)], capture_output=True, timeout=10)
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait(timeout=30)
            raise
    assert "every gateway is down" in log.read_text(), log.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="root's quick start needs root (the suite runs as root in CI)")
def test_as_root_make_shell_reaches_what_make_run_runs(world_tmp, hermes_user):
    run_root = world_tmp / "run-root"
    venv = run_root / "venv"
    quick_start(hermes_user, world_tmp, run_root / "home", venv, make_as=None,
                RUN_USER=hermes_user.name, RUN_ROOT=str(run_root))
    assert list(venv.glob(".installed-from*")), "make run's venv stamp"
    # Nothing changed, nothing installed again: the stamp is newer than every source.
    again = subprocess.run(["make", "-n", "-C", str(REPO), "run", f"RUN_ROOT={run_root}", f"RUN_USER={hermes_user.name}"],
                           env=make_env(world_tmp), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "hermes-state up" in again.stdout, again.stdout + again.stderr
    assert "pip install" not in again.stdout


def test_as_an_ordinary_user_make_shell_reaches_what_make_run_runs(world_tmp, hermes_user):
    home = world_tmp / "user-home"
    home.mkdir()
    give_to(home, hermes_user)
    quick_start(hermes_user, home, home / ".hermes", VENV, make_as=hermes_user, VENV=str(VENV))
