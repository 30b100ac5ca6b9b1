"""Boot's writing steps, run as the gateway user: root writes nothing to the volume.

docs/design.md section 3: the projector runs as root and treats the volume as the
hermes user's. What boot must write there (the migration, the legacy import,
``default``, the boot log) runs in a child process that has dropped to that
user, so the kernel applies that user's permissions: a symbolic link the
user planted can only lead where the user could write anyway.

The watch daemon has the spool replayed the same way (``replay``): the kept
starts and exits are the gateway user's files, and root reads none of them.

Run as ``python -m hermes_lifecycle.projector.dropped steps`` or ``... replay``
(each prints one JSON object) or ``... log PATH`` (appends stdin to PATH).
A child that fails prints one JSON object ``{"error": KIND, "message": LINE}``
instead, KIND a word of ``ERROR_KINDS``, and exits with that error's status:
root raises the same kind of error, so boot learns from the child itself
whether the database was unreachable. Not root: the same functions run in-process.
"""

from __future__ import annotations

import json
import os
import pwd
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import BadInput, Conflict, HermesError, NotFound, StoreUnavailable, StoreUnreachable
from ..settings import Settings

CHILD_TIMEOUT = 600.0  # on the wall clock: a migration of a large file; the busy timeout bounds lock waits
# A replay is a few appends (the spool holds at most 1,000 facts); the daemon waits no longer.
REPLAY_TIMEOUT = 30.0
STOPPED_GRACE = 1.0  # a child seen stopped this long (not a Ctrl-Z and fg of the whole job) is killed
WATCH_INTERVAL = 0.1  # how often root looks at the child while it waits
OUTPUT_LIMIT = 4 * 1024 * 1024  # what root reads of the child's stdout and stderr together
PIPE_CHUNK = 65536
# The kinds of error a child reports, most specific first (docs/projector.md, "Layers").
ERROR_KINDS: dict[str, type[HermesError]] = {
    "unreachable": StoreUnreachable, "unavailable": StoreUnavailable, "conflict": Conflict,
    "not-found": NotFound, "bad-input": BadInput, "error": HermesError,
}
_BY_STATUS = {2: BadInput, 3: NotFound, 4: Conflict, 5: StoreUnavailable}  # a child that died without its report


def error_kind(error: HermesError) -> str:
    """The word ``ERROR_KINDS`` has for ``error``'s class (the nearest listed ancestor)."""
    return next(kind for kind, cls in ERROR_KINDS.items() if isinstance(error, cls))


def writing_steps(settings: Settings) -> dict[str, Any]:
    """Migrate, import legacy ``gateway_state.json`` once, make sure ``default`` exists (in a fleet,
and that the ``state`` directory the snapshot lives in does)."""
    from ..fleet import open_writer
    from ..legacy import import_legacy
    from ..store import ensure_default_profile, migrate

    if settings.fleet:
        # Where root keeps the fleet snapshot (fleet/snapshot.py); on SQLite the store's migration makes it.
        try:
            os.makedirs(os.path.join(settings.home_dir, "state"), exist_ok=True)
        except OSError as error:
            raise StoreUnavailable(f"cannot make {settings.home_dir}/state: {error.strerror}") from None
    before, after = migrate(settings)
    spooled: list[str] = []  # a spool file the fleet writer's replay set aside: said in boot's log
    with open_writer(settings, say=spooled.append) as store:
        report = import_legacy(store, settings)
        created = ensure_default_profile(store)
    return {
        "schema": {"before": before, "after": after},
        "legacy": {
            "summary": report.summary(),
            "lines": [outcome.line() for outcome in report.outcomes if outcome not in report.already],
        },
        "default_created": created is not None,
        "spool": spooled,
    }


def replay_spool_here(settings: Settings) -> dict[str, Any]:
    """Append the facts this host's hooks kept in the spool, as this process's user (the gateway
    user's): how many were appended, and a line for each file set aside."""
    from ..fleet import spool
    from ..store import open_store

    with open_store(settings) as store:
        replayed = spool.replay(store, settings)
    return {"appended": replayed.appended, "lines": replayed.refused}


def append_lines(path: Path, text: str) -> None:
    """Append to the boot log as whoever runs this (the gateway user)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(text)
    except OSError as error:
        raise StoreUnavailable(f"cannot write boot log {path}: {error.strerror}") from None


# -- the parent side ------------------------------------------------------------
def classified_writing_steps(settings: Settings) -> dict[str, Any]:
    """``writing_steps``, a failure of a fleet's database said as StoreUnreachable when that is why
    (``fleet.offline_boot.unreachable``): boot then brings the slots up from the snapshot."""
    try:
        return writing_steps(settings)
    except StoreUnavailable as error:
        from ..fleet.offline_boot import unreachable

        raise unreachable(settings, error) from None


def run_writing_steps(settings: Settings) -> dict[str, Any]:
    if os.geteuid() != 0:
        return classified_writing_steps(settings)
    out = _run_dropped(settings, ["steps"])
    try:
        return json.loads(out)
    except ValueError:
        raise HermesError(f"boot's writing steps printed {out[:200]!r}, not JSON") from None


def replay_spool(settings: Settings) -> dict[str, Any]:
    """``replay_spool_here`` as the gateway user: root has a child dropped to that user replay."""
    if os.geteuid() != 0:
        return replay_spool_here(settings)
    out = _run_dropped(settings, ["replay"], timeout=REPLAY_TIMEOUT, what="the spool's replay")
    try:
        result = json.loads(out)
    except ValueError:
        result = None
    if not (isinstance(result, dict) and isinstance(result.get("appended"), int)
            and isinstance(result.get("lines"), list) and all(isinstance(line, str) for line in result["lines"])):
        raise HermesError(f"the spool's replay printed {out[:200]!r}, not its report")
    return result


def write_boot_log(settings: Settings, text: str) -> None:
    if os.geteuid() != 0:
        append_lines(settings.boot_log, text)
        return
    _run_dropped(settings, ["log", str(settings.boot_log)], stdin=text)


def _run_dropped(settings: Settings, args: list[str], stdin: str | None = None, *,
                 timeout: float = CHILD_TIMEOUT, what: str = "boot's writing steps") -> str:
    try:
        account = pwd.getpwnam(settings.gateway_user)
    except KeyError:
        raise BadInput(f"gateway user {settings.gateway_user!r} does not exist (HERMES_USER)") from None
    if account.pw_uid == 0:
        raise BadInput("HERMES_USER must not be root: the gateway user is the unprivileged owner of the volume")
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "hermes_lifecycle.projector.dropped", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=settings.environment_for(account.pw_name, account.pw_dir), cwd="/",
            user=account.pw_uid, group=account.pw_gid,
            extra_groups=os.getgrouplist(account.pw_name, account.pw_gid),
        )
    except OSError as error:
        raise StoreUnavailable(f"cannot start {what} as {account.pw_name}: {error.strerror}") from None
    try:
        out, err = _watched(child, (stdin or "").encode("utf-8"), f"{what} as {account.pw_name}", timeout)
    finally:
        if child.poll() is None:
            child.kill()  # SIGKILL ends a stopped process too
        child.wait()
    if child.returncode != 0:
        reported = _reported_error(out)
        if reported is not None:
            raise reported
        message = " ".join(err.decode("utf-8", "replace").split()) or f"exited {child.returncode}"
        raise _BY_STATUS.get(child.returncode, HermesError)(message[:OUTPUT_LIMIT])
    return out.decode("utf-8", "replace")


def _reported_error(out: bytes) -> HermesError | None:
    """The error a failed child reported (``{"error": KIND, "message": LINE}``), or None when its
    output is not such a report (it died some other way). The kind only picks one of
    ``ERROR_KINDS``: the gateway user's process can make boot no surer of anything than that."""
    try:
        report = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not (isinstance(report, dict) and set(report) == {"error", "message"}
            and report["error"] in ERROR_KINDS and isinstance(report["message"], str)):
        return None
    return ERROR_KINDS[report["error"]](" ".join(report["message"].split()))


def _watched(child: subprocess.Popen, stdin: bytes, who: str, timeout: float) -> tuple[bytes, bytes]:
    """Feed the child its input and collect what it writes, until it exits; StoreUnavailable (the
    caller kills it) past ``timeout`` on the wall clock, past OUTPUT_LIMIT bytes, or once it has
    stayed stopped (SIGSTOP, a tracer) for STOPPED_GRACE: the child is the gateway user's process,
    and nothing it does may keep root waiting longer, nor grow root's memory."""
    assert child.stdout is not None and child.stderr is not None and child.stdin is not None  # three pipes
    deadline = time.monotonic() + timeout
    stopped_since: float | None = None
    chunks: dict[int, list[bytes]] = {child.stdout.fileno(): [], child.stderr.fileno(): []}
    size = 0
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        selector.register(child.stderr, selectors.EVENT_READ)
        if stdin:
            os.set_blocking(child.stdin.fileno(), False)
            selector.register(child.stdin, selectors.EVENT_WRITE)
        else:
            child.stdin.close()
        pending = memoryview(stdin)
        while selector.get_map():
            now = time.monotonic()
            if now > deadline:
                raise StoreUnavailable(f"{who} did not finish in {timeout:g} s: killed")
            if _stopped(child.pid):
                stopped_since = stopped_since if stopped_since is not None else now
                if now - stopped_since > STOPPED_GRACE:
                    raise StoreUnavailable(f"{who}: stopped (SIGSTOP or a tracer), killed")
            else:
                stopped_since = None
            for key, _ in selector.select(timeout=WATCH_INTERVAL):
                if key.fileobj is child.stdin:
                    try:
                        pending = pending[os.write(key.fd, pending[:PIPE_CHUNK]):]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(child.stdin)
                        child.stdin.close()
                    continue
                data = os.read(key.fd, PIPE_CHUNK)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                size += len(data)
                if size > OUTPUT_LIMIT:
                    raise StoreUnavailable(f"{who} wrote more than {OUTPUT_LIMIT} bytes: killed")
                chunks[key.fd].append(data)
    child.wait(timeout=max(0.0, deadline - time.monotonic()))
    return b"".join(chunks[child.stdout.fileno()]), b"".join(chunks[child.stderr.fileno()])


def _stopped(pid: int) -> bool:
    """Whether the process is stopped now (``T``) or stopped by a tracer (``t``), from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            return stat_file.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t")
    except (OSError, IndexError):
        return False


def main(argv: list[str]) -> int:
    try:
        settings = Settings.from_env()
        if argv[:1] == ["steps"] and len(argv) == 1:
            print(json.dumps(classified_writing_steps(settings)))
            return 0
        if argv[:1] == ["replay"] and len(argv) == 1:
            print(json.dumps(replay_spool_here(settings)))
            return 0
        if argv[:1] == ["log"] and len(argv) == 2:
            append_lines(Path(argv[1]), sys.stdin.read())
            return 0
        raise BadInput("usage: python -m hermes_lifecycle.projector.dropped steps | replay | log PATH")
    except HermesError as error:
        print(json.dumps({"error": error_kind(error), "message": str(error)}))
        return error.exit_status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
