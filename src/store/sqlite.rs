//! The embedded store: one SQLite database in the data directory, in WAL mode, each
//! check-and-change in one immediate transaction.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    BudgetDebit, BudgetLimits, BudgetUsage, IdempotencyClaim, IdempotencyScope, KillScope,
    KillSwitch, Store, StoreError,
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
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(failed)?;
        connection
            .busy_timeout(std::time::Duration::from_millis(1500))
            .map_err(failed)?;
        connection.execute_batch(SCHEMA).map_err(failed)?;
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
            c.execute(
                "INSERT INTO kill_switches (kind, target, reason, set_by, set_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, target) DO UPDATE SET reason = ?3, set_by = ?4, set_at = ?5",
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
            c.execute(
                "DELETE FROM kill_switches WHERE kind = ?1 AND target = ?2",
                params![scope.kind(), scope.target()],
            )
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
            tx.execute(
                "INSERT INTO run_budgets (run, tool, calls, cost) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT (run, tool) DO UPDATE SET calls = calls + 1, cost = cost + ?3",
                params![run, tool, cost as i64],
            )?;
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
            tx.execute(
                "DELETE FROM idempotency WHERE created_at < ?1 AND state = 'done'",
                params![now - retain_secs],
            )?;
            let existing: Option<(String, String, Option<String>)> = tx
                .query_row(
                    "SELECT fingerprint, state, result FROM idempotency
                     WHERE tenant = ?1 AND actor = ?2 AND tool = ?3 AND key = ?4",
                    params![scope.tenant, scope.actor, scope.tool, scope.key],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let claim = match existing {
                None => {
                    tx.execute(
                        "INSERT INTO idempotency (tenant, actor, tool, key, fingerprint, state, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'in_flight', ?6)",
                        params![scope.tenant, scope.actor, scope.tool, scope.key, fingerprint, now],
                    )?;
                    IdempotencyClaim::Claimed
                }
                Some((stored, _, _)) if stored != fingerprint => IdempotencyClaim::Mismatch,
                Some((_, state, Some(result))) if state == "done" => IdempotencyClaim::Replay(result),
                Some(_) => IdempotencyClaim::InFlight,
            };
            tx.commit()?;
            Ok(claim)
        })
    }

    fn complete_idempotency(
        &self,
        scope: &IdempotencyScope,
        result: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE idempotency SET state = 'done', result = ?5
                 WHERE tenant = ?1 AND actor = ?2 AND tool = ?3 AND key = ?4",
                params![scope.tenant, scope.actor, scope.tool, scope.key, result],
            )
            .map(|_| ())
        })
    }

    fn release_idempotency(&self, scope: &IdempotencyScope) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM idempotency WHERE tenant = ?1 AND actor = ?2 AND tool = ?3 AND key = ?4 AND state = 'in_flight'",
                params![scope.tenant, scope.actor, scope.tool, scope.key],
            )
            .map(|_| ())
        })
    }
}

fn usage(c: &Connection, run: &str, tool: &str) -> rusqlite::Result<BudgetUsage> {
    let (calls, cost): (i64, i64) = c.query_row(
        "SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(cost), 0) FROM run_budgets WHERE run = ?1",
        params![run],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let tool_calls: i64 = c
        .query_row(
            "SELECT calls FROM run_budgets WHERE run = ?1 AND tool = ?2",
            params![run, tool],
            |row| row.get(0),
        )
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
