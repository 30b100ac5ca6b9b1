"""The event store above the seam: the append rules and the reads, the same for every backend.

A ``Recorder`` (one backend's connection) runs fixed statements and returns
stored values; here they become ``Event`` and ``ProfileState`` objects (in one
place each), and every append goes through the same steps: validate, the
idempotency key, the profile's row and the chain's head, the expected
version, the fold, the hash, the row and the projection row, all inside one
write transaction. ``EventStore.writing()`` hands that transaction to callers
whose decision depends on what they read (the ``finish`` hook's breaker).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..errors import BadInput, Conflict, NotFound, VersionConflict
from ..events import TIME_FORMAT, Event, MalformedRow, NewEvent, decode_json, utc_now

from ..profile_state import STATE_FIELDS, ProfileState, checked_state, state_from_row
from ..vocabulary import TYPES, Actor, Desired, EventType, is_int
from ..names import DEFAULT_PROFILE, validate_name
from ..records import Record
from .recorder import ChangeFeed, Recorder, RecorderTransaction, StreamWindow


MAX_BAD_ROWS = 100  # malformed rows kept for a caller to report; more are only counted


class ProfileOverview(Record):
    """A profile's state and its crashes since a given time (``profile list``, ``gateway status``)."""

    state: ProfileState
    crashes_since: int


class CrashRecord(Record):
    total: int
    last: Event | None


def _typed(window: StreamWindow) -> StreamWindow:
    """``window`` with its types checked, and no types meaning every type the vocabulary knows: a
    row whose type is none of them (written behind the store's back) belongs to no stream."""
    unknown = [kind for kind in window.types if kind not in TYPES]
    if unknown:
        raise BadInput(f"unknown event type {unknown[0]!r}")
    return window if window.types else window._replace(types=TYPES)


class StoreTransaction:
    """Reads and appends inside one open transaction (see ``EventStore.writing``)."""

    __slots__ = ("_tx", "_store", "last_read")

    def __init__(self, tx: RecorderTransaction, store: "EventStore") -> None:
        self._tx = tx
        self._store = store
        self.last_read = 0

    # -- reads (every read model is built here, from the seam's rows, the same on every backend) --
    def _state_row(self, profile: str) -> Mapping[str, Any] | None:
        rows = self._tx.projection(validate_name(profile))
        return rows[0] if rows else None

    def state(self, profile: str) -> ProfileState | None:
        row = self._state_row(profile)
        return state_from_row(row) if row else None

    def require_state(self, profile: str) -> ProfileState:
        """The profile's state, checked (``checked_state``): for a reader that shows or decides on it."""
        row = self._state_row(profile)
        if row is None:
            raise NotFound(f"no profile named {profile!r}")
        return checked_state(row)

    def states(self, include_deleted: bool = False) -> list[ProfileState]:
        return [state_from_row(row) for row in self._tx.projection(include_deleted=include_deleted)]

    def overview(self, crashes_since: str, include_deleted: bool = False) -> list[ProfileOverview]:
        """Checked states (a malformed row is skipped and reported) with their recent crashes."""
        counts = {row["profile"]: row["crashes_since"] for row in self._tx.crash_counts(crashes_since)}
        found = []
        for row in self._tx.projection(include_deleted=include_deleted):
            try:
                state = checked_state(row)
            except MalformedRow as error:
                self._store.skip(error)
                continue
            found.append(ProfileOverview(state, int(counts.get(state.profile, 0))))
        return found

    def crash_counts(self, since: str) -> dict[str, int]:
        """Each live profile's crashes at or after ``since``, by name (served by the partial index)."""
        return {row["profile"]: int(row["crashes_since"]) for row in self._tx.crash_counts(since)
                if row["deleted"] == 0}  # as stored: SQLite's 0, PostgreSQL's false

    def stream(self, profile: str, window: StreamWindow | None = None, **filters: Any) -> list[Event]:
        """A profile's events in version order (newest first when the window says so), filtered;
        ``filters`` are ``StreamWindow``'s fields, for a caller without a window at hand."""
        rows = self._tx.stream(validate_name(profile), _typed(window or StreamWindow(**filters)))
        return self._store.decode(rows)

    def stream_page(self, profile: str, window: StreamWindow, skip: int = 0) -> tuple[list[Event], int, Any]:
        """As ``stream``, leaving out the first ``skip`` rows; with how many rows were read (malformed
        ones are skipped) and the last one's stored version: where the next page of a stream starts."""
        rows = self._tx.stream(validate_name(profile), _typed(window))
        return self._store.decode(rows[skip:]), len(rows), rows[-1]["version"] if rows else None

    def log_after(self, position: int, limit: int | None = None) -> list[Event]:
        """The whole log after ``position``, in position order (the watch daemon's read at every wake-up).

        Read bounded (no value over its bound is loaded) and checked: a malformed or oversized
        row is skipped and reported, so fewer than ``limit`` events can come back while more
        rows follow; ``last_read`` is the position read up to.
        """
        rows = self._tx.events_after(position, limit)
        self.last_read = rows[-1]["position"] if rows else position
        return self._store.decode(rows)

    def rows_after(self, position: int, limit: int | None = None) -> list[Mapping[str, Any]]:
        """The same, as stored values (``data`` as its text): what the hash chain covers. Read
        bounded too: a row with a value over its bound has it NULL and named in ``oversized``."""
        return self._tx.events_after(position, limit)

    def last_position(self) -> int:
        return self._tx.last_position()

    def crash_times(self, profile: str, *, after_position: int, since: str) -> list[str]:
        """Times of ``profile``'s crashes after ``after_position`` and at or after ``since``: the
        cost is the number of crashes in the window, not the length of the log."""
        return self._tx.crash_times(profile, since, after_position)

    def has_key(self, key: str) -> bool:
        """An event with this idempotency key is stored (a replayed fact was appended already)."""
        return self._tx.event_by_key(key) is not None

    def crashes(self, profile: str) -> CrashRecord:
        """Every crash of ``profile``: how many (its projection row keeps the count), and the newest
        by position (a clock set back must not make an older crash "the last"): one row and one
        event by key, however many crashes the profile has had."""
        row = self._state_row(profile)
        if row is None:
            return CrashRecord(0, None)  # no such profile: nothing crashed
        count = row["crashes"]
        if "crashes" in (row["oversized"] or "").split() or not (is_int(count) and count >= 0):
            raise MalformedRow("profile_projection", profile, "crashes is not a count")
        newest = row["last_crash_position"]
        if not (is_int(newest) and newest >= 1):
            return CrashRecord(count, None)
        rows = self._tx.events_after(newest - 1, 1)
        decoded = self._store.decode(rows) if rows and rows[0]["position"] == newest else []
        return CrashRecord(count, decoded[0] if decoded else None)

    # -- the append --------------------------------------------------------
    def append(self, new: NewEvent, expected_version: int | None = None, *,
               observed: tuple[str, str | None] | None = None) -> Event:
        """Validate ``new`` against the stream, insert it and its projection row; return it stored.

        ``observed``: (occurred_at, boot_id) of a fact seen earlier and recorded late (an exit
        the hooks kept in the host's spool while the store was unavailable); None: now, this boot.
        """
        data_text = new.validated()
        event_type, actor, desired = new.words()
        if observed is not None and not (isinstance(observed[0], str) and TIME_FORMAT.fullmatch(observed[0])):
            raise BadInput(f"invalid observed time {observed[0]!r}")
        tx = self._tx
        if new.idempotency_key is not None:
            existing = tx.event_by_key(new.idempotency_key)
            if existing is not None:
                stored = Event.from_row(existing)
                if (stored.profile, stored.type, stored.actor) != (new.profile, new.type, new.actor):  # a member equals its text
                    raise Conflict(f"idempotency key {new.idempotency_key!r} was used for another event")
                return stored

        # Here, not at the top: readers never hash nor fold, and do not pay for importing either.
        from .. import fold as folding
        from ..chain import CHAIN_VERSION, GENESIS, chain_hash

        context = tx.append_context(new.profile)
        prior = state_from_row(context) if context["profile"] is not None else None
        current_version = prior.version if prior else 0
        if expected_version is not None and expected_version != current_version:
            raise VersionConflict(
                f"profile {new.profile!r} is at version {current_version}, not {expected_version} as expected"
            )
        if context["chain_position"] is None:
            position, previous_hash = 1, GENESIS
        else:
            position, previous_hash = context["chain_position"] + 1, context["chain_hash"]
        store = self._store
        row = {
            "position": position,
            "profile": new.profile,
            "version": current_version + 1,
            "type": event_type.value,
            "actor": actor.value,
            "desired": None if desired is None else desired.value,
            "occurred_at": store.clock() if observed is None else observed[0],
            "host": store.host,
            "boot_id": store.boot_id if observed is None else observed[1],
            "pid": new.pid,
            "exit_code": new.exit_code,
            "signal": new.signal,
            "reason": new.reason,
            "data": data_text,
            "idempotency_key": new.idempotency_key,
            "chain_version": CHAIN_VERSION,
        }
        row["hash"] = chain_hash(previous_hash, row)
        event = Event(**{**row, "type": event_type, "actor": actor, "desired": desired, "data": decode_json(data_text)})
        state = folding.apply(prior, event)  # raises when the stream rules refuse it
        tx.append(row, {name: getattr(state, name) for name in STATE_FIELDS}, new_profile=prior is None)
        return event


class EventStore:
    """The store on one backend's recorder. Open it with ``hermes_lifecycle.store.open_store``."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        host: str | None,
        boot_id: str | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.recorder = recorder
        self.location = recorder.location
        self.readonly = recorder.readonly
        self.host = host
        self.boot_id = boot_id
        self.clock = clock
        # A malformed row met by a list read: handed to ``on_bad_row`` when a caller set one
        # (the daemon logs each; ``collect_bad_rows`` keeps them for a command to report),
        # else raised: a reader that does not report skipped rows fails closed, exit 5.
        self.on_bad_row: Callable[[MalformedRow], None] | None = None
        self.bad_rows: list[MalformedRow] = []
        self.bad_row_count = 0

    def collect_bad_rows(self) -> None:
        """Skip malformed rows, keeping them (at most MAX_BAD_ROWS, all counted) in ``bad_rows``."""

        def keep(error: MalformedRow) -> None:
            if len(self.bad_rows) < MAX_BAD_ROWS:
                self.bad_rows.append(error)

        self.on_bad_row = keep

    def skip(self, error: MalformedRow) -> None:
        """A list read met a malformed row: report it and go on, or raise it when nobody reports."""
        if self.on_bad_row is None:
            raise error
        self.bad_row_count += 1
        self.on_bad_row(error)

    def decode(self, rows: Sequence[Mapping[str, Any]]) -> list[Event]:
        """Stored rows as events; a malformed row is skipped and reported (``skip``)."""
        events = []
        for row in rows:
            try:
                events.append(Event.from_row(row))
            except MalformedRow as error:
                self.skip(error)
        return events

    def close(self) -> None:
        self.recorder.close()

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def change_feed(self, *, use_notifications: bool = True, poll_interval: float) -> ChangeFeed:
        """Wakes when the log may have grown (the watch daemon, ``history --follow``)."""
        return self.recorder.change_feed(use_notifications=use_notifications, poll_interval=poll_interval)

    # -- transactions ------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator[StoreTransaction]:
        """A write transaction: everything in it commits together or not at all."""
        if self.readonly or self.host is None:
            raise BadInput(f"event store {self.location} was opened read-only")
        with self.recorder.transaction(write=True) as tx:
            yield StoreTransaction(tx, self)

    @contextlib.contextmanager
    def reading(self) -> Iterator[StoreTransaction]:
        """One consistent snapshot for several reads."""
        with self.recorder.transaction(write=False) as tx:
            yield StoreTransaction(tx, self)

    # -- one-transaction conveniences ------------------------------------------
    def append(self, new: NewEvent, expected_version: int | None = None) -> Event:
        with self.writing() as tx:
            return tx.append(new, expected_version)

    def state(self, profile: str) -> ProfileState | None:
        with self.reading() as tx:
            return tx.state(profile)

    def require_state(self, profile: str) -> ProfileState:
        with self.reading() as tx:
            return tx.require_state(profile)

    def states(self, include_deleted: bool = False) -> list[ProfileState]:
        with self.reading() as tx:
            return tx.states(include_deleted)

    def stream(self, profile: str, window: StreamWindow | None = None, **filters: Any) -> list[Event]:
        with self.reading() as tx:
            return tx.stream(profile, window, **filters)

    def log_after(self, position: int, limit: int | None = None) -> list[Event]:
        with self.reading() as tx:
            return tx.log_after(position, limit)

    def last_position(self) -> int:
        with self.reading() as tx:
            return tx.last_position()


def ensure_default_profile(store: EventStore) -> Event | None:
    """Boot's promise: the root profile's stream exists. Returns the event appended, if any.

    A deleted ``default`` cannot happen (the fold refuses it), so only a
    missing one is created.
    """
    with store.writing() as tx:
        if tx.state(DEFAULT_PROFILE) is not None:
            return None
        return tx.append(NewEvent(DEFAULT_PROFILE, EventType.CREATED, Actor.BOOT, Desired.DOWN))
