"""The s6 adapter and the slot files, against a real s6-svscan on a temporary scan directory."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from projector_support import IS_ROOT, processes_under, wait_for

from hermes_lifecycle.projector.observed import ServiceStatus, parse_status
from hermes_lifecycle.projector.s6 import (
    S6,
    NotSupervised,
    S6Error,
    S6Timeout,
    ScannerNotRunning,
)
from hermes_lifecycle.projector.slots import (
    ScanDir,
    ScanDirError,
    UnsafeScanDir,
    check_scandir_safe,
    finish_script,
    profile_of_slot,
    run_script,
)


# -- parsing s6-svstat -------------------------------------------------------------
@pytest.mark.parametrize(
    "line, expected",
    [
        ("true 3849 true true -1 -1 @400000006b08d4ff11645cc3 @400000006b08d4ff11645cc3 12\n",
         ServiceStatus(True, 3849, True, True, None, None, 0x400000006B08D4FF11645CC3, 0x400000006B08D4FF11645CC3, 12)),
        ("false -1 false true 0 -1 @400000006b08d4ff2ed308fa @400000006b08d4ff2ed308fb 3",
         ServiceStatus(False, None, False, True, 0, None, 0x400000006B08D4FF2ED308FA, 0x400000006B08D4FF2ED308FB, 3)),
        ("false -1 true false -1 9 @400000006b08d4ff2ed308fa @400000006b08d4ff00000000 0",
         ServiceStatus(False, None, True, False, None, 9, 0x400000006B08D4FF2ED308FA, 0x400000006B08D4FF00000000, 0)),
    ],
)
def test_parse_status(line, expected):
    assert parse_status(line) == expected


def test_finish_done_compares_the_two_stamps():
    running_finish = parse_status("false -1 false true -1 15 @400000006b08d4ff00000002 @400000006b08d4ff00000001 5")
    finished = parse_status("false -1 false true -1 15 @400000006b08d4ff00000002 @400000006b08d4ff00000003 5")
    never_run = parse_status("false -1 false false 0 -1 @400000006b08d4ff00000002 @400000006b08d4ff00000002 5")
    up = parse_status("true 12 true true -1 -1 @400000006b08d4ff00000002 @400000006b08d4ff00000003 5")
    assert (running_finish.finish_done, finished.finish_done, never_run.finish_done, up.finish_done) == (
        False, True, True, False)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "true 12 true true -1 -1 @400000006b08d4ff00000002 @400000006b08d4ff00000002",  # a field missing
        "true 12 true true -1 -1 @400000006b08d4ff00000002 @400000006b08d4ff00000002 -4",
        "yes 12 true true -1 -1 @400000006b08d4ff00000002 @400000006b08d4ff00000002 1",
        "true twelve true true -1 -1 @400000006b08d4ff00000002 @400000006b08d4ff00000002 1",
        "true 12 true true -1 -1 400000006b08d4ff00000002 @400000006b08d4ff00000002 1",
        "true 12 true true -1 -1 @40000000zzzzzzzz00000002 @400000006b08d4ff00000002 1",
    ],
)
def test_parse_status_refuses_anything_else(line):
    with pytest.raises(S6Error):
        parse_status(line)


# -- slot names and scripts ----------------------------------------------------------
@pytest.mark.parametrize(
    "entry, profile",
    [("gateway-alice", "alice"), ("gateway-a_b-9", "a_b-9"), ("gateway-", None), ("gateway-../x", None),
     ("gateway-Alice", None), ("alice", None), ("s6rc-oneshot-runner", None), ("gateway-" + "a" * 65, None),
     (".gateway-alice", None)],
)
def test_profile_of_slot(entry, profile):
    assert profile_of_slot(entry) == profile


@pytest.mark.parametrize("container", [False, True])
def test_scripts_take_the_profile_from_s6_never_from_data(container):
    run, finish = run_script(container).decode(), finish_script(container).decode()
    shebang = "#!/command/with-contenv sh\n" if container else "#!/bin/sh\n"
    assert run.startswith(shebang) and finish.startswith(shebang)
    assert 'hermes-state record-start "$1"' in run
    assert 'hermes-state record-exit "$3" "$1" "$2"' in finish
    # finish reads s6's intent before it drops privileges
    assert finish.index("s6-svstat -o wantedup .") < finish.index("s6-setuidgid")
    assert run.count("exec ") == 2 and finish.count("exec ") == 2


@pytest.fixture
def scanner(world_tmp: Path):
    """A real s6-svscan on an empty scan directory; stopped by its pid, nothing left behind."""
    scandir = world_tmp / "service"
    scandir.mkdir()
    process = subprocess.Popen(["s6-svscan", str(scandir)], start_new_session=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: S6.scanner_running(scandir), 5, "s6-svscan to listen")
        yield scandir
    finally:
        subprocess.run(["s6-svscanctl", "-t", str(scandir)], timeout=10)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    wait_for(lambda: not processes_under(scandir), 10, "nothing left running in the scan directory")


def _service(scandir: Path, name: str, run: str, finish: str | None = None, down: bool = False) -> Path:
    slot = scandir / name
    slot.mkdir()
    (slot / "run").write_text(run)
    (slot / "run").chmod(0o755)
    if finish:
        (slot / "finish").write_text(finish)
        (slot / "finish").chmod(0o755)
    if down:
        (slot / "down").touch()
    return slot


def test_adapter_drives_a_real_service(scanner: Path):
    s6 = S6()
    slot = _service(scanner, "svc", "#!/bin/sh\nexec sleep 100\n", down=True)
    assert s6.status(slot) is None  # not scanned yet
    s6.rescan(scanner)
    wait_for(lambda: s6.status(slot), 5, "s6-supervise on the new slot")
    assert s6.status(slot).wantedup is False and s6.status(slot).up is False
    s6.up(slot)
    wait_for(lambda: (s := s6.status(slot)) and s.up, 5, "the process up")
    first = s6.status(slot)
    assert first.up and first.wantedup and first.pid
    s6.restart(slot)
    wait_for(lambda: (s := s6.status(slot)).up and s.pid != first.pid, 5, "a new pid after -r")
    s6.down(slot)
    wait_for(lambda: (s := s6.status(slot)) and not s.up and s.finish_done, 5, "the process down, finish returned")
    after = s6.status(slot)
    assert not after.up and not after.wantedup and after.finish_done and after.signum == 15


def test_failures_raise_with_s6s_own_message(scanner: Path, world_tmp: Path):
    s6 = S6()
    lonely = world_tmp / "not-supervised"
    lonely.mkdir()
    with pytest.raises(NotSupervised, match="supervisor not listening"):
        s6.up(lonely)
    with pytest.raises(S6Error, match="No such file or directory"):
        s6.down(world_tmp / "missing")
    with pytest.raises(ScannerNotRunning, match="s6-svscanctl -a .* exited 100"):
        s6.rescan(world_tmp)
    assert S6.scanner_running(world_tmp) is False and S6.scanner_running(scanner) is True
    slot = _service(scanner, "svc", "#!/bin/sh\nexec sleep 100\n")
    s6.rescan(scanner)
    with pytest.raises(S6Timeout, match="did not answer"):
        S6(timeout=0.001)._run(["sleep", "1"])


# -- the scan directory ----------------------------------------------------------------
def test_slots_are_built_aside_then_renamed_and_touch_nothing_else(scanner: Path):
    foreign = _service(scanner, "s6rc-foreign", "#!/bin/sh\nexec sleep 100\n")
    before = sorted(p.name for p in foreign.iterdir())
    slots = ScanDir(scanner, container=False)
    slots.create("alice", up=False, restart_applied=7)
    slots.create("bob", up=True)
    assert slots.profiles() == ["alice", "bob"]
    assert slots.leftovers() == []
    assert (scanner / "gateway-alice" / "down").exists() and not (scanner / "gateway-bob" / "down").exists()
    for name in ("alice", "bob"):
        slot = scanner / f"gateway-{name}"
        assert (slot / "run").read_bytes() == run_script(False)
        assert (slot / "finish").read_bytes() == finish_script(False)
        assert stat.S_IMODE((slot / "run").stat().st_mode) == 0o755
        assert slots.scripts_current(name)
    assert slots.restart_applied("alice") == 7 and slots.restart_applied("bob") is None
    with pytest.raises(ScanDirError, match="exists already"):
        slots.create("alice", up=True)
    assert slots.leftovers() == [] and not any(p.name.startswith(".gateway") for p in scanner.iterdir())
    slots.set_down_file("alice", False)
    slots.record_restart_applied("alice", 9)
    assert not slots.has_down_file("alice") and slots.restart_applied("alice") == 9
    (scanner / "gateway-bob" / "run").write_text("#!/bin/sh\nexec old\n")
    assert not slots.scripts_current("bob")
    slots.repair_scripts("bob")
    assert slots.scripts_current("bob")
    assert sorted(p.name for p in foreign.iterdir()) == before  # s6 made supervise/ etc. before; unchanged since
    with pytest.raises(ScanDirError, match="refusing"):
        slots.delete_hidden("s6rc-foreign")
    assert foreign.exists()


def test_invalid_names_never_become_paths(world_tmp: Path):
    slots = ScanDir(world_tmp, container=False)
    for name in ("../escape", "a/b", "", "x" * 300, "$(touch pwned)"):
        with pytest.raises(Exception, match="invalid profile name"):
            slots.create(name, up=True)
    assert sorted(p.name for p in world_tmp.iterdir()) == []


@pytest.mark.skipif(not IS_ROOT, reason="only root's scan directory can be redirected by another user")
def test_root_refuses_a_scan_directory_another_user_could_redirect(world_tmp: Path, hermes_user):
    theirs = world_tmp / "theirs"
    theirs.mkdir()
    os.chown(theirs, hermes_user.uid, hermes_user.gid)
    with pytest.raises(UnsafeScanDir, match=f"belongs to uid {hermes_user.uid}"):
        check_scandir_safe(theirs / "service")
    shared = world_tmp / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafeScanDir, match="mode 0777"):
        check_scandir_safe(shared / "service")
    check_scandir_safe(world_tmp / "service")  # root's, under sticky /tmp: fine
