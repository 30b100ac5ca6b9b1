"""The SQL the SQLite recorder runs, written by hand: one statement per constant, parameters by name.

Every read of a value is bounded (docs/reliability.md, "Values read bounded"):
a value longer than its bound reads as NULL and its column is named in the
row's ``oversized`` text, so a value written behind the store's back makes its
row malformed, never a reader's memory grow. SQLite stores whatever a writer
gives any column, so every column but the INTEGER PRIMARY KEY is bounded; the
bound is 1024 bytes, ``data``'s is ``events.MAX_DATA_BYTES`` (65536).
``octet_length`` reads a value's size from its record header: the value itself
is never loaded (connect.py supplies it where SQLite predates 3.43).

Constants are written into the text (``'crashed'``, ``LIMIT 1``), never bound:
SQLite uses a partial index (``ix_events_crashes ... WHERE type = 'crashed'``)
only when the query's WHERE clause names the index's own literal.
``tests/test_sql_plans.py`` checks the plans.
ORDER BY names ``table.column``: a bare name there is the result column, the bounded
value, which sorts an oversized one first and is served by no index.
"""

# The columns of `events`, each read bounded, and `oversized`: the names of those over their bound.
EVENT_COLUMNS = """
    position,
    CASE WHEN octet_length(profile) <= 1024 THEN profile END AS profile,
    CASE WHEN octet_length(version) <= 1024 THEN version END AS version,
    CASE WHEN octet_length(type) <= 1024 THEN type END AS type,
    CASE WHEN octet_length(actor) <= 1024 THEN actor END AS actor,
    CASE WHEN octet_length(desired) <= 1024 THEN desired END AS desired,
    CASE WHEN octet_length(occurred_at) <= 1024 THEN occurred_at END AS occurred_at,
    CASE WHEN octet_length(host) <= 1024 THEN host END AS host,
    CASE WHEN octet_length(boot_id) <= 1024 THEN boot_id END AS boot_id,
    CASE WHEN octet_length(pid) <= 1024 THEN pid END AS pid,
    CASE WHEN octet_length(exit_code) <= 1024 THEN exit_code END AS exit_code,
    CASE WHEN octet_length(signal) <= 1024 THEN signal END AS signal,
    CASE WHEN octet_length(reason) <= 1024 THEN reason END AS reason,
    CASE WHEN octet_length(data) <= 65536 THEN data END AS data,
    CASE WHEN octet_length(idempotency_key) <= 1024 THEN idempotency_key END AS idempotency_key,
    CASE WHEN octet_length(hash) <= 1024 THEN hash END AS hash,
    CASE WHEN octet_length(chain_version) <= 1024 THEN chain_version END AS chain_version,
    CASE WHEN octet_length(profile) > 1024 THEN 'profile ' ELSE '' END
    || CASE WHEN octet_length(version) > 1024 THEN 'version ' ELSE '' END
    || CASE WHEN octet_length(type) > 1024 THEN 'type ' ELSE '' END
    || CASE WHEN octet_length(actor) > 1024 THEN 'actor ' ELSE '' END
    || CASE WHEN octet_length(desired) > 1024 THEN 'desired ' ELSE '' END
    || CASE WHEN octet_length(occurred_at) > 1024 THEN 'occurred_at ' ELSE '' END
    || CASE WHEN octet_length(host) > 1024 THEN 'host ' ELSE '' END
    || CASE WHEN octet_length(boot_id) > 1024 THEN 'boot_id ' ELSE '' END
    || CASE WHEN octet_length(pid) > 1024 THEN 'pid ' ELSE '' END
    || CASE WHEN octet_length(exit_code) > 1024 THEN 'exit_code ' ELSE '' END
    || CASE WHEN octet_length(signal) > 1024 THEN 'signal ' ELSE '' END
    || CASE WHEN octet_length(reason) > 1024 THEN 'reason ' ELSE '' END
    || CASE WHEN octet_length(data) > 65536 THEN 'data ' ELSE '' END
    || CASE WHEN octet_length(idempotency_key) > 1024 THEN 'idempotency_key ' ELSE '' END
    || CASE WHEN octet_length(hash) > 1024 THEN 'hash ' ELSE '' END
    || CASE WHEN octet_length(chain_version) > 1024 THEN 'chain_version ' ELSE '' END
    AS oversized
"""

# The columns of `profile_projection`, each read bounded, and `oversized`.
PROJECTION_COLUMNS = """
    CASE WHEN octet_length(profile) <= 1024 THEN profile END AS profile,
    CASE WHEN octet_length(version) <= 1024 THEN version END AS version,
    CASE WHEN octet_length(deleted) <= 1024 THEN deleted END AS deleted,
    CASE WHEN octet_length(desired) <= 1024 THEN desired END AS desired,
    CASE WHEN octet_length(created_position) <= 1024 THEN created_position END AS created_position,
    CASE WHEN octet_length(last_position) <= 1024 THEN last_position END AS last_position,
    CASE WHEN octet_length(last_type) <= 1024 THEN last_type END AS last_type,
    CASE WHEN octet_length(last_actor) <= 1024 THEN last_actor END AS last_actor,
    CASE WHEN octet_length(last_reason) <= 1024 THEN last_reason END AS last_reason,
    CASE WHEN octet_length(last_at) <= 1024 THEN last_at END AS last_at,
    CASE WHEN octet_length(intent_position) <= 1024 THEN intent_position END AS intent_position,
    CASE WHEN octet_length(intent_actor) <= 1024 THEN intent_actor END AS intent_actor,
    CASE WHEN octet_length(intent_reason) <= 1024 THEN intent_reason END AS intent_reason,
    CASE WHEN octet_length(intent_at) <= 1024 THEN intent_at END AS intent_at,
    CASE WHEN octet_length(start_intent_position) <= 1024 THEN start_intent_position END AS start_intent_position,
    CASE WHEN octet_length(restart_position) <= 1024 THEN restart_position END AS restart_position,
    CASE WHEN octet_length(run_position) <= 1024 THEN run_position END AS run_position,
    CASE WHEN octet_length(run_pid) <= 1024 THEN run_pid END AS run_pid,
    CASE WHEN octet_length(run_started_at) <= 1024 THEN run_started_at END AS run_started_at,
    CASE WHEN octet_length(run_boot_id) <= 1024 THEN run_boot_id END AS run_boot_id,
    CASE WHEN octet_length(run_ended) <= 1024 THEN run_ended END AS run_ended,
    CASE WHEN octet_length(last_exit_code) <= 1024 THEN last_exit_code END AS last_exit_code,
    CASE WHEN octet_length(last_signal) <= 1024 THEN last_signal END AS last_signal,
    CASE WHEN octet_length(host) <= 1024 THEN host END AS host,
    CASE WHEN octet_length(crashes) <= 1024 THEN crashes END AS crashes,
    CASE WHEN octet_length(last_crash_position) <= 1024 THEN last_crash_position END AS last_crash_position,
    CASE WHEN octet_length(last_report_position) <= 1024 THEN last_report_position END AS last_report_position,
    CASE WHEN octet_length(profile) > 1024 THEN 'profile ' ELSE '' END
    || CASE WHEN octet_length(version) > 1024 THEN 'version ' ELSE '' END
    || CASE WHEN octet_length(deleted) > 1024 THEN 'deleted ' ELSE '' END
    || CASE WHEN octet_length(desired) > 1024 THEN 'desired ' ELSE '' END
    || CASE WHEN octet_length(created_position) > 1024 THEN 'created_position ' ELSE '' END
    || CASE WHEN octet_length(last_position) > 1024 THEN 'last_position ' ELSE '' END
    || CASE WHEN octet_length(last_type) > 1024 THEN 'last_type ' ELSE '' END
    || CASE WHEN octet_length(last_actor) > 1024 THEN 'last_actor ' ELSE '' END
    || CASE WHEN octet_length(last_reason) > 1024 THEN 'last_reason ' ELSE '' END
    || CASE WHEN octet_length(last_at) > 1024 THEN 'last_at ' ELSE '' END
    || CASE WHEN octet_length(intent_position) > 1024 THEN 'intent_position ' ELSE '' END
    || CASE WHEN octet_length(intent_actor) > 1024 THEN 'intent_actor ' ELSE '' END
    || CASE WHEN octet_length(intent_reason) > 1024 THEN 'intent_reason ' ELSE '' END
    || CASE WHEN octet_length(intent_at) > 1024 THEN 'intent_at ' ELSE '' END
    || CASE WHEN octet_length(start_intent_position) > 1024 THEN 'start_intent_position ' ELSE '' END
    || CASE WHEN octet_length(restart_position) > 1024 THEN 'restart_position ' ELSE '' END
    || CASE WHEN octet_length(run_position) > 1024 THEN 'run_position ' ELSE '' END
    || CASE WHEN octet_length(run_pid) > 1024 THEN 'run_pid ' ELSE '' END
    || CASE WHEN octet_length(run_started_at) > 1024 THEN 'run_started_at ' ELSE '' END
    || CASE WHEN octet_length(run_boot_id) > 1024 THEN 'run_boot_id ' ELSE '' END
    || CASE WHEN octet_length(run_ended) > 1024 THEN 'run_ended ' ELSE '' END
    || CASE WHEN octet_length(last_exit_code) > 1024 THEN 'last_exit_code ' ELSE '' END
    || CASE WHEN octet_length(last_signal) > 1024 THEN 'last_signal ' ELSE '' END
    || CASE WHEN octet_length(host) > 1024 THEN 'host ' ELSE '' END
    || CASE WHEN octet_length(crashes) > 1024 THEN 'crashes ' ELSE '' END
    || CASE WHEN octet_length(last_crash_position) > 1024 THEN 'last_crash_position ' ELSE '' END
    || CASE WHEN octet_length(last_report_position) > 1024 THEN 'last_report_position ' ELSE '' END
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
LEFT JOIN profile_projection ON profile_projection.profile = :profile
"""

EVENT_BY_KEY = f"""
SELECT {EVENT_COLUMNS}
FROM events
WHERE idempotency_key = :key
"""

INSERT_EVENT = """
INSERT INTO events (
    position, profile, version, type, actor, desired, occurred_at, host, boot_id,
    pid, exit_code, signal, reason, data, idempotency_key, hash, chain_version
) VALUES (
    :position, :profile, :version, :type, :actor, :desired, :occurred_at, :host, :boot_id,
    :pid, :exit_code, :signal, :reason, :data, :idempotency_key, :hash, :chain_version
)
"""

INSERT_PROJECTION = """
INSERT INTO profile_projection (
    profile, version, deleted, desired, created_position, last_position,
    last_type, last_actor, last_reason, last_at,
    intent_position, intent_actor, intent_reason, intent_at,
    start_intent_position, restart_position,
    run_position, run_pid, run_started_at, run_boot_id, run_ended,
    last_exit_code, last_signal, host, crashes, last_crash_position, last_report_position
) VALUES (
    :profile, :version, :deleted, :desired, :created_position, :last_position,
    :last_type, :last_actor, :last_reason, :last_at,
    :intent_position, :intent_actor, :intent_reason, :intent_at,
    :start_intent_position, :restart_position,
    :run_position, :run_pid, :run_started_at, :run_boot_id, :run_ended,
    :last_exit_code, :last_signal, :host, :crashes, :last_crash_position, :last_report_position
)
"""

# The key is left out of SET: assigning it, even unchanged, rewrites its index page.
UPDATE_PROJECTION = """
UPDATE profile_projection SET
    version = :version, deleted = :deleted, desired = :desired,
    created_position = :created_position, last_position = :last_position,
    last_type = :last_type, last_actor = :last_actor, last_reason = :last_reason, last_at = :last_at,
    intent_position = :intent_position, intent_actor = :intent_actor,
    intent_reason = :intent_reason, intent_at = :intent_at,
    start_intent_position = :start_intent_position, restart_position = :restart_position,
    run_position = :run_position, run_pid = :run_pid, run_started_at = :run_started_at,
    run_boot_id = :run_boot_id, run_ended = :run_ended,
    last_exit_code = :last_exit_code, last_signal = :last_signal, host = :host,
    crashes = :crashes, last_crash_position = :last_crash_position,
    last_report_position = :last_report_position
WHERE profile = :profile
"""

# -- a stream ------------------------------------------------------------------------------------

# A profile's events in a window, by UNIQUE(profile, version). A NULL parameter leaves its
# condition out; :types is a JSON array of the types wanted (NULL: every type).
_STREAM = f"""
SELECT {EVENT_COLUMNS}
FROM events
WHERE profile = :profile
    AND version > :after_version
    AND position > :after_position
    AND (:since IS NULL OR occurred_at >= :since)
    AND (:until IS NULL OR occurred_at <= :until)
    AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
    AND (:boot_id IS NULL OR boot_id = :boot_id)
"""

STREAM_OLDEST_FIRST = _STREAM + "ORDER BY events.version LIMIT :limit\n"

STREAM_NEWEST_FIRST = _STREAM + "ORDER BY events.version DESC LIMIT :limit\n"

# A profile's crash times in a window: from the partial index, whatever the length of the log.
CRASH_TIMES = """
SELECT occurred_at
FROM events
WHERE type = 'crashed'
    AND profile = :profile
    AND occurred_at >= :since
    AND position > :after_position
ORDER BY events.occurred_at
"""

# -- after a position ----------------------------------------------------------------------------

EVENTS_AFTER = f"""
SELECT {EVENT_COLUMNS}
FROM events
WHERE position > :after
ORDER BY events.position
LIMIT :limit
"""

LAST_POSITION = """
SELECT coalesce(max(position), 0)
FROM events
"""

# -- the projection ------------------------------------------------------------------------------

PROJECTION_ROW = f"""
SELECT {PROJECTION_COLUMNS}
FROM profile_projection
WHERE profile = :profile
"""

PROJECTION_LIVE = f"""
SELECT {PROJECTION_COLUMNS}
FROM profile_projection
WHERE deleted IS 0
ORDER BY profile_projection.profile
"""

PROJECTION_ALL = f"""
SELECT {PROJECTION_COLUMNS}
FROM profile_projection
ORDER BY profile_projection.profile
"""

# Each profile's crashes at or after :since, one search of the partial index per profile: the
# cost is the crashes counted, not the length of the log.
CRASH_COUNTS = """
SELECT
    profile,
    deleted,
    (SELECT count(*)
     FROM events
     WHERE events.type = 'crashed'
         AND events.profile = profile_projection.profile
         AND events.occurred_at >= :since) AS crashes_since
FROM profile_projection
ORDER BY profile_projection.profile
"""
