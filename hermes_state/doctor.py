"""`hermes state doctor`: every check of a store file, as a list of findings.

Errors (corruption, a broken chain, projection not equal to the fold, a
schema mismatch) make the store unhealthy; warnings (an affected SQLite, a
network file system, unexpected ownership) are reported and leave it healthy.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import select

from .chain import GENESIS, chain_hash
from .db.driver import has_wal_reset_bug, library_name, sqlite_module
from .db.engine import make_engine, read_transaction
from .db.paths import check_store_path
from .db.revision import HEAD, current_revision, describe_mismatch
from .db.schema import TRIGGERS, VIEWS
from .db.schema import events as events_table
from .errors import HermesError, StoreUnavailable
from .events import Event
from .fold import ProfileState, apply
from .store import _state_from_row

OK, WARNING, ERROR = "ok", "warning", "error"

# File systems on which WAL's shared memory is not safe (docs/design.md section 6).
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "virtiofs", "davfs"}
)


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    detail: str


@dataclass
class Report:
    path: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, status: str, detail: str) -> None:
        self.findings.append(Finding(check, status, detail))

    @property
    def healthy(self) -> bool:
        return all(f.status != ERROR for f in self.findings)

    def as_json(self) -> dict:
        return {"path": self.path, "healthy": self.healthy, "checks": [asdict(f) for f in self.findings]}


def diagnose(path: Path, *, expected_owner: str | None = None, progress_factory=None) -> Report:
    """Run every check on the store at ``path``; never raises for a store problem."""
    report = Report(str(path))
    _check_sqlite_library(report)
    try:
        check_store_path(path, must_exist=True)
    except StoreUnavailable as error:
        report.add("file", ERROR, str(error))
        return report
    report.add("file", OK, f"{path} ({os.path.getsize(path)} bytes)")
    _check_filesystem(report, path)
    _check_ownership(report, path, expected_owner)
    try:
        engine = make_engine(path, readonly=True)
    except HermesError as error:
        report.add("open", ERROR, str(error))
        return report
    try:
        _check_database(report, engine, path, progress_factory)
    finally:
        engine.dispose()
    return report


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


def _check_database(report: Report, engine, path: Path, progress_factory) -> None:
    try:
        with read_transaction(engine) as conn:
            rows = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
            if rows == ["ok"]:
                report.add("integrity", OK, "integrity_check: ok")
            else:
                report.add("integrity", ERROR, "integrity_check: " + "; ".join(str(r) for r in rows[:5]))
    except HermesError as error:
        # SQLite refuses even to check a file this damaged: that is the finding.
        report.add("integrity", ERROR, str(error))
        return
    try:
        with read_transaction(engine) as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            report.add("journal", OK if mode == "wal" else WARNING, f"journal_mode={mode}")
            revision = current_revision(conn)
            problem = describe_mismatch(revision, path)
            if problem:
                report.add("schema", ERROR, problem)
                return
            report.add("schema", OK, f"revision {HEAD}")
            _check_schema_objects(report, conn)
            total = conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
            _check_chain_and_projection(report, conn, total, progress_factory)
    except HermesError as error:
        report.add("database", ERROR, str(error))


def _check_schema_objects(report: Report, conn) -> None:
    present = {
        (kind, name)
        for kind, name in conn.exec_driver_sql("SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')")
    }
    missing = [f"trigger {n}" for n in TRIGGERS if ("trigger", n) not in present]
    missing += [f"view {n}" for n in VIEWS if ("view", n) not in present]
    if missing:
        report.add("schema objects", ERROR, "missing: " + ", ".join(missing) + " (the log is no longer append-only)")
    else:
        report.add("schema objects", OK, "append-only triggers and views present")


def _check_chain_and_projection(report: Report, conn, total: int, progress_factory) -> None:
    advance = progress_factory(total) if progress_factory else (lambda n: None)
    previous = GENESIS
    broken: int | None = None
    folded: dict[str, ProfileState] = {}
    refused: str | None = None
    result = conn.execution_options(stream_results=True, yield_per=5000).execute(
        select(events_table).order_by(events_table.c.position)
    )
    count = 0
    for row in result.mappings():
        count += 1
        if broken is None and chain_hash(previous, row) != row["hash"]:
            broken = row["position"]
        previous = row["hash"]
        if refused is None:
            try:
                event = Event.from_row(row)
                folded[event.profile] = apply(folded.get(event.profile), event)
            except (HermesError, ValueError, TypeError) as error:
                refused = f"position {row['position']}: {error}"
        if count % 5000 == 0:
            advance(5000)
    advance(count % 5000)

    if broken is None:
        report.add("hash chain", OK, f"{count} events verified")
    else:
        report.add("hash chain", ERROR, f"broken at position {broken}: that row was changed, removed or inserted")
    if refused is not None:
        report.add("fold", ERROR, f"the log breaks the stream rules at {refused}")
        return
    stored = {
        row["profile"]: _state_from_row(row)
        for row in conn.exec_driver_sql("SELECT * FROM profile_projection").mappings()
    }
    differing = sorted(name for name in set(stored) | set(folded) if stored.get(name) != folded.get(name))
    if differing:
        shown = ", ".join(differing[:10]) + (" ..." if len(differing) > 10 else "")
        report.add("projection", ERROR, f"projection differs from the fold of the log for: {shown}")
    else:
        report.add("projection", OK, f"{len(stored)} profiles equal the fold of the log")
