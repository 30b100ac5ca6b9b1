"""`hermes state doctor`: every check of a store, as findings.

The backend checks what only it can (for SQLite: the library, the file, its
owners and file system, ``integrity_check``, the schema and its objects);
then, the same for every backend, the whole log is read once to verify the
hash chain and to fold it, and the fold must equal the stored projection.
Errors (corruption, a broken chain, projection not equal to the fold, a
schema mismatch) make the store unhealthy; warnings are reported and leave
it healthy.
"""

from __future__ import annotations

from typing import Callable

from .chain import GENESIS, verifies
from .checks import ERROR, OK, Report
from .errors import HermesError
from .events import Event
from .fold import ProfileState, apply
from .settings import Settings
from .store import backend_for, open_store
from .store.log import state_from_row
from .store.recorder import batches

Progress = Callable[[int], Callable[[int], None]]  # total -> advance(n)


def diagnose(settings: Settings, *, expected_owner: str | None = None, progress_factory: Progress | None = None) -> Report:
    """Run every check on the store ``settings`` name; never raises for a store problem."""
    report = Report(str(settings.db_path))
    if not backend_for(settings).diagnose(settings, report, expected_owner=expected_owner):
        return report
    try:
        with open_store(settings, readonly=True) as store, store.recorder.transaction(write=False) as tx:
            _check_chain_and_projection(report, tx, progress_factory)
    except HermesError as error:
        report.add("database", ERROR, str(error))
    return report


def _check_chain_and_projection(report: Report, tx, progress_factory: Progress | None) -> None:
    advance = progress_factory(tx.last_position()) if progress_factory else (lambda n: None)
    previous = GENESIS
    broken: int | None = None
    folded: dict[str, ProfileState] = {}
    refused: str | None = None
    count = 0
    for rows in batches(tx):
        for row in rows:
            if broken is None and not verifies(previous, row):
                broken = row["position"]
            previous = row["hash"]
            if refused is None:
                try:
                    event = Event.from_row(row)
                    folded[event.profile] = apply(folded.get(event.profile), event)
                except (HermesError, ValueError, TypeError) as error:
                    refused = f"position {row['position']}: {error}"
        count += len(rows)
        advance(len(rows))

    if broken is None:
        report.add("hash chain", OK, f"{count} events verified")
    else:
        report.add("hash chain", ERROR, f"broken at position {broken}: that row was changed, removed or inserted")
    if refused is not None:
        report.add("fold", ERROR, f"the log breaks the stream rules at {refused}")
        return
    stored = {row["profile"]: state_from_row(row) for row in tx.state_rows(include_deleted=True)}
    differing = sorted(name for name in set(stored) | set(folded) if stored.get(name) != folded.get(name))
    if differing:
        shown = ", ".join(differing[:10]) + (" ..." if len(differing) > 10 else "")
        report.add("projection", ERROR, f"projection differs from the fold of the log for: {shown}")
    else:
        report.add("projection", OK, f"{len(stored)} profiles equal the fold of the log")
