"""A writer killed mid-storm on one file, and racing expected versions.

(Eight processes appending at once is the store contract's, on both backends:
tests/contract/store_contract.py.)

Every writer here is a separate OS process running as the unprivileged user,
as the hooks and the CLI do in production.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_as

WORKERS = Path(__file__).resolve().parent / "workers"
PROFILES = ["alpha", "bravo", "charlie"]


def spawn(home, script: str, *args: str) -> subprocess.Popen:
    kwargs = {}
    if not home.user.is_self:
        kwargs = {"user": home.user.uid, "group": home.user.gid, "extra_groups": []}
    return subprocess.Popen(
        [sys.executable, str(WORKERS / script), *args],
        env=home.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )


def create_profiles(home, names):
    for name in names:
        result = run_as(
            [sys.executable, "-c", f"from hermes_lifecycle.events import NewEvent; from hermes_lifecycle.settings import Settings; "
             f"from hermes_lifecycle.store import open_store; open_store(Settings.from_env()).append(NewEvent({name!r}, 'created', 'cli', 'down'))"],
            home.user, env=home.env(),
        )
        assert result.returncode == 0, result.stderr


def doctor(home) -> dict:
    result = home.hermes("doctor", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["healthy"] else 5)
    return report


def check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["check"] == name)


def all_rows(db: Path) -> list[dict]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY position")]
    conn.close()
    return rows


@pytest.mark.parametrize("attempt", range(3))
def test_a_writer_killed_mid_storm_leaves_a_whole_log(migrated_home, attempt):
    create_profiles(migrated_home, PROFILES)
    writer = spawn(migrated_home, "append_storm.py", "0", ",".join(PROFILES), "--forever")
    returned = []
    deadline = time.monotonic() + 30
    while len(returned) < 200 + 97 * attempt and time.monotonic() < deadline:
        returned.append(json.loads(writer.stdout.readline()))
    writer.send_signal(signal.SIGKILL)
    out, _ = writer.communicate(timeout=10)
    returned += [json.loads(line) for line in out.splitlines() if line.endswith("}")]
    assert writer.returncode == -signal.SIGKILL
    assert len(returned) >= 200

    with sqlite3.connect(migrated_home.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    rows = {row["position"]: row for row in all_rows(migrated_home.db)}
    for item in returned:
        assert rows[item["position"]]["version"] == item["version"]
    report = doctor(migrated_home)
    assert report["healthy"], report
    assert check(report, "hash chain")["status"] == "ok"
    assert check(report, "projection")["status"] == "ok"


def test_concurrent_appends_with_the_same_expected_version_one_wins(migrated_home, world_tmp):
    create_profiles(migrated_home, ["alpha"])
    for round_number in range(10):
        expected = 1 + round_number
        go = world_tmp / f"go-{round_number}"
        racers = [spawn(migrated_home, "race_expected_version.py", "alpha", str(expected), str(go)) for _ in range(2)]
        assert [racer.stdout.readline() for racer in racers] == ["ready\n", "ready\n"]
        go.touch()
        results = [(racer.wait(timeout=30), racer.stderr.read()) for racer in racers]
        statuses = sorted(status for status, _ in results)
        assert statuses == [0, 4], results
        loser = next(err for status, err in results if status == 4)
        assert "version" in loser and len(loser.strip().splitlines()) == 1
    versions = [row["version"] for row in all_rows(migrated_home.db)]
    assert versions == list(range(1, 12))


def test_two_concurrent_creates_of_one_name_one_wins_the_other_is_4(migrated_home):
    for round_number in range(5):
        name = f"twin-{round_number}"
        racers = [
            subprocess.Popen([str(Path(sys.executable).parent / "hermes-state"), "create", name],
                             env=migrated_home.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             **({} if migrated_home.user.is_self else
                                {"user": migrated_home.user.uid, "group": migrated_home.user.gid, "extra_groups": []}))
            for _ in range(2)
        ]
        results = [(racer.wait(timeout=60), racer.stderr.read()) for racer in racers]
        assert sorted(status for status, _ in results) == [0, 4], results
        loser = next(err for status, err in results if status == 4)
        assert len(loser.strip().splitlines()) == 1 and "exists" in loser
        assert (migrated_home.path / "profiles" / name / "SOUL.md").is_file()
