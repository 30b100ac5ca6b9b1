"""Root reads nothing hostile without bounds (issue 20): what the volume's owner can make root's readers do.

The attacker is the gateway uid: it owns the volume, the database, its schema
and rows, and every directory on the way. Each test makes the attack as that
unprivileged uid and runs the real root-side commands (`boot`, `watch` on a
real s6-svscan, `doctor`, `list`, `history`, `status`, `sql`, `serve`)
against it. docs/reliability.md lists them, with the two rules they come
from.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import HERMES, run_as, run_on_terminal
from projector_support import IS_ROOT, processes_under, rig_for, wait_for
from test_hostile_store import _other_users_store

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not IS_ROOT, reason="the attacks are on root's side: needs root")]

VIEWS = 300_000
# The attacker's own Python: sqlite_master written directly, then the schema cookie bumped so every
# connection reads the new schema (the recipe; a few seconds for 300,000 rows).
_GROW_SCHEMA = r"""
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA writable_schema = ON")
version = connection.execute("PRAGMA schema_version").fetchone()[0]
connection.execute("BEGIN")
connection.executemany(
    "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES ('view', ?, ?, 0, ?)",
    ((f"v{i}", f"v{i}", f"CREATE VIEW v{i} AS SELECT {i}") for i in range(int(sys.argv[2]))))
connection.execute("COMMIT")
connection.execute(f"PRAGMA schema_version = {version + 1}")
connection.close()
"""
# Runs a command and reports its peak resident memory (KiB) on the last line of stderr.
_PEAK = r"""
import resource, subprocess, sys
result = subprocess.run(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(result.returncode)
"""
PEAK_KIB = 200 * 1024  # a reader's own size is ~40 MiB; the issue saw 3.4 GB


@pytest.fixture
def rig(world_tmp, home):
    with rig_for(world_tmp, home, booted=True, HERMES_WATCH_POLL_INTERVAL="0.3") as rig:
        yield rig


def grow_schema(rig, views: int = VIEWS) -> None:
    result = run_as([sys.executable, "-c", _GROW_SCHEMA, str(rig.home.db), str(views)], rig.user, env=rig.env(),
                    timeout=120)
    assert result.returncode == 0, result.stderr


def as_user_shell(rig, script: str) -> None:
    result = run_as(["/bin/sh", "-ec", script], rig.user, env=rig.env(), cwd=rig.home.path)
    assert result.returncode == 0, result.stderr


def root_with_peak(rig, *args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], int]:
    """`hermes-state ARGS` as root; its result (stderr without the measurement) and peak memory in KiB."""
    result = subprocess.run([sys.executable, "-c", _PEAK, str(HERMES), *args], env=rig.env(), capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    *lines, peak = result.stderr.splitlines()
    result.stderr = "".join(line + "\n" for line in lines)
    return result, int(peak)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("hermes-state")]


def slots(rig) -> list[str]:
    return sorted(p.name for p in rig.scandir.iterdir() if not p.name.startswith("."))


# -- 1. a hostile schema: refused by every root reader, at once, in bounded memory ----------------------
ROOT_READERS = [
    ("list",), ("history", "alice"), ("status", "alice"), ("doctor",), ("boot",), ("watch",),
    ("sql", "SELECT count(*) AS n FROM events"), ("serve", "--once", "/"),
]


def test_a_schema_of_300000_views_is_refused_by_every_root_reader_at_once_in_bounded_memory(rig):
    rig.append("create", "alice")
    rig.append("start", "alice")
    wait_for(lambda: rig.boot() and rig.running_pid("alice"), 10, "alice up")
    before = slots(rig)
    grow_schema(rig)
    for args in ROOT_READERS:
        result, peak = root_with_peak(rig, *args)  # before: still running after minutes, at gigabytes
        output = result.stdout + result.stderr
        assert result.returncode == 5, (args, output)
        assert "schema is far larger than the migrations make" in output, (args, output)
        assert "Traceback" not in output, (args, output)
        if args[0] not in ("doctor", "serve"):  # doctor's table, serve's page say it in their own place
            assert len(error_lines(result.stderr)) == 1, (args, result.stderr)
        assert peak < PEAK_KIB, (args, peak)
    assert slots(rig) == before and rig.running_pid("alice")  # nothing acted on, the gateway untouched


def test_a_schema_grown_under_the_watch_daemon_is_read_again_within_bounds_and_refused(rig):
    rig.append("create", "alice")
    rig.append("start", "alice")
    watch = rig.start_watch()
    wait_for(lambda: rig.running_pid("alice"), 10, "alice up")
    grow_schema(rig)  # its commit wakes the daemon, whose next read would parse the new schema
    assert watch.wait(timeout=30) == 5
    output = rig.watch_output()
    assert '"trigger":"replaced"' in output and "schema of event store" in output, output
    assert error_lines(output)[-1].endswith("(more than 20000 steps to read it)"), output
    assert "Traceback" not in output
    assert rig.running_pid("alice")  # refused, not acted on: the slots stay as they were


# A schema read made long on purpose (its budget lifted, as for any read that takes its time): what
# SIGTERM does to the daemon while SQLite is inside it.
_WATCH_WITHOUT_BUDGET = r"""
import sys
from hermes_lifecycle.backends.sqlite import connect
connect.SCHEMA_STEPS = 10**12
from hermes_lifecycle_cli.main import main
sys.exit(main(["watch"]))
"""


def test_the_watch_daemon_honours_sigterm_within_2_s_while_sqlite_reads_a_huge_schema(rig):
    grow_schema(rig)
    daemon = subprocess.Popen([sys.executable, "-c", _WATCH_WITHOUT_BUDGET], env=rig.env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        time.sleep(3)  # well into the schema: 300,000 views take minutes
        assert daemon.poll() is None, daemon.communicate()
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=2)  # before: alive a minute later
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, err
    assert "Traceback" not in err


# -- 2. the host id: a FIFO, a link to /dev/zero ---------------------------------------------------------
@pytest.mark.parametrize("plant, why", [
    ("mkfifo state/host-id", "is not a regular file: refused"),
    ("ln -s /dev/zero state/host-id", "refused: Too many levels of symbolic links"),
])
def test_a_host_id_that_is_a_fifo_or_a_link_to_dev_zero_stops_boot_with_one_line(rig, plant, why):
    as_user_shell(rig, f"rm -f state/host-id && {plant}")
    result = rig.hermes("boot", timeout=60)  # before: blocked in open() until the child's 600 s, or MemoryError
    assert result.returncode == 5, result.stderr
    [line] = error_lines(result.stderr)
    assert f"host id file {rig.home.path}/state/host-id {why}" in line, line
    assert "Traceback" not in result.stderr


# -- 3. doctor through a symbolic link on the way to the store ------------------------------------------
def test_root_doctor_through_a_symlinked_state_directory_reports_and_creates_nothing_there(rig, world_tmp):
    other_state = _other_users_store(world_tmp)
    inside = sorted(os.listdir(other_state))
    size = (other_state / "profiles.db").stat().st_size
    as_user_shell(rig, f"mv state state.real && ln -s {other_state} state")

    result = rig.hermes("doctor", "--json")
    assert result.returncode == 5, result.stderr
    [report] = [json.loads(line) for line in result.stdout.splitlines()]
    findings = {finding["check"]: finding for finding in report["checks"]}
    assert findings["file"]["status"] == "error" and "symbolic link" in findings["file"]["detail"], findings
    assert set(findings) == {"sqlite", "file"}, findings  # nothing of the file behind the link
    assert str(size) not in result.stdout and "integrity" not in result.stdout
    assert sorted(os.listdir(other_state)) == inside  # no -wal or -shm made in the other user's directory


# -- 5. a value of any type in any column: a malformed row, never a traceback ------------------------------
EVENT_COLUMNS = ("profile", "version", "type", "actor", "desired", "occurred_at", "host", "boot_id", "pid",
                 "exit_code", "signal", "reason", "data", "idempotency_key", "hash", "chain_version")
_GOOD = {"profile": "alice", "type": "started", "actor": "cli", "desired": "up",
         "occurred_at": "2026-01-01T00:00:00.000Z", "host": "h", "data": "{}", "hash": "a" * 64, "chain_version": 1}
_INSERT_BEHIND = r"""
import json, sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA ignore_check_constraints = ON")
for row in json.loads(sys.stdin.read()):
    values = {k: bytes.fromhex(v[4:]) if isinstance(v, str) and v.startswith("hex:") else v for k, v in row.items()}
    connection.execute(f"INSERT INTO events ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                       list(values.values()))
connection.close()
"""


def insert_behind(rig, rows: list[dict]) -> None:
    result = run_as([sys.executable, "-c", _INSERT_BEHIND, str(rig.home.db)], rig.user, env=rig.env(),
                    input=json.dumps(rows))
    assert result.returncode == 0, result.stderr


def test_a_blob_in_any_column_of_an_event_is_a_malformed_row_for_every_root_reader(rig):
    rig.append("create", "alice")
    rig.append("start", "alice")
    wait_for(lambda: rig.boot() and rig.running_pid("alice"), 10, "alice up")
    first = int(rig.hermes("sql", "SELECT max(position) AS p FROM events").stdout.split(":")[1].strip(" }\n")) + 1
    rows = [{**_GOOD, "version": 1000 + index, column: "hex:00ff7b7d"} for index, column in enumerate(EVENT_COLUMNS)]
    insert_behind(rig, rows)

    history = rig.hermes("history", "alice")
    assert history.returncode == 5 and "Traceback" not in history.stderr, history.stderr
    named = [line for line in history.stderr.splitlines() if "malformed row in events at position" in line]
    more = [int(line.split()[2]) for line in history.stderr.splitlines() if "more malformed rows skipped" in line]
    # Every row of alice's stream (not the one whose profile, nor the one whose type, is a BLOB): one line
    # each, the first ten named.
    assert len(named) + sum(more) == len(EVENT_COLUMNS) - 2, history.stderr

    booted = rig.hermes("boot")  # before: a TypeError in the chain's encoding, exit 1
    assert booted.returncode == 0 and "Traceback" not in booted.stderr, booted.stderr
    assert f"hash chain broken at position {first}" in booted.stderr
    assert rig.running_pid("alice")

    doctor = rig.hermes("doctor", "--json")
    assert doctor.returncode == 5 and "Traceback" not in doctor.stderr, doctor.stderr
    checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["hash chain"]["detail"].startswith(f"broken at position {first}")
    assert f"malformed row in events at position {first}: profile is not text" in checks["fold"]["detail"]

    sql = rig.hermes("sql", "SELECT position, profile, host, data FROM events WHERE version >= 1000")
    assert sql.returncode == 0 and "Traceback" not in sql.stderr, sql.stderr  # before: bytes are no JSON
    printed = [json.loads(line) for line in sql.stdout.splitlines()]
    assert printed[0]["profile"] == {"blob": "00ff7b7d"} and printed[6]["host"] == {"blob": "00ff7b7d"}

    for args in (("list",), ("status", "alice"), ("serve", "--once", "/profiles/alice")):
        result = rig.hermes(*args)
        assert "Traceback" not in result.stderr, (args, result.stderr)


PROJECTION_BLOBS = ("profile", "desired", "host", "last_reason", "version", "last_at", "deleted")


def test_a_blob_in_a_projection_row_is_a_malformed_row_for_every_root_reader(rig):
    names = [f"p{index}" for index in range(len(PROJECTION_BLOBS))]
    rig.append("create", *names)
    script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
              "c.execute('PRAGMA ignore_check_constraints = ON')\n"
              "for name, column in zip(sys.argv[2::2], sys.argv[3::2]):\n"
              "    c.execute(f'UPDATE profile_projection SET {column} = x\\'00ff\\' WHERE profile = ?', [name])")
    pairs = [word for pair in zip(names, PROJECTION_BLOBS) for word in pair]
    result = run_as([sys.executable, "-c", script, str(rig.home.db), *pairs], rig.user, env=rig.env())
    assert result.returncode == 0, result.stderr
    for args in (("list",), ("list", "--json"), ("status", "p1"), ("history", "p2"), ("boot",), ("doctor",),
                 ("serve", "--once", "/"), ("serve", "--once", "/metrics"), ("sql", "SELECT * FROM profile_status")):
        result = rig.hermes(*args)
        assert "Traceback" not in result.stdout + result.stderr, (args, result.stderr)
        assert result.returncode in (0, 5), (args, result.returncode, result.stderr)
        if result.returncode == 5 and args[0] not in ("doctor", "serve"):
            assert len(error_lines(result.stderr)) == 1 and "malformed row in profile_projection" in result.stderr, (
                args, result.stderr)


# -- 4. legacy files: one bad file stops nobody's boot -----------------------------------------------------
def _legacy_profile(rig, name: str, content: bytes) -> Path:
    directory = rig.home.path / "profiles" / name
    script = ("import os, sys; d = sys.argv[1]; os.makedirs(d); open(os.path.join(d, 'SOUL.md'), 'w').close(); "
              "open(os.path.join(d, 'gateway_state.json'), 'wb').write(sys.stdin.buffer.read())")
    result = subprocess.run([sys.executable, "-c", script, str(directory)], input=content, capture_output=True,
                            user=rig.user.uid, group=rig.user.gid, extra_groups=[], env=rig.env())
    assert result.returncode == 0, result.stderr
    return directory / "gateway_state.json"


def test_a_large_or_deeply_nested_legacy_file_imports_and_boot_goes_on_for_every_profile(world_tmp, home):
    import hashlib

    from hermes_lifecycle.events import MAX_DATA_BYTES

    with rig_for(world_tmp, home) as rig:
        rig.start_scanner()
        # 200 KB of valid JSON: under the 1 MiB the import reads, over what an event holds.
        large = json.dumps({"desired_state": "running", "notes": ["é" * 100] * 1000}, ensure_ascii=False).encode()
        _legacy_profile(rig, "alpha", large)
        _legacy_profile(rig, "bravo", b"[" * 100_000)  # the parser's recursion: was a traceback
        _legacy_profile(rig, "charlie", b'{"gateway_state": "running"}')
        booted = rig.hermes("boot")  # before: exit 2 ("larger than 65536 bytes") or 1 (RecursionError), no slot
        assert booted.returncode == 0, booted.stderr
        assert "Traceback" not in booted.stderr
        wait_for(lambda: rig.running_pid("alpha") and rig.running_pid("charlie"), 10, "alpha and charlie up")
        assert rig.status("bravo") is not None and not rig.running_pid("bravo")

        created = {name: json.loads(row["data"]) for name in ("alpha", "bravo") for row in rig.history(name)
                   if row["type"] == "created"}
        alpha = created["alpha"]
        assert alpha["imported_as"] == "up" and alpha["content_truncated"] is True and alpha["size"] == len(large)
        assert alpha["sha256"] == hashlib.sha256(large).hexdigest()
        assert large.decode().startswith(alpha["content"]) and len(alpha["content"]) > MAX_DATA_BYTES // 4
        assert len(json.dumps(alpha, separators=(",", ":"), ensure_ascii=False).encode()) <= MAX_DATA_BYTES
        bravo = created["bravo"]
        assert bravo["imported_as"] == "down" and bravo["problem"] == "not valid JSON (nested deeper than 32 levels)"
        assert bravo["sha256"] == hashlib.sha256(b"[" * 100_000).hexdigest()


def test_a_legacy_file_that_is_not_utf8_keeps_a_decodable_prefix_of_what_fits():
    import base64
    import hashlib

    from hermes_lifecycle.events import MAX_DATA_BYTES, encode_data
    from hermes_lifecycle.legacy import plan_import

    raw = b"\xff" + bytes(range(256)) * 3000  # 768 KB, not UTF-8
    data = plan_import("profiles/alpha/gateway_state.json", raw).created_data
    assert len(encode_data(data).encode()) <= MAX_DATA_BYTES
    assert data["content_truncated"] is True and data["size"] == len(raw)
    assert data["sha256"] == hashlib.sha256(raw).hexdigest()
    kept = base64.b64decode(data["content_base64"], validate=True)
    assert raw.startswith(kept) and len(kept) > MAX_DATA_BYTES // 2


# -- 6. a 300 MB value written behind the store's back -----------------------------------------------------
def test_a_300_mb_value_is_a_malformed_row_every_reader_skips_without_loading_it(rig):
    rig.append("create", "alice", "bob")
    rig.append("start", "alice")
    wait_for(lambda: rig.boot() and rig.running_pid("alice"), 10, "alice up")
    huge = 300 * 1024 * 1024
    script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
              "c.execute('PRAGMA ignore_check_constraints = ON'); "
              "c.execute(\"INSERT INTO events (profile, version, type, actor, desired, occurred_at, host, data, hash) "
              "VALUES ('bob', 1000, 'started', 'cli', 'up', '2026-01-01T00:00:00.000Z', 'h', "
              "json_object('x', hex(zeroblob(?))), ?)\", [int(sys.argv[2]) // 2, 'b' * 64])")
    result = run_as([sys.executable, "-c", script, str(rig.home.db), str(huge)], rig.user, env=rig.env(), timeout=120)
    assert result.returncode == 0, result.stderr
    position = int(json.loads(rig.hermes("sql", "SELECT max(position) AS p FROM events").stdout)["p"])

    booted, peak = root_with_peak(rig, "boot")  # before: 900 MB
    assert booted.returncode == 0, booted.stderr
    assert f"hash chain broken at position {position}" in booted.stderr and peak < PEAK_KIB, (booted.stderr, peak)
    assert rig.running_pid("alice")
    for args in (("history", "bob", "--limit", "3"), ("history", "bob", "--json")):  # before: 600 MB
        shown, peak = root_with_peak(rig, *args)
        assert shown.returncode == 5 and peak < PEAK_KIB, (args, shown.stderr, peak)
        assert f"malformed row in events at position {position}: data larger than a reader takes" in shown.stderr
    doctor, peak = root_with_peak(rig, "doctor", "--json")
    assert doctor.returncode == 5 and peak < PEAK_KIB, (doctor.stdout, peak)
    checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["hash chain"]["detail"].startswith(f"broken at position {position}")
    assert f"position {position}: data larger than a reader takes" in checks["fold"]["detail"], checks["fold"]


# -- 6. what `hermes-state sql` writes to root's terminal ---------------------------------------------------
HOSTILE_REASON = "a\x1b]0;owned\x07b\x1b[2Jc\u202ed\x9b31me"  # OSC title, clear screen, bidi override, C1 CSI


def test_root_sql_writes_no_escape_or_bidi_character_from_a_row_to_its_terminal(rig):
    rig.append("create", "alice")
    insert_behind(rig, [{**_GOOD, "version": 1000, "reason": HOSTILE_REASON}])
    query = "SELECT reason FROM events WHERE version = 1000"
    for argv, stdin in (([str(HERMES), "sql", query], b""),  # one statement: JSON lines
                        ([str(HERMES), "sql"], f"{query};\n".encode())):  # statements read: a table
        status, seen = run_on_terminal(argv, None, env=rig.env(), stdin=stdin)
        assert status == 0, seen
        for raw in ("\x1b]", "\x1b[2J", "\u202e", "\x9b", "\x07"):  # before: the sqlite3 shell wrote them raw
            assert raw.encode() not in seen, (argv, raw, seen)
        text = seen.decode()
        assert ("\\u001b]0;owned" in text and "\\u202e" in text) or ("\\x1b]0;owned" in text and "\\u202e" in text), text
    printed = rig.hermes("sql", query)
    assert json.loads(printed.stdout)["reason"] == HOSTILE_REASON  # escaped on the way, exact for a program


# -- 6. boot's child, run as the gateway uid ----------------------------------------------------------------
_HOLD_LOCK = r"""
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(120)
"""


def _dropped_child(parent: int) -> int | None:
    """The pid of boot's child (``python -m hermes_lifecycle.projector.dropped``) of process ``parent``."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent \
                    and b"hermes_lifecycle.projector.dropped" in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except (OSError, IndexError, ValueError):
            continue
    return None


def test_boots_child_gets_no_secret_of_roots_and_a_stopped_child_cannot_hold_boot(rig):
    # The gateway user holds the store's write lock, so boot's child waits in its migration.
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(rig.home.db)], stdout=subprocess.PIPE, text=True,
                              user=rig.user.uid, group=rig.user.gid, extra_groups=[], env=rig.env())
    booting = None
    try:
        assert holder.stdout.readline().strip() == "locked"
        env = rig.env(PGPASSWORD="roots-own-password", ROOT_ONLY_TOKEN="t0ken", HERMES_STATE_BUSY_TIMEOUT_MS="60000")
        booting = subprocess.Popen([str(HERMES), "boot"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        child = wait_for(lambda: _dropped_child(booting.pid), 10, "boot's child, as the gateway user")
        environ = dict(item.split("=", 1) for item in
                       Path(f"/proc/{child}/environ").read_bytes().decode().split("\0") if "=" in item)
        assert "PGPASSWORD" not in environ and "ROOT_ONLY_TOKEN" not in environ, sorted(environ)  # before: both
        assert environ["HOME"] != "/root" and environ["USER"] == rig.user.name
        assert environ.get("HERMES_STATE_BUSY_TIMEOUT_MS") == "60000"  # its own settings, all of them

        result = run_as(["kill", "-STOP", str(child)], rig.user, env=rig.env())  # the gateway user stops it
        assert result.returncode == 0, result.stderr
        out, err = booting.communicate(timeout=20)  # before: boot waited out its 600 s
        assert booting.returncode == 5, err
        [line] = error_lines(err)
        assert "hermes-test: stopped (SIGSTOP or a tracer), killed" in line and "no slot was created" in line, line
        assert not Path(f"/proc/{child}").exists() or _dropped_child(booting.pid) is None  # killed and reaped
    finally:
        holder.kill()
        holder.wait()
        if booting is not None and booting.poll() is None:
            booting.kill()
            booting.communicate()


# -- 6. slots removed under an s6-svscan restarted outside `up` ------------------------------------------------
def test_a_slot_removed_after_s6_svscan_was_restarted_outside_up_is_deleted_not_retried_forever(rig):
    rig.append("create", "alice")
    rig.append("start", "alice")
    wait_for(lambda: rig.boot() and rig.running_pid("alice"), 10, "alice up")
    # s6-svscan killed and started again by hand: its supervisors live on, unknown to the new one.
    old = rig.scanner
    old.kill()
    old.wait()
    rig.scanner = None
    rig.start_scanner()
    watch = rig.start_watch()
    try:
        rig.append("delete", "alice")

        def converged() -> bool:
            entries = os.listdir(rig.scandir)
            return "gateway-alice" not in entries and not [e for e in entries if e.startswith(".gateway-")]

        wait_for(converged, 30, "alice's slot removed and deleted")  # before: .gateway-alice.removing-* for ever
        assert not [p for p in processes_under(rig.scandir) if "alice" in p]  # its supervisor and gateway gone
        assert rig.stop_watch(watch) == 0
    finally:
        # The other slot's supervisor is the first scanner's orphan too: down and out, by its slot.
        for entry in os.listdir(rig.scandir):
            if entry.startswith("gateway-"):
                subprocess.run(["s6-svc", "-dx", str(rig.scandir / entry)], timeout=10)
        wait_for(lambda: not [p for p in processes_under(rig.scandir) if "s6-svscan" not in p], 20,
                 "the first scanner's supervisors gone")


def test_root_import_legacy_through_a_symlinked_profiles_directory_reads_nothing_behind_it(rig, world_tmp):
    other = world_tmp / "other-profiles"
    (other / "victim").mkdir(parents=True)
    (other / "victim" / "SOUL.md").write_text("someone else's\n")
    (other / "victim" / "gateway_state.json").write_text('{"desired_state": "running", "secret": "s3cret"}')
    for path in (other, other / "victim", *(other / "victim").iterdir()):
        os.chown(path, 65534, 65534)
    other.chmod(0o700)
    as_user_shell(rig, f"mkdir -p profiles && mv profiles profiles.real && ln -s {other} profiles")

    result = rig.hermes("import-legacy")  # before: root imported 'victim' with its secret into the log
    assert result.returncode == 5, result.stdout + result.stderr
    [line] = error_lines(result.stderr)
    assert f"cannot open {rig.home.path}/profiles without following a link" in line, line
    assert "s3cret" not in rig.hermes("sql", "SELECT data FROM events").stdout
    assert rig.hermes("status", "victim").returncode == 3  # no such profile


def test_root_sql_on_a_view_of_endless_rows_streams_them_in_bounded_memory(rig):
    """A view the gateway user made endless, queried by root: the rows stream out (before: fetched
    whole, the process grew until the statement's end or the machine's)."""
    script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"CREATE VIEW endless_rows AS "
              "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i, hex(randomblob(64)) AS pad "
              "FROM n\"); c.commit()")
    result = run_as([sys.executable, "-c", script, str(rig.home.db)], rig.user, env=rig.env())
    assert result.returncode == 0, result.stderr
    reader = subprocess.Popen([str(HERMES), "sql", "SELECT * FROM endless_rows"], env=rig.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        import select

        lines, deadline = 0, time.monotonic() + 30
        while lines < 300_000 and time.monotonic() < deadline:
            if select.select([reader.stdout], [], [], 1)[0]:
                lines += reader.stdout.read1(1 << 16).count(b"\n")
        peak = next(int(line.split()[1]) for line in Path(f"/proc/{reader.pid}/status").read_text().splitlines()
                    if line.startswith("VmHWM:"))
        assert lines >= 300_000, lines
        assert peak < PEAK_KIB, peak
    finally:
        reader.kill()
        reader.communicate()
