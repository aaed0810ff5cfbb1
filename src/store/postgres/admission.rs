//! One call's admission on PostgreSQL (the locks that make it exact are described in the
//! parent module), the settlement of its idempotency key, and the sweep of old keys.

use std::sync::atomic::Ordering;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_postgres::Row;

use super::{approval_row, failed, PostgresStore, APPROVAL_COLUMNS};
use crate::store::{
    AdmissionKeys, AdmissionRule, AdmissionState, BudgetUsage, ClaimState, IdempotencyRecord,
    IdempotencyScope, Settlement, StoreError,
};

/// How often old completed idempotency records are swept (besides the call's own key).
const SWEEP_EVERY_SECONDS: i64 = 60;

/// An advisory lock key for an admission scope: 64 bits of SHA-256 over its kind and encoded
/// key. A collision only makes two unrelated calls wait for each other.
pub(crate) fn lock_key(kind: &str, encoded: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(kind.as_bytes())
        .chain_update([0u8])
        .chain_update(encoded.as_bytes())
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

fn claim_row(row: &Row) -> IdempotencyRecord {
    let state: String = row.get(2);
    let result: Option<String> = row.get(3);
    let state = match (state.as_str(), result) {
        ("done", Some(result)) => ClaimState::Done { result },
        // Anything else is still claimed, until its lease passes.
        _ => ClaimState::InFlight {
            lease_until: row.get(4),
        },
    };
    IdempotencyRecord {
        fingerprint: row.get(0),
        request_id: row.get(1),
        state,
    }
}

pub(super) fn usage_row(row: &Row) -> BudgetUsage {
    let count = |i: usize| row.get::<_, i64>(i).max(0) as u64;
    BudgetUsage {
        calls: count(0),
        cost: count(1),
        tool_calls: count(2),
    }
}

pub(super) const USAGE: &str =
    "SELECT COALESCE(SUM(calls), 0)::BIGINT, COALESCE(SUM(cost), 0)::BIGINT,
        COALESCE(SUM(calls) FILTER (WHERE capability = $2), 0)::BIGINT
    FROM run_usage WHERE run = $1";

impl PostgresStore {
    pub(super) async fn admit_call(
        &self,
        keys: &AdmissionKeys,
        rule: &mut AdmissionRule<'_>,
    ) -> Result<BudgetUsage, StoreError> {
        let run = keys.run.encoded();
        let scope = keys.idempotency.as_ref().map(IdempotencyScope::encoded);
        let mut locks = vec![lock_key("run", &run)];
        if let Some(scope) = &scope {
            locks.push(lock_key("idempotency", scope));
        }
        locks.sort_unstable();
        locks.dedup();

        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        // Locks in one global order (sorted keys, then the approval row): no deadlocks.
        let lock_sql = match locks.len() {
            1 => "SELECT pg_advisory_xact_lock($1)",
            _ => "SELECT pg_advisory_xact_lock($1), pg_advisory_xact_lock($2)",
        };
        let statement = tx.prepare_cached(lock_sql).await.map_err(failed)?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = locks
            .iter()
            .map(|k| k as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        tx.execute(&statement, &params).await.map_err(failed)?;

        let idempotency = match &scope {
            Some(scope) => {
                let forget = tx
                    .prepare_cached(
                        "DELETE FROM idempotency_claims WHERE scope = $1 AND state = 'done' AND created_at < $2",
                    )
                    .await
                    .map_err(failed)?;
                tx.execute(&forget, &[scope, &keys.forget_before])
                    .await
                    .map_err(failed)?;
                let load = tx
                    .prepare_cached(
                        "SELECT fingerprint, request_id, state, result, lease_until FROM idempotency_claims WHERE scope = $1",
                    )
                    .await
                    .map_err(failed)?;
                tx.query_opt(&load, &[scope])
                    .await
                    .map_err(failed)?
                    .as_ref()
                    .map(claim_row)
            }
            None => None,
        };
        let approval = match &keys.approval {
            Some(id) => {
                let load = tx
                    .prepare_cached(&format!(
                        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1 FOR UPDATE"
                    ))
                    .await
                    .map_err(failed)?;
                tx.query_opt(&load, &[id])
                    .await
                    .map_err(failed)?
                    .as_ref()
                    .map(approval_row)
            }
            None => None,
        };
        let usage = {
            let load = tx.prepare_cached(USAGE).await.map_err(failed)?;
            tx.query_opt(&load, &[&run, &keys.capability])
                .await
                .map_err(failed)?
                .as_ref()
                .map(usage_row)
                .unwrap_or_default()
        };
        let state = AdmissionState {
            usage,
            idempotency,
            approval,
        };
        let writes = rule(&state);

        let mut after = state.usage;
        if let Some(cost) = writes.debit {
            let debit = tx
                .prepare_cached(
                    "INSERT INTO run_usage (run, capability, calls, cost) VALUES ($1, $2, 1, $3)
                     ON CONFLICT (run, capability) DO UPDATE
                     SET calls = run_usage.calls + 1, cost = run_usage.cost + EXCLUDED.cost",
                )
                .await
                .map_err(failed)?;
            tx.execute(&debit, &[&run, &keys.capability, &(cost as i64)])
                .await
                .map_err(failed)?;
            // Under the run's lock nothing else changed it: the usage after is the sum.
            after.calls += 1;
            after.tool_calls += 1;
            after.cost += cost;
        }
        if let (Some(claim), Some(scope)) = (&writes.claim, &scope) {
            let write = tx
                .prepare_cached(
                    "INSERT INTO idempotency_claims (scope, fingerprint, request_id, state, result, lease_until, created_at)
                     VALUES ($1, $2, $3, 'in_flight', NULL, $4, $5)
                     ON CONFLICT (scope) DO UPDATE SET fingerprint = $2, request_id = $3,
                        state = 'in_flight', result = NULL, lease_until = $4, created_at = $5",
                )
                .await
                .map_err(failed)?;
            tx.execute(
                &write,
                &[
                    scope,
                    &claim.fingerprint,
                    &claim.request_id,
                    &claim.lease_until,
                    &claim.created_at,
                ],
            )
            .await
            .map_err(failed)?;
        }
        if let (true, Some(id)) = (writes.consume_approval, &keys.approval) {
            let consume = tx
                .prepare_cached("UPDATE approvals SET status = 'consumed' WHERE id = $1")
                .await
                .map_err(failed)?;
            tx.execute(&consume, &[id]).await.map_err(failed)?;
        }
        tx.commit().await.map_err(failed)?;
        if scope.is_some() {
            self.sweep(&client, keys.forget_before).await;
        }
        Ok(after)
    }

    pub(super) async fn settle_claim(
        &self,
        scope: &IdempotencyScope,
        settlement: &Settlement,
    ) -> Result<(), StoreError> {
        let scope = scope.encoded();
        // A call that has acted must not lose its result to a dropped connection (its key
        // would perform again once the lease passed): both writes are idempotent, so a
        // failure is retried on a fresh connection for a few seconds before giving up.
        let mut wait = Duration::from_millis(50);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let written = match settlement {
                Settlement::Completed(result) => {
                    self.execute(
                        "UPDATE idempotency_claims SET state = 'done', result = $2 WHERE scope = $1",
                        &[&scope, result],
                    )
                    .await
                }
                Settlement::Released => {
                    self.execute(
                        "DELETE FROM idempotency_claims WHERE scope = $1 AND state = 'in_flight'",
                        &[&scope],
                    )
                    .await
                }
            };
            match written {
                Ok(_) => return Ok(()),
                Err(error) if std::time::Instant::now() + wait > deadline => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, "settling an idempotency key failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// never waiting on a key an admission holds.
    async fn sweep(&self, client: &deadpool_postgres::Object, before: i64) {
        // `before` advances with the clock: it paces the sweeps.
        let last = self.last_sweep.load(Ordering::Relaxed);
        if before - last < SWEEP_EVERY_SECONDS
            || self
                .last_sweep
                .compare_exchange(last, before, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let swept = client
            .execute(
                "DELETE FROM idempotency_claims WHERE scope IN (
                    SELECT scope FROM idempotency_claims WHERE state = 'done' AND created_at < $1
                    LIMIT 1000 FOR UPDATE SKIP LOCKED)",
                &[&before],
            )
            .await;
        if let Err(error) = swept {
            tracing::warn!(error = %failed(error), "sweeping old idempotency records failed");
        }
    }
}
