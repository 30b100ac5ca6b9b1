"""On PostgreSQL, a host's credentials can harm no other host beyond the documented intents.

Revision ID: 0007_fleet_host_roles
Revises: 0006_gateway_reports
Create Date: 2026-12-08

Before this revision every host of a fleet logged in as one writer role that
could UPDATE ``profile_projection`` directly: move another host's profile to
itself (its slot moved, its gateway started there), and record another host's
gateway exits (five of them tripped that host's breaker). Now (docs/fleet.md,
"Roles"; docs/reliability.md, "A fleet host's credentials"):

- ``fleet_hosts`` binds each host's own login role to its host id. Rows are the
  owner's to write (the operator runs docs/fleet.md's per-host SQL).
- ``events_project``, an AFTER INSERT trigger that runs as the owner (SECURITY
  DEFINER), is the only writer of ``profile_projection``: it folds each new
  event into its profile's row, as ``hermes_lifecycle.fold.apply`` does, so the
  writer role needs no INSERT or UPDATE on the projection, and a row can only
  change with an event that explains it. It also refuses what no host may do:
  an event whose ``host`` is not the session's role's (a role bound to no host
  appends nothing, unless it is the owner's or a superuser's), a supervisor's
  or a gateway's event (a gateway's start, exit or report) of a profile of
  another host, and any event the stream rules refuse (a writer that skips
  the recorder).
- ``append_lock(wait_ms)`` (SECURITY DEFINER) takes the append lock for the
  recorder: a session that holds it and is not appending (idle, or idle in its
  transaction for a while, or in a transaction older than any append takes) is
  ended, so one writer cannot stop every host's appends by holding the lock.
  It sees and ends such a session because the owner is granted each host's
  role (docs/fleet.md).

A revision that adds a projection column, an event type or an actor must
replace ``events_project`` with one that knows it (doctor reads the newest
definition of each function from the revisions;
tests/test_pg_fleet_security.py compares its table of who appends what with
``fold.ALLOWED``). On SQLite nothing changes: a file is one host's, written by
one uid, with no roles; its projection stays written by the recorder.
"""

from alembic import op

revision = "0007_fleet_host_roles"
down_revision = "0006_gateway_reports"
branch_labels = None
depends_on = None

HOSTS = (
    """CREATE TABLE fleet_hosts (
    role text PRIMARY KEY,
    host text NOT NULL CONSTRAINT ck_fleet_hosts_host CHECK (length(host) BETWEEN 1 AND 200)
)""",
)

# The fold of hermes_lifecycle/fold.py, on the database's side. The Python fold runs first in
# the recorder (it decides what to append and says why it refuses); this one writes the row.
# tests/test_pg_fleet_security.py folds a log through every branch and doctor compares the rows
# with the Python fold, as it does on every run.
PROJECT = (
    """CREATE FUNCTION events_project() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    bound text;
    prior profile_projection%ROWTYPE;
    had_row boolean;
    next profile_projection%ROWTYPE;
    run bigint;
BEGIN
    -- The host is the session's role's, never the client's word for it.
    SELECT h.host INTO bound FROM fleet_hosts h WHERE h.role = session_user;
    IF bound IS NULL THEN
        IF NOT pg_catalog.pg_has_role(session_user, current_user, 'MEMBER') THEN
            RAISE EXCEPTION 'role % is bound to no host (fleet_hosts): it appends nothing', session_user
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSIF NEW.host IS DISTINCT FROM bound THEN
        RAISE EXCEPTION 'role % appends as host %, not as host %', session_user, bound, NEW.host
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT (CASE NEW.type
        WHEN 'created' THEN NEW.actor IN ('cli', 'import', 'boot', 'api', 'hermes-agent')
            AND NEW.desired IS NOT DISTINCT FROM 'down'
        WHEN 'started' THEN (NEW.actor IN ('cli', 'import', 'api', 'hermes-agent') AND NEW.desired IS NOT DISTINCT FROM 'up')
            OR (NEW.actor = 'supervisor' AND NEW.desired IS NULL)
        WHEN 'crashed' THEN NEW.actor = 'supervisor' AND NEW.desired IS NULL
        WHEN 'stopped' THEN (NEW.actor IN ('cli', 'api', 'hermes-agent') AND NEW.desired IS NOT DISTINCT FROM 'down')
            OR (NEW.actor = 'supervisor' AND (NEW.desired IS NULL
                OR (NEW.desired = 'down' AND coalesce(NEW.reason, '') <> '')))
        WHEN 'deleted' THEN NEW.actor IN ('cli', 'api', 'hermes-agent') AND NEW.desired IS NOT DISTINCT FROM 'down'
        WHEN 'reported' THEN NEW.actor = 'gateway' AND NEW.desired IS NULL AND coalesce(NEW.reason, '') <> ''
        ELSE false
    END) THEN
        RAISE EXCEPTION 'actor % does not append % events with desired %', NEW.actor, NEW.type,
            coalesce(NEW.desired, 'none') USING ERRCODE = 'check_violation';
    END IF;
    SELECT * INTO prior FROM profile_projection p WHERE p.profile = NEW.profile;
    had_row := FOUND;
    IF NEW.version <> coalesce(prior.version, 0) + 1 THEN
        RAISE EXCEPTION 'profile % is at version %, not %', NEW.profile, coalesce(prior.version, 0), NEW.version - 1
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.type = 'created' THEN
        IF had_row AND NOT prior.deleted THEN
            RAISE EXCEPTION 'profile % exists already', NEW.profile USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.profile !~ '^[a-z0-9][a-z0-9_-]{0,63}$' OR NEW.profile IN ('hermes', 'test', 'tmp', 'root', 'sudo') THEN
            RAISE EXCEPTION 'profile name % may not be created', pg_catalog.quote_literal(NEW.profile)
                USING ERRCODE = 'check_violation';
        END IF;
        next.profile := NEW.profile;
        next.deleted := false;
        next.desired := 'down';
        next.created_position := NEW.position;
        next.run_ended := false;
        next.host := NEW.host;
        -- A name's crashes are counted over all its lives.
        next.crashes := coalesce(prior.crashes, 0);
        next.last_crash_position := prior.last_crash_position;
        next.last_report_position := prior.last_report_position;
    ELSE
        IF NOT had_row THEN
            RAISE EXCEPTION 'no profile named %', NEW.profile USING ERRCODE = 'check_violation';
        END IF;
        IF prior.deleted THEN
            RAISE EXCEPTION 'profile % was deleted', NEW.profile USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.type = 'deleted' AND NEW.profile = 'default' THEN
            RAISE EXCEPTION 'the default profile cannot be deleted' USING ERRCODE = 'check_violation';
        END IF;
        -- A gateway's start, exits and reports are its own host's to record: another host's
        -- would move its breaker, end its runs, or say it is what it is not.
        IF NEW.actor IN ('supervisor', 'gateway') AND NEW.host IS DISTINCT FROM prior.host THEN
            RAISE EXCEPTION 'profile % is host %''s: host % records no gateway start, exit or report of it',
                NEW.profile, prior.host, NEW.host USING ERRCODE = 'HS001';
        END IF;
        next := prior;
    END IF;
    next.version := NEW.version;
    next.last_position := NEW.position;
    next.last_type := NEW.type;
    next.last_actor := NEW.actor;
    next.last_reason := NEW.reason;
    next.last_at := NEW.occurred_at;
    IF NEW.desired IS NOT NULL THEN
        next.desired := NEW.desired;
        next.intent_position := NEW.position;
        next.intent_actor := NEW.actor;
        next.intent_reason := NEW.reason;
        next.intent_at := NEW.occurred_at;
        IF NEW.type = 'started' THEN
            next.start_intent_position := NEW.position;
            IF NEW.reason = 'restart' THEN
                next.restart_position := NEW.position;
            END IF;
        END IF;
    END IF;
    IF NEW.type = 'crashed' THEN
        next.crashes := prior.crashes + 1;
        next.last_crash_position := NEW.position;
    ELSIF NEW.type = 'deleted' THEN
        next.deleted := true;
        next.run_ended := prior.run_position IS NOT NULL;
    ELSIF NEW.type = 'reported' THEN
        next.last_report_position := NEW.position;
    END IF;
    IF NEW.actor = 'supervisor' AND NEW.type = 'started' THEN
        next.run_position := NEW.position;
        next.run_pid := NEW.pid;
        next.run_started_at := NEW.occurred_at;
        next.run_boot_id := NEW.boot_id;
        next.run_ended := false;
    ELSIF NEW.actor = 'supervisor' THEN
        IF NEW.exit_code IS NOT NULL OR NEW.signal IS NOT NULL THEN
            next.last_exit_code := NEW.exit_code;
            next.last_signal := NEW.signal;
        END IF;
        -- data.run, when it is an integer (Event.run): the exit ends the run it names, if that one is going.
        IF pg_catalog.jsonb_typeof(NEW.data::jsonb -> 'run') = 'number'
           AND (NEW.data::jsonb ->> 'run') ~ '^-?[0-9]{1,18}$' THEN
            run := (NEW.data::jsonb ->> 'run')::bigint;
            IF run = prior.run_position AND NOT prior.run_ended THEN
                next.run_ended := true;
            END IF;
        END IF;
    END IF;
    IF had_row THEN
        UPDATE profile_projection SET version = next.version, deleted = next.deleted, desired = next.desired,
            created_position = next.created_position, last_position = next.last_position,
            last_type = next.last_type, last_actor = next.last_actor, last_reason = next.last_reason,
            last_at = next.last_at, intent_position = next.intent_position, intent_actor = next.intent_actor,
            intent_reason = next.intent_reason, intent_at = next.intent_at,
            start_intent_position = next.start_intent_position, restart_position = next.restart_position,
            run_position = next.run_position, run_pid = next.run_pid, run_started_at = next.run_started_at,
            run_boot_id = next.run_boot_id, run_ended = next.run_ended, last_exit_code = next.last_exit_code,
            last_signal = next.last_signal, host = next.host, crashes = next.crashes,
            last_crash_position = next.last_crash_position, last_report_position = next.last_report_position
        WHERE profile = NEW.profile;
    ELSE
        INSERT INTO profile_projection VALUES (next.*);
    END IF;
    RETURN NULL;
END
$$""",
    "CREATE TRIGGER events_project AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_project()",
)

# The append lock (recorder.APPEND_LOCK, which events_serialize also takes), taken for the
# recorder. A holder that is not appending any more is ended: idle outside a transaction (a
# session-level lock: no append holds one), idle in its transaction for over 2 s (an append runs
# its statements back to back), or in a transaction over 60 s old (an append's, its wait for the
# lock included, takes the busy timeout and a few statements). pg_locks and pg_stat_activity are
# not one snapshot, so the holders are read first, at `seen`, and the sessions after (their
# cached copy cleared): a session idle since before `seen` was idle while it held the lock then,
# never an append that has just committed. The wait is in slices of 100 ms on the lock's own
# queue, so waiters keep their order, and an append that waits less than a slice (any honest
# contention) never reads pg_locks at all.
APPEND_LOCK = (
    """CREATE FUNCTION append_lock(wait_ms integer) RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    deadline timestamptz := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => wait_ms / 1000.0);
    caller_timeout text := pg_catalog.current_setting('lock_timeout');
    seen timestamptz;
    holders integer[];
BEGIN
    IF pg_catalog.pg_try_advisory_xact_lock(1751478902::bigint) THEN
        RETURN;
    END IF;
    LOOP
        BEGIN
            PERFORM pg_catalog.set_config('lock_timeout', least(100, greatest(1,
                (extract(epoch FROM deadline - pg_catalog.clock_timestamp()) * 1000)::integer))::text, true);
            PERFORM pg_catalog.pg_advisory_xact_lock(1751478902::bigint);
            PERFORM pg_catalog.set_config('lock_timeout', caller_timeout, true);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            NULL;  -- a slice went by: look at the holder
        END;
        IF pg_catalog.clock_timestamp() >= deadline THEN
            RAISE EXCEPTION 'the append lock is held by another session past % ms', wait_ms
                USING ERRCODE = 'lock_not_available';
        END IF;
        seen := pg_catalog.clock_timestamp();
        SELECT pg_catalog.array_agg(l.pid) INTO holders FROM pg_catalog.pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0::oid AND l.objid = 1751478902::oid
           AND l.objsubid = 1 AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                                 WHERE d.datname = pg_catalog.current_database());
        PERFORM pg_catalog.pg_stat_clear_snapshot();
        PERFORM pg_catalog.pg_terminate_backend(a.pid) FROM pg_catalog.pg_stat_activity a
          WHERE a.pid = ANY (holders) AND a.pid <> pg_catalog.pg_backend_pid()
            -- Only sessions the owner may end (its hosts' roles: docs/fleet.md), never a superuser's.
            AND pg_catalog.pg_has_role(a.usesysid, 'USAGE')
            AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = a.usesysid)
            AND ((a.state = 'idle' AND a.state_change < seen)
                 OR (a.state LIKE 'idle in transaction%' AND a.state_change < seen - interval '2 seconds')
                 OR a.xact_start < seen - interval '60 seconds');
    END LOOP;
END
$$""",
    "REVOKE ALL ON FUNCTION append_lock(integer) FROM PUBLIC",
)

DEFINERS = ("events_project()", "append_lock(integer)")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # one file, one host, one uid: nothing to bind (the docstring says why)
    for statement in (*HOSTS, *PROJECT, *APPEND_LOCK):
        op.execute(statement)
    # A SECURITY DEFINER function resolves names in the store's schema only, then pg_catalog's
    # built-ins first and a session's temporary objects last (never in their place).
    schema = bind.exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    for function in DEFINERS:
        op.execute(f"ALTER FUNCTION {function} SET search_path = pg_catalog, {schema}, pg_temp")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION append_lock(integer)")
    op.execute("DROP TRIGGER events_project ON events")
    op.execute("DROP FUNCTION events_project()")
    op.execute("DROP TABLE fleet_hosts")
