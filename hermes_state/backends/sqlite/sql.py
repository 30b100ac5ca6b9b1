"""The SQL the sqlite recorder runs: generated from hermes_state/store/statements.py; do not edit.

Regenerate with `make sql`; tests/test_generated_sql.py fails when this file is stale.
Each entry is (SQL text, parameter names in the order the driver takes them).
"""


APPEND_CONTEXT = (
    'SELECT (SELECT events.position \nFROM events ORDER BY events.position DESC\n LIMIT 1 OFFSET 0) AS chain_position, (SELECT events.hash \nFROM events ORDER BY events.position DESC\n LIMIT 1 OFFSET 0) AS chain_hash, profile_projection.profile, profile_projection.version, profile_projection.deleted, profile_projection.desired, profile_projection.created_position, profile_projection.last_position, profile_projection.last_type, profile_projection.last_actor, profile_projection.last_reason, profile_projection.last_at, profile_projection.intent_position, profile_projection.intent_actor, profile_projection.intent_reason, profile_projection.intent_at, profile_projection.start_intent_position, profile_projection.restart_position, profile_projection.run_position, profile_projection.run_pid, profile_projection.run_started_at, profile_projection.run_boot_id, profile_projection.run_ended, profile_projection.last_exit_code, profile_projection.last_signal \nFROM (SELECT 1 AS anchor) AS anchor LEFT OUTER JOIN profile_projection ON profile_projection.profile = ?',
    ('name',),
)

BY_KEY = (
    'SELECT events.position, events.profile, events.version, events.type, events.actor, events.desired, events.occurred_at, events.host, events.boot_id, events.pid, events.exit_code, events.signal, events.reason, events.data, events.idempotency_key, events.hash, events.chain_version \nFROM events \nWHERE events.idempotency_key = ?',
    ('key',),
)

CRASH_COUNT = (
    "SELECT count(*) AS count_1 \nFROM events \nWHERE events.type = 'crashed' AND events.profile = ?",
    ('name',),
)

CRASH_TIMES = (
    "SELECT events.occurred_at \nFROM events \nWHERE events.type = 'crashed' AND events.profile = ? AND events.occurred_at >= ? AND events.position > ? ORDER BY events.occurred_at",
    ('name', 'since', 'after'),
)

EVENTS_AFTER = (
    "SELECT events.position, CASE WHEN (octet_length(events.profile) <= 1024) THEN events.profile END AS profile, CASE WHEN (octet_length(events.version) <= 1024) THEN events.version END AS version, CASE WHEN (octet_length(events.type) <= 1024) THEN events.type END AS type, CASE WHEN (octet_length(events.actor) <= 1024) THEN events.actor END AS actor, CASE WHEN (octet_length(events.desired) <= 1024) THEN events.desired END AS desired, CASE WHEN (octet_length(events.occurred_at) <= 1024) THEN events.occurred_at END AS occurred_at, CASE WHEN (octet_length(events.host) <= 1024) THEN events.host END AS host, CASE WHEN (octet_length(events.boot_id) <= 1024) THEN events.boot_id END AS boot_id, CASE WHEN (octet_length(events.pid) <= 1024) THEN events.pid END AS pid, CASE WHEN (octet_length(events.exit_code) <= 1024) THEN events.exit_code END AS exit_code, CASE WHEN (octet_length(events.signal) <= 1024) THEN events.signal END AS signal, CASE WHEN (octet_length(events.reason) <= 1024) THEN events.reason END AS reason, CASE WHEN (octet_length(events.data) <= 65536) THEN events.data END AS data, CASE WHEN (octet_length(events.idempotency_key) <= 1024) THEN events.idempotency_key END AS idempotency_key, CASE WHEN (octet_length(events.hash) <= 1024) THEN events.hash END AS hash, CASE WHEN (octet_length(events.chain_version) <= 1024) THEN events.chain_version END AS chain_version, CASE WHEN (octet_length(events.profile) > 1024) THEN 'profile ' ELSE '' END || CASE WHEN (octet_length(events.version) > 1024) THEN 'version ' ELSE '' END || CASE WHEN (octet_length(events.type) > 1024) THEN 'type ' ELSE '' END || CASE WHEN (octet_length(events.actor) > 1024) THEN 'actor ' ELSE '' END || CASE WHEN (octet_length(events.desired) > 1024) THEN 'desired ' ELSE '' END || CASE WHEN (octet_length(events.occurred_at) > 1024) THEN 'occurred_at ' ELSE '' END || CASE WHEN (octet_length(events.host) > 1024) THEN 'host ' ELSE '' END || CASE WHEN (octet_length(events.boot_id) > 1024) THEN 'boot_id ' ELSE '' END || CASE WHEN (octet_length(events.pid) > 1024) THEN 'pid ' ELSE '' END || CASE WHEN (octet_length(events.exit_code) > 1024) THEN 'exit_code ' ELSE '' END || CASE WHEN (octet_length(events.signal) > 1024) THEN 'signal ' ELSE '' END || CASE WHEN (octet_length(events.reason) > 1024) THEN 'reason ' ELSE '' END || CASE WHEN (octet_length(events.data) > 65536) THEN 'data ' ELSE '' END || CASE WHEN (octet_length(events.idempotency_key) > 1024) THEN 'idempotency_key ' ELSE '' END || CASE WHEN (octet_length(events.hash) > 1024) THEN 'hash ' ELSE '' END || CASE WHEN (octet_length(events.chain_version) > 1024) THEN 'chain_version ' ELSE '' END AS oversized \nFROM events \nWHERE events.position > ? ORDER BY events.position\n LIMIT ? OFFSET 0",
    ('after', 'limit'),
)

INSERT_EVENT = (
    'INSERT INTO events (position, profile, version, type, actor, desired, occurred_at, host, boot_id, pid, exit_code, signal, reason, data, idempotency_key, hash, chain_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ('position', 'profile', 'version', 'type', 'actor', 'desired', 'occurred_at', 'host', 'boot_id', 'pid', 'exit_code', 'signal', 'reason', 'data', 'idempotency_key', 'hash', 'chain_version'),
)

INSERT_STATE = (
    'INSERT INTO profile_projection (profile, version, deleted, desired, created_position, last_position, last_type, last_actor, last_reason, last_at, intent_position, intent_actor, intent_reason, intent_at, start_intent_position, restart_position, run_position, run_pid, run_started_at, run_boot_id, run_ended, last_exit_code, last_signal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ('profile', 'version', 'deleted', 'desired', 'created_position', 'last_position', 'last_type', 'last_actor', 'last_reason', 'last_at', 'intent_position', 'intent_actor', 'intent_reason', 'intent_at', 'start_intent_position', 'restart_position', 'run_position', 'run_pid', 'run_started_at', 'run_boot_id', 'run_ended', 'last_exit_code', 'last_signal'),
)

LAST_CRASH = (
    "SELECT events.position, events.profile, events.version, events.type, events.actor, events.desired, events.occurred_at, events.host, events.boot_id, events.pid, events.exit_code, events.signal, events.reason, events.data, events.idempotency_key, events.hash, events.chain_version \nFROM events \nWHERE events.type = 'crashed' AND events.profile = ? ORDER BY events.position DESC\n LIMIT 1 OFFSET 0",
    ('name',),
)

LAST_POSITION = (
    'SELECT coalesce(max(events.position), 0) AS coalesce_1 \nFROM events',
    (),
)

OVERVIEW_ALL = (
    "SELECT profile_projection.profile, profile_projection.version, profile_projection.deleted, profile_projection.desired, profile_projection.created_position, profile_projection.last_position, profile_projection.last_type, profile_projection.last_actor, profile_projection.last_reason, profile_projection.last_at, profile_projection.intent_position, profile_projection.intent_actor, profile_projection.intent_reason, profile_projection.intent_at, profile_projection.start_intent_position, profile_projection.restart_position, profile_projection.run_position, profile_projection.run_pid, profile_projection.run_started_at, profile_projection.run_boot_id, profile_projection.run_ended, profile_projection.last_exit_code, profile_projection.last_signal, (SELECT count(*) AS count_1 \nFROM events \nWHERE events.type = 'crashed' AND events.profile = profile_projection.profile AND events.occurred_at >= ?) AS crashes_since \nFROM profile_projection ORDER BY profile_projection.profile",
    ('since',),
)

OVERVIEW_LIVE = (
    "SELECT profile_projection.profile, profile_projection.version, profile_projection.deleted, profile_projection.desired, profile_projection.created_position, profile_projection.last_position, profile_projection.last_type, profile_projection.last_actor, profile_projection.last_reason, profile_projection.last_at, profile_projection.intent_position, profile_projection.intent_actor, profile_projection.intent_reason, profile_projection.intent_at, profile_projection.start_intent_position, profile_projection.restart_position, profile_projection.run_position, profile_projection.run_pid, profile_projection.run_started_at, profile_projection.run_boot_id, profile_projection.run_ended, profile_projection.last_exit_code, profile_projection.last_signal, (SELECT count(*) AS count_1 \nFROM events \nWHERE events.type = 'crashed' AND events.profile = profile_projection.profile AND events.occurred_at >= ?) AS crashes_since \nFROM profile_projection \nWHERE profile_projection.deleted IS 0 ORDER BY profile_projection.profile",
    ('since',),
)

ROWS_AFTER = (
    'SELECT events.position, events.profile, events.version, events.type, events.actor, events.desired, events.occurred_at, events.host, events.boot_id, events.pid, events.exit_code, events.signal, events.reason, events.data, events.idempotency_key, events.hash, events.chain_version \nFROM events \nWHERE events.position > ? ORDER BY events.position\n LIMIT ? OFFSET 0',
    ('after', 'limit'),
)

STATE = (
    'SELECT profile_projection.profile, profile_projection.version, profile_projection.deleted, profile_projection.desired, profile_projection.created_position, profile_projection.last_position, profile_projection.last_type, profile_projection.last_actor, profile_projection.last_reason, profile_projection.last_at, profile_projection.intent_position, profile_projection.intent_actor, profile_projection.intent_reason, profile_projection.intent_at, profile_projection.start_intent_position, profile_projection.restart_position, profile_projection.run_position, profile_projection.run_pid, profile_projection.run_started_at, profile_projection.run_boot_id, profile_projection.run_ended, profile_projection.last_exit_code, profile_projection.last_signal \nFROM profile_projection \nWHERE profile_projection.profile = ?',
    ('name',),
)

STATES_ALL = (
    'SELECT profile_projection.profile, profile_projection.version, profile_projection.deleted, profile_projection.desired, profile_projection.created_position, profile_projection.last_position, profile_projection.last_type, profile_projection.last_actor, profile_projection.last_reason, profile_projection.last_at, profile_projection.intent_position, profile_projection.intent_actor, profile_projection.intent_reason, profile_projection.intent_at, profile_projection.start_intent_position, profile_projection.restart_position, profile_projection.run_position, profile_projection.run_pid, profile_projection.run_started_at, profile_projection.run_boot_id, profile_projection.run_ended, profile_projection.last_exit_code, profile_projection.last_signal \nFROM profile_projection ORDER BY profile_projection.profile',
    (),
)

STATES_LIVE = (
    'SELECT profile_projection.profile, profile_projection.version, profile_projection.deleted, profile_projection.desired, profile_projection.created_position, profile_projection.last_position, profile_projection.last_type, profile_projection.last_actor, profile_projection.last_reason, profile_projection.last_at, profile_projection.intent_position, profile_projection.intent_actor, profile_projection.intent_reason, profile_projection.intent_at, profile_projection.start_intent_position, profile_projection.restart_position, profile_projection.run_position, profile_projection.run_pid, profile_projection.run_started_at, profile_projection.run_boot_id, profile_projection.run_ended, profile_projection.last_exit_code, profile_projection.last_signal \nFROM profile_projection \nWHERE profile_projection.deleted IS 0 ORDER BY profile_projection.profile',
    (),
)

STREAM_NEWEST_FIRST = (
    'SELECT events.position, events.profile, events.version, events.type, events.actor, events.desired, events.occurred_at, events.host, events.boot_id, events.pid, events.exit_code, events.signal, events.reason, events.data, events.idempotency_key, events.hash, events.chain_version \nFROM events \nWHERE events.profile = ? AND events.version > ? AND events.position > ? AND (CAST(? AS TEXT) IS NULL OR events.occurred_at >= ?) AND (CAST(? AS TEXT) IS NULL OR events.occurred_at <= ?) AND events.type IN (?, ?, ?, ?, ?) AND (CAST(? AS TEXT) IS NULL OR events.boot_id = ?) ORDER BY events.version DESC\n LIMIT ? OFFSET 0',
    ('name', 'after_version', 'after_position', 'since', 'since', 'until', 'until', 'type0', 'type1', 'type2', 'type3', 'type4', 'boot_id', 'boot_id', 'limit'),
)

STREAM_OLDEST_FIRST = (
    'SELECT events.position, events.profile, events.version, events.type, events.actor, events.desired, events.occurred_at, events.host, events.boot_id, events.pid, events.exit_code, events.signal, events.reason, events.data, events.idempotency_key, events.hash, events.chain_version \nFROM events \nWHERE events.profile = ? AND events.version > ? AND events.position > ? AND (CAST(? AS TEXT) IS NULL OR events.occurred_at >= ?) AND (CAST(? AS TEXT) IS NULL OR events.occurred_at <= ?) AND events.type IN (?, ?, ?, ?, ?) AND (CAST(? AS TEXT) IS NULL OR events.boot_id = ?) ORDER BY events.version\n LIMIT ? OFFSET 0',
    ('name', 'after_version', 'after_position', 'since', 'since', 'until', 'until', 'type0', 'type1', 'type2', 'type3', 'type4', 'boot_id', 'boot_id', 'limit'),
)

UPDATE_STATE = (
    'UPDATE profile_projection SET version=?, deleted=?, desired=?, created_position=?, last_position=?, last_type=?, last_actor=?, last_reason=?, last_at=?, intent_position=?, intent_actor=?, intent_reason=?, intent_at=?, start_intent_position=?, restart_position=?, run_position=?, run_pid=?, run_started_at=?, run_boot_id=?, run_ended=?, last_exit_code=?, last_signal=? WHERE profile_projection.profile = ?',
    ('version', 'deleted', 'desired', 'created_position', 'last_position', 'last_type', 'last_actor', 'last_reason', 'last_at', 'intent_position', 'intent_actor', 'intent_reason', 'intent_at', 'start_intent_position', 'restart_position', 'run_position', 'run_pid', 'run_started_at', 'run_boot_id', 'run_ended', 'last_exit_code', 'last_signal', 'where_profile'),
)
