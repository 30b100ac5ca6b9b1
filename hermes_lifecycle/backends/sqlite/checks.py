"""Doctor's checks of a SQLite store file: the library, the file, its file system and owners,
``integrity_check``, the journal mode, the schema revision, the triggers and views.

The chain and the projection are checked above the seam (``hermes_lifecycle.doctor``),
the same way for every backend.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from ...checks import ERROR, OK, WARNING, Report
from ...errors import HermesError, SchemaMismatch, StoreUnavailable
from ...store.schema import TRIGGERS, VIEWS
from .connect import StatementBound, open_connection
from .driver import has_wal_reset_bug, library_name, sqlite_module
from .paths import StoreChain, check_store_path
from .recorder import QUICK_CHECK_SECONDS, STATEMENT_SECONDS
from .revision import HEAD, require_head
from .translate import translated

# File systems on which WAL's shared memory is not safe (docs/design.md section 6).
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "virtiofs", "davfs"}
)


def diagnose_file(path: Path, report: Report, *, expected_owner: str | None, busy_timeout_ms: int,
                  chain: StoreChain | None = None) -> bool:
    """Every check of the file at ``path``; True when the log can then be read (chain, fold).

    ``chain`` (root): the way to the file is checked first, as for every root reader, so a
    directory swapped for a link is refused before anything is reported of the file behind
    it or opened beside it (SQLite makes ``-wal``/``-shm`` where it opens).
    """
    _check_sqlite_library(report)
    try:
        if chain is not None:
            checked = chain.check()
            descriptors = set(os.listdir("/proc/self/fd"))
        else:
            check_store_path(path, must_exist=True)
    except StoreUnavailable as error:
        report.add("file", ERROR, str(error))
        return False
    report.add("file", OK, f"{path} ({os.lstat(path).st_size} bytes)")
    _check_filesystem(report, path)
    _check_ownership(report, path, expected_owner)
    bound = StatementBound()
    try:
        with translated(path):
            connection = open_connection(str(path), mode="ro", timeout_ms=busy_timeout_ms, bound=bound)
    except HermesError as error:
        report.add("open", ERROR, str(error))
        return False
    try:
        if chain is not None:
            chain.verify_opened(checked, descriptors)
        return _check_database(report, connection, path, bound)
    except StoreUnavailable as error:
        report.add("open", ERROR, str(error))
        return False
    finally:
        connection.close()


def _check_sqlite_library(report: Report) -> None:
    module = sqlite_module()
    detail = f"{library_name(module)}, SQLite {module.sqlite_version}"
    if has_wal_reset_bug(module.sqlite_version_info):
        report.add(
            "sqlite", WARNING,
            f"{detail}: affected by the WAL-reset corruption bug (fixed in 3.51.3); install pysqlite3",
        )
    else:
        report.add("sqlite", OK, detail)


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the file system holding ``path``, from /proc/self/mountinfo."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = fields[4].replace("\\040", " ")
        fs_type = line.split(" - ", 1)[1].split()[0]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fs_type
    return best_type


def _check_filesystem(report: Report, path: Path) -> None:
    fs_type = filesystem_type(path)
    if fs_type is None:
        report.add("filesystem", WARNING, "file system type unknown (no /proc/self/mountinfo)")
    elif fs_type in NETWORK_FILESYSTEMS or fs_type.startswith("fuse"):
        report.add(
            "filesystem", WARNING,
            f"{fs_type}: WAL needs shared memory on one host; a network or FUSE file system can corrupt it",
        )
    else:
        report.add("filesystem", OK, fs_type)


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _check_ownership(report: Report, path: Path, expected_owner: str | None) -> None:
    owners = set()
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            continue
        owner = _owner(info.st_uid)
        owners.add(owner)
        mode = stat.S_IMODE(info.st_mode)
        detail = f"{candidate.name}: owner {owner}, mode {mode:04o}"
        if mode & 0o002:
            report.add("ownership", WARNING, f"{detail}: writable by everyone")
        elif expected_owner is not None and owner != expected_owner:
            report.add("ownership", WARNING, f"{detail}: expected owner {expected_owner}")
        else:
            report.add("ownership", OK, detail)
    if len(owners) > 1:
        report.add("ownership", WARNING, f"the database and its -wal/-shm have different owners: {sorted(owners)}")


def _check_database(report: Report, connection, path: Path, bound: StatementBound) -> bool:
    bound.arm(QUICK_CHECK_SECONDS)  # every page: in proportion to the file
    try:
        with translated(path):
            rows = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    except HermesError as error:
        # SQLite refuses even to check a file this damaged: that is the finding.
        report.add("integrity", ERROR, str(error))
        return False
    if rows == ["ok"]:
        report.add("integrity", OK, "integrity_check: ok")
    else:
        report.add("integrity", ERROR, "integrity_check: " + "; ".join(str(r) for r in rows[:5]))
    bound.arm(STATEMENT_SECONDS)
    try:
        with translated(path):
            mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
            report.add("journal", OK if mode == "wal" else WARNING, f"journal_mode={mode}")
            try:
                require_head(connection, path)
            except SchemaMismatch as mismatch:
                report.add("schema", ERROR, str(mismatch))
                return False
            report.add("schema", OK, f"revision {HEAD}")
            _check_schema_objects(report, connection)
    except HermesError as error:
        report.add("database", ERROR, str(error))
        return False
    return True


def _check_schema_objects(report: Report, connection) -> None:
    present = set(connection.execute("SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')"))
    missing = [f"trigger {n}" for n in TRIGGERS if ("trigger", n) not in present]
    missing += [f"view {n}" for n in VIEWS if ("view", n) not in present]
    if missing:
        report.add("schema objects", ERROR, "missing: " + ", ".join(missing) + " (the log is no longer append-only)")
    else:
        report.add("schema objects", OK, "append-only triggers and views present")
