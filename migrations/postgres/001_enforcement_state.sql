-- capgate enforcement state on PostgreSQL, version 1: the same tables as the SQLite store's
-- migrations 1 and 2, with BIGINT times (Unix seconds) and counters, plus the triggers that
-- tell every replica what changed (LISTEN capgate_changes).

CREATE TABLE kill_switches (
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at BIGINT NOT NULL,
    PRIMARY KEY (kind, target)
);

CREATE TABLE break_glass (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    user_id TEXT NOT NULL,
    agent_role TEXT,
    tool TEXT,
    reason TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    uses BIGINT NOT NULL DEFAULT 0,
    revoked_by TEXT,
    revoked_at BIGINT
);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    requester TEXT NOT NULL,
    tool TEXT NOT NULL,
    action_digest TEXT NOT NULL,
    arguments TEXT NOT NULL,
    approver_role TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    decided_by TEXT
);
CREATE INDEX approvals_tenant ON approvals (tenant, created_at);

-- Keys are JSON arrays of their fields (RunKey::encoded, IdempotencyScope::encoded).
CREATE TABLE run_usage (
    run TEXT NOT NULL,
    capability TEXT NOT NULL,
    calls BIGINT NOT NULL,
    cost BIGINT NOT NULL,
    PRIMARY KEY (run, capability)
);

CREATE TABLE idempotency_claims (
    scope TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    request_id TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    lease_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX idempotency_claims_done ON idempotency_claims (created_at) WHERE state = 'done';

-- Sequence numbers are given under a transaction lock (see PostgresStore), so that they are
-- committed in order and a replica that has applied update n has seen every update before it.
CREATE TABLE relationship_updates (
    seq BIGINT PRIMARY KEY,
    entities TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Change notifications: delivered to every listening replica when the transaction commits.
-- The payload names the in-memory view to reload; it carries no data.
CREATE FUNCTION capgate_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('capgate_changes', TG_ARGV[0]);
    RETURN NULL;
END
$$;

CREATE TRIGGER kill_switches_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kill_switches
    FOR EACH STATEMENT EXECUTE FUNCTION capgate_notify_change('kill_switches');

-- A grant's use count changes on every break-glass call and is not part of the view.
CREATE TRIGGER break_glass_changed
    AFTER INSERT OR DELETE OR TRUNCATE
       OR UPDATE OF tenant, user_id, agent_role, tool, expires_at, revoked_by, revoked_at
    ON break_glass
    FOR EACH STATEMENT EXECUTE FUNCTION capgate_notify_change('grants');

CREATE TRIGGER relationship_updates_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON relationship_updates
    FOR EACH STATEMENT EXECUTE FUNCTION capgate_notify_change('relationships');
