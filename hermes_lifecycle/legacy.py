"""Legacy import: each profile's ``gateway_state.json`` becomes the start of its stream, once.

docs/design.md section 5. For every profile directory (``profiles/<name>/`` holding
``SOUL.md``, and the home itself for ``default``) whose stream does not
exist yet, the file is read once and ``created`` (and ``started`` when the
gateway should run) are appended with actor ``import``, in one transaction
per profile. Once a stream exists its file is never read again, so importing
twice changes nothing. The files are never written.

The decisions (``plan_import``, ``should_run``) are pure; ``import_legacy``
is the shell around them. docs/legacy-import.md explains the choices.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from .records import Record
from .errors import HermesError
from .events import MAX_DATA_BYTES, NewEvent, encode_data, format_time
from .vocabulary import Actor, Desired, EventType
from .names import DEFAULT_PROFILE, NAME_PATTERN, RESERVED_NAMES
from .profiles import is_own_entry
from .settings import SOUL_FILE, Settings
from .store import EventStore
from .volume import VolumeRefused, open_directory, owners_for, read_file

LEGACY_FILE = "gateway_state.json"
# Real files hold a few hundred bytes; anything this large is not one.
MAX_LEGACY_BYTES = 1 << 20
# Real files are an object of scalars; deeper nesting is refused before the parser recurses into it.
MAX_NESTING = 32
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings (skipped whole) and brackets
RUNNING_STATES = frozenset({"running", "draining", "degraded"})
REASON = "legacy-import"

UP, DOWN, SKIPPED, FAILED = "up", "down", "skipped", "failed"
ALREADY = "already in the event store"


# -- the pure part ------------------------------------------------------------


def should_run(document: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether a legacy state means "run the gateway", and why.

    ``desired_state`` (what someone asked for) wins; without it (or when it is
    null), ``gateway_state`` running, draining or degraded means it was
    meant to run. Everything else, unknown values included, is down.
    """
    desired = document.get("desired_state")
    if desired is not None:
        return desired == "running", f"desired_state {_show(desired)}"
    gateway = document.get("gateway_state")
    if gateway is None:
        return False, "neither desired_state nor gateway_state"
    return gateway in RUNNING_STATES, f"gateway_state {_show(gateway)}"


def _show(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def normalized_time(value: object) -> str | None:
    """``updated_at`` as stored in the wild (ISO text, or an epoch number) in the log's format."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            if not 0 < value < 10**11:
                return None
            moment = datetime.fromtimestamp(value, tz=timezone.utc)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.strip())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return format_time(moment)


class ImportPlan(Record):
    """What one profile's legacy file imports as."""

    up: bool
    why: str
    problem: str | None
    created_data: Mapping[str, Any]
    started_data: Mapping[str, Any]


def plan_import(source: str, raw: bytes | None, unread_because: str | None = None) -> ImportPlan:
    """Decide from the file's bytes (``None``: not there, or ``unread_because`` says why not read).

    ``data`` keeps the original exactly: its sha256, and its text as
    ``content`` when it is UTF-8, else its bytes as ``content_base64``
    (event data is a JSON object of text, and an undecodable byte has no text).
    """
    base: dict[str, Any] = {"source": source}
    if raw is None:
        problem = unread_because or f"no {LEGACY_FILE}"
        return _down(base, problem, problem)
    base["sha256"] = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        base["content_base64"] = base64.b64encode(raw).decode("ascii")
        return _down(base, f"not UTF-8 (byte {error.start} is {raw[error.start]:#04x})")
    base["content"] = text
    if not text.strip():
        return _down(base, "empty file")
    if nesting(text) > MAX_NESTING:
        return _down(base, f"not valid JSON (nested deeper than {MAX_NESTING} levels)")
    try:
        document = json.loads(text)
    except ValueError as error:
        return _down(base, f"not valid JSON ({error})")
    if not isinstance(document, dict):
        return _down(base, f"not a JSON object (a {type(document).__name__})")
    up, why = should_run(document)
    created = dict(base, imported_as=UP if up else DOWN, why=why)
    updated_at = normalized_time(document.get("updated_at", document.get("timestamp")))
    if updated_at is not None:
        created["updated_at"] = updated_at
    started = {"source": source, "sha256": base["sha256"], "why": why}
    return ImportPlan(up, why, None, fitted(created), started)


def _down(base: dict[str, Any], problem: str, why: str | None = None) -> ImportPlan:
    why = why or f"{LEGACY_FILE} unusable: {problem}"
    return ImportPlan(False, why, problem, fitted(dict(base, imported_as=DOWN, why=why, problem=problem)), {})


def nesting(text: str) -> int:
    """How deep brackets nest in ``text`` outside JSON strings (the parser's recursion, measured first)."""
    depth = deepest = 0
    for token in _JSON_TOKENS.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif bracket in ("]", "}"):
            depth -= 1
    return deepest


def fitted(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as an event can hold it (MAX_DATA_BYTES as JSON): the file's content is cut to fit,
    with ``content_truncated`` and the file's ``size``; its ``sha256`` still covers every byte."""
    size = _encoded_size(data)
    key = "content" if "content" in data else "content_base64"
    if size <= MAX_DATA_BYTES or key not in data:
        return data
    whole = data[key]
    raw_size = len(whole.encode("utf-8")) if key == "content" else len(whole) // 4 * 3 - whole[-2:].count("=")
    data = dict(data, content_truncated=True, size=raw_size)
    keep = len(whole)
    while (size := _encoded_size(dict(data, **{key: whole[:keep]}))) > MAX_DATA_BYTES:
        keep = max(0, min(keep - 1, keep * MAX_DATA_BYTES // size))  # in proportion: a few rounds
        if key == "content_base64":
            keep -= keep % 4  # whole base64 quanta: the kept part still decodes
    return dict(data, **{key: whole[:keep]})


def _encoded_size(data: dict[str, Any]) -> int:
    return len(encode_data(data).encode("utf-8"))


def events_for(profile: str, plan: ImportPlan) -> list[NewEvent]:
    """``created`` and, when the gateway should run, ``started``: appended together or not at all."""
    batch = [NewEvent(profile, EventType.CREATED, Actor.IMPORT, Desired.DOWN, reason=REASON, data=plan.created_data)]
    if plan.up:
        batch.append(NewEvent(profile, EventType.STARTED, Actor.IMPORT, Desired.UP, reason=REASON, data=plan.started_data))
    return batch


# -- the report ------------------------------------------------------------


class ProfileOutcome(Record):
    """One entry of the import: a profile imported up or down, skipped, or failed (to be retried)."""

    profile: str  # the directory name as found (shown quoted when it is not a valid name)
    outcome: str  # up, down, skipped, failed
    reason: str
    problem: str | None = None
    source: str | None = None

    @property
    def imported(self) -> bool:
        return self.outcome in (UP, DOWN)

    def head(self, dry_run: bool = False) -> str:
        """``imported up``, ``would import down``, ``skipped``, ``failed``."""
        if not self.imported:
            return self.outcome
        return f"{'would import' if dry_run else 'imported'} {self.outcome}"

    @property
    def why(self) -> str:
        """The reason, and the problem when the reason does not say it already."""
        return self.reason + self._problem_suffix

    @property
    def _problem_suffix(self) -> str:
        return f"; problem: {self.problem}" if self.problem and self.problem not in self.reason else ""

    def line(self, dry_run: bool = False) -> str:
        return f"{self.profile}: {self.head(dry_run)} ({self.reason}){self._problem_suffix}"


@dataclass
class LegacyReport:
    dry_run: bool
    outcomes: list[ProfileOutcome] = field(default_factory=list)

    def of(self, *kinds: str) -> list[ProfileOutcome]:
        return [o for o in self.outcomes if o.outcome in kinds]

    @property
    def imported(self) -> list[ProfileOutcome]:
        return self.of(UP, DOWN)

    @property
    def skipped(self) -> list[ProfileOutcome]:
        return self.of(SKIPPED)

    @property
    def failed(self) -> list[ProfileOutcome]:
        return self.of(FAILED)

    @property
    def already(self) -> list[ProfileOutcome]:
        return [o for o in self.skipped if o.reason == ALREADY]

    def summary(self) -> str:
        up, down = len(self.of(UP)), len(self.of(DOWN))
        verb = "would import" if self.dry_run else "imported"
        text = f"{verb} {up + down} ({up} up, {down} down), skipped {len(self.skipped) - len(self.already)}"
        text += f", already imported {len(self.already)}"
        if self.failed:
            text += f", failed {len(self.failed)} (not imported; retried next time)"
        return text


# -- the shell ---------------------------------------------------------------


class _Candidate(Record):
    profile: str
    path: Path
    source: str


def import_legacy(
    store: EventStore,
    settings: Settings,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> LegacyReport:
    """Import every legacy profile whose stream does not exist yet; report each one.

    ``progress(done, total)`` is called after each entry. A directory that is
    not a profile is skipped with its reason and never stops the import; a
    file that cannot be read (permissions, I/O) is reported as failed and left
    for the next run. A store failure stops the import: each profile is
    imported atomically, so what was imported stays and a rerun continues.
    """
    report = LegacyReport(dry_run=dry_run)
    entries = _survey(settings)
    existing = {state.profile for state in store.states(include_deleted=True)}
    total = len(entries)
    for done, entry in enumerate(entries, start=1):
        if isinstance(entry, ProfileOutcome):
            report.outcomes.append(entry)
        elif entry.profile in existing:
            report.outcomes.append(ProfileOutcome(entry.profile, SKIPPED, ALREADY, source=entry.source))
        else:
            report.outcomes.append(_import_one(store, entry, dry_run, settings))
        if progress is not None:
            progress(done, total)
    return report


def _import_one(store: EventStore, candidate: _Candidate, dry_run: bool, settings: Settings) -> ProfileOutcome:
    try:
        raw, unread_because = read_legacy_file(candidate.path, volume_root=settings.home_dir,
                                               owners=owners_for(settings.gateway_user))
    except OSError as error:
        reason = f"cannot read {candidate.source}: {error.strerror or error}"
        return ProfileOutcome(candidate.profile, FAILED, reason, source=candidate.source)
    plan = plan_import(candidate.source, raw, unread_because)
    outcome = ProfileOutcome(candidate.profile, UP if plan.up else DOWN, plan.why, plan.problem, candidate.source)
    if dry_run:
        return outcome
    with store.writing() as tx:
        # Checked again inside the transaction: another importer may have won.
        if tx.state(candidate.profile) is not None:
            return ProfileOutcome(candidate.profile, SKIPPED, ALREADY, source=candidate.source)
        for event in events_for(candidate.profile, plan):
            tx.append(event)
    return outcome


def read_legacy_file(path: Path, *, volume_root: str | None = None,
                     owners: frozenset[int] | None = None) -> tuple[bytes | None, str | None]:
    """The file's bytes, or (None, why it was not read) for a file that cannot be a legacy state.

    Read as every file on the volume is (``volume.read_file``): never through a symbolic link,
    never blocking on a FIFO, at most MAX_LEGACY_BYTES; as root (``owners``), every directory
    below ``volume_root`` on the way too. Missing: (None, None). Raises OSError for a file that
    exists but cannot be read now (permissions, I/O): the caller leaves it for the next run
    rather than import it as down.
    """
    try:
        return read_file(str(path), limit=MAX_LEGACY_BYTES, volume_root=volume_root, owners=owners,
                         what=LEGACY_FILE), None
    except FileNotFoundError:
        return None, None
    except VolumeRefused as refused:
        return None, str(refused)


def _survey(settings: Settings) -> list[_Candidate | ProfileOutcome]:
    """Every entry the import considers, in a stable order: ``default`` first, then by name."""
    entries: list[_Candidate | ProfileOutcome] = []
    root_file = settings.home / LEGACY_FILE
    if os.path.lexists(root_file):
        entries.append(_Candidate(DEFAULT_PROFILE, root_file, LEGACY_FILE))
    owners = owners_for(settings.gateway_user)
    try:
        if owners is None:
            names = sorted(os.listdir(settings.profiles_dir))
        else:  # root: profiles/ reached as every directory on the volume is (never through a link)
            directory = open_directory(settings.home_dir, "profiles", owners)
            try:
                names = sorted(os.listdir(directory))
            finally:
                os.close(directory)
    except FileNotFoundError:
        names = []
    except OSError as error:
        raise HermesError(f"cannot list {settings.profiles_dir}: {error.strerror}") from None
    for name in names:
        if is_own_entry(name):
            continue  # this store's own (deleted profiles, a create in progress): not legacy state
        entries.append(_profile_entry(settings.profiles_dir, name))
    return entries


def _profile_entry(profiles_dir: Path, name: str) -> _Candidate | ProfileOutcome:
    shown = name if name.isprintable() and len(name) <= 80 else repr(name)[:80]
    if name == DEFAULT_PROFILE:
        return ProfileOutcome(shown, SKIPPED, f"the root profile's legacy state is $HERMES_HOME/{LEGACY_FILE}")
    if not NAME_PATTERN.fullmatch(name):
        return ProfileOutcome(shown, SKIPPED, "not a valid profile name")
    if name in RESERVED_NAMES:
        return ProfileOutcome(shown, SKIPPED, "a reserved name, not a profile")
    directory = profiles_dir / name
    try:
        info = os.lstat(directory)
    except OSError as error:
        return ProfileOutcome(shown, FAILED, f"cannot inspect: {error.strerror}")
    if stat.S_ISLNK(info.st_mode):
        return ProfileOutcome(shown, SKIPPED, "a symbolic link, not a profile directory")
    if not stat.S_ISDIR(info.st_mode):
        return ProfileOutcome(shown, SKIPPED, "not a directory")
    try:
        os.lstat(directory / SOUL_FILE)
    except FileNotFoundError:
        return ProfileOutcome(shown, SKIPPED, f"no {SOUL_FILE}: not a profile")
    except OSError as error:
        return ProfileOutcome(shown, FAILED, f"cannot inspect: {error.strerror}")
    return _Candidate(name, directory / LEGACY_FILE, f"profiles/{name}/{LEGACY_FILE}")
