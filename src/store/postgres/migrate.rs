//! Versioned schema migrations for PostgreSQL: the files in `migrations/postgres/`, embedded
//! at build time, applied in order, each in its own transaction together with its row in
//! `capgate_migrations`. Replicas starting at once take turns under a transaction-level
//! advisory lock, so each migration runs exactly once. A database migrated by a newer capgate
//! (a version this build does not know) is refused rather than used.

use tokio_postgres::Client;

use super::{failed, MIGRATION_LOCK};
use crate::store::StoreError;

/// Every migration this build knows: (version, name, SQL), in order.
pub const MIGRATIONS_POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "enforcement_state",
        include_str!("../../../migrations/postgres/001_enforcement_state.sql"),
    ),
    (
        2,
        "decision_log",
        include_str!("../../../migrations/postgres/002_decision_log.sql"),
    ),
    (
        3,
        "tenant_kill_switches",
        include_str!("../../../migrations/postgres/003_tenant_kill_switches.sql"),
    ),
    (
        4,
        "decisions_by_run",
        include_str!("../../../migrations/postgres/004_decisions_by_run.sql"),
    ),
    (
        5,
        "tool_pins",
        include_str!("../../../migrations/postgres/005_tool_pins.sql"),
    ),
    (
        6,
        "approval_notes",
        include_str!("../../../migrations/postgres/006_approval_notes.sql"),
    ),
];

/// Applies the migrations not yet applied; the (version, name) of those it applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<(i64, &'static str)>, StoreError> {
    // Under the migration lock: replicas starting together would otherwise race to create
    // the table (PostgreSQL's IF NOT EXISTS is not safe against a concurrent CREATE).
    let tx = client.transaction().await.map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS capgate_migrations (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
    )
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS_POSTGRES {
        let tx = client.transaction().await.map_err(failed)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(failed)?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM capgate_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(failed)?
            .is_some();
        if done {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError(format!(
                "store migration {version:03}_{name} failed: {}",
                failed(e).0
            ))
        })?;
        tx.execute(
            "INSERT INTO capgate_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        applied.push((*version, *name));
    }
    let newest: Option<i64> = client
        .query_one("SELECT MAX(version) FROM capgate_migrations", &[])
        .await
        .map_err(failed)?
        .get(0);
    let known = MIGRATIONS_POSTGRES.last().map(|m| m.0).unwrap_or(0);
    if let Some(newest) = newest.filter(|v| *v > known) {
        return Err(StoreError(format!(
            "the database is at schema version {newest}, newer than this capgate knows ({known}); run the newer capgate, or restore the database"
        )));
    }
    Ok(applied)
}
