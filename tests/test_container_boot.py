"""`docker run`, `docker restart` twice, `docker exec`: the image's scripts on a fake root, no Docker engine.

How the container is simulated, and what that leaves unverified, is in
tests/container_sim.py and docs/docker.md. The volume starts as an old
Hermes volume: the shared legacy-home fixture (per-profile
gateway_state.json files), owned by the image's uid 10000, with
HERMES_UID/HERMES_GID set to the test's unprivileged user.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import time
import subprocess
from pathlib import Path

import pytest

from container_sim import IMAGE_ID, ROOTFS, Container
from conftest import run_as
from projector_support import wait_for

from store_helpers import operator_rows

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the container's start runs as root (CI runs the suite as root)"),
]

LEGACY_HOME = Path(__file__).resolve().parent / "fixtures" / "legacy-home"
# From fixtures/legacy-home.md: what each profile imports as.
IMPORTED_UP = {"default", "alpha", "delta", "echo", "golf"}
IMPORTED_DOWN = {"bravo", "charlie", "foxtrot", "hotel", "india", "juliet", "kilo", "lima"}


@pytest.fixture
def container(world_tmp, hermes_user):
    """A container whose volume is an old Hermes volume."""
    box = Container(world_tmp, hermes_user)
    box.build(LEGACY_HOME)
    yield box
    box.cleanup()


@pytest.fixture
def empty_container(world_tmp, hermes_user):
    """A container whose volume is new (empty)."""
    box = Container(world_tmp, hermes_user)
    box.build(legacy_home=None)
    yield box
    box.cleanup()


def ok(results) -> None:
    for result in results if isinstance(results, list) else [results]:
        assert result.returncode == 0, f"{result.args}: exit {result.returncode}\n{result.stdout}{result.stderr}"


def owner(path: Path) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_uid, info.st_gid


def profiles(box: Container) -> dict[str, str]:
    result = box.hermes("list", "--json", user=box.user)
    assert result.returncode == 0, result.stderr
    return {row["profile"]: row["desired"] for row in map(json.loads, result.stdout.splitlines())}


def history(box: Container, name: str) -> list[dict]:
    """The profile's events, oldest first, read-only from the file (as an operator's query would)."""
    return operator_rows(
        box.volume / "state" / "profiles.db",
        "SELECT type, actor, desired, reason, pid FROM events WHERE profile = ? ORDER BY position",
        name,
    )


def cli(box: Container, *args: str) -> None:
    """A person's command through `docker exec -u hermes CONTAINER hermes ...`."""
    result = box.hermes(*args, user=box.user)
    assert result.returncode == 0, result.stderr


def check_running(box: Container, expected_up: set[str]) -> dict[str, int]:
    """Exactly ``expected_up`` run, each its own gateway process, as the unprivileged user, recorded with its pid."""
    def settled():
        # s6 reports up from its fork; the pid becomes the gateway once record-start has exec'd it.
        running = box.running()
        if set(running) != expected_up:
            return None
        for name, pid in running.items():
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
            if argv[-2:] != [str(box.gateway).encode(), name.encode()]:
                return None
        return running

    running = wait_for(settled, 15, f"exactly {sorted(expected_up)} running their gateway")
    for name, pid in running.items():
        uids = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:2]
        assert uids == [str(box.user.uid)] * 2
        wait_for(lambda: any(e["type"] == "started" and e["actor"] == "supervisor" and e["pid"] == pid
                             for e in history(box, name)), 10, f"{name}'s run recorded with pid {pid}")
    return running


def watch_log_lines(box: Container) -> list[dict]:
    current = box.log_dir / "current"
    if not current.exists():
        return []
    return [json.loads(line) for line in current.read_text().splitlines() if line.startswith("{")]


def acted_on(box: Container, name: str, action: str) -> bool:
    return any(row["profile"] == name and row["action"] == action
               for line in watch_log_lines(box) for row in line.get("actions", []))


def check_boot(box: Container, start, *, remapped: bool) -> None:
    ok(start)
    assert box.exit_code() is None, "a successful start sets no exit status"
    if remapped:
        assert f"uid {IMAGE_ID} -> {box.user.uid}" in start.stdout
    else:
        assert "->" not in start.stdout
    # /run/service stays root's; the volume and everything on it is the gateway user's.
    info = os.stat(box.scandir)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755)
    for top, dirs, files in os.walk(box.volume):
        for entry in [top, *(os.path.join(top, n) for n in dirs + files)]:
            assert owner(entry) == (box.user.uid, box.user.gid), entry
    assert (box.volume / "logs" / "container-boot.log").read_text().count("boot=") > 0


def test_docker_run_then_docker_restart_twice(container):
    box = container
    # --- docker run: the account remapped, the legacy state imported, the right gateways up ---------
    check_boot(box, box.start(), remapped=True)
    passwd = (box.root / "etc" / "passwd").read_text()
    assert f"{box.user.name}:x:{box.user.uid}:{box.user.gid}:" in passwd
    assert profiles(box) == {**{n: "up" for n in IMPORTED_UP}, **{n: "down" for n in IMPORTED_DOWN}}
    assert box.slots() == IMPORTED_UP | IMPORTED_DOWN
    check_running(box, IMPORTED_UP)
    imports = {name: [e["type"] for e in history(box, name) if e["actor"] == "import"] for name in profiles(box)}
    assert imports == {**{n: ["created", "started"] for n in IMPORTED_UP}, **{n: ["created"] for n in IMPORTED_DOWN}}
    first_boot = (box.scandir / ".boot-id").read_text()

    # The watch daemon reacts to an intent appended by the unprivileged user; its logger keeps the line.
    cli(box, "start", "bravo")
    check_running(box, IMPORTED_UP | {"bravo"})
    wait_for(lambda: acted_on(box, "bravo", "up"), 5, "the watch log line for bravo")
    # `docker exec` as root: the command still runs as the gateway user, so what it makes is theirs.
    created = box.hermes("create", "zulu")
    assert created.returncode == 0, created.stderr
    assert owner(box.volume / "profiles" / "zulu") == (box.user.uid, box.user.gid)
    wait_for(lambda: "zulu" in box.slots(), 5, "zulu's slot")

    # --- docker restart #1 -----------------------------------------------------------------------------
    before_stop, slots = set(box.running()), box.slots()
    finish = box.stop()
    ok(finish)
    assert f"{len(slots)} gateway slot(s) down" in finish[0].stdout
    for name in before_stop:
        # When the stop step returns, every finish hook has run (s6-svwait -D): the record must be there.
        events = history(box, name)
        last = events[-1]
        assert (last["type"], last["actor"], last["reason"], last["desired"]) == (
            "stopped", "supervisor", "shutdown", None
        ), f"{name}: {events[-3:]}\ns6-svscan's output (the hooks' stderr):\n{box.scanner_output()[-4000:]}"
    check_boot(box, box.start(), remapped=False)
    assert (box.scandir / ".boot-id").read_text() != first_boot
    check_running(box, IMPORTED_UP | {"bravo"})
    assert {n: [e["type"] for e in history(box, n) if e["actor"] == "import"] for n in profiles(box)} == {**imports, "zulu": []}
    cli(box, "stop", "alpha")
    cli(box, "start", "zulu")
    check_running(box, IMPORTED_UP - {"alpha"} | {"bravo", "zulu"})

    # --- docker restart #2: the same again ---------------------------------------------------------------
    ok(box.stop())
    check_boot(box, box.start(), remapped=False)
    check_running(box, IMPORTED_UP - {"alpha"} | {"bravo", "zulu"})
    cli(box, "start", "charlie")
    check_running(box, IMPORTED_UP - {"alpha"} | {"bravo", "zulu", "charlie"})
    wait_for(lambda: acted_on(box, "charlie", "up"), 5, "the watch log line for charlie")
    assert sum(1 for e in history(box, "golf") if e["type"] == "stopped" and e["reason"] == "shutdown") == 2

    ok(box.stop())
    assert not box.running()
    # The old world's files are read once and left as they were (only their owner changed).
    for source in LEGACY_HOME.rglob("*"):
        if source.is_file():
            assert (box.volume / source.relative_to(LEGACY_HOME)).read_bytes() == source.read_bytes(), source


def test_a_refused_store_stops_the_start_before_any_gateway(empty_container):
    box = empty_container
    store = box.volume / "state" / "profiles.db"
    store.parent.mkdir()
    store.write_bytes(b"this is not a SQLite database" * 200)
    os.lchown(store.parent, IMAGE_ID, IMAGE_ID)
    os.lchown(store, IMAGE_ID, IMAGE_ID)
    start = box.start()
    assert "hermes-account:" in start.stdout, start.stdout
    assert start.returncode == 5 and "boot failed" in start.stderr, start.stderr
    # s6-overlay's exit code file holds boot's status, so `docker run` exits 5: "the store is unusable".
    assert box.exit_code() == 5
    assert not box.slots() and not (box.scandir / "hermes-state-watch").exists()
    ok(box.stop())


@pytest.mark.parametrize("variable, value", [
    ("HERMES_UID", "0"), ("HERMES_UID", "abc"), ("HERMES_GID", "0"), ("HERMES_UID", "-5"),
    ("HERMES_GID", "0100"), ("HERMES_UID", "99999999999"),
])
def test_a_bad_remap_stops_the_start_before_boot(world_tmp, hermes_user, variable, value):
    box = Container(world_tmp, hermes_user, extra_env={variable: value})
    box.build(legacy_home=None)
    passwd = (box.root / "etc" / "passwd").read_text()
    try:
        start = box.start()
        zero = {"HERMES_UID": "0 is root", "HERMES_GID": "0 is root's group"}[variable]
        # One line, nothing from boot (it does not run), and the container's exit status is 2: bad input.
        assert (start.returncode, start.stdout, start.stderr) == (
            2, "", f"hermes-account: invalid {variable} '{value}': expected a number from 1 to 2147483646 ({zero})\n"
        )
        assert box.exit_code() == 2
        assert (box.root / "etc" / "passwd").read_text() == passwd
        assert owner(box.volume) == (IMAGE_ID, IMAGE_ID)
        assert not box.slots() and not (box.volume / "state").exists()
        ok(box.stop())
    finally:
        box.cleanup()


def test_a_bad_remap_at_a_restart_stops_that_start_before_boot(empty_container):
    """A start that worked does not vouch for the next one: a bad HERMES_UID then stops the restart."""
    box = empty_container
    ok(box.start())
    ok(box.stop())
    box.extra_env["HERMES_UID"] = "0"
    start = box.start()
    assert start.returncode == 2 and "invalid HERMES_UID '0'" in start.stderr and "boot" not in start.stdout
    assert box.exit_code() == 2
    assert not box.slots() and not (box.scandir / ".boot-id").exists()
    assert not (box.scandir / "hermes-state-watch").exists()
    ok(box.stop())


def test_the_main_program_routes_its_arguments_and_runs_them_as_the_gateway_user(empty_container):
    """`docker run IMAGE ARGS`: s6-overlay runs S6_CMD_ARG0 (hermes-main) with ARGS, as root."""
    box = empty_container
    ok(box.start())
    # HOME is the account's (the image gives hermes /opt/data; here the host's passwd has the test user's).
    program = box.main_program("sh", "-c", 'echo "$(id -u):$(id -g) $HOME"')
    home = pwd.getpwnam(box.user.name).pw_dir
    assert (program.returncode, program.stdout) == (0, f"{box.user.uid}:{box.user.gid} {home}\n"), program.stderr
    subcommand = box.main_program("list", "--json")
    assert subcommand.returncode == 0, subcommand.stderr
    assert [json.loads(line)["profile"] for line in subcommand.stdout.splitlines()] == ["default"]
    status = box.main_program("status", "nosuch")
    assert (status.returncode, status.stderr.count("\n")) == (3, 1), status.stderr
    assert box.exit_code() == 3  # the main program's status is the container's
    # A first argument that starts with a dash is a hermes option: `docker run IMAGE --version`.
    version = box.main_program("--version")
    installed = subprocess.run([box.env["HERMES_BIN"], "--version"], capture_output=True, text=True, timeout=30)
    assert (version.returncode, version.stdout) == (0, installed.stdout) and installed.stdout.strip(), version.stderr
    nothing = box.main_program()
    assert nothing.returncode == 2 and "nothing to run" in nothing.stderr
    ok(box.stop())


@pytest.mark.parametrize("user, message", [("root", "is root"), ("nosuchuser", "no account named")])
def test_the_privilege_drop_refuses_root_and_unknown_accounts(world_tmp, hermes_user, user, message):
    box = Container(world_tmp, hermes_user, extra_env={"HERMES_USER": user})
    result = box.run(ROOTFS / "usr" / "local" / "bin" / "hermes-as-user", "id", "-u")
    assert result.returncode == 1 and message in result.stderr and result.stdout == ""


def test_gateway_status_as_the_gateway_user_shows_what_s6_sees_without_any_way_to_control_it(empty_container):
    """s6-svscan runs as root; `docker exec -u hermes CONTAINER hermes-state status` is the unprivileged uid."""
    box = empty_container
    ok(box.start())
    cli(box, "start", "default")
    pid = check_running(box, {"default"})["default"]
    slot = box.scandir / "gateway-default"

    text = box.hermes("status", "default", user=box.user)
    assert text.returncode == 0 and text.stderr == "", text.stderr
    [s6_line] = [line for line in text.stdout.splitlines() if line.startswith("s6 ")]
    assert s6_line.startswith("s6       up for") and f"pid {pid}" in s6_line, text.stdout
    assert s6_line.endswith(f"[s6-svstat {slot}]"), s6_line
    shown = box.hermes("status", "default", "--json", user=box.user)
    [row] = map(json.loads, shown.stdout.splitlines())
    assert (row["s6"]["up"], row["s6"]["pid"], row["s6_source"], row["s6_unavailable"]) == (
        True, pid, f"s6-svstat {slot}", None)

    # Reading is all it can do: s6's control FIFO, its event directory and the scan directory stay root's.
    for command in (["s6-svc", "-d", str(slot)], ["s6-svwait", "-D", "-t", "100", str(slot)],
                    ["s6-svscanctl", "-a", str(box.scandir)]):
        refused = run_as(command, box.user, env=box.env, timeout=10)
        assert refused.returncode == 111 and "Permission denied" in refused.stderr, (command, refused.stderr)
    assert box.running() == {"default": pid}
    ok(box.stop())


@pytest.mark.parametrize("run_writable", [True, False], ids=["fails-over-to-run", "output-only"])
def test_a_read_only_log_directory_moves_the_watch_log_and_the_logger_stays_up(empty_container, run_writable):
    """`docker run --read-only --tmpfs /run:exec`: /var/log/hermes-state-watch cannot be written. The
    logger crash-looped once a second, and the watch daemon's pipe to it filled."""
    box = empty_container
    os.chown(box.log_dir, 0, 0)  # as a read-only file system is for the logger's account: not writable
    fallback = box.root / "run" / "hermes-state-watch"
    if not run_writable:
        fallback.parent.mkdir(parents=True, exist_ok=True)
        fallback.write_text("not a directory\n")  # no tmpfs at /run to fall back on either
    ok(box.start())
    logger = box.scandir / "hermes-state-watch" / "log"
    cli(box, "start", "default")
    check_running(box, {"default"})
    if run_writable:
        wait_for(lambda: (fallback / "current").exists() and '"action":"up"' in (fallback / "current").read_text(),
                 10, "the watch line in the fallback directory")
        assert owner(fallback)[0] == pwd.getpwnam("nobody").pw_uid
        said = f"{box.log_dir} is not writable for nobody"
    else:
        said = "the watch log goes to the container's output only"
    wait_for(lambda: '"action":"up"' in box.scanner_output(), 10, "the watch line on the container's output")
    assert said in box.scanner_output()
    assert not list(box.log_dir.iterdir())
    # One logger for the container's life, not one a second.
    pid = box.svstat(logger, "up,pid")
    time.sleep(1.5)
    assert box.svstat(logger, "up,pid") == pid and pid.startswith("true")
    assert box.scanner_output().count(said) == 1
    ok(box.stop())
