"""The SQL the PostgreSQL recorder runs, written by hand: one statement per constant, parameters by name.

Every read of a text value is bounded (docs/reliability.md, "Values read
bounded"): a value longer than its bound reads as NULL and its column is named
in the row's ``oversized`` text. PostgreSQL enforces the column types, so only
text can be long: integers and flags are read as they are. The bound is 1024
bytes, ``data``'s is ``events.MAX_DATA_BYTES`` (65536).

The projection is never written here: the ``events_project`` trigger folds
each inserted event into its row (migration 0007). A parameter that may be
NULL is cast, so the server knows its type. ``tests/test_sql_plans.py`` checks
the plans use the same indexes as SQLite's.
ORDER BY names ``table.column``: a bare name there is the result column, the bounded
value, which sorts an oversized one first and is served by no index.
"""

# The columns of `events`, text read bounded, and `oversized`: the names of those over their bound.
EVENT_COLUMNS = """
    position,
    CASE WHEN octet_length(profile) <= 1024 THEN profile END AS profile,
    version,
    CASE WHEN octet_length(type) <= 1024 THEN type END AS type,
    CASE WHEN octet_length(actor) <= 1024 THEN actor END AS actor,
    CASE WHEN octet_length(desired) <= 1024 THEN desired END AS desired,
    CASE WHEN octet_length(occurred_at) <= 1024 THEN occurred_at END AS occurred_at,
    CASE WHEN octet_length(host) <= 1024 THEN host END AS host,
    CASE WHEN octet_length(boot_id) <= 1024 THEN boot_id END AS boot_id,
    pid,
    exit_code,
    signal,
    CASE WHEN octet_length(reason) <= 1024 THEN reason END AS reason,
    CASE WHEN octet_length(data) <= 65536 THEN data END AS data,
    CASE WHEN octet_length(idempotency_key) <= 1024 THEN idempotency_key END AS idempotency_key,
    CASE WHEN octet_length(hash) <= 1024 THEN hash END AS hash,
    chain_version,
    CASE WHEN octet_length(profile) > 1024 THEN 'profile ' ELSE '' END
    || CASE WHEN octet_length(type) > 1024 THEN 'type ' ELSE '' END
    || CASE WHEN octet_length(actor) > 1024 THEN 'actor ' ELSE '' END
    || CASE WHEN octet_length(desired) > 1024 THEN 'desired ' ELSE '' END
    || CASE WHEN octet_length(occurred_at) > 1024 THEN 'occurred_at ' ELSE '' END
    || CASE WHEN octet_length(host) > 1024 THEN 'host ' ELSE '' END
    || CASE WHEN octet_length(boot_id) > 1024 THEN 'boot_id ' ELSE '' END
    || CASE WHEN octet_length(reason) > 1024 THEN 'reason ' ELSE '' END
    || CASE WHEN octet_length(data) > 65536 THEN 'data ' ELSE '' END
    || CASE WHEN octet_length(idempotency_key) > 1024 THEN 'idempotency_key ' ELSE '' END
    || CASE WHEN octet_length(hash) > 1024 THEN 'hash ' ELSE '' END
    AS oversized
"""

# The columns of `profile_projection`, text read bounded, and `oversized`.
PROJECTION_COLUMNS = """
    CASE WHEN octet_length(profile) <= 1024 THEN profile END AS profile,
    version,
    deleted,
    CASE WHEN octet_length(desired) <= 1024 THEN desired END AS desired,
    created_position,
    last_position,
    CASE WHEN octet_length(last_type) <= 1024 THEN last_type END AS last_type,
    CASE WHEN octet_length(last_actor) <= 1024 THEN last_actor END AS last_actor,
    CASE WHEN octet_length(last_reason) <= 1024 THEN last_reason END AS last_reason,
    CASE WHEN octet_length(last_at) <= 1024 THEN last_at END AS last_at,
    intent_position,
    CASE WHEN octet_length(intent_actor) <= 1024 THEN intent_actor END AS intent_actor,
    CASE WHEN octet_length(intent_reason) <= 1024 THEN intent_reason END AS intent_reason,
    CASE WHEN octet_length(intent_at) <= 1024 THEN intent_at END AS intent_at,
    start_intent_position,
    restart_position,
    run_position,
    run_pid,
    CASE WHEN octet_length(run_started_at) <= 1024 THEN run_started_at END AS run_started_at,
    CASE WHEN octet_length(run_boot_id) <= 1024 THEN run_boot_id END AS run_boot_id,
    run_ended,
    last_exit_code,
    last_signal,
    CASE WHEN octet_length(host) <= 1024 THEN host END AS host,
    crashes,
    last_crash_position,
    last_report_position,
    CASE WHEN octet_length(profile) > 1024 THEN 'profile ' ELSE '' END
    || CASE WHEN octet_length(desired) > 1024 THEN 'desired ' ELSE '' END
    || CASE WHEN octet_length(last_type) > 1024 THEN 'last_type ' ELSE '' END
    || CASE WHEN octet_length(last_actor) > 1024 THEN 'last_actor ' ELSE '' END
    || CASE WHEN octet_length(last_reason) > 1024 THEN 'last_reason ' ELSE '' END
    || CASE WHEN octet_length(last_at) > 1024 THEN 'last_at ' ELSE '' END
    || CASE WHEN octet_length(intent_actor) > 1024 THEN 'intent_actor ' ELSE '' END
    || CASE WHEN octet_length(intent_reason) > 1024 THEN 'intent_reason ' ELSE '' END
    || CASE WHEN octet_length(intent_at) > 1024 THEN 'intent_at ' ELSE '' END
    || CASE WHEN octet_length(run_started_at) > 1024 THEN 'run_started_at ' ELSE '' END
    || CASE WHEN octet_length(run_boot_id) > 1024 THEN 'run_boot_id ' ELSE '' END
    || CASE WHEN octet_length(host) > 1024 THEN 'host ' ELSE '' END
    AS oversized
"""

# -- the append ------------------------------------------------------------------------------

# The chain's head and the profile's row, in one statement; read whole: a writer must see the
# row as it is (the anchor gives one row even in an empty log, for a profile with no row).
APPEND_CONTEXT = """
SELECT
    (SELECT position FROM events ORDER BY position DESC LIMIT 1) AS chain_position,
    (SELECT hash FROM events ORDER BY position DESC LIMIT 1) AS chain_hash,
    profile_projection.*
FROM (SELECT 1) AS anchor
LEFT JOIN profile_projection ON profile_projection.profile = %(profile)s::text
"""

EVENT_BY_KEY = f"""
SELECT {EVENT_COLUMNS}
FROM events
WHERE idempotency_key = %(key)s::text
"""

# The events_project trigger writes the profile's projection row from it (migration 0007).
INSERT_EVENT = """
INSERT INTO events (
    position, profile, version, type, actor, desired, occurred_at, host, boot_id,
    pid, exit_code, signal, reason, data, idempotency_key, hash, chain_version
) VALUES (
    %(position)s, %(profile)s, %(version)s, %(type)s, %(actor)s, %(desired)s::text,
    %(occurred_at)s, %(host)s::text, %(boot_id)s::text,
    %(pid)s::integer, %(exit_code)s::integer, %(signal)s::integer, %(reason)s::text, %(data)s,
    %(idempotency_key)s::text, %(hash)s, %(chain_version)s
)
"""

# -- a stream ------------------------------------------------------------------------------------

# A profile's events in a window, by UNIQUE(profile, version). A NULL parameter leaves its
# condition out; %(types)s is an array of the types wanted (NULL: every type).
_STREAM = f"""
SELECT {EVENT_COLUMNS}
FROM events
WHERE profile = %(profile)s::text
    AND version > %(after_version)s::integer
    AND position > %(after_position)s::bigint
    AND (%(since)s::text IS NULL OR occurred_at >= %(since)s::text)
    AND (%(until)s::text IS NULL OR occurred_at <= %(until)s::text)
    AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s::text[]))
    AND (%(boot_id)s::text IS NULL OR boot_id = %(boot_id)s::text)
"""

STREAM_OLDEST_FIRST = _STREAM + "ORDER BY events.version LIMIT %(limit)s::bigint\n"

STREAM_NEWEST_FIRST = _STREAM + "ORDER BY events.version DESC LIMIT %(limit)s::bigint\n"

# A profile's crash times in a window: from the partial index, whatever the length of the log.
CRASH_TIMES = """
SELECT occurred_at
FROM events
WHERE type = 'crashed'
    AND profile = %(profile)s::text
    AND occurred_at >= %(since)s::text
    AND position > %(after_position)s::bigint
ORDER BY events.occurred_at
"""

# -- after a position ----------------------------------------------------------------------------

EVENTS_AFTER = f"""
SELECT {EVENT_COLUMNS}
FROM events
WHERE position > %(after)s::bigint
ORDER BY events.position
LIMIT %(limit)s::bigint
"""

LAST_POSITION = """
SELECT coalesce(max(position), 0)
FROM events
"""

# -- the projection ------------------------------------------------------------------------------

PROJECTION_ROW = f"""
SELECT {PROJECTION_COLUMNS}
FROM profile_projection
WHERE profile = %(profile)s::text
"""

PROJECTION_LIVE = f"""
SELECT {PROJECTION_COLUMNS}
FROM profile_projection
WHERE deleted IS false
ORDER BY profile_projection.profile
"""

PROJECTION_ALL = f"""
SELECT {PROJECTION_COLUMNS}
FROM profile_projection
ORDER BY profile_projection.profile
"""

# Each profile's crashes at or after %(since)s, one search of the partial index per profile.
CRASH_COUNTS = """
SELECT
    profile,
    deleted,
    (SELECT count(*)
     FROM events
     WHERE events.type = 'crashed'
         AND events.profile = profile_projection.profile
         AND events.occurred_at >= %(since)s::text) AS crashes_since
FROM profile_projection
ORDER BY profile_projection.profile
"""
