"""A home made by the release before the names changed (`hermes`, `hermes_state`) upgrades and loses nothing.

The old release is this repository at its last commit with the old names,
installed as it shipped (its own `hermes` command) into a virtual
environment of its own; it makes a home as a user would, its slot hooks
included (run as s6 would run them). Then this checkout's `hermes-state`
reads, checks and extends that very home.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from conftest import run_as

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parent.parent
# The last commit that installed `hermes`, `hermes_state` and `hermes_cli`.
OLD_RELEASE = "1892b3aff46da6e6155d7fb0503cc02934de21b8"


@pytest.fixture(scope="module")
def old_hermes() -> Iterator[Path]:
    """The old release's `hermes`, installed from its source at OLD_RELEASE, where every uid can run it."""
    work = Path(tempfile.mkdtemp(prefix="hermes-old-release-"))
    work.chmod(0o755)
    try:
        source = work / "source"
        source.mkdir()
        made = subprocess.run(f"git -C {REPOSITORY} archive {OLD_RELEASE} | tar -x -C {source}", shell=True,
                              capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, f"the old release must be in this clone's history: {made.stderr}"
        venv = work / "venv"
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, timeout=300)
        installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
                                   capture_output=True, text=True, timeout=900)
        assert installed.returncode == 0, installed.stderr
        yield venv / "bin" / "hermes"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_home_of_the_old_release_is_read_checked_and_extended_by_the_new_one(home, old_hermes, out):
    env = home.env(HERMES_GATEWAY_COMMAND=f"/bin/sh -c 'echo $$ > {out}'", PATH=f"{old_hermes.parent}:/usr/bin:/bin")

    def old(*args: str) -> None:
        result = run_as([str(old_hermes), *args], home.user, env=env, timeout=120)
        assert result.returncode == 0, (args, result.stderr)

    old("state", "migrate")  # the old release's own store, at its own schema
    old("profile", "create", "alice")
    old("gateway", "start", "-p", "alice")
    old("state", "record-start", "gateway-alice")  # as the old slot's `run` did: records, then runs the gateway
    old("state", "record-exit", "gateway-alice", "256", "9", "true")  # a crash
    old("gateway", "restart", "-p", "alice")
    old("gateway", "stop", "-p", "alice")
    before = run_as([str(old_hermes), "profile", "history", "alice", "--json", "--limit", "0"], home.user,
                    env=env, timeout=60)
    assert before.returncode == 0, before.stderr
    rows = [json.loads(line) for line in before.stdout.splitlines()]
    assert [(row["type"], row["actor"]) for row in rows] == [
        ("created", "cli"), ("started", "cli"), ("started", "supervisor"), ("crashed", "supervisor"),
        ("started", "cli"), ("stopped", "cli")]

    # The new release, on the same home: it asks for its migration (one line, exit 5, nothing touched),
    # then reads the same events, finds a healthy store, and goes on.
    refused = home.hermes("history", "alice")
    assert refused.returncode == 5 and "run `hermes-state migrate`" in refused.stderr, refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    migrated = home.hermes("migrate")
    assert migrated.returncode == 0, migrated.stderr
    after = home.hermes("history", "alice", "--json", "--limit", "0")
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout
    doctor = home.hermes("doctor", "--json")
    assert doctor.returncode == 0 and json.loads(doctor.stdout)["healthy"] is True, doctor.stdout + doctor.stderr
    assert home.hermes("start", "alice").returncode == 0
    assert home.hermes("create", "bob").returncode == 0
    listed = {row["profile"]: row["desired"] for row in map(json.loads, home.hermes("list", "--json").stdout.splitlines())}
    assert listed == {"alice": "up", "bob": "down"}
    assert [json.loads(line)["type"] for line in home.hermes("history", "alice", "--json").stdout.splitlines()][-1] \
        == "started"
