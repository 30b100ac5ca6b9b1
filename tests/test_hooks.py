"""`hermes-state record-start | record-exit` as s6's run and finish scripts call them.

Real subprocesses of the real `hermes` command, run as the unprivileged uid,
against real SQLite files. The gateway is a shell that writes its pid and
HERMES_PROFILE to a file, which proves the exec happened in the hook's own
process and with the profile in its environment.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import HERMES, HOOKS_UNSUPERVISED, Home, give_to, recording_gateway, run_as
from hermes_lifecycle.backends.sqlite.driver import sqlite_module
from hermes_lifecycle.errors import InvalidName
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.hooks import profile_of_slot
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store

# Generous: the hooks' busy timeout is 0.5 s and the interpreter starts in
# about 0.2 s; the point is "about a second", not the default 5 s timeout.
REPORT_BOUND_SECONDS = 2.5


def report_bound(home: Home) -> float:
    """REPORT_BOUND_SECONDS, stretched by how slowly a process of the command starts right now.

    On an idle machine `hermes --version` takes well under 0.1 s and the bound
    stays about 2.6 s; on an oversubscribed one every process is slow, and
    waiting for a core is not what this test is about.
    """
    started = time.monotonic()
    home.hermes("--version")
    return REPORT_BOUND_SECONDS + 3 * (time.monotonic() - started)

# The brief's hostile names go through the real command; the rest through
# the same function in process (test_profile_of_slot_refuses).
HOSTILE_SLOTS = ["gateway-../x", "gateway-A", "gateway-a;rm -rf /", "gateway-" + "a" * 300, "alice"]
MORE_HOSTILE_SLOTS = ["gateway-", "gateway-alice\n", "gateway-.alice", "gateway-alice/../bob", "", "Gateway-alice",
                      "gateway-alice ", "gateway-ali\x00ce", "gateway-test/..", "gateway--alice"]


# -- helpers ---------------------------------------------------------------


def append(home: Home, *events: NewEvent) -> None:
    """Set up a stream (in process; ownership handed back to the user after)."""
    with open_store(Settings.from_env(home.env())) as store:
        with store.writing() as tx:
            for new in events:
                tx.append(new)
    give_to(home.path, home.user)


def rows(home: Home) -> list[dict]:
    con = sqlite_module().connect(f"file:{home.db}?mode=ro", uri=True)
    try:
        con.row_factory = sqlite_module().Row
        return [dict(row) for row in con.execute("SELECT * FROM events ORDER BY position")]
    finally:
        con.close()


def live(home: Home, name: str = "alice", up: bool = True) -> None:
    batch = [NewEvent(name, "created", "cli", "down")]
    if up:
        batch.append(NewEvent(name, "started", "cli", "up"))
    append(home, *batch)


def gateway_env(home: Home, out: Path, **extra: str) -> dict[str, str]:
    return {**recording_gateway(out), **extra}


def hook(home: Home, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """A hook called directly, outside any slot: with the override (test_the_hooks_refuse_* run without it)."""
    started = time.monotonic()
    result = home.hermes(*args, env={**HOOKS_UNSUPERVISED, **(env or {})})
    return result, time.monotonic() - started


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]



# -- record-start --------------------------------------------------------------


def test_record_start_appends_the_gateways_pid_then_execs_it(migrated_home, out):
    live(migrated_home)
    env = {**migrated_home.env(), **gateway_env(migrated_home, out), **HOOKS_UNSUPERVISED}
    kwargs = {} if migrated_home.user.is_self else {
        "user": migrated_home.user.uid, "group": migrated_home.user.gid, "extra_groups": []}
    process = subprocess.Popen([str(HERMES), "record-start", "gateway-alice"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert stderr == ""
    pid, profile = out.read_text().split()
    assert int(pid) == process.pid  # the same process: the hook exec'd the gateway
    assert profile == "alice"
    started = rows(migrated_home)[-1]
    assert (started["type"], started["actor"], started["desired"], started["pid"]) == (
        "started", "supervisor", None, process.pid)


def test_the_gateway_inherits_no_descriptor_of_the_store(migrated_home, out):
    live(migrated_home)
    script = f"ls -l /proc/$$/fd > {out}"
    result, _ = hook(migrated_home, "record-start", "gateway-alice",
                     env={"HERMES_GATEWAY_COMMAND": f"/bin/sh -c {shlex.quote(script)}"})
    assert result.returncode == 0, result.stderr
    listing = out.read_text()
    assert "->" in listing  # the listing is there (stdin, stdout, stderr at least)
    assert "profiles.db" not in listing


def test_record_start_passes_the_gateways_exit_status_through(migrated_home):
    live(migrated_home)
    result, _ = hook(migrated_home, "record-start", "gateway-alice",
                     env={"HERMES_GATEWAY_COMMAND": "/bin/sh -c 'exit 42'"})
    assert result.returncode == 42


def test_record_start_refuses_hostile_slot_names(migrated_home, out):
    live(migrated_home)
    before = rows(migrated_home)
    for slot in HOSTILE_SLOTS:
        result, _ = hook(migrated_home, "record-start", slot, env=gateway_env(migrated_home, out))
        assert result.returncode == 2, slot
        assert "invalid slot name" in one_line(result.stderr)
    assert not out.exists()
    assert rows(migrated_home) == before


@pytest.mark.parametrize("slot", HOSTILE_SLOTS + MORE_HOSTILE_SLOTS)
def test_profile_of_slot_refuses(slot):
    with pytest.raises(InvalidName, match="invalid slot name"):
        profile_of_slot(slot)


@pytest.mark.parametrize("slot, name", [("gateway-alice", "alice"), ("gateway-a", "a"), ("gateway-0_b-c", "0_b-c"),
                                        ("gateway-" + "a" * 64, "a" * 64), ("gateway-test", "test")])
def test_profile_of_slot(slot, name):
    # A reserved name is a valid name: it cannot be created, so the store knows no such profile.
    assert profile_of_slot(slot) == name


@pytest.mark.parametrize("deleted, status", [(False, 3), (True, 4)], ids=["unknown", "deleted"])
def test_record_start_starts_no_gateway_for_a_missing_profile(migrated_home, out, deleted, status):
    if deleted:
        live(migrated_home, "bob")
        append(migrated_home, NewEvent("bob", "deleted", "cli", "down"))
    before = rows(migrated_home)
    result, _ = hook(migrated_home, "record-start", "gateway-bob", env=gateway_env(migrated_home, out))
    assert result.returncode == status
    assert "no gateway started" in one_line(result.stderr)
    assert not out.exists()
    assert rows(migrated_home) == before


def test_record_start_refuses_a_gateway_command_it_cannot_split(migrated_home, out):
    live(migrated_home)
    before = rows(migrated_home)
    result, _ = hook(migrated_home, "record-start", "gateway-alice",
                     env={"HERMES_GATEWAY_COMMAND": "hermes gateway 'run"})
    assert result.returncode == 2
    assert "HERMES_GATEWAY_COMMAND" in one_line(result.stderr)
    assert rows(migrated_home) == before


def test_record_start_with_a_gateway_command_that_does_not_exist_exits_78(migrated_home):
    live(migrated_home)
    result, _ = hook(migrated_home, "record-start", "gateway-alice",
                     env={"HERMES_GATEWAY_COMMAND": "/nonexistent/gateway {profile}"})
    assert result.returncode == 78  # finish then records fatal-config and holds it down
    assert "cannot run the gateway command '/nonexistent/gateway'" in one_line(result.stderr)
    assert rows(migrated_home)[-1]["type"] == "started"


def test_profile_placeholder_is_one_word_and_no_shell_runs(migrated_home, out):
    live(migrated_home)
    script = 'printf %s,%s "$0" "$1" > ' + str(out)
    command = f"/bin/sh -c {shlex.quote(script)} {{profile}}; x"
    result, _ = hook(migrated_home, "record-start", "gateway-alice", env={"HERMES_GATEWAY_COMMAND": command})
    assert result.returncode == 0, result.stderr
    # `;` reached sh as a word of its own: no shell split the command line.
    assert out.read_text() == "alice;,x"


# -- outside a slot ------------------------------------------------------------


def test_the_hooks_typed_in_a_shell_are_refused_and_touch_nothing(migrated_home, out, world_tmp):
    """docs/cli.md's examples, as a person types them against a live store whose gateway runs: a crash
    of a running gateway, a start of a pid that would live on in the log. Refused, also from the slot's
    own directory, because no s6-supervise runs them."""
    live(migrated_home)
    append(migrated_home, NewEvent("alice", "started", "supervisor", pid=4242))
    before = rows(migrated_home)
    slot = world_tmp / "service" / "gateway-alice"
    slot.mkdir(parents=True)
    for cwd in (None, slot):
        env = {**migrated_home.env(), **gateway_env(migrated_home, out)}
        for args in (("record-exit", "gateway-alice", "256", "9", "true"), ("record-start", "gateway-alice")):
            result = run_as([str(HERMES), *args], migrated_home.user, env=env, cwd=cwd)
            assert result.returncode == 2, result.stderr
            line = one_line(result.stderr)
            assert f"{args[0]} gateway-alice: refused: not run by the slot's s6-supervise" in line
            assert "HERMES_STATE_HOOKS_UNSUPERVISED=1" in line
    assert not out.exists()  # no gateway ran
    assert rows(migrated_home) == before


def test_the_docs_way_to_try_the_hooks_works_on_a_scratch_home(world_tmp, hermes_user):
    """docs/cli.md's block, as one shell runs it: a scratch home, the override, a start and a crash."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    block = text.split("To try the hooks", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    scratch = world_tmp / "scratch"
    scratch.mkdir()
    give_to(scratch, hermes_user)
    env = {"PATH": f"{HERMES.parent}:/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch), "LANG": "C.UTF-8"}
    result = run_as(["/bin/sh", "-e", "-c", block], hermes_user, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    [home] = [path for path in scratch.iterdir() if path.name.startswith("tmp.")]
    kinds = [(row["type"], row["actor"], row["exit_code"]) for row in rows(Home(home, hermes_user))]
    assert kinds[-2:] == [("started", "supervisor", None), ("crashed", "supervisor", 1)]


def test_the_override_is_1_or_nothing(migrated_home):
    live(migrated_home)
    before = rows(migrated_home)
    result = migrated_home.hermes("record-exit", "gateway-alice", "1", "0", "true",
                                  env={"HERMES_STATE_HOOKS_UNSUPERVISED": "yes"})
    assert result.returncode == 2
    assert "invalid HERMES_STATE_HOOKS_UNSUPERVISED 'yes'" in one_line(result.stderr)
    assert rows(migrated_home) == before


# -- record-exit ---------------------------------------------------------------


def exit_hook(home: Home, *args: str, env: dict | None = None):
    return hook(home, "record-exit", "gateway-alice", *args, env=env)


def test_record_exit_records_a_crash_and_the_breaker_holds_it_down(migrated_home):
    live(migrated_home)
    hook(migrated_home, "record-start", "gateway-alice", env={"HERMES_GATEWAY_COMMAND": "/bin/true"})
    statuses = []
    for _ in range(3):
        result, _ = exit_hook(migrated_home, "1", "0", "true", env={"HERMES_CRASH_LOOP": "3/60s"})
        statuses.append(result.returncode)
    assert statuses == [0, 0, 125]
    log = rows(migrated_home)
    started = next(r for r in log if r["type"] == "started" and r["actor"] == "supervisor")
    tail = [(r["type"], r["actor"], r["desired"], r["exit_code"], r["reason"]) for r in log[-4:]]
    assert tail == [
        ("crashed", "supervisor", None, 1, None),
        ("crashed", "supervisor", None, 1, None),
        ("crashed", "supervisor", None, 1, None),
        ("stopped", "supervisor", "down", 1, "crash-loop"),
    ]
    # the first exit names its run and pid; later exits find no run going
    assert f'"run":{started["position"]}' in log[-4]["data"] and log[-4]["pid"] == started["pid"]
    assert '"count":3' in log[-1]["data"] and '"window_seconds":60' in log[-1]["data"]


@pytest.mark.parametrize(
    "args, intent, status, expected",
    [
        (("0", "0", "true"), None, 125, ("stopped", "down", "exited", 0, None)),
        (("78", "0", "true"), None, 125, ("stopped", "down", "fatal-config", 78, None)),
        (("256", "9", "true"), None, 0, ("crashed", None, None, None, 9)),
        (("0", "0", "false"), None, 0, ("stopped", None, "shutdown", 0, None)),
        (("256", "15", ""), "stop", 0, ("stopped", None, "requested", None, 15)),
        (("0", "0", "true"), "restart", 0, ("stopped", None, "restart", 0, None)),
    ],
    ids=["exited", "fatal-config", "killed", "shutdown", "requested", "restart"],
)
def test_record_exit_classifies_by_who_asked(migrated_home, args, intent, status, expected):
    live(migrated_home)
    append(migrated_home, NewEvent("alice", "started", "supervisor", pid=4242))
    if intent == "stop":
        append(migrated_home, NewEvent("alice", "stopped", "cli", "down"))
    elif intent == "restart":
        append(migrated_home, NewEvent("alice", "started", "cli", "up", reason="restart"))
    result, _ = exit_hook(migrated_home, *args)
    assert result.returncode == status, result.stderr
    log = rows(migrated_home)
    last = log[-1]
    run = next(r for r in log if r["actor"] == "supervisor")
    assert last["data"] == f'{{"run":{run["position"]}}}' and last["pid"] == 4242
    assert (last["type"], last["desired"], last["reason"], last["exit_code"], last["signal"]) == expected


@pytest.mark.parametrize(
    "since_the_new_start, args, expected",
    [
        # The stop's SIGTERM killed the run hook before its `started` committed; a start came after.
        (["stop", "start"], ("256", "15", "true"), ("stopped", "requested")),
        (["stop", "start"], ("256", "15", "false"), ("stopped", "requested")),
        (["stop", "start", "stop", "start"], ("256", "15", ""), ("stopped", "requested")),
        # Not a SIGTERM: not the stop's doing.
        (["stop", "start"], ("256", "9", "true"), ("crashed", None)),
        (["stop", "start"], ("1", "0", "true"), ("crashed", None)),
        # The only stop was answered already (by the earlier run's exit): a SIGTERM now is nobody's stop.
        ([], ("256", "15", "true"), ("crashed", None)),
        ([], ("256", "15", "false"), ("stopped", "shutdown")),
    ],
    ids=["start-since", "start-since-wantedup-false", "many-intents", "sigkill", "exit-1", "answered", "answered-shutdown"],
)
def test_a_sigterm_with_no_run_going_is_the_stop_nothing_has_answered_yet(migrated_home, since_the_new_start, args,
                                                                          expected):
    """A run recorded, stopped and its exit recorded; then a start whose run s6 forked but never recorded."""
    live(migrated_home)
    append(migrated_home, NewEvent("alice", "started", "supervisor", pid=4242))
    run = rows(migrated_home)[-1]["position"]
    append(migrated_home,
           NewEvent("alice", "stopped", "cli", "down"),
           NewEvent("alice", "stopped", "supervisor", pid=4242, signal=15, reason="requested", data={"run": run}),
           NewEvent("alice", "started", "cli", "up"),
           *[NewEvent("alice", "stopped", "cli", "down") if step == "stop" else NewEvent("alice", "started", "cli", "up")
             for step in since_the_new_start])
    result, _ = exit_hook(migrated_home, *args)
    assert result.returncode == 0, result.stderr
    last = rows(migrated_home)[-1]
    assert (last["type"], last["reason"]) == expected
    assert last["pid"] is None and last["data"] == "{}"  # no run going: none is named


def test_a_deleted_profiles_last_exit_is_accepted_and_recorded_nowhere(migrated_home):
    live(migrated_home)
    append(migrated_home, NewEvent("alice", "deleted", "cli", "down"))
    before = rows(migrated_home)
    result, _ = exit_hook(migrated_home, "256", "15", "false")
    assert (result.returncode, result.stderr) == (0, "")
    assert rows(migrated_home) == before


def test_record_exit_refuses_hostile_slot_names(migrated_home):
    live(migrated_home)
    before = rows(migrated_home)
    for slot in HOSTILE_SLOTS:
        result, _ = hook(migrated_home, "record-exit", slot, "1", "0", "true")
        assert result.returncode == 2, slot
        assert "invalid slot name" in one_line(result.stderr)
    assert rows(migrated_home) == before


@pytest.mark.parametrize(
    "args",
    [("x", "0", "true"), ("1", "nine", "true"), ("-1", "0", "true"), ("1", "9", "true"), ("256", "0", "true"),
     ("0", "0", "maybe"), ("1e2", "0", "true")],
)
def test_record_exit_refuses_what_s6_cannot_have_passed(migrated_home, args):
    live(migrated_home)
    before = rows(migrated_home)
    result, _ = exit_hook(migrated_home, *args)
    assert result.returncode == 2
    one_line(result.stderr)
    assert rows(migrated_home) == before


def test_record_exit_refuses_a_bad_crash_loop_setting(migrated_home):
    live(migrated_home)
    result, _ = exit_hook(migrated_home, "1", "0", "true", env={"HERMES_CRASH_LOOP": "often"})
    assert result.returncode == 2
    assert "HERMES_CRASH_LOOP" in one_line(result.stderr)


def test_concurrent_exits_trip_the_breaker_exactly_once(migrated_home):
    """Read, count and append share one transaction: six exits at once cannot all see four crashes."""
    live(migrated_home)
    env = {**migrated_home.env(), "HERMES_CRASH_LOOP": "5/60s", **HOOKS_UNSUPERVISED}
    kwargs = {} if migrated_home.user.is_self else {
        "user": migrated_home.user.uid, "group": migrated_home.user.gid, "extra_groups": []}
    processes = [
        subprocess.Popen([str(HERMES), "record-exit", "gateway-alice", "1", "0", "true"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)
        for _ in range(6)
    ]
    statuses = sorted(p.wait(timeout=30) for p in processes)
    assert statuses == [0, 0, 0, 0, 0, 125], [p.stderr.read() for p in processes]
    kinds = [(r["type"], r["reason"]) for r in rows(migrated_home)[2:]]
    assert kinds[:6] == [("crashed", None)] * 4 + [("crashed", None), ("stopped", "crash-loop")]
    assert kinds[6:] == [("stopped", "requested")]  # the last one found it held down


# -- a store that fails --------------------------------------------------------


LOCKER = """
import sys
from hermes_lifecycle.backends.sqlite.driver import sqlite_module
con = sqlite_module().connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
con.execute("ROLLBACK")
"""


@pytest.fixture
def locked(migrated_home):
    """Another process holds the write lock (BEGIN IMMEDIATE) until the test ends."""
    live(migrated_home)
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(migrated_home.db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert locker.stdout.readline().strip() == "locked"
    yield migrated_home
    locker.stdin.close()
    locker.wait(timeout=10)
    give_to(migrated_home.path, migrated_home.user)


def test_record_exit_reports_a_locked_store_within_a_second(locked):
    bound = report_bound(locked)
    result, elapsed = exit_hook(locked, "1", "0", "true")
    assert result.returncode == 5  # not 125: s6 restarts as it would without us
    line = one_line(result.stderr)
    assert "locked" in line and "exit not recorded" in line
    assert elapsed < bound, (elapsed, bound)


def test_record_start_reports_a_locked_store_and_still_starts_the_gateway(locked, out):
    bound = report_bound(locked)
    result, elapsed = hook(locked, "record-start", "gateway-alice", env=gateway_env(locked, out))
    assert result.returncode == 0
    line = one_line(result.stderr)
    assert "locked" in line and "starting the gateway anyway" in line
    assert out.read_text().split()[1] == "alice"
    assert elapsed < bound, (elapsed, bound)


def break_store(home: Home, how: str) -> None:
    if how == "missing":
        home.db.unlink()
    elif how == "corrupt":
        home.db.write_bytes(b"this is not a database, it was overwritten\n" * 200)
        for suffix in ("-wal", "-shm"):
            Path(f"{home.db}{suffix}").unlink(missing_ok=True)
    elif how == "damaged":
        # The header survives; the pages after it (the schema's and the tables') do not.
        with open(home.db, "r+b") as f:
            f.seek(4096)
            f.write(b"\xde\xad" * 16384)
    elif how == "read-only":
        os.chmod(home.db, 0o444)
        os.chmod(home.db.parent, 0o555)
    elif how == "schema":
        con = sqlite_module().connect(home.db, isolation_level=None)
        con.execute("UPDATE alembic_version SET version_num = '9999_future'")
        con.close()
        give_to(home.path, home.user)


BROKEN = [("missing", "no event store"), ("corrupt", "not a SQLite database"), ("damaged", "corrupt"),
          ("read-only", "read-only"),
          ("schema", "newer than this code")]


@pytest.mark.parametrize("how, says", BROKEN, ids=[b[0] for b in BROKEN])
def test_record_exit_on_a_broken_store(migrated_home, how, says):
    live(migrated_home)
    break_store(migrated_home, how)
    bound = report_bound(migrated_home)
    result, elapsed = exit_hook(migrated_home, "1", "0", "true")
    assert result.returncode == 5
    line = one_line(result.stderr)
    assert says in line and "exit not recorded" in line
    assert elapsed < bound, (elapsed, bound)


@pytest.mark.parametrize("how, says", BROKEN, ids=[b[0] for b in BROKEN])
def test_record_start_on_a_broken_store_still_starts_the_gateway(migrated_home, out, how, says):
    live(migrated_home)
    break_store(migrated_home, how)
    bound = report_bound(migrated_home)
    result, elapsed = hook(migrated_home, "record-start", "gateway-alice", env=gateway_env(migrated_home, out))
    assert result.returncode == 0
    line = one_line(result.stderr)
    assert says in line and "starting the gateway anyway" in line
    assert out.read_text().split()[1] == "alice"
    assert elapsed < bound, (elapsed, bound)


# -- what a hook costs ----------------------------------------------------------------


PROBE = """
import os, sys
from hermes_lifecycle_cli.main import main
heavy = lambda: sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "rich"))
def report(*args):  # stands in for the exec: the process would be replaced here
    print("exec", heavy()); sys.exit(0)
os.execvpe = report
status = main(sys.argv[1:])
print("exit", status, heavy())
"""


@pytest.mark.parametrize("args, expected", [
    (("record-start", "gateway-alice"), "exec []"),
    (("record-exit", "gateway-alice", "1", "0", "true"), "exit 0 []"),
])
def test_hooks_import_neither_alembic_nor_rich(migrated_home, args, expected):
    live(migrated_home)
    python = Path(sys.executable)
    result = run_as([str(python), "-c", PROBE, *args], migrated_home.user, env=migrated_home.env(**HOOKS_UNSUPERVISED))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
