"""The event store: append with the stream rules, read streams, the log and the projection.

Public methods open a transaction; ``StoreTransaction`` does the work inside
one, so an append, its projection row, and anything a hook must decide from
what it reads (the breaker) share one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Callable, Iterator, Sequence

from sqlalchemy import Connection, Engine, and_, func, insert, select, update

from . import fold as folding
from .chain import GENESIS, chain_hash
from .db.engine import make_engine, read_transaction, write_transaction
from .db.revision import require_head
from .db.schema import events as events_table
from .db.schema import profile_projection
from .errors import BadInput, Conflict, NotFound, VersionConflict
from .events import Event, NewEvent, encode_data, utc_now
from .fold import ProfileState
from .names import validate_name
from .settings import Settings

_STATE_FIELDS = tuple(field.name for field in dataclasses.fields(ProfileState))


class StoreTransaction:
    """Reads and appends inside one open transaction (see ``EventStore.writing``)."""

    def __init__(self, conn: Connection, store: "EventStore") -> None:
        self._conn = conn
        self._store = store

    # -- reads -----------------------------------------------------------
    def state(self, profile: str) -> ProfileState | None:
        validate_name(profile)
        row = self._conn.execute(
            select(profile_projection).where(profile_projection.c.profile == profile)
        ).mappings().first()
        return _state_from_row(row) if row else None

    def states(self, include_deleted: bool = False) -> list[ProfileState]:
        query = select(profile_projection).order_by(profile_projection.c.profile)
        if not include_deleted:
            query = query.where(profile_projection.c.deleted.is_(False))
        return [_state_from_row(row) for row in self._conn.execute(query).mappings()]

    def stream(
        self,
        profile: str,
        *,
        after_version: int | None = None,
        since: str | None = None,
        until: str | None = None,
        types: Sequence[str] | None = None,
        boot_id: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """A profile's events, oldest first (or newest first), filtered."""
        validate_name(profile)
        t = events_table.c
        conditions = [t.profile == profile]
        if after_version is not None:
            conditions.append(t.version > after_version)
        if since is not None:
            conditions.append(t.occurred_at >= since)
        if until is not None:
            conditions.append(t.occurred_at <= until)
        if types:
            conditions.append(t.type.in_(list(types)))
        if boot_id is not None:
            conditions.append(t.boot_id == boot_id)
        order = t.version.desc() if newest_first else t.version.asc()
        query = select(events_table).where(and_(*conditions)).order_by(order)
        if limit is not None:
            query = query.limit(limit)
        return [Event.from_row(row) for row in self._conn.execute(query).mappings()]

    def log_after(self, position: int, limit: int | None = None) -> list[Event]:
        """The whole log after ``position``, in position order."""
        query = select(events_table).where(events_table.c.position > position).order_by(events_table.c.position)
        if limit is not None:
            query = query.limit(limit)
        return [Event.from_row(row) for row in self._conn.execute(query).mappings()]

    def last_position(self) -> int:
        return self._conn.execute(select(func.coalesce(func.max(events_table.c.position), 0))).scalar_one()

    def event_at(self, position: int) -> Event | None:
        row = self._conn.execute(select(events_table).where(events_table.c.position == position)).mappings().first()
        return Event.from_row(row) if row else None

    def crash_times(self, profile: str, *, after_position: int, since: str) -> list[str]:
        """Times of ``profile``'s crashes after ``after_position`` and at or after ``since``.

        Served by the partial index on crashed rows: the cost is the number
        of crashes in the window, not the length of the log.
        """
        t = events_table.c
        query = (
            select(t.occurred_at)
            .where(t.type == "crashed", t.profile == profile, t.occurred_at >= since, t.position > after_position)
            .order_by(t.occurred_at)
        )
        return list(self._conn.execute(query).scalars())

    # -- the append --------------------------------------------------------
    def append(self, new: NewEvent, expected_version: int | None = None) -> Event:
        """Validate ``new`` against the stream, insert it and its projection row; return it stored."""
        new.validated()
        t = events_table.c
        conn = self._conn
        if new.idempotency_key is not None:
            existing = conn.execute(
                select(events_table).where(t.idempotency_key == new.idempotency_key)
            ).mappings().first()
            if existing is not None:
                stored = Event.from_row(existing)
                if (stored.profile, stored.type, stored.actor) != (new.profile, new.type, new.actor):
                    raise Conflict(f"idempotency key {new.idempotency_key!r} was used for another event")
                return stored

        prior = self.state(new.profile)
        current_version = prior.version if prior else 0
        if expected_version is not None and expected_version != current_version:
            raise VersionConflict(
                f"profile {new.profile!r} is at version {current_version}, not {expected_version} as expected"
            )
        last = conn.execute(select(t.position, t.hash).order_by(t.position.desc()).limit(1)).first()
        position, previous_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
        row = {
            "position": position,
            "profile": new.profile,
            "version": current_version + 1,
            "type": new.type,
            "actor": new.actor,
            "desired": new.desired,
            "occurred_at": self._store.clock(),
            "host": self._store.host,
            "boot_id": self._store.boot_id,
            "pid": new.pid,
            "exit_code": new.exit_code,
            "signal": new.signal,
            "reason": new.reason,
            "data": encode_data(new.data),
            "idempotency_key": new.idempotency_key,
        }
        row["hash"] = chain_hash(previous_hash, row)
        event = Event.from_row(row)
        state = folding.apply(prior, event)  # raises when the stream rules refuse it
        conn.execute(insert(events_table).values(**row))
        values = _state_to_row(state)
        if prior is None:
            conn.execute(insert(profile_projection).values(**values))
        else:
            conn.execute(
                update(profile_projection).where(profile_projection.c.profile == new.profile).values(**values)
            )
        return event


class EventStore:
    """The store on one SQLite file. Open it with ``EventStore.open``."""

    def __init__(
        self,
        engine: Engine,
        *,
        host: str | None,
        boot_id: str | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.engine = engine
        self.path: Path = engine.info["path"]  # type: ignore[attr-defined]
        self.readonly: bool = engine.info["readonly"]  # type: ignore[attr-defined]
        self.host = host
        self.boot_id = boot_id
        self.clock = clock
        self._checked = False

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        readonly: bool = False,
        busy_timeout_ms: int | None = None,
        clock: Callable[[], str] = utc_now,
        pooled: bool = False,
    ) -> "EventStore":
        """Open the store at ``settings.db_path``; it must exist and be at the code's schema."""
        engine = make_engine(settings.db_path, readonly=readonly, busy_timeout_ms=busy_timeout_ms, pooled=pooled)
        host = None if readonly else settings.host_id()
        store = cls(engine, host=host, boot_id=None if readonly else settings.read_boot_id(), clock=clock)
        store.check_schema()
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check_schema(self) -> None:
        """One query: refuse a file whose schema revision is not the code's."""
        if not self._checked:
            with read_transaction(self.engine) as conn:
                require_head(conn, self.path)
            self._checked = True

    # -- transactions ------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator[StoreTransaction]:
        """A ``BEGIN IMMEDIATE`` transaction: everything in it commits together or not at all."""
        if self.readonly or self.host is None:
            raise BadInput(f"event store {self.path} was opened read-only")
        with write_transaction(self.engine) as conn:
            yield StoreTransaction(conn, self)

    @contextlib.contextmanager
    def reading(self) -> Iterator[StoreTransaction]:
        """One consistent snapshot for several reads."""
        with read_transaction(self.engine) as conn:
            yield StoreTransaction(conn, self)

    # -- one-transaction conveniences ------------------------------------------
    def append(self, new: NewEvent, expected_version: int | None = None) -> Event:
        with self.writing() as tx:
            return tx.append(new, expected_version)

    def append_all(self, batch: Sequence[NewEvent]) -> list[Event]:
        """Several appends, atomically."""
        with self.writing() as tx:
            return [tx.append(new) for new in batch]

    def state(self, profile: str) -> ProfileState | None:
        with self.reading() as tx:
            return tx.state(profile)

    def require_state(self, profile: str) -> ProfileState:
        state = self.state(profile)
        if state is None:
            raise NotFound(f"no profile named {profile!r}")
        return state

    def states(self, include_deleted: bool = False) -> list[ProfileState]:
        with self.reading() as tx:
            return tx.states(include_deleted)

    def stream(self, profile: str, **filters) -> list[Event]:
        with self.reading() as tx:
            return tx.stream(profile, **filters)

    def log_after(self, position: int, limit: int | None = None) -> list[Event]:
        with self.reading() as tx:
            return tx.log_after(position, limit)

    def last_position(self) -> int:
        with self.reading() as tx:
            return tx.last_position()


def _state_from_row(row) -> ProfileState:
    values = {name: row[name] for name in _STATE_FIELDS}
    values["deleted"] = bool(values["deleted"])
    values["run_ended"] = bool(values["run_ended"])
    return ProfileState(**values)


def _state_to_row(state: ProfileState) -> dict:
    return dataclasses.asdict(state)



def ensure_default_profile(store: EventStore) -> Event | None:
    """Boot's promise: the root profile's stream exists. Returns the event appended, if any.

    A deleted ``default`` cannot happen (the fold refuses it), so only a
    missing one is created.
    """
    from .names import DEFAULT_PROFILE

    with store.writing() as tx:
        if tx.state(DEFAULT_PROFILE) is not None:
            return None
        return tx.append(NewEvent(DEFAULT_PROFILE, "created", "boot", "down"))
