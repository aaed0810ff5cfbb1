//! The embedded store: one SQLite database in the data directory, in WAL mode with
//! `synchronous = NORMAL` (commits survive a process crash; an OS crash may lose the last ones),
//! each operation in one immediate transaction. By default the gateway holds the database
//! exclusively while it runs: no file lock is taken and released per transaction (~7 `fcntl`
//! calls per call in `shared` mode, measured), and a second process on the same data directory is refused at start
//! (`[store] sqlite_locking = "shared"` lets other processes open it).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, TransactionBehavior};

use super::{
    AdmissionKeys, AdmissionRule, AdmissionState, Approval, ApprovalStatus, BreakGlassGrant,
    BudgetUsage, IdempotencyScope, KillScope, KillSwitch, RelationshipUpdate, RunKey, Settlement,
    Store, StoreError, ToolPin,
};

mod migrations;
mod rows;

use migrations::MIGRATIONS;
use rows::{approval_row, load_approval, load_claim, usage, APPROVAL_COLUMNS};

/// How the gateway holds the embedded store's file (`[store] sqlite_locking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteLocking {
    /// Held for as long as the gateway runs: no file lock per transaction, and another process
    /// (a second gateway on the same data directory) is refused at start.
    Exclusive,
    /// Locked per transaction, as SQLite does by default: other processes (the `sqlite3` shell)
    /// may open the file while the gateway runs, at ~7 `fcntl` calls per call; a writer
    /// among them holds calls up (a side effect fails closed when the store cannot commit).
    Shared,
}

/// SQLite behind a mutex: one writer at a time, which is what SQLite allows anyway.
pub struct SqliteStore {
    connection: Mutex<Connection>,
    transactions: std::sync::atomic::AtomicU64,
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Opening the store failed; a lock held by another process says so plainly, with what to do
/// in this locking mode.
fn open_error(path: &Path, locking: SqliteLocking, e: rusqlite::Error) -> StoreError {
    let busy = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    let path = path.display();
    match (busy, locking) {
        (false, _) => StoreError(format!("cannot open {path}: {e}")),
        (true, SqliteLocking::Exclusive) => StoreError(format!(
            "{path} is in use by another process (the embedded store is held by one gateway while it runs: give each gateway, stdio ones included, its own data_dir, or share PostgreSQL; to let other tools such as the sqlite3 shell open the file, set [store] sqlite_locking = \"shared\"): {e}"
        )),
        (true, SqliteLocking::Shared) => StoreError(format!(
            "{path} stayed locked by another process for more than 1.5 s (a gateway that holds it exclusively, or a long write): stop that process, or give this gateway its own data_dir: {e}"
        )),
    }
}

impl SqliteStore {
    /// Opens (creating and migrating) `<data_dir>/capgate.db` in WAL mode, held exclusively.
    #[cfg(test)]
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, SqliteLocking::Exclusive)
    }

    /// Opens (creating and migrating) `<data_dir>/capgate.db` in WAL mode, locked as `locking`
    /// says.
    pub fn open_with(data_dir: &Path, locking: SqliteLocking) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("capgate.db");
        let mut connection = Connection::open(&path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        // Exclusive before WAL: the WAL index lives in this process's memory, not in a shared
        // `-shm` file locked around every transaction. The store is one process's by design
        // (several replicas share PostgreSQL); another process on this file is refused here.
        let mode = match locking {
            SqliteLocking::Exclusive => "EXCLUSIVE",
            SqliteLocking::Shared => "NORMAL",
        };
        connection
            .pragma_update(None, "locking_mode", mode)
            .map_err(failed)?;
        connection
            .busy_timeout(std::time::Duration::from_millis(1500))
            .map_err(failed)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error(&path, locking, e))?;
        // WAL + NORMAL: every commit survives a crash or SIGKILL of the gateway; only an OS
        // crash or power loss can lose the last commits. FULL would fsync every call (~0.5 ms).
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(failed)?;
        migrate(&mut connection, &path, locking)?;
        // Every statement is prepared once and reused (the hot path runs a few per call).
        connection.set_prepared_statement_cache_capacity(64);
        Ok(Self {
            connection: Mutex::new(connection),
            transactions: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Runs `work` on the connection. Store work is short (well under a millisecond): with the
    /// connection free (the common case) it runs right here. Only waiting for the connection
    /// hands, on the multi-threaded runtime, the worker's other tasks to another thread first
    /// (`block_in_place` for every transaction cost a thread hand-off per call, and threads).
    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.transactions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let poisoned = || StoreError("the store's connection lock is poisoned".into());
        match self.connection.try_lock() {
            Ok(mut connection) => return work(&mut connection).map_err(failed),
            Err(std::sync::TryLockError::Poisoned(_)) => return Err(poisoned()),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
        let run = || {
            let mut connection = self.connection.lock().map_err(|_| poisoned())?;
            work(&mut connection).map_err(failed)
        };
        let in_place = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        if in_place {
            tokio::task::block_in_place(run)
        } else {
            run()
        }
    }
}

fn migrate(
    connection: &mut Connection,
    path: &Path,
    locking: SqliteLocking,
) -> Result<(), StoreError> {
    let applied: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| open_error(path, locking, e))?;
    for (index, migration) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        if version <= applied {
            continue;
        }
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| open_error(path, locking, e))?;
        tx.execute_batch(migration)
            .map_err(|e| StoreError(format!("store migration {version} failed: {e}")))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn transactions(&self) -> u64 {
        self.transactions.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn open_grant(&self, grant: &BreakGlassGrant) -> Result<(), StoreError> {
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

    async fn grants(&self) -> Result<Vec<BreakGlassGrant>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare_cached(
                "SELECT id, tenant, user, agent_role, tool, reason, opened_by, opened_at, expires_at, uses, revoked_by, revoked_at
                 FROM break_glass ORDER BY opened_at, id",
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
                    revoked_by: row.get(10)?,
                    revoked_at: row.get(11)?,
                })
            })?;
            rows.collect()
        })
    }

    async fn record_grant_use(&self, id: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("UPDATE break_glass SET uses = uses + 1 WHERE id = ?1")?
                .execute(params![id])
                .map(|_| ())
        })
    }

    async fn revoke_grant(&self, id: &str, by: &str, at: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "UPDATE break_glass SET revoked_by = ?2, revoked_at = ?3
                 WHERE id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![id, by, at])
            .map(|n| n > 0)
        })
    }

    async fn create_approval(&self, approval: &Approval) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached(
                &format!("INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
            )?
            .execute(params![
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
                approval.decided_by,
                approval.note
            ])
            .map(|_| ())
        })
    }

    async fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.with(|c| load_approval(c, id))
    }

    async fn approvals(&self, tenant: &str) -> Result<Vec<Approval>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE tenant = ?1 ORDER BY created_at, id"
            ))?;
            let rows = statement.query_map(params![tenant], approval_row)?;
            rows.collect()
        })
    }

    async fn pending_approval_count(&self, now: i64) -> Result<u64, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT COUNT(*) FROM approvals WHERE status = 'pending' AND expires_at > ?1",
            )?
            .query_row(params![now], |row| row.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
        })
    }

    async fn decide_approval(
        &self,
        id: &str,
        expected: ApprovalStatus,
        status: ApprovalStatus,
        decided_by: &str,
        note: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "UPDATE approvals SET status = ?3, decided_by = ?4, note = ?5 WHERE id = ?1 AND status = ?2",
            )?
            .execute(params![id, expected.as_str(), status.as_str(), decided_by, note])
            .map(|n| n > 0)
        })
    }

    async fn tool_pins(&self) -> Result<Vec<ToolPin>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare_cached(
                "SELECT server, tool, digest, definition, pinned_by, pinned_at FROM tool_pins ORDER BY server, tool",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(ToolPin {
                    server: row.get(0)?,
                    tool: row.get(1)?,
                    digest: row.get(2)?,
                    definition: row.get(3)?,
                    pinned_by: row.get(4)?,
                    pinned_at: row.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    async fn pin_tool(&self, pin: &ToolPin, replace: bool) -> Result<bool, StoreError> {
        let sql = if replace {
            "INSERT INTO tool_pins (server, tool, digest, definition, pinned_by, pinned_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (server, tool) DO UPDATE
             SET digest = ?3, definition = ?4, pinned_by = ?5, pinned_at = ?6"
        } else {
            "INSERT INTO tool_pins (server, tool, digest, definition, pinned_by, pinned_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (server, tool) DO NOTHING"
        };
        self.with(|c| {
            c.prepare_cached(sql)?
                .execute(params![
                    pin.server,
                    pin.tool,
                    pin.digest,
                    pin.definition,
                    pin.pinned_by,
                    pin.pinned_at
                ])
                .map(|n| n > 0)
        })
    }

    async fn kill_switches(&self) -> Result<Vec<KillSwitch>, StoreError> {
        self.with(|c| {
            let mut statement = c.prepare_cached(
                "SELECT kind, target, tenant, reason, set_by, set_at FROM kill_switches ORDER BY set_at",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            })?;
            let mut switches = Vec::new();
            for row in rows {
                let (kind, target, tenant, reason, set_by, set_at) = row?;
                // An unreadable kind stops everything rather than nothing.
                let (scope, tenant) = match KillScope::from_parts(&kind, target) {
                    Some(scope) => (scope, tenant),
                    None => (KillScope::Global, None),
                };
                switches.push(KillSwitch {
                    scope,
                    tenant,
                    reason,
                    set_by,
                    set_at,
                });
            }
            Ok(switches)
        })
    }

    async fn set_kill_switch(&self, switch: &KillSwitch) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO kill_switches (kind, target, tenant, reason, set_by, set_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (kind, target, ifnull(tenant, ''), tenant IS NULL)
                 DO UPDATE SET reason = ?4, set_by = ?5, set_at = ?6",
            )?
            .execute(params![
                switch.scope.kind(),
                switch.scope.target(),
                switch.tenant,
                switch.reason,
                switch.set_by,
                switch.set_at
            ])
            .map(|_| ())
        })
    }

    async fn lift_kill_switch(
        &self,
        scope: &KillScope,
        tenant: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "DELETE FROM kill_switches WHERE kind = ?1 AND target = ?2 AND tenant IS ?3",
            )?
            .execute(params![scope.kind(), scope.target(), tenant])
            .map(|n| n > 0)
        })
    }

    async fn budget_usage(
        &self,
        run: &RunKey,
        capability: &str,
    ) -> Result<BudgetUsage, StoreError> {
        let run = run.encoded();
        self.with(|c| usage(c, &run, capability))
    }

    async fn admit(
        &self,
        keys: &AdmissionKeys,
        rule: &mut AdmissionRule<'_>,
    ) -> Result<BudgetUsage, StoreError> {
        let run = keys.run.encoded();
        let scope = keys.idempotency.as_ref().map(IdempotencyScope::encoded);
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if scope.is_some() {
                tx.prepare_cached(
                    "DELETE FROM idempotency_claims WHERE created_at < ?1 AND state = 'done'",
                )?
                .execute(params![keys.forget_before])?;
            }
            let state = AdmissionState {
                usage: usage(&tx, &run, &keys.capability)?,
                idempotency: match &scope {
                    Some(scope) => load_claim(&tx, scope)?,
                    None => None,
                },
                approval: match &keys.approval {
                    Some(id) => load_approval(&tx, id)?,
                    None => None,
                },
            };
            let writes = rule(&state);
            if let Some(cost) = writes.debit {
                tx.prepare_cached(
                    "INSERT INTO run_usage (run, capability, calls, cost) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT (run, capability) DO UPDATE SET calls = calls + 1, cost = cost + ?3",
                )?
                .execute(params![run, keys.capability, cost as i64])?;
            }
            if let (Some(claim), Some(scope)) = (&writes.claim, &scope) {
                tx.prepare_cached(
                    "INSERT INTO idempotency_claims (scope, fingerprint, request_id, state, result, lease_until, created_at)
                     VALUES (?1, ?2, ?3, 'in_flight', NULL, ?4, ?5)
                     ON CONFLICT (scope) DO UPDATE SET fingerprint = ?2, request_id = ?3,
                        state = 'in_flight', result = NULL, lease_until = ?4, created_at = ?5",
                )?
                .execute(params![
                    scope,
                    claim.fingerprint,
                    claim.request_id,
                    claim.lease_until,
                    claim.created_at
                ])?;
            }
            if let (true, Some(id)) = (writes.consume_approval, &keys.approval) {
                tx.prepare_cached("UPDATE approvals SET status = 'consumed' WHERE id = ?1")?
                    .execute(params![id])?;
            }
            // Inside the immediate transaction nothing else changed the run: the usage after
            // is the usage before plus the debit just written.
            let mut after = state.usage;
            if let Some(cost) = writes.debit {
                after.calls = after.calls.saturating_add(1);
                after.tool_calls = after.tool_calls.saturating_add(1);
                after.cost = after.cost.saturating_add(cost);
            }
            tx.commit()?;
            Ok(after)
        })
    }

    async fn settle(
        &self,
        scope: &IdempotencyScope,
        settlement: &Settlement,
    ) -> Result<(), StoreError> {
        let scope = scope.encoded();
        self.with(|c| match settlement {
            Settlement::Completed(result) => c
                .prepare_cached(
                    "UPDATE idempotency_claims SET state = 'done', result = ?2 WHERE scope = ?1",
                )?
                .execute(params![scope, result])
                .map(|_| ()),
            Settlement::Released => c
                .prepare_cached(
                    "DELETE FROM idempotency_claims WHERE scope = ?1 AND state = 'in_flight'",
                )?
                .execute(params![scope])
                .map(|_| ()),
        })
    }

    async fn relationship_updates(&self) -> Result<Vec<RelationshipUpdate>, StoreError> {
        self.relationship_updates_after(0).await
    }

    async fn relationship_updates_after(
        &self,
        after: i64,
    ) -> Result<Vec<RelationshipUpdate>, StoreError> {
        let rows: Vec<(i64, String, String, i64)> = self.with(|c| {
            let mut statement = c.prepare_cached(
                "SELECT seq, entities, updated_by, updated_at FROM relationship_updates WHERE seq > ?1 ORDER BY seq",
            )?;
            let rows = statement.query_map(params![after], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(seq, entities, by, at)| {
                let entities = serde_json::from_str(&entities).map_err(|e| {
                    StoreError(format!("relationship update {seq} is unreadable: {e}"))
                })?;
                Ok(RelationshipUpdate {
                    seq,
                    entities,
                    by,
                    at,
                })
            })
            .collect()
    }

    async fn append_relationship_update(
        &self,
        entities: &[serde_json::Value],
        by: &str,
        at: i64,
    ) -> Result<i64, StoreError> {
        let text = serde_json::Value::Array(entities.to_vec()).to_string();
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO relationship_updates (entities, updated_by, updated_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![text, by, at])?;
            Ok(c.last_insert_rowid())
        })
    }
}

#[cfg(test)]
mod tests;
