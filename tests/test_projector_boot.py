"""`hermes-state boot` against a real s6-svscan: slots as desired, the boot log, refusals, hostile rows."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from projector_support import IS_ROOT, rig_for, wait_for

from hermes_lifecycle.projector.slots import finish_script, run_script

pytestmark = pytest.mark.slow


@pytest.fixture
def rig(world_tmp, home):
    with rig_for(world_tmp, home) as rig:
        yield rig


def boot_log(rig) -> list[str]:
    return (rig.home.path / "logs" / "container-boot.log").read_text().splitlines()


def test_boot_makes_every_slot_up_exactly_when_desired_and_logs_each_profile(rig):
    legacy = rig.home.path / "profiles" / "legacy"
    legacy.mkdir(parents=True)
    (legacy / "SOUL.md").write_text("# legacy\n")
    (legacy / "gateway_state.json").write_text(json.dumps({"desired_state": "running"}))
    from conftest import give_to

    give_to(rig.home.path, rig.user)
    rig.migrate()
    rig.append("create", "alpha", "bravo")
    rig.append("start", "alpha")
    rig.start_scanner()

    result = rig.boot()
    boot_id = (rig.scandir / ".boot-id").read_text().strip()
    assert str(uuid.UUID(boot_id)) == boot_id

    wait_for(lambda: rig.running_pid("alpha") and rig.running_pid("legacy"), 5, "alpha and legacy up")
    for name in ("bravo", "default"):
        assert rig.status(name) == {"up": False, "pid": -1, "wantedup": False}
    for name in ("alpha", "bravo", "default", "legacy"):
        slot = rig.scandir / f"gateway-{name}"
        assert (slot / "run").read_bytes() == run_script(False)  # the same bytes in every slot
        assert (slot / "finish").read_bytes() == finish_script(False)

    lines = boot_log(rig)
    assert all(f"boot={boot_id}" in line for line in lines)
    messages = [line.split(f"boot={boot_id} ", 1)[1] for line in lines]
    per_profile = [message for message in messages if message.startswith("profile ")]
    assert per_profile == [
        "profile alpha: desired up; create-up",
        "profile bravo: desired down; create-down",
        "profile default: desired down; create-down",
        "profile legacy: desired up; create-up",
    ]
    assert any("legacy import: imported 1 (1 up, 0 down)" in line for line in lines)
    assert any("created profile 'default'" in line for line in lines)
    assert json.loads(result.stdout.splitlines()[-1])["trigger"] == "boot"

    # A second boot finds every slot right: it acts on nothing and prints no pass line.
    again = rig.boot()
    assert again.stdout == ""
    assert (rig.scandir / ".boot-id").read_text().strip() != boot_id
    assert boot_log(rig)[-2].endswith("profile legacy: desired up; slot unchanged")

    # What an interrupted pass or an older install leaves is repaired, then all is quiet again.
    leftover = rig.scandir / ".gateway-bravo.tmp-0123456789abcdef"
    leftover.mkdir()
    (rig.scandir / "gateway-bravo" / "run").write_text("#!/bin/sh\nexec an-older-hook\n")
    (rig.scandir / "gateway-alpha" / "down").touch()
    repaired = json.loads(rig.boot().stdout.splitlines()[-1])["actions"]
    assert [(a["action"], a["profile"]) for a in repaired] == [
        ("purge", leftover.name), ("repair-scripts", "bravo"), ("mark-up", "alpha")]
    assert not leftover.exists() and (rig.scandir / "gateway-bravo" / "run").read_bytes() == run_script(False)
    assert rig.boot().stdout == ""


@pytest.mark.skipif(not IS_ROOT, reason="root's privilege drop")
def test_boot_as_root_writes_nothing_to_the_volume_as_root(rig):
    rig.start_scanner()
    rig.boot()
    (rig.home.path / "logs").chmod(0o755)
    owners = {
        os.path.join(root, name): os.lstat(os.path.join(root, name)).st_uid
        for root, dirs, files in os.walk(rig.home.path) for name in dirs + files
    }
    assert owners and set(owners.values()) == {rig.user.uid}, owners


@pytest.mark.skipif(not IS_ROOT, reason="root's privilege drop")
def test_a_boot_log_planted_as_a_link_is_written_with_the_users_rights_only(rig, world_tmp):
    rig.migrate()
    target = world_tmp / "roots-file"
    target.write_text("root's\n")
    target.chmod(0o644)
    logs = rig.home.path / "logs"
    logs.mkdir()
    (logs / "container-boot.log").symlink_to(target)
    from conftest import give_to

    give_to(logs, rig.user)
    rig.start_scanner()
    result = rig.hermes("boot")
    assert target.read_text() == "root's\n"  # the link led nowhere the user could not write
    assert result.returncode != 0 and "boot log" in result.stderr and "Permission denied" in result.stderr


@pytest.mark.parametrize("damage", ["corrupt", "newer schema", "foreign"])
def test_a_damaged_store_stops_boot_before_any_slot(rig, damage):
    rig.migrate()
    db = rig.home.db
    if damage == "corrupt":
        db.write_bytes(b"this is not a database" * 400)
    elif damage == "newer schema":
        rig.sql("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    else:
        db.unlink()
        rig.sql("CREATE TABLE accounts (id INTEGER)")
    rig.start_scanner()
    result = rig.hermes("boot")
    assert result.returncode == 5, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "boot failed" in result.stderr and "no slot was created" in result.stderr
    assert [p.name for p in rig.scandir.iterdir() if not p.name.startswith(".")] == []
    assert not (rig.scandir / ".boot-id").exists()
    assert "FAILED" in boot_log(rig)[-1]


def test_a_broken_hash_chain_is_a_warning_at_boot(rig):
    rig.migrate()
    rig.append("create", "alpha")
    rig.sql(
        "INSERT INTO events (profile, version, type, actor, desired, occurred_at, host, data, hash) "
        "VALUES ('alpha', 2, 'started', 'cli', 'up', '2026-01-01T00:00:00.000Z', 'h', '{}', ?)", "0" * 64,
    )
    rig.start_scanner()
    result = rig.boot()
    assert "warning: hash chain broken at position 2" in result.stderr
    assert any("hash chain broken" in line for line in boot_log(rig))


@pytest.mark.parametrize(("tampered", "window", "found"), [
    (None, 1000, None),
    (1, 1000, 1),  # a window reaching the first row starts from the genesis hash: that row is checked too
    (4, 3, 4),  # rows 4-6 are checked against row 3's hash
    (3, 3, None),  # row 3 only anchors the window: boot's check is bounded, doctor's is not
])
def test_boot_checks_the_chain_of_the_newest_events_first_row_included(migrated_home, tampered, window, found):
    import sqlite3

    from hermes_lifecycle.events import NewEvent
    from hermes_lifecycle.projector.boot import chain_tail_break
    from hermes_lifecycle.settings import Settings
    from hermes_lifecycle.store import open_store

    settings = Settings.from_env(migrated_home.env())
    with open_store(settings) as store:
        store.append(NewEvent("alice", "created", "cli", "down"))
        for number in range(5):
            store.append(NewEvent("alice", "stopped" if number % 2 else "started", "cli", "down" if number % 2 else "up"))
    if tampered is not None:
        conn = sqlite3.connect(migrated_home.db, isolation_level=None)
        conn.execute("DROP TRIGGER events_refuse_update")
        conn.execute("UPDATE events SET reason = 'forged' WHERE position = ?", (tampered,))
        conn.close()
    with open_store(settings, readonly=True) as store:
        assert chain_tail_break(store, window=window) == found


HOSTILE = ["../../escape", "a/b", "x; touch /tmp/hermes-pwned", "$(touch pwned)", "`id`", "n" * 300, "Upper", ".."]


def _insert_hostile_rows(rig):
    for number, name in enumerate(HOSTILE):
        rig.sql(
            "INSERT INTO profile_projection (profile, version, deleted, desired, created_position, last_position, "
            "last_type, last_actor, last_at, intent_position, intent_actor, intent_at, run_ended) "
            "VALUES (?, 1, 0, 'up', 1, 1, 'created', 'cli', '2026-01-01T00:00:00.000Z', 1, 'cli', "
            "'2026-01-01T00:00:00.000Z', 0)", name,
        )
        rig.sql(
            "INSERT INTO events (profile, version, type, actor, desired, occurred_at, host, data, hash) "
            "VALUES (?, 1, 'started', 'cli', 'up', '2026-01-01T00:00:00.000Z', 'h', '{}', ?)", name, f"{number:064d}",
        )


def test_hostile_rows_are_skipped_logged_and_valid_profiles_served(rig, world_tmp):
    rig.migrate()
    rig.append("create", "alpha")
    _insert_hostile_rows(rig)
    rig.start_scanner()
    before = sorted(str(p) for p in world_tmp.rglob("*") if "service" not in p.parts)
    result = rig.boot()
    skipped = [a for a in json.loads(result.stdout.splitlines()[-1])["actions"] if a["action"] == "skip-invalid"]
    assert len(skipped) == len(HOSTILE)
    assert all(len(a["profile"]) <= 80 for a in skipped)

    watch = rig.start_watch()
    rig.append("start", "alpha")
    wait_for(lambda: rig.running_pid("alpha"), 5, "alpha served despite the hostile rows")
    _insert_hostile_rows_again = [f"{'z' * 299}/", "../x"]
    for number, name in enumerate(_insert_hostile_rows_again):
        rig.sql(
            "INSERT INTO events (profile, version, type, actor, desired, occurred_at, host, data, hash) "
            "VALUES (?, 1, 'started', 'cli', 'up', '2026-01-01T00:00:00.000Z', 'h', '{}', ?)", name, f"9{number:063d}",
        )
    rig.append("stop", "alpha")
    wait_for(lambda: rig.status("alpha")["up"] is False, 5, "alpha stopped after more hostile rows")
    assert rig.stop_watch(watch) == 0

    entries = sorted(p.name for p in rig.scandir.iterdir())
    assert [e for e in entries if not e.startswith(".")] == ["gateway-alpha", "gateway-default"]
    after = sorted(str(p) for p in world_tmp.rglob("*") if "service" not in p.parts)
    assert [p for p in after if p not in before and "watch-" not in p and "svscan.log" not in p
            and "/home/" not in p] == []
    assert not os.path.exists("/tmp/hermes-pwned") and not (rig.home.path / "pwned").exists()
    output = rig.watch_output()
    assert output.count("skip-invalid") >= 2 and "invalid profile name" in output
