//! The shared store: one PostgreSQL database used by every replica, through a pool of
//! connections (deadpool-postgres), with the same operations and the same guarantees as the
//! SQLite store.
//!
//! Admission runs at READ COMMITTED. What makes it exact across replicas is its locks, taken
//! first and in one order: a transaction-level advisory lock per run and per idempotency
//! scope (keys derived from their encoded structures, sorted), then the approval's row
//! (`SELECT … FOR UPDATE`). Every statement after them sees every admission committed before
//! them, so two calls of one run, or with one key, or using one approval, are admitted one
//! after the other, as SQLite's single writer does. Advisory locks rather than lock rows:
//! a run or a key that has no row yet has nothing to lock, and lock rows would grow a table
//! per key; transaction-level locks are released at commit or rollback, also on a pooled
//! connection.
//!
//! Rooms: `admission` (one call's transaction, settlement, sweeping old keys), `migrate` (versioned schema from `migrations/postgres/`), `listen` (the change feed:
//! LISTEN/NOTIFY into [`Change`]s).

mod admission;
mod listen;
mod migrate;
#[doc(hidden)]
pub mod test_db;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio_postgres::{NoTls, Row};
use tokio_util::sync::CancellationToken;

use super::{
    AdmissionKeys, AdmissionRule, Approval, ApprovalStatus, BreakGlassGrant, BudgetUsage, Change,
    IdempotencyScope, KillScope, KillSwitch, RelationshipUpdate, RunKey, Settlement, Store,
    StoreError, ToolPin,
};
pub(crate) use admission::lock_key;
use admission::{usage_row, USAGE};

pub use migrate::MIGRATIONS_POSTGRES;

/// Advisory lock serialising migrations (replicas starting at once).
const MIGRATION_LOCK: i64 = 0x6361_7067_6174_6501;
/// Advisory lock serialising relationship appends, so sequence numbers commit in order.
const RELATIONSHIP_LOCK: i64 = 0x6361_7067_6174_6502;

/// How to reach the database (from `[store]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    pub url: String,
    pub pool_size: usize,
    /// Longest wait for a new connection or a free pooled one; longer means unavailable.
    pub connect_timeout: Duration,
}

impl PostgresOptions {
    fn pg_config(&self) -> Result<tokio_postgres::Config, StoreError> {
        let mut config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| StoreError(format!("the store URL cannot be read: {e}")))?;
        config
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .application_name("capgate");
        Ok(config)
    }
}

/// PostgreSQL through a pool, and this replica's change feed.
pub struct PostgresStore {
    pool: Pool,
    transactions: AtomicU64,
    changes: broadcast::Sender<Change>,
    listening: Arc<AtomicBool>,
    /// Ends the change feed when the store is dropped.
    stop: CancellationToken,
    last_sweep: AtomicI64,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A store error with the driver's whole chain of causes (its `Display` alone says little).
pub(crate) fn failed(error: impl std::error::Error) -> StoreError {
    StoreError(crate::error_chain::error_chain(&error))
}

/// Connects once and applies the migrations (`capgate store migrate`, and every start).
pub async fn migrate_postgres(
    options: &PostgresOptions,
) -> Result<Vec<(i64, &'static str)>, StoreError> {
    let (mut client, connection) = options.pg_config()?.connect(NoTls).await.map_err(|e| {
        StoreError(format!(
            "cannot reach the store's database: {}",
            failed(e).0
        ))
    })?;
    let driver = tokio::spawn(connection);
    let applied = migrate::migrate(&mut client).await;
    drop(client);
    let _ = driver.await;
    applied
}

impl PostgresStore {
    /// Migrates the database, opens the pool and starts the change feed. Fails when the
    /// database cannot be reached now (a replica does not start blind); later outages are
    /// refusals until it is back.
    pub async fn connect(options: &PostgresOptions) -> Result<Self, StoreError> {
        let applied = migrate_postgres(options).await?;
        for (version, name) in &applied {
            tracing::info!(version, name, "store migration applied");
        }
        let config = options.pg_config()?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(failed)?;
        let (changes, _) = broadcast::channel(256);
        let listening = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        tokio::spawn(listen::run(
            config,
            changes.clone(),
            listening.clone(),
            stop.clone(),
        ));
        Ok(Self {
            pool,
            transactions: AtomicU64::new(0),
            changes,
            listening,
            stop,
            last_sweep: AtomicI64::new(i64::MIN / 2),
        })
    }

    /// Whether the change feed is listening now.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.pool
            .get()
            .await
            .map_err(|e| StoreError(format!("no connection to the store: {}", failed(e).0)))
    }

    /// Runs one statement; the number of rows it changed.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(failed)?;
        client.execute(&statement, params).await.map_err(failed)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(failed)?;
        client.query(&statement, params).await.map_err(failed)
    }
}

fn grant_row(row: &Row) -> BreakGlassGrant {
    BreakGlassGrant {
        id: row.get(0),
        tenant: row.get(1),
        user: row.get(2),
        agent_role: row.get(3),
        tool: row.get(4),
        reason: row.get(5),
        opened_by: row.get(6),
        opened_at: row.get(7),
        expires_at: row.get(8),
        uses: row.get(9),
        revoked_by: row.get(10),
        revoked_at: row.get(11),
    }
}

const APPROVAL_COLUMNS: &str = "id, tenant, requester, tool, action_digest, arguments, approver_role, policy_version, created_at, expires_at, status, decided_by, note";

fn approval_row(row: &Row) -> Approval {
    let status: String = row.get(10);
    Approval {
        id: row.get(0),
        tenant: row.get(1),
        requester: row.get(2),
        tool: row.get(3),
        action_digest: row.get(4),
        arguments: row.get(5),
        approver_role: row.get(6),
        policy_version: row.get(7),
        created_at: row.get(8),
        expires_at: row.get(9),
        // An unreadable status is treated as used: it can never authorize a call.
        status: ApprovalStatus::parse(&status).unwrap_or(ApprovalStatus::Consumed),
        decided_by: row.get(11),
        note: row.get(12),
    }
}

fn relationship_row(row: &Row) -> Result<RelationshipUpdate, StoreError> {
    let seq: i64 = row.get(0);
    let text: String = row.get(1);
    let entities = serde_json::from_str(&text)
        .map_err(|e| StoreError(format!("relationship update {seq} is unreadable: {e}")))?;
    Ok(RelationshipUpdate {
        seq,
        entities,
        by: row.get(2),
        at: row.get(3),
    })
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    fn change_feed_up(&self) -> Option<bool> {
        Some(self.listening())
    }

    async fn open_grant(&self, grant: &BreakGlassGrant) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO break_glass (id, tenant, user_id, agent_role, tool, reason, opened_by, opened_at, expires_at, uses)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
            &[
                &grant.id,
                &grant.tenant,
                &grant.user,
                &grant.agent_role,
                &grant.tool,
                &grant.reason,
                &grant.opened_by,
                &grant.opened_at,
                &grant.expires_at,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn grants(&self) -> Result<Vec<BreakGlassGrant>, StoreError> {
        let rows = self
            .query(
                "SELECT id, tenant, user_id, agent_role, tool, reason, opened_by, opened_at, expires_at, uses, revoked_by, revoked_at
                 FROM break_glass ORDER BY opened_at, id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(grant_row).collect())
    }

    async fn record_grant_use(&self, id: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE break_glass SET uses = uses + 1 WHERE id = $1",
            &[&id],
        )
        .await
        .map(|_| ())
    }

    async fn revoke_grant(&self, id: &str, by: &str, at: i64) -> Result<bool, StoreError> {
        self.execute(
            "UPDATE break_glass SET revoked_by = $2, revoked_at = $3
             WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &by, &at],
        )
        .await
        .map(|n| n > 0)
    }

    async fn create_approval(&self, approval: &Approval) -> Result<(), StoreError> {
        self.execute(
            &format!("INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"),
            &[
                &approval.id,
                &approval.tenant,
                &approval.requester,
                &approval.tool,
                &approval.action_digest,
                &approval.arguments,
                &approval.approver_role,
                &approval.policy_version,
                &approval.created_at,
                &approval.expires_at,
                &approval.status.as_str(),
                &approval.decided_by,
                &approval.note,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(rows.first().map(approval_row))
    }

    async fn approvals(&self, tenant: &str) -> Result<Vec<Approval>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE tenant = $1 ORDER BY created_at, id"),
                &[&tenant],
            )
            .await?;
        Ok(rows.iter().map(approval_row).collect())
    }

    async fn pending_approval_count(&self, now: i64) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "SELECT COUNT(*) FROM approvals WHERE status = 'pending' AND expires_at > $1",
                &[&now],
            )
            .await?;
        Ok(rows
            .first()
            .map(|row| row.get::<_, i64>(0).max(0) as u64)
            .unwrap_or(0))
    }

    async fn decide_approval(
        &self,
        id: &str,
        expected: ApprovalStatus,
        status: ApprovalStatus,
        decided_by: &str,
        note: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.execute(
            "UPDATE approvals SET status = $3, decided_by = $4, note = $5 WHERE id = $1 AND status = $2",
            &[&id, &expected.as_str(), &status.as_str(), &decided_by, &note],
        )
        .await
        .map(|n| n > 0)
    }

    async fn tool_pins(&self) -> Result<Vec<ToolPin>, StoreError> {
        let rows = self
            .query(
                "SELECT server, tool, digest, definition, pinned_by, pinned_at FROM tool_pins ORDER BY server, tool",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| ToolPin {
                server: row.get(0),
                tool: row.get(1),
                digest: row.get(2),
                definition: row.get(3),
                pinned_by: row.get(4),
                pinned_at: row.get(5),
            })
            .collect())
    }

    async fn pin_tool(&self, pin: &ToolPin, replace: bool) -> Result<bool, StoreError> {
        let sql = if replace {
            "INSERT INTO tool_pins (server, tool, digest, definition, pinned_by, pinned_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (server, tool) DO UPDATE
             SET digest = $3, definition = $4, pinned_by = $5, pinned_at = $6"
        } else {
            "INSERT INTO tool_pins (server, tool, digest, definition, pinned_by, pinned_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (server, tool) DO NOTHING"
        };
        self.execute(
            sql,
            &[
                &pin.server,
                &pin.tool,
                &pin.digest,
                &pin.definition,
                &pin.pinned_by,
                &pin.pinned_at,
            ],
        )
        .await
        .map(|n| n > 0)
    }

    async fn kill_switches(&self) -> Result<Vec<KillSwitch>, StoreError> {
        let rows = self
            .query(
                "SELECT kind, target, tenant, reason, set_by, set_at FROM kill_switches ORDER BY set_at, kind, target",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let kind: String = row.get(0);
                // An unreadable kind stops everything rather than nothing.
                let (scope, tenant) = match KillScope::from_parts(&kind, row.get(1)) {
                    Some(scope) => (scope, row.get(2)),
                    None => (KillScope::Global, None),
                };
                KillSwitch {
                    scope,
                    tenant,
                    reason: row.get(3),
                    set_by: row.get(4),
                    set_at: row.get(5),
                }
            })
            .collect())
    }

    async fn set_kill_switch(&self, switch: &KillSwitch) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO kill_switches (kind, target, tenant, reason, set_by, set_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (kind, target, (COALESCE(tenant, '')), (tenant IS NULL))
             DO UPDATE SET reason = $4, set_by = $5, set_at = $6",
            &[
                &switch.scope.kind(),
                &switch.scope.target(),
                &switch.tenant,
                &switch.reason,
                &switch.set_by,
                &switch.set_at,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn lift_kill_switch(
        &self,
        scope: &KillScope,
        tenant: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.execute(
            "DELETE FROM kill_switches WHERE kind = $1 AND target = $2 AND tenant IS NOT DISTINCT FROM $3",
            &[&scope.kind(), &scope.target(), &tenant],
        )
        .await
        .map(|n| n > 0)
    }

    async fn budget_usage(
        &self,
        run: &RunKey,
        capability: &str,
    ) -> Result<BudgetUsage, StoreError> {
        let rows = self.query(USAGE, &[&run.encoded(), &capability]).await?;
        Ok(rows.first().map(usage_row).unwrap_or_default())
    }

    async fn admit(
        &self,
        keys: &AdmissionKeys,
        rule: &mut AdmissionRule<'_>,
    ) -> Result<BudgetUsage, StoreError> {
        self.admit_call(keys, rule).await
    }

    async fn settle(
        &self,
        scope: &IdempotencyScope,
        settlement: &Settlement,
    ) -> Result<(), StoreError> {
        self.settle_claim(scope, settlement).await
    }

    async fn relationship_updates(&self) -> Result<Vec<RelationshipUpdate>, StoreError> {
        self.relationship_updates_after(0).await
    }

    async fn relationship_updates_after(
        &self,
        seq: i64,
    ) -> Result<Vec<RelationshipUpdate>, StoreError> {
        let rows = self
            .query(
                "SELECT seq, entities, updated_by, updated_at FROM relationship_updates WHERE seq > $1 ORDER BY seq",
                &[&seq],
            )
            .await?;
        rows.iter().map(relationship_row).collect()
    }

    async fn append_relationship_update(
        &self,
        entities: &[serde_json::Value],
        by: &str,
        at: i64,
    ) -> Result<i64, StoreError> {
        let text = serde_json::Value::Array(entities.to_vec()).to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&RELATIONSHIP_LOCK])
            .await
            .map_err(failed)?;
        let row = tx
            .query_one(
                "INSERT INTO relationship_updates (seq, entities, updated_by, updated_at)
                 SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3 FROM relationship_updates
                 RETURNING seq",
                &[&text, &by, &at],
            )
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(row.get(0))
    }
}

#[cfg(test)]
mod tests;
