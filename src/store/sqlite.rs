//! The embedded store: one SQLite database in the data directory, in WAL mode with
//! `synchronous = NORMAL` (commits survive a process crash; an OS crash may lose the last ones),
//! each check-and-change in one immediate transaction.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    Approval, ApprovalProblem, ApprovalStatus, BreakGlassGrant, BudgetDebit, BudgetLimits,
    BudgetUsage, IdempotencyClaim, IdempotencyScope, KillScope, KillSwitch, Store, StoreError,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kill_switches (
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at INTEGER NOT NULL,
    PRIMARY KEY (kind, target)
);
CREATE TABLE IF NOT EXISTS run_budgets (
    run TEXT NOT NULL,
    tool TEXT NOT NULL,
    calls INTEGER NOT NULL,
    cost INTEGER NOT NULL,
    PRIMARY KEY (run, tool)
);
CREATE TABLE IF NOT EXISTS idempotency (
    tenant TEXT NOT NULL,
    actor TEXT NOT NULL,
    tool TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, actor, tool, key)
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
"#;

/// SQLite behind a mutex: one writer at a time, which is what SQLite allows anyway.
pub struct SqliteStore {
    connection: Mutex<Connection>,
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteStore {
    /// Opens (creating) `<data_dir>/capgate.db` in WAL mode.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("capgate.db");
        let connection = Connection::open(&path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(failed)?;
        // WAL + NORMAL: every commit survives a crash or SIGKILL of the gateway; only an OS
        // crash or power loss can lose the last commits. FULL would fsync every call (~0.5 ms).
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(failed)?;
        connection
            .busy_timeout(std::time::Duration::from_millis(1500))
            .map_err(failed)?;
        connection.execute_batch(SCHEMA).map_err(failed)?;
        // Every statement is prepared once and reused (the hot path runs a few per call).
        connection.set_prepared_statement_cache_capacity(64);
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut connection = self
            .connection
            .lock()
            .map_err(|_| StoreError("the store's connection lock is poisoned".into()))?;
        work(&mut connection).map_err(failed)
    }
}

impl Store for SqliteStore {
    fn open_grant(&self, grant: &BreakGlassGrant) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("INSERT INTO break_glass (id, tenant, user, agent_role, tool, reason, opened_by, opened_at, expires_at, uses)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)")?.execute(
                params![
                    grant.id,
                    grant.tenant,
                    grant.user,
                    grant.agent_role,
                    grant.tool,
                    grant.reason,
                    grant.opened_by,
                    grant.opened_at,
                    grant.expires_at
                ],
            )
            .map(|_| ())
        })
    }

    fn grants(&self) -> Result<Vec<BreakGlassGrant>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT id, tenant, user, agent_role, tool, reason, opened_by, opened_at, expires_at, uses
                 FROM break_glass ORDER BY opened_at",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(BreakGlassGrant {
                    id: row.get(0)?,
                    tenant: row.get(1)?,
                    user: row.get(2)?,
                    agent_role: row.get(3)?,
                    tool: row.get(4)?,
                    reason: row.get(5)?,
                    opened_by: row.get(6)?,
                    opened_at: row.get(7)?,
                    expires_at: row.get(8)?,
                    uses: row.get(9)?,
                })
            })?;
            rows.collect()
        })
    }

    fn record_grant_use(&self, id: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("UPDATE break_glass SET uses = uses + 1 WHERE id = ?1")?
                .execute(params![id])
                .map(|_| ())
        })
    }

    fn create_approval(&self, approval: &Approval) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
                params![
                    approval.id,
                    approval.tenant,
                    approval.requester,
                    approval.tool,
                    approval.action_digest,
                    approval.arguments,
                    approval.approver_role,
                    approval.policy_version,
                    approval.created_at,
                    approval.expires_at,
                    approval.status.as_str(),
                    approval.decided_by
                ],
            )
            .map(|_| ())
        })
    }

    fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.with(|c| load_approval(c, id))
    }

    fn approvals(&self, tenant: &str) -> Result<Vec<Approval>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE tenant = ?1 ORDER BY created_at"
            ))?;
            let rows = statement.query_map(params![tenant], approval_row)?;
            rows.collect()
        })
    }

    fn pending_approval_count(&self, now: i64) -> Result<u64, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT COUNT(*) FROM approvals WHERE status = 'pending' AND expires_at > ?1",
            )?
            .query_row(params![now], |row| row.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
        })
    }

    fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        approver: &str,
        now: i64,
    ) -> Result<Result<Approval, ApprovalProblem>, StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(approval) = load_approval(&tx, id)? else {
                return Ok(Err(ApprovalProblem::Unknown(id.to_string())));
            };
            if approval.status != ApprovalStatus::Pending {
                return Ok(Err(ApprovalProblem::AlreadyDecided(id.to_string())));
            }
            if now >= approval.expires_at {
                return Ok(Err(ApprovalProblem::Expired(id.to_string())));
            }
            let status = if approve {
                ApprovalStatus::Approved
            } else {
                ApprovalStatus::Rejected
            };
            set_approval_status(&tx, id, status, Some(approver))?;
            let decided = load_approval(&tx, id)?;
            tx.commit()?;
            Ok(decided.ok_or_else(|| ApprovalProblem::Unknown(id.to_string())))
        })
    }

    fn consume_approval(
        &self,
        id: &str,
        tenant: &str,
        action_digest: &str,
        policy_version: &str,
        now: i64,
        idempotency: Option<(&IdempotencyScope, &str, i64)>,
    ) -> Result<Result<Option<IdempotencyClaim>, ApprovalProblem>, StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(approval) = load_approval(&tx, id)? else {
                return Ok(Err(ApprovalProblem::Unknown(id.to_string())));
            };
            let problem = approval
                .problem_for(tenant, action_digest, now)
                .or_else(|| {
                    (approval.policy_version != policy_version).then(|| {
                        ApprovalProblem::PolicyChanged {
                            id: id.to_string(),
                            granted: approval.policy_version.clone(),
                            current: policy_version.to_string(),
                        }
                    })
                });
            if let Some(problem) = problem {
                return Ok(Err(problem));
            }
            let claim = match idempotency {
                Some((scope, fingerprint, retain)) => {
                    let claim = claim_in(&tx, scope, fingerprint, now, retain)?;
                    if claim != IdempotencyClaim::Claimed {
                        // A replay or conflict does not use the approval.
                        tx.commit()?;
                        return Ok(Ok(Some(claim)));
                    }
                    Some(claim)
                }
                None => None,
            };
            set_approval_status(&tx, id, ApprovalStatus::Consumed, None)?;
            tx.commit()?;
            Ok(Ok(claim))
        })
    }

    fn kill_switches(&self) -> Result<Vec<KillSwitch>, StoreError> {
        self.with(|c| {
            let mut statement =
                c.prepare("SELECT kind, target, reason, set_by, set_at FROM kill_switches")?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })?;
            let mut switches = Vec::new();
            for row in rows {
                let (kind, target, reason, set_by, set_at) = row?;
                if let Some(scope) = KillScope::from_parts(&kind, target) {
                    switches.push(KillSwitch {
                        scope,
                        reason,
                        set_by,
                        set_at,
                    });
                }
            }
            Ok(switches)
        })
    }

    fn set_kill_switch(&self, switch: &KillSwitch) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("INSERT INTO kill_switches (kind, target, reason, set_by, set_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, target) DO UPDATE SET reason = ?3, set_by = ?4, set_at = ?5")?.execute(
                params![
                    switch.scope.kind(),
                    switch.scope.target(),
                    switch.reason,
                    switch.set_by,
                    switch.set_at
                ],
            )
            .map(|_| ())
        })
    }

    fn lift_kill_switch(&self, scope: &KillScope) -> Result<bool, StoreError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM kill_switches WHERE kind = ?1 AND target = ?2")?
                .execute(params![scope.kind(), scope.target()])
                .map(|n| n > 0)
        })
    }

    fn budget_usage(&self, run: &str, tool: &str) -> Result<BudgetUsage, StoreError> {
        self.with(|c| usage(c, run, tool))
    }

    fn debit_budget(
        &self,
        run: &str,
        tool: &str,
        cost: u64,
        limits: BudgetLimits,
    ) -> Result<BudgetDebit, StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let used = usage(&tx, run, tool)?;
            let exhausted = if used.calls + 1 > limits.max_calls {
                Some(format!(
                    "run {run} has used all {} tool calls of its budget",
                    limits.max_calls
                ))
            } else if used.tool_calls + 1 > limits.max_calls_per_tool {
                Some(format!(
                    "run {run} has used all {} calls of {tool} its budget allows",
                    limits.max_calls_per_tool
                ))
            } else if used.cost + cost > limits.max_cost {
                Some(format!(
                    "run {run} has used {} of {} cost units; {tool} costs {cost}",
                    used.cost, limits.max_cost
                ))
            } else {
                None
            };
            if let Some(reason) = exhausted {
                tx.commit()?;
                return Ok(BudgetDebit::Exhausted {
                    usage: used,
                    reason,
                });
            }
            tx.prepare_cached(
                "INSERT INTO run_budgets (run, tool, calls, cost) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT (run, tool) DO UPDATE SET calls = calls + 1, cost = cost + ?3",
            )?
            .execute(params![run, tool, cost as i64])?;
            let after = usage(&tx, run, tool)?;
            tx.commit()?;
            Ok(BudgetDebit::Debited(after))
        })
    }

    fn claim_idempotency(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        now: i64,
        retain_secs: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let claim = claim_in(&tx, scope, fingerprint, now, retain_secs)?;
            tx.commit()?;
            Ok(claim)
        })
    }

    fn completed_result(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
    ) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT result FROM idempotency
                 WHERE tenant = ?1 AND actor = ?2 AND tool = ?3 AND key = ?4
                   AND fingerprint = ?5 AND state = 'done'",
            )?
            .query_row(
                params![
                    scope.tenant,
                    scope.actor,
                    scope.tool,
                    scope.key,
                    fingerprint
                ],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
        })
    }

    fn complete_idempotency(
        &self,
        scope: &IdempotencyScope,
        result: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "UPDATE idempotency SET state = 'done', result = ?5
                 WHERE tenant = ?1 AND actor = ?2 AND tool = ?3 AND key = ?4",
            )?
            .execute(params![
                scope.tenant,
                scope.actor,
                scope.tool,
                scope.key,
                result
            ])
            .map(|_| ())
        })
    }

    fn release_idempotency(&self, scope: &IdempotencyScope) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM idempotency WHERE tenant = ?1 AND actor = ?2 AND tool = ?3 AND key = ?4 AND state = 'in_flight'")?.execute(
                params![scope.tenant, scope.actor, scope.tool, scope.key],
            )
            .map(|_| ())
        })
    }
}

fn claim_in(
    tx: &Connection,
    scope: &IdempotencyScope,
    fingerprint: &str,
    now: i64,
    retain_secs: i64,
) -> rusqlite::Result<IdempotencyClaim> {
    tx.prepare_cached("DELETE FROM idempotency WHERE created_at < ?1 AND state = 'done'")?
        .execute(params![now - retain_secs])?;
    let existing: Option<(String, String, Option<String>)> = tx
        .prepare_cached(
            "SELECT fingerprint, state, result FROM idempotency
             WHERE tenant = ?1 AND actor = ?2 AND tool = ?3 AND key = ?4",
        )?
        .query_row(
            params![scope.tenant, scope.actor, scope.tool, scope.key],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    Ok(match existing {
        None => {
            tx.prepare_cached(
                "INSERT INTO idempotency (tenant, actor, tool, key, fingerprint, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'in_flight', ?6)",
            )?
            .execute(params![
                scope.tenant,
                scope.actor,
                scope.tool,
                scope.key,
                fingerprint,
                now
            ])?;
            IdempotencyClaim::Claimed
        }
        Some((stored, _, _)) if stored != fingerprint => IdempotencyClaim::Mismatch,
        Some((_, state, Some(result))) if state == "done" => IdempotencyClaim::Replay(result),
        Some(_) => IdempotencyClaim::InFlight,
    })
}

const APPROVAL_COLUMNS: &str = "id, tenant, requester, tool, action_digest, arguments, approver_role, policy_version, created_at, expires_at, status, decided_by";

fn approval_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    let status: String = row.get(10)?;
    Ok(Approval {
        id: row.get(0)?,
        tenant: row.get(1)?,
        requester: row.get(2)?,
        tool: row.get(3)?,
        action_digest: row.get(4)?,
        arguments: row.get(5)?,
        approver_role: row.get(6)?,
        policy_version: row.get(7)?,
        created_at: row.get(8)?,
        expires_at: row.get(9)?,
        // An unreadable status is treated as used: it can never authorize a call.
        status: ApprovalStatus::parse(&status).unwrap_or(ApprovalStatus::Consumed),
        decided_by: row.get(11)?,
    })
}

fn load_approval(c: &Connection, id: &str) -> rusqlite::Result<Option<Approval>> {
    c.prepare_cached(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"
    ))?
    .query_row(params![id], approval_row)
    .optional()
}

fn set_approval_status(
    c: &Connection,
    id: &str,
    status: ApprovalStatus,
    decided_by: Option<&str>,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE approvals SET status = ?2, decided_by = COALESCE(?3, decided_by) WHERE id = ?1",
    )?
    .execute(params![id, status.as_str(), decided_by])
    .map(|_| ())
}

fn usage(c: &Connection, run: &str, tool: &str) -> rusqlite::Result<BudgetUsage> {
    let (calls, cost): (i64, i64) = c.prepare_cached("SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(cost), 0) FROM run_budgets WHERE run = ?1")?.query_row(
        params![run],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let tool_calls: i64 = c
        .prepare_cached("SELECT calls FROM run_budgets WHERE run = ?1 AND tool = ?2")?
        .query_row(params![run, tool], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    Ok(BudgetUsage {
        calls: calls.max(0) as u64,
        tool_calls: tool_calls.max(0) as u64,
        cost: cost.max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(key: &str) -> IdempotencyScope {
        IdempotencyScope {
            tenant: "acme".into(),
            actor: "alice/drafting-agent".into(),
            tool: "case__create_notice_draft".into(),
            key: key.into(),
        }
    }

    #[test]
    fn idempotency_claims_replay_and_refuse_mismatches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        let k = scope("k1");
        assert_eq!(
            store.claim_idempotency(&k, "f1", 100, 3600).expect("claim"),
            IdempotencyClaim::Claimed
        );
        assert_eq!(
            store.claim_idempotency(&k, "f1", 101, 3600).expect("claim"),
            IdempotencyClaim::InFlight
        );
        assert_eq!(
            store.claim_idempotency(&k, "f2", 101, 3600).expect("claim"),
            IdempotencyClaim::Mismatch
        );
        store
            .complete_idempotency(&k, "{\"ok\":true}")
            .expect("complete");
        assert_eq!(
            store.claim_idempotency(&k, "f1", 102, 3600).expect("claim"),
            IdempotencyClaim::Replay("{\"ok\":true}".into())
        );
        // Past the retention window the key is free again.
        assert_eq!(
            store
                .claim_idempotency(&k, "f2", 100 + 7200, 3600)
                .expect("claim"),
            IdempotencyClaim::Claimed
        );
        // A released claim can be claimed again.
        store.release_idempotency(&k).expect("release");
        assert_eq!(
            store
                .claim_idempotency(&k, "f3", 100 + 7201, 3600)
                .expect("claim"),
            IdempotencyClaim::Claimed
        );
    }

    #[test]
    fn budgets_debit_until_exhausted_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = BudgetLimits {
            max_calls: 3,
            max_calls_per_tool: 2,
            max_cost: 100,
        };
        {
            let store = SqliteStore::open(dir.path()).expect("open");
            assert!(matches!(
                store.debit_budget("r", "a", 1, limits).expect("debit"),
                BudgetDebit::Debited(_)
            ));
            assert!(matches!(
                store.debit_budget("r", "a", 1, limits).expect("debit"),
                BudgetDebit::Debited(_)
            ));
            assert!(matches!(
                store.debit_budget("r", "a", 1, limits).expect("debit"),
                BudgetDebit::Exhausted { .. }
            ));
            assert!(matches!(
                store.debit_budget("r", "b", 1, limits).expect("debit"),
                BudgetDebit::Debited(_)
            ));
        }
        let store = SqliteStore::open(dir.path()).expect("reopen");
        assert!(matches!(
            store.debit_budget("r", "c", 1, limits).expect("debit"),
            BudgetDebit::Exhausted { .. }
        ));
        assert_eq!(store.budget_usage("r", "a").expect("usage").calls, 3);
    }

    #[test]
    fn kill_switches_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SqliteStore::open(dir.path()).expect("open");
            store
                .set_kill_switch(&KillSwitch {
                    scope: KillScope::Tool("case__read_case".into()),
                    reason: "incident 42".into(),
                    set_by: "root".into(),
                    set_at: 1,
                })
                .expect("set");
        }
        let store = SqliteStore::open(dir.path()).expect("reopen");
        let switches = store.kill_switches().expect("list");
        assert_eq!(switches.len(), 1);
        assert_eq!(switches[0].reason, "incident 42");
        assert!(store
            .lift_kill_switch(&KillScope::Tool("case__read_case".into()))
            .expect("lift"));
        assert!(store.kill_switches().expect("list").is_empty());
    }
}
