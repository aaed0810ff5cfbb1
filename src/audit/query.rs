//! Questions asked of the log: which records match a filter (`capgate audit query`), which
//! decisions a candidate policy set would change (`capgate policy replay`), and a run's manifest.

use std::path::Path;

use serde::Serialize;

use super::verify::read_all;
use super::Mode;
use super::{AuditError, ChainedRecord, DecisionRecord};

/// Filters for `capgate audit query`.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub run: Option<String>,
    pub actor: Option<String>,
    pub tool: Option<String>,
    pub decision: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl Query {
    pub fn matches(&self, record: &DecisionRecord) -> bool {
        self.run
            .as_ref()
            .is_none_or(|r| record.run_id.as_ref() == Some(r))
            && self
                .actor
                .as_ref()
                .is_none_or(|a| record.actor.contains(a.as_str()))
            && self.tool.as_ref().is_none_or(|t| &record.resource == t)
            && self.decision.as_ref().is_none_or(|d| &record.decision == d)
            && self.since.is_none_or(|s| record.time >= s)
            && self.until.is_none_or(|u| record.time < u)
    }
}

/// Records (in order) that match a query.
pub fn query(path: &Path, filter: &Query) -> Result<Vec<ChainedRecord>, AuditError> {
    query_rows(read_all(path)?, filter)
}

/// The rows (seq, record, prev_hash, hash) of one chain that match a query.
pub fn query_rows(
    rows: Vec<(i64, String, String, String)>,
    filter: &Query,
) -> Result<Vec<ChainedRecord>, AuditError> {
    let mut out = Vec::new();
    for (seq, json, prev_hash, hash) in rows {
        let record: DecisionRecord =
            serde_json::from_str(&json).map_err(|e| AuditError(format!("record {seq}: {e}")))?;
        if filter.matches(&record) {
            out.push(ChainedRecord {
                seq,
                prev_hash,
                hash,
                record,
            });
        }
    }
    Ok(out)
}

/// One decision that changes under a candidate policy set.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayChange {
    pub seq: i64,
    pub resource: String,
    pub actor: String,
    pub before: String,
    pub after: String,
    pub policy_before: Option<String>,
    pub policy_after: Option<String>,
}

/// Re-decides every logged decision (that kept its request) under `candidate`.
pub fn replay(
    path: &Path,
    candidate: &crate::policy::PolicyEngine,
) -> Result<(usize, Vec<ReplayChange>), AuditError> {
    Ok(replay_records(query(path, &Query::default())?, candidate))
}

/// Re-decides the decisions among `records` (one chain's, in order) under `candidate`.
pub fn replay_records(
    records: Vec<ChainedRecord>,
    candidate: &crate::policy::PolicyEngine,
) -> (usize, Vec<ReplayChange>) {
    let mut replayed = 0;
    let mut changes = Vec::new();
    for chained in records {
        let record = chained.record;
        let Some(mut request) = record.request.clone() else {
            continue;
        };
        // Only what the PDP itself decided is re-decided: not outcome records, not refusals by a
        // control, not replays, not calls let through by break-glass or dry-run.
        let decided_by_policy = record.refused_by.is_none()
            && record.replay_of.is_none()
            && matches!(record.mode, Mode::Enforce | Mode::Degraded);
        if record.downstream_outcome.is_some() || !decided_by_policy {
            continue;
        }
        // Decide as of the original time, so effective windows are those of the decision.
        request.environment.now = Some(record.time);
        let decision = candidate.decide(&request);
        replayed += 1;
        if decision.outcome.as_str() != record.decision {
            changes.push(ReplayChange {
                seq: chained.seq,
                resource: record.resource.clone(),
                actor: record.actor.clone(),
                before: record.decision.clone(),
                after: decision.outcome.as_str().to_string(),
                policy_before: record.policy_id.clone(),
                policy_after: decision.policy_id.clone(),
            });
        }
    }
    (replayed, changes)
}

/// A run's manifest: the policy versions that decided it, and each tool's decisions.
pub fn run_manifest(path: &Path, tenant: &str, run: &str) -> Result<serde_json::Value, AuditError> {
    use std::collections::{BTreeMap, BTreeSet};
    let filter = Query {
        run: Some(run.to_string()),
        ..Query::default()
    };
    let mut versions = BTreeSet::new();
    let mut tools: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut decisions = 0;
    let mut discovery_requests = 0;
    for chained in query(path, &filter)? {
        let record = chained.record;
        if record.tenant != tenant || record.downstream_outcome.is_some() {
            continue;
        }
        if record.listing.is_some() {
            discovery_requests += 1;
            continue;
        }
        decisions += 1;
        versions.insert(record.policy_version.clone());
        *tools
            .entry(record.resource.clone())
            .or_default()
            .entry(record.decision.clone())
            .or_default() += 1;
    }
    Ok(serde_json::json!({
        "tenant": tenant,
        "run": run,
        "decisions": decisions,
        "discovery_requests": discovery_requests,
        "policy_versions": versions,
        "tools": tools,
    }))
}
