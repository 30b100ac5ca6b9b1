"""Every statement a recorder runs, written once in SQLAlchemy Core against the tables in ``schema``.

Nothing imports this at run time. ``hermes_lifecycle.store.generate`` compiles
each statement with a backend's dialect into a plain module of SQL text
(``backends/sqlite/sql.py``), so the hooks and the commands a person waits
for run the same SQL without importing SQLAlchemy; ``tests/test_generated_sql.py``
recompiles them and fails when the module is stale.

Constants are rendered into the SQL text (``'crashed'``, ``LIMIT 1``), never
bound: SQLite uses a partial index only when the query's WHERE clause names
the index's own literal.
"""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import Text, bindparam, case, cast, func, insert, literal, literal_column, or_, select, update
from sqlalchemy.sql import ClauseElement

from ..events import MAX_DATA_BYTES
from ..fold import STATE_FIELDS
from ..records import Record
from ..vocabulary import COLUMNS, TYPES
from .schema import events, profile_projection

# The stream's type filter has one parameter per event type; a caller that
# filters on fewer types repeats one of them (there are only five).
TYPE_SLOTS = tuple(f"type{index}" for index in range(len(TYPES)))


class Definition(Record):
    statement: ClauseElement
    column_keys: Sequence[str] | None = None  # INSERT/UPDATE: the columns the statement sets


def _optional(parameter: str, condition):
    """``condition`` unless the parameter is NULL (CAST: PostgreSQL must know its type)."""
    return or_(cast(_param(parameter), Text).is_(None), condition)


def _param(name: str):
    """A parameter the caller always supplies (never a default the generated SQL would lose)."""
    return bindparam(name, required=False)


def _constant(value):
    """A value rendered into the SQL text itself, not bound."""
    return literal(value, literal_execute=True)


def _crashed(e):
    return e.c.type == _constant("crashed")


def _limited(query, limit):
    # An explicit OFFSET 0: otherwise SQLite's compiler binds a default offset as a parameter.
    return query.limit(limit).offset(_constant(0))


# What a reader loads of one value, in bytes: more than any append writes (MAX_DATA_BYTES for
# ``data``; slugs, names, times and ids are far shorter), so only a value written behind the
# store's back is cut, and a reader's memory stays bounded whatever the file holds.
READ_BOUND = 1024
EVENT_READ_BOUNDS = {name: READ_BOUND for name in COLUMNS if name != "position"}
EVENT_READ_BOUNDS["data"] = MAX_DATA_BYTES
STATE_READ_BOUNDS = {name: READ_BOUND for name in STATE_FIELDS}


def _bounded(table, names: Sequence[str], bounds: dict[str, int], typed: bool, flag: str = "oversized") -> list:
    """``names`` of ``table``; a value over its bound reads as NULL and is named in ``oversized``
    (octet_length reads a value's size from its record header: the value itself is never loaded).

    ``typed``: the database enforces column types (PostgreSQL), so only text can be long; SQLite
    stores whatever a writer gives any column, and every column is bounded there.
    """
    columns, flags = [], []
    for name in names:
        column = table.c[name]
        if name not in bounds or (typed and not isinstance(column.type, Text)):
            columns.append(column)
            continue
        bound = _constant(bounds[name])
        columns.append(case((func.octet_length(column) <= bound, column), else_=None).label(name))
        flags.append(case((func.octet_length(column) > bound, _constant(name + " ")), else_=_constant("")))
    if not flags:  # every column typed and not text: nothing can be long
        return [*columns, _constant("").label(flag)]
    oversized = flags[0]
    for more in flags[1:]:
        oversized = oversized.concat(more)
    return [*columns, oversized.label(flag)]


def definitions(typed: bool = False) -> dict[str, Definition]:
    """The statements; ``typed`` for a database that enforces column types (see ``_bounded``)."""
    e, p = events, profile_projection
    crashes_since = (
        select(func.count())
        .where(_crashed(e), e.c.profile == p.c.profile, e.c.occurred_at >= _param("since"))
        .scalar_subquery()
        .label("crashes_since")
    )
    newest = _limited(select(e.c.position, e.c.hash).order_by(e.c.position.desc()), _constant(1))
    anchor = select(literal_column("1").label("anchor")).subquery("anchor")
    window = [
        e.c.profile == _param("name"),
        e.c.version > _param("after_version"),
        e.c.position > _param("after_position"),
        _optional("since", e.c.occurred_at >= _param("since")),
        _optional("until", e.c.occurred_at <= _param("until")),
        e.c.type.in_([_param(slot) for slot in TYPE_SLOTS]),
        _optional("boot_id", e.c.boot_id == _param("boot_id")),
    ]
    # Every read of an event takes its values bounded (docs/reliability.md): a value written behind
    # the store's back makes its row malformed, never a reader's memory grow.
    event = _bounded(e, COLUMNS, EVENT_READ_BOUNDS, typed)
    stream = select(*event).where(*window)
    # The projection is read bounded by every reader (no value of it is ever long); the
    # append reads it whole (``append_context``): a writer must see the row as it is.
    state = _bounded(p, STATE_FIELDS, STATE_READ_BOUNDS, typed)
    return {
        # -- the projection ------------------------------------------------------
        "state": Definition(select(*state).where(p.c.profile == _param("name"))),
        "states_live": Definition(select(*state).where(p.c.deleted.is_(False)).order_by(p.c.profile)),
        "states_all": Definition(select(*state).order_by(p.c.profile)),
        "overview_live": Definition(
            select(*state, crashes_since).where(p.c.deleted.is_(False)).order_by(p.c.profile)
        ),
        "overview_all": Definition(select(*state, crashes_since).order_by(p.c.profile)),
        # Each live profile's crashes since a time, without its state (a second window beside an overview).
        "crash_counts_live": Definition(
            select(p.c.profile, crashes_since).where(p.c.deleted.is_(False)).order_by(p.c.profile)
        ),
        # -- an append -------------------------------------------------------------
        "by_key": Definition(select(*event).where(e.c.idempotency_key == _param("key"))),
        # The chain's head and the profile's row, in one statement.
        "append_context": Definition(
            select(
                newest.with_only_columns(e.c.position).scalar_subquery().label("chain_position"),
                newest.with_only_columns(e.c.hash).scalar_subquery().label("chain_hash"),
                p,
            ).select_from(anchor.outerjoin(p, p.c.profile == _param("name")))
        ),
        "insert_event": Definition(insert(e), COLUMNS),
        "insert_state": Definition(insert(p), STATE_FIELDS),
        # The key is left out of SET: assigning it, even unchanged, rewrites its index page.
        "update_state": Definition(
            update(p).where(p.c.profile == _param("where_profile")),
            [name for name in STATE_FIELDS if name != "profile"],
        ),
        # -- the log -----------------------------------------------------------------
        "rows_after": Definition(
            _limited(select(*event).where(e.c.position > _param("after")).order_by(e.c.position), _param("limit"))
        ),
        "events_after": Definition(
            _limited(select(*event).where(e.c.position > _param("after")).order_by(e.c.position), _param("limit"))
        ),
        "last_position": Definition(select(func.coalesce(func.max(e.c.position), literal_column("0")))),
        "stream_oldest_first": Definition(_limited(stream.order_by(e.c.version), _param("limit"))),
        "stream_newest_first": Definition(_limited(stream.order_by(e.c.version.desc()), _param("limit"))),
        # -- crashes (served by the partial index on crashed rows) ---------------------
        "crash_times": Definition(
            select(e.c.occurred_at)
            .where(
                _crashed(e),
                e.c.profile == _param("name"),
                e.c.occurred_at >= _param("since"),
                e.c.position > _param("after"),
            )
            .order_by(e.c.occurred_at)
        ),
        # How many crashes, and the newest by position (a clock set back must not make an older
        # crash "the last"): the projection keeps both, so this is one row and one event by key,
        # however many crashes the profile has had.
        "crashes": Definition(
            select(*_bounded(p, ["crashes"], STATE_READ_BOUNDS, typed, flag="count_oversized"), *event)
            .select_from(p.outerjoin(e, e.c.position == p.c.last_crash_position))
            .where(p.c.profile == _param("name"))
        ),
    }
