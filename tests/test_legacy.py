"""Legacy import: the pure decisions in process, the import itself through the real command as the user."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from conftest import HERMES, Home, give_to, run_as, run_on_terminal
from hermes_lifecycle.backends.sqlite.driver import sqlite_module
from hermes_lifecycle.legacy import normalized_time, plan_import, should_run

# A copy of the shared fixture (../shared/fixtures/legacy-home), described by legacy-home.md beside it.
FIXTURE = Path(__file__).parent / "fixtures" / "legacy-home"

# legacy-home.md, as a table: profile -> "up" | "down" | None (not imported).
FIXTURE_EXPECTED = {
    "default": "up", "alpha": "up", "bravo": "down", "charlie": "down", "delta": "up", "echo": "up",
    "foxtrot": "down", "golf": "up", "hotel": "down", "india": "down", "juliet": "down", "kilo": "down",
    "lima": "down",
}
FIXTURE_PROBLEMS = {"india", "juliet", "kilo", "lima"}
FIXTURE_SKIPPED = {"mike"}
FIXTURE_NOT_SAID = {".november.staging-1234"}  # a create's own staging directory: not legacy state


# -- the pure part -----------------------------------------------------------------


@pytest.mark.parametrize(
    "document, up",
    [
        ({"gateway_state": "running"}, True),
        ({"gateway_state": "draining"}, True),
        ({"gateway_state": "degraded"}, True),
        ({"gateway_state": "starting"}, False),
        ({"gateway_state": "startup_failed"}, False),
        ({"gateway_state": "stopped"}, False),
        ({"gateway_state": "exploded"}, False),  # unknown values import down
        ({"gateway_state": "RUNNING"}, False),
        ({"gateway_state": None}, False),
        ({"gateway_state": 1}, False),
        ({}, False),
        ({"desired_state": "running"}, True),
        ({"desired_state": "running", "gateway_state": "stopped"}, True),  # what was asked wins
        ({"desired_state": "stopped", "gateway_state": "running"}, False),
        ({"desired_state": "paused", "gateway_state": "running"}, False),
        ({"desired_state": None, "gateway_state": "running"}, True),  # null: no desired_state
        ({"desired_state": None, "gateway_state": "stopped"}, False),
        ({"desired_state": ["running"], "gateway_state": "running"}, False),
    ],
)
def test_should_run(document, up):
    assert should_run(document)[0] is up


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-05-08T10:11:12.345678+00:00", "2026-05-08T10:11:12.345Z"),
        ("2026-05-08T12:11:12+02:00", "2026-05-08T10:11:12.000Z"),
        ("2026-05-08T10:11:12Z", "2026-05-08T10:11:12.000Z"),
        ("2026-05-08T10:11:12", "2026-05-08T10:11:12.000Z"),  # naive: taken as UTC
        (1779000500, "2026-05-17T06:48:20.000Z"),
        (1779000000.25, "2026-05-17T06:40:00.250Z"),
        (True, None), (None, None), ("yesterday", None), (-5, None), (10**15, None), ([], None),
    ],
)
def test_normalized_time(value, expected):
    assert normalized_time(value) == expected


def test_plan_keeps_the_original_exactly():
    raw = json.dumps({"gateway_state": "running", "updated_at": 1779000500}).encode()
    plan = plan_import("profiles/a/gateway_state.json", raw)
    assert plan.up and plan.problem is None
    assert plan.created_data["content"].encode() == raw
    assert plan.created_data["sha256"] == hashlib.sha256(raw).hexdigest()
    assert plan.created_data["updated_at"] == "2026-05-17T06:48:20.000Z"
    assert plan.started_data["sha256"] == plan.created_data["sha256"]


@pytest.mark.parametrize(
    "raw, problem",
    [
        (None, "no gateway_state.json"),
        (b"", "empty file"),
        (b"  \n", "empty file"),
        (b'{"gateway_state": "runn', "not valid JSON"),
        (b'["running"]', "not a JSON object"),
        (b'"running"', "not a JSON object"),
        (b'{"gateway_state": "running", "note": "caf\xe9"}', "not UTF-8 (byte 41 is 0xe9)"),
        (b"\xff\xfe{}", "not UTF-8 (byte 0 is 0xff)"),
    ],
)
def test_plan_for_an_unusable_file_is_down_with_the_problem(raw, problem):
    plan = plan_import("profiles/a/gateway_state.json", raw)
    assert not plan.up
    assert plan.problem.startswith(problem)
    data = plan.created_data
    assert data["problem"] == plan.problem and data["imported_as"] == "down"
    if raw is None:
        assert "sha256" not in data and "content" not in data
    else:
        assert data["sha256"] == hashlib.sha256(raw).hexdigest()
        kept = base64.b64decode(data["content_base64"]) if "content_base64" in data else data["content"].encode()
        assert kept == raw  # undecodable bytes are kept as base64, byte for byte


# -- through the real command --------------------------------------------------------


def copy_tree(source: Path, target: Path) -> None:
    """Copy with ordinary permissions (the fixture is read-only; a home is not)."""
    for root, dirs, files in os.walk(source):
        relative = Path(root).relative_to(source)
        (target / relative).mkdir(exist_ok=True)
        for name in files:
            (target / relative / name).write_bytes((Path(root) / name).read_bytes())


def snapshot(path: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(path)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*")) if p.is_file() and "state" not in p.relative_to(path).parts
    }


def rows(home: Home) -> list[dict]:
    con = sqlite_module().connect(f"file:{home.db}?mode=ro", uri=True)
    try:
        con.row_factory = sqlite_module().Row
        found = [dict(row) for row in con.execute("SELECT * FROM events ORDER BY position")]
    finally:
        con.close()
    for row in found:
        row["data"] = json.loads(row["data"])
    return found


def imported(home: Home) -> dict[str, str]:
    """profile -> "up" | "down", from the log: created alone, or created + started."""
    streams: dict[str, list[dict]] = {}
    for row in rows(home):
        streams.setdefault(row["profile"], []).append(row)
    result = {}
    for name, events in streams.items():
        kinds = [(e["type"], e["actor"], e["desired"]) for e in events]
        assert kinds in ([("created", "import", "down")],
                         [("created", "import", "down"), ("started", "import", "up")]), (name, kinds)
        result[name] = "up" if len(kinds) == 2 else "down"
    return result


@pytest.fixture
def legacy_home(migrated_home: Home) -> Home:
    copy_tree(FIXTURE, migrated_home.path)
    give_to(migrated_home.path, migrated_home.user)
    return migrated_home


def test_fixture_imports_exactly_as_described(legacy_home):
    before = snapshot(legacy_home.path)

    dry = legacy_home.hermes("import-legacy", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert rows(legacy_home) == []
    assert "would import 13 (5 up, 8 down), skipped 1" in dry.stdout

    result = legacy_home.hermes("import-legacy")
    assert result.returncode == 0, result.stderr
    assert imported(legacy_home) == FIXTURE_EXPECTED
    assert "imported 13 (5 up, 8 down), skipped 1, already imported 0" in result.stdout
    for name in FIXTURE_SKIPPED:
        line = next(line for line in result.stdout.splitlines() if line.startswith(name))
        assert "skipped" in line
    assert not [name for name in FIXTURE_NOT_SAID if name in result.stdout]
    assert "no SOUL.md" in result.stdout

    for row in rows(legacy_home):
        source = legacy_home.path / row["data"]["source"]
        raw = source.read_bytes() if source.exists() else None
        if row["type"] == "created":
            assert row["reason"] == "legacy-import"
            assert ("problem" in row["data"]) == (row["profile"] in FIXTURE_PROBLEMS), row
            if raw is not None:
                assert row["data"]["sha256"] == hashlib.sha256(raw).hexdigest()
                kept = row["data"].get("content")
                kept = kept.encode() if kept is not None else base64.b64decode(row["data"]["content_base64"])
                assert kept == raw
    assert snapshot(legacy_home.path) == before  # the files are left untouched

    again = legacy_home.hermes("import-legacy")
    assert again.returncode == 0, again.stderr
    assert imported(legacy_home) == FIXTURE_EXPECTED
    assert len(rows(legacy_home)) == 13 + 5
    assert "imported 0 (0 up, 0 down), skipped 1, already imported 13" in again.stdout


GATEWAY_STATES = ("starting", "running", "degraded", "draining", "startup_failed", "stopped")
# (gateway_state, desired_state or None) -> imported up?  Written out, not computed.
EVERY_STATE = {
    ("starting", None): False, ("running", None): True, ("degraded", None): True,
    ("draining", None): True, ("startup_failed", None): False, ("stopped", None): False,
    ("starting", "running"): True, ("running", "running"): True, ("degraded", "running"): True,
    ("draining", "running"): True, ("startup_failed", "running"): True, ("stopped", "running"): True,
    ("starting", "stopped"): False, ("running", "stopped"): False, ("degraded", "stopped"): False,
    ("draining", "stopped"): False, ("startup_failed", "stopped"): False, ("stopped", "stopped"): False,
}


def make_profile(profiles: Path, name: str, content: bytes | None, soul: bool = True) -> Path:
    directory = profiles / name
    directory.mkdir(parents=True)
    if soul:
        (directory / "SOUL.md").write_text(f"# {name}\n")
    if content is not None:
        (directory / "gateway_state.json").write_bytes(content)
    return directory


def test_every_state_and_every_broken_file(migrated_home):
    home = migrated_home
    profiles = home.path / "profiles"
    expected: dict[str, str] = {}
    for number, ((gateway, desired), up) in enumerate(sorted(EVERY_STATE.items(), key=str)):
        name = f"{gateway.replace('_', '-')}-{desired or 'none'}"
        document = {"gateway_state": gateway, "pid": 100 + number,
                    "updated_at": 1779000000 + number if number % 2 else f"2026-05-08T10:11:{number:02d}+00:00"}
        if desired:
            document["desired_state"] = desired
        make_profile(profiles, name, json.dumps(document).encode())
        expected[name] = "up" if up else "down"
    broken = {
        "corrupt": b'{"gateway_state": "running"',
        "empty": b"",
        "latin1": '{"gateway_state": "running", "x": "café"}'.encode("latin-1"),
        "array": b'["running"]',
        "unknown-state": b'{"gateway_state": "exploded"}',
        "null-desired": b'{"gateway_state": "running", "desired_state": null}',
    }
    for name, content in broken.items():
        make_profile(profiles, name, content)
        expected[name] = "up" if name == "null-desired" else "down"
    make_profile(profiles, "missing", None)
    expected["missing"] = "down"
    linked = make_profile(profiles, "linked", None)
    (linked / "gateway_state.json").symlink_to(profiles / "running-none" / "gateway_state.json")
    expected["linked"] = "down"  # a symbolic link is not followed
    make_profile(profiles, "dir-file", None)
    (profiles / "dir-file" / "gateway_state.json").mkdir()
    expected["dir-file"] = "down"
    # Not profiles: skipped, and none of them stops the import (.deleted is the store's own: not said).
    for name in ("Uppercase", "root", "tmp", ".deleted", ".staging.x-1", "x" * 70, "default", "sp ace"):
        make_profile(profiles, name, b'{"gateway_state": "running"}')
    make_profile(profiles, "no-soul", b'{"gateway_state": "running"}', soul=False)
    (profiles / "a-file").write_text("not a directory\n")
    os.symlink(profiles / "running-none", profiles / "link-to-profile")
    give_to(home.path, home.user)

    result = home.hermes("import-legacy")
    assert result.returncode == 0, result.stderr
    assert imported(home) == expected
    problems = {row["profile"]: row["data"].get("problem") for row in rows(home) if row["type"] == "created"}
    assert {name for name, problem in problems.items() if problem} == {
        "corrupt", "empty", "latin1", "array", "missing", "linked", "dir-file"}
    assert "symbolic link" in problems["linked"] and "not a regular file" in problems["dir-file"]
    times = {row["profile"]: row["data"].get("updated_at") for row in rows(home) if row["type"] == "created"}
    assert times["running-none"] is not None and times["stopped-running"] is not None
    assert "skipped 10" in result.stdout and ".deleted" not in result.stdout, result.stdout

    count = len(rows(home))
    again = home.hermes("import-legacy")
    assert again.returncode == 0 and len(rows(home)) == count
    assert f"already imported {len(expected)}" in again.stdout


def test_history_shows_what_was_wrong_with_an_unusable_file(legacy_home):
    """docs/legacy-import.md: the operator sees the problem in `hermes-state history NAME`, not only in --json."""
    assert legacy_home.hermes("import-legacy").returncode == 0
    table = legacy_home.hermes("history", "juliet")
    assert table.returncode == 0, table.stderr
    [created] = [line for line in table.stdout.splitlines() if " created " in line]
    assert created.rstrip().endswith("legacy-import: empty file"), created
    [usable] = [line for line in legacy_home.hermes("history", "alpha").stdout.splitlines() if " created " in line]
    assert usable.rstrip().endswith(" legacy-import"), usable  # a usable file: the reason alone


def test_an_existing_stream_is_never_read_again(legacy_home):
    first = legacy_home.hermes("import-legacy")
    assert first.returncode == 0, first.stderr
    # alpha's file changes and becomes unreadable: neither matters any more.
    state_file = legacy_home.path / "profiles" / "alpha" / "gateway_state.json"
    state_file.write_text('{"desired_state": "stopped"}')
    state_file.chmod(0)
    count = len(rows(legacy_home))
    second = legacy_home.hermes("import-legacy")
    assert second.returncode == 0, second.stderr  # not opened: no permission error
    assert len(rows(legacy_home)) == count and imported(legacy_home)["alpha"] == "up"


def test_an_unreadable_file_fails_that_profile_only_and_is_retried(migrated_home):
    profiles = migrated_home.path / "profiles"
    make_profile(profiles, "alpha", b'{"gateway_state": "running"}')
    secret = make_profile(profiles, "bravo", b'{"gateway_state": "running"}') / "gateway_state.json"
    give_to(migrated_home.path, migrated_home.user)
    if migrated_home.user.is_self:
        secret.chmod(0)
    else:
        os.chown(secret, 0, 0)
        secret.chmod(0o600)  # root's, as a file left by a root-run gateway would be

    result = migrated_home.hermes("import-legacy")
    assert result.returncode == 1
    assert "bravo" in result.stderr and "next run" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert imported(migrated_home) == {"alpha": "up"}  # the failure stopped nothing else

    give_to(secret, migrated_home.user)
    secret.chmod(0o644)
    retried = migrated_home.hermes("import-legacy")
    assert retried.returncode == 0, retried.stderr
    assert imported(migrated_home) == {"alpha": "up", "bravo": "up"}


def test_this_stores_own_entries_under_profiles_are_not_reported(migrated_home):
    """`.deleted/` (a profile deleted normally) and a create's `.NAME.staging-PID` are the store's own:
    the import neither imports nor reports them (it said `.deleted` was "not a valid profile name")."""
    for args in (("create", "gone"), ("delete", "gone", "--yes")):
        assert migrated_home.hermes(*args).returncode == 0
    staging = migrated_home.path / "profiles" / ".alpha.staging-4242"
    staging.mkdir()
    (staging / "SOUL.md").write_text("# alpha\n")
    make_profile(migrated_home.path / "profiles", ".sneaky", b'{"gateway_state": "running"}')
    give_to(migrated_home.path, migrated_home.user)
    assert (migrated_home.path / "profiles" / ".deleted").is_dir()
    result = migrated_home.hermes("import-legacy")
    assert result.returncode == 0, result.stderr
    assert ".deleted" not in result.stdout and "staging" not in result.stdout, result.stdout
    assert ".sneaky" in result.stdout  # a stranger's dot-directory is still said
    assert [row["profile"] for row in rows(migrated_home)] == ["gone", "gone"]  # its own created and deleted


def test_import_on_a_missing_store_fails_with_status_5(home):
    make_profile(home.path / "profiles", "alpha", b'{"gateway_state": "running"}')
    give_to(home.path, home.user)
    result = home.hermes("import-legacy")
    assert result.returncode == 5
    assert "no event store" in result.stderr and len(result.stderr.splitlines()) == 1


API_PROBE = """
import json, sys
from hermes_lifecycle.legacy import import_legacy
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store
settings = Settings.from_env()
calls = []
with open_store(settings) as store:
    report = import_legacy(store, settings, dry_run=sys.argv[1] == "dry", progress=lambda d, t: calls.append((d, t)))
print(json.dumps({"calls": calls, "summary": report.summary(),
                  "outcomes": [[o.profile, o.outcome, o.reason, o.problem] for o in report.outcomes]}))
"""


def test_the_api_boot_calls(legacy_home):
    """import_legacy(store, settings, *, dry_run, progress) as boot runs it: in a process of the user's."""
    def probe(mode: str) -> dict:
        result = run_as([sys.executable, "-c", API_PROBE, mode], legacy_home.user, env=legacy_home.env())
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    dry = probe("dry")
    assert rows(legacy_home) == []
    real = probe("real")
    assert [c[0] for c in real["calls"]] == list(range(1, 15)) and {c[1] for c in real["calls"]} == {14}
    outcomes = {name: (outcome, reason, problem) for name, outcome, reason, problem in real["outcomes"]}
    assert {name: o[0] for name, o in outcomes.items() if o[0] in ("up", "down")} == FIXTURE_EXPECTED
    assert {name for name, o in outcomes.items() if o[0] == "skipped"} == FIXTURE_SKIPPED
    assert outcomes["kilo"][2].startswith("not UTF-8")
    assert dry["outcomes"] == real["outcomes"]  # a dry run decides exactly what the import then does


def test_the_outcome_table_is_aligned_columns_drawn_without_rich(legacy_home):
    code = ("import sys\nfrom hermes_lifecycle_cli.main import main\nstatus = main(['import-legacy'])\n"
            "print(status, sorted(m for m in sys.modules if m.split('.')[0] == 'rich'), file=sys.stderr)\n")
    # cwd: the home, so `-c` imports the installed package, not the checkout's copy
    result = run_as([sys.executable, "-c", code], legacy_home.user, env=legacy_home.env(), cwd=legacy_home.path)
    assert result.stderr.splitlines()[-1] == "0 []", result.stderr
    header, *rest = result.stdout.splitlines()
    assert header.split() == ["profile", "outcome", "why"]
    outcome_at = header.index("outcome")
    shown = [line for line in rest if not line.startswith("imported ")]
    assert shown and all(line[outcome_at - 2:outcome_at] == "  " and line[outcome_at] != " " for line in shown)


def test_a_progress_bar_on_a_terminal_when_there_are_many_profiles(migrated_home):
    profiles = migrated_home.path / "profiles"
    for number in range(60):
        make_profile(profiles, f"p{number:02d}", b'{"gateway_state": "stopped"}')
    give_to(migrated_home.path, migrated_home.user)
    status, seen = run_on_terminal([str(HERMES), "import-legacy"], migrated_home.user, env=migrated_home.env())
    assert status == 0
    assert b"importing legacy profiles" in seen
    assert b"imported 60 (0 up, 60 down)" in seen


def test_outcome_lines_for_the_boot_log():
    from hermes_lifecycle.legacy import ProfileOutcome

    assert ProfileOutcome("alpha", "up", "gateway_state running").line() == "alpha: imported up (gateway_state running)"
    assert ProfileOutcome("lima", "down", "no gateway_state.json", "no gateway_state.json").line(dry_run=True) == (
        "lima: would import down (no gateway_state.json)")
    assert ProfileOutcome("mike", "skipped", "no SOUL.md: not a profile").line() == (
        "mike: skipped (no SOUL.md: not a profile)")
    assert ProfileOutcome("x", "down", "desired_state stopped", "odd").line() == (
        "x: imported down (desired_state stopped); problem: odd")


def test_outcome_columns_for_the_import_table():
    from hermes_lifecycle.legacy import ProfileOutcome

    odd = ProfileOutcome("x", "down", "desired_state stopped", "odd")
    assert (odd.head(), odd.head(dry_run=True), odd.why) == (
        "imported down", "would import down", "desired_state stopped; problem: odd")
    said = ProfileOutcome("lima", "down", "no gateway_state.json", "no gateway_state.json")
    assert said.why == "no gateway_state.json"
    failed = ProfileOutcome("kilo", "failed", "cannot read profiles/kilo/gateway_state.json: Permission denied")
    assert (failed.head(), failed.head(dry_run=True)) == ("failed", "failed")
