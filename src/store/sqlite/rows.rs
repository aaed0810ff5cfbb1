//! Reading the SQLite store's rows into the store's types: idempotency claims, approvals and
//! a run's budget usage.

use rusqlite::{params, Connection, OptionalExtension};

use crate::store::{Approval, ApprovalStatus, BudgetUsage, ClaimState, IdempotencyRecord};

pub(super) fn load_claim(
    c: &Connection,
    scope: &str,
) -> rusqlite::Result<Option<IdempotencyRecord>> {
    let row: Option<(String, String, String, Option<String>, i64)> = c
        .prepare_cached(
            "SELECT fingerprint, request_id, state, result, lease_until FROM idempotency_claims WHERE scope = ?1",
        )?
        .query_row(params![scope], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
        })
        .optional()?;
    Ok(
        row.map(|(fingerprint, request_id, state, result, lease_until)| {
            let state = match (state.as_str(), result) {
                ("done", Some(result)) => ClaimState::Done { result },
                // Anything else is still claimed, until its lease passes.
                _ => ClaimState::InFlight { lease_until },
            };
            IdempotencyRecord {
                fingerprint,
                request_id,
                state,
            }
        }),
    )
}

pub(super) const APPROVAL_COLUMNS: &str = "id, tenant, requester, tool, action_digest, arguments, approver_role, policy_version, created_at, expires_at, status, decided_by, note";

pub(super) fn approval_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
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
        note: row.get(12)?,
    })
}

pub(super) fn load_approval(c: &Connection, id: &str) -> rusqlite::Result<Option<Approval>> {
    c.prepare_cached(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"
    ))?
    .query_row(params![id], approval_row)
    .optional()
}

pub(super) fn usage(c: &Connection, run: &str, capability: &str) -> rusqlite::Result<BudgetUsage> {
    let (calls, cost, tool_calls): (i64, i64, i64) = c
        .prepare_cached(
            "SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(cost), 0),
                    COALESCE(SUM(CASE WHEN capability = ?2 THEN calls END), 0)
             FROM run_usage WHERE run = ?1",
        )?
        .query_row(params![run, capability], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    Ok(BudgetUsage {
        calls: calls.max(0) as u64,
        tool_calls: tool_calls.max(0) as u64,
        cost: cost.max(0) as u64,
    })
}
