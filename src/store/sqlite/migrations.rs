//! The SQLite store's schema, one migration per version (`PRAGMA user_version` counts them).

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the first wave's tables.
    r#"
CREATE TABLE IF NOT EXISTS kill_switches (
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at INTEGER NOT NULL,
    PRIMARY KEY (kind, target)
);
CREATE TABLE IF NOT EXISTS break_glass (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    user TEXT NOT NULL,
    agent_role TEXT,
    tool TEXT,
    reason TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    uses INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    requester TEXT NOT NULL,
    tool TEXT NOT NULL,
    action_digest TEXT NOT NULL,
    arguments TEXT NOT NULL,
    approver_role TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    decided_by TEXT
);
"#,
    // 2: structured scope keys (the first wave's joined-string tables are dropped: their keys
    // were ambiguous), claim leases, grant revocation, durable relationship updates.
    r#"
DROP TABLE IF EXISTS run_budgets;
DROP TABLE IF EXISTS idempotency;
CREATE TABLE run_usage (
    run TEXT NOT NULL,
    capability TEXT NOT NULL,
    calls INTEGER NOT NULL,
    cost INTEGER NOT NULL,
    PRIMARY KEY (run, capability)
);
CREATE TABLE idempotency_claims (
    scope TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    request_id TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    lease_until INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX idempotency_claims_created ON idempotency_claims (created_at);
ALTER TABLE break_glass ADD COLUMN revoked_by TEXT;
ALTER TABLE break_glass ADD COLUMN revoked_at INTEGER;
CREATE TABLE relationship_updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entities TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
"#,
    // 3: tenant-qualified kill switches. The tenant a switch is limited to (NULL: every tenant)
    // is part of its key; a tenant switch is limited to its own tenant. Existing switches keep
    // covering every tenant.
    r#"
CREATE TABLE kill_switches_v3 (
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    tenant TEXT,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at INTEGER NOT NULL
);
INSERT INTO kill_switches_v3 (kind, target, tenant, reason, set_by, set_at)
    SELECT kind, target, CASE kind WHEN 'tenant' THEN target END, reason, set_by, set_at
    FROM kill_switches;
DROP TABLE kill_switches;
ALTER TABLE kill_switches_v3 RENAME TO kill_switches;
CREATE UNIQUE INDEX kill_switches_key
    ON kill_switches (kind, target, ifnull(tenant, ''), tenant IS NULL);
"#,
    // 4: tool-definition pins (the digest first seen, or as an admin accepted it).
    r#"
CREATE TABLE tool_pins (
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    digest TEXT NOT NULL,
    definition TEXT NOT NULL,
    pinned_by TEXT NOT NULL,
    pinned_at INTEGER NOT NULL,
    PRIMARY KEY (server, tool)
);
"#,
    // 5: what an approver wrote with the decision.
    "ALTER TABLE approvals ADD COLUMN note TEXT;",
];
