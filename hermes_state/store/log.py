"""The event store: append with the stream rules, read streams, the log and the projection.

Public methods open a transaction; ``StoreTransaction`` does the work inside
one, so an append, its projection row, and anything a hook must decide from
what it reads (the breaker) share one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Callable, Iterator, Sequence

from sqlalchemy import Engine, and_, bindparam, func, insert, literal, select, update

from .. import fold as folding
from ..chain import GENESIS, chain_hash
from .compiled import Compiled, first_mapping, mappings
from ..backends.sqlite.engine import driver_transaction, make_engine
from ..backends.sqlite.translate import translated
from ..backends.sqlite.revision import require_head
from .schema import events as events_table
from .schema import profile_projection
from ..errors import BadInput, Conflict, NotFound, VersionConflict
from ..events import COLUMNS, Event, NewEvent, utc_now
from ..fold import ProfileState
from ..names import validate_name
from ..settings import Settings

_STATE_FIELDS = tuple(field.name for field in dataclasses.fields(ProfileState))


class _Statements:
    """The store's fixed statements, compiled once for the engine's dialect."""

    def __init__(self, dialect) -> None:
        e, p = events_table, profile_projection
        self.state = Compiled(select(p).where(p.c.profile == bindparam("name")), dialect)
        self.states_live = Compiled(select(p).where(p.c.deleted.is_(False)).order_by(p.c.profile), dialect)
        self.states_all = Compiled(select(p).order_by(p.c.profile), dialect)
        self.by_key = Compiled(select(e).where(e.c.idempotency_key == bindparam("key")), dialect)
        # What an append must read, in one statement: the chain's head and the profile's row.
        newest = select(e.c.position, e.c.hash).order_by(e.c.position.desc()).limit(1)
        anchor = select(literal(1).label("anchor")).subquery("anchor")
        self.append_context = Compiled(
            select(
                newest.with_only_columns(e.c.position).scalar_subquery().label("chain_position"),
                newest.with_only_columns(e.c.hash).scalar_subquery().label("chain_hash"),
                p,
            ).select_from(anchor.outerjoin(p, p.c.profile == bindparam("name"))),
            dialect,
        )
        after = select(e).where(e.c.position > bindparam("after")).order_by(e.c.position)
        self.log_after = Compiled(after, dialect)
        self.log_after_limited = Compiled(after.limit(bindparam("limit")), dialect)
        self.last_position = Compiled(select(func.coalesce(func.max(e.c.position), 0)), dialect)
        self.insert_event = Compiled(insert(e), dialect, column_keys=COLUMNS)
        self.insert_state = Compiled(insert(p), dialect, column_keys=_STATE_FIELDS)
        # The key is left out of SET: assigning it, even unchanged, rewrites its index page.
        self.update_state = Compiled(
            update(p).where(p.c.profile == bindparam("where_profile")),
            dialect,
            column_keys=[name for name in _STATE_FIELDS if name != "profile"],
        )
        self.crash_times = Compiled(
            select(e.c.occurred_at)
            .where(
                e.c.type == "crashed",
                e.c.profile == bindparam("name"),
                e.c.occurred_at >= bindparam("since"),
                e.c.position > bindparam("after"),
            )
            .order_by(e.c.occurred_at),
            dialect,
        )


class StoreTransaction:
    """Reads and appends inside one open transaction (see ``EventStore.writing``)."""

    def __init__(self, driver, store: "EventStore") -> None:
        self._driver = driver
        self._store = store
        self._sql = store.statements

    # -- reads -----------------------------------------------------------
    def state(self, profile: str) -> ProfileState | None:
        validate_name(profile)
        row = first_mapping(self._sql.state.execute(self._driver, {"name": profile}))
        return _state_from_row(row) if row else None

    def states(self, include_deleted: bool = False) -> list[ProfileState]:
        statement = self._sql.states_all if include_deleted else self._sql.states_live
        return [_state_from_row(row) for row in mappings(statement.execute(self._driver))]

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
        return self._events(Compiled(query, self._store.engine.dialect))

    def log_after(self, position: int, limit: int | None = None) -> list[Event]:
        """The whole log after ``position``, in position order (the watch daemon's read at every wake-up)."""
        if limit is None:
            return self._events(self._sql.log_after, {"after": position})
        return self._events(self._sql.log_after_limited, {"after": position, "limit": limit})

    def _events(self, statement: Compiled, values: dict | None = None) -> list[Event]:
        return [Event.from_row(row) for row in mappings(statement.execute(self._driver, values))]

    def last_position(self) -> int:
        return int(self._sql.last_position.execute(self._driver).fetchone()[0])

    def crash_times(self, profile: str, *, after_position: int, since: str) -> list[str]:
        """Times of ``profile``'s crashes after ``after_position`` and at or after ``since``.

        Served by the partial index on crashed rows: the cost is the number
        of crashes in the window, not the length of the log.
        """
        values = {"name": profile, "since": since, "after": after_position}
        return [row[0] for row in self._sql.crash_times.execute(self._driver, values)]

    # -- the append --------------------------------------------------------
    def append(self, new: NewEvent, expected_version: int | None = None) -> Event:
        """Validate ``new`` against the stream, insert it and its projection row; return it stored."""
        data_text = new.validated()
        sql, driver = self._sql, self._driver
        if new.idempotency_key is not None:
            existing = first_mapping(sql.by_key.execute(driver, {"key": new.idempotency_key}))
            if existing is not None:
                stored = Event.from_row(existing)
                if (stored.profile, stored.type, stored.actor) != (new.profile, new.type, new.actor):
                    raise Conflict(f"idempotency key {new.idempotency_key!r} was used for another event")
                return stored

        context = first_mapping(sql.append_context.execute(driver, {"name": new.profile}))
        prior = _state_from_row(context) if context["profile"] is not None else None
        current_version = prior.version if prior else 0
        if expected_version is not None and expected_version != current_version:
            raise VersionConflict(
                f"profile {new.profile!r} is at version {current_version}, not {expected_version} as expected"
            )
        if context["chain_position"] is None:
            position, previous_hash = 1, GENESIS
        else:
            position, previous_hash = context["chain_position"] + 1, context["chain_hash"]
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
            "data": data_text,
            "idempotency_key": new.idempotency_key,
        }
        row["hash"] = chain_hash(previous_hash, row)
        event = Event(**{**row, "data": json.loads(data_text)})
        state = folding.apply(prior, event)  # raises when the stream rules refuse it
        sql.insert_event.execute(driver, row)
        values = {name: getattr(state, name) for name in _STATE_FIELDS}
        if prior is None:
            sql.insert_state.execute(driver, values)
        else:
            sql.update_state.execute(driver, {**values, "where_profile": new.profile})
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
        self.statements = _Statements(engine.dialect)
        self._checked = False
        self._pooled = None  # one driver connection, held for the store's life

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        readonly: bool = False,
        busy_timeout_ms: int | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> "EventStore":
        """Open the store at ``settings.db_path``; it must exist and be at the code's schema."""
        engine = make_engine(settings.db_path, readonly=readonly, busy_timeout_ms=busy_timeout_ms)
        host = None if readonly else settings.host_id()
        store = cls(engine, host=host, boot_id=None if readonly else settings.read_boot_id(), clock=clock)
        store.check_schema()
        return store

    def close(self) -> None:
        if self._pooled is not None:
            self._pooled.close()
            self._pooled = None
        self.engine.dispose()

    def _driver(self):
        if self._pooled is None:
            with translated(self.path):
                self._pooled = self.engine.raw_connection()
        return self._pooled.driver_connection

    def _transaction(self, write: bool):
        timeout = self.engine.info["busy_timeout_ms"]  # type: ignore[attr-defined]
        return driver_transaction(self._driver(), self.path, timeout, write=write)

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` on this store's own connection: it changes when
        another connection commits, so a poller can tell "nothing new" without a query on events."""
        with translated(self.path):
            return int(self._driver().execute("PRAGMA data_version").fetchone()[0])

    def check_schema(self) -> None:
        """One query: refuse a file whose schema revision is not the code's."""
        if not self._checked:
            # Opening the connection is where a garbage or unwritable file fails first.
            with translated(self.path), self.engine.connect() as conn:
                require_head(conn, self.path)
            self._checked = True

    # -- transactions ------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator[StoreTransaction]:
        """A ``BEGIN IMMEDIATE`` transaction: everything in it commits together or not at all."""
        if self.readonly or self.host is None:
            raise BadInput(f"event store {self.path} was opened read-only")
        with self._transaction(write=True) as driver:
            yield StoreTransaction(driver, self)

    @contextlib.contextmanager
    def reading(self) -> Iterator[StoreTransaction]:
        """One consistent snapshot for several reads."""
        with self._transaction(write=False) as driver:
            yield StoreTransaction(driver, self)

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



def ensure_default_profile(store: EventStore) -> Event | None:
    """Boot's promise: the root profile's stream exists. Returns the event appended, if any.

    A deleted ``default`` cannot happen (the fold refuses it), so only a
    missing one is created.
    """
    from ..names import DEFAULT_PROFILE

    with store.writing() as tx:
        if tx.state(DEFAULT_PROFILE) is not None:
            return None
        return tx.append(NewEvent(DEFAULT_PROFILE, "created", "boot", "down"))
