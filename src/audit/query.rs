//! Questions asked of the log: which records match a filter (`capgate audit query`), which
//! decisions a candidate policy set would change (`capgate policy replay`), and a run's manifest
//! (from one file, or from every replica's chain in the database).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use super::verify::read_all;
use super::Mode;
use super::{AuditError, ChainedRecord, DecisionLog, DecisionRecord};

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

/// A run's manifest from the log file at `path`: the policy versions that decided it, and each
/// tool's decisions.
pub fn run_manifest(path: &Path, tenant: &str, run: &str) -> Result<serde_json::Value, AuditError> {
    let filter = Query {
        run: Some(run.to_string()),
        ..Query::default()
    };
    let records = query(path, &filter)?.into_iter().map(|c| c.record);
    Ok(Manifest::of(tenant, run, records.map(|r| (None, r))).json())
}

impl DecisionLog {
    /// A run's manifest from this log once what it has queued is written: from its file, or,
    /// for a replica on PostgreSQL, from every replica's chain in the database (with how many
    /// of the run's decisions each chain holds).
    pub async fn run_manifest(
        &self,
        tenant: &str,
        run: &str,
    ) -> Result<serde_json::Value, AuditError> {
        self.flush().await?;
        let Some(url) = self.database.clone() else {
            let (path, tenant, run) = (
                self.path().to_path_buf(),
                tenant.to_string(),
                run.to_string(),
            );
            return tokio::task::spawn_blocking(move || run_manifest(&path, &tenant, &run))
                .await
                .map_err(|e| AuditError(format!("reading the run manifest failed: {e}")))?;
        };
        let mut records = Vec::new();
        for (chain, json) in super::postgres::run_records(&url, run).await? {
            let record: DecisionRecord = serde_json::from_str(&json)
                .map_err(|e| AuditError(format!("a record of chain {chain}: {e}")))?;
            records.push((Some(chain), record));
        }
        let mut manifest = Manifest::of(tenant, run, records);
        manifest.chains.get_or_insert_with(BTreeMap::new);
        Ok(manifest.json())
    }
}

/// What a run's records add up to.
struct Manifest<'a> {
    tenant: &'a str,
    run: &'a str,
    decisions: u64,
    discovery_requests: u64,
    versions: BTreeSet<String>,
    tools: BTreeMap<String, BTreeMap<String, u64>>,
    /// Decisions per chain, when the records came from several.
    chains: Option<BTreeMap<String, u64>>,
}

impl<'a> Manifest<'a> {
    /// Adds up the decision records (not outcome records) of `run` in `tenant` among
    /// `records`, each with its chain when it came from a database.
    fn of(
        tenant: &'a str,
        run: &'a str,
        records: impl IntoIterator<Item = (Option<String>, DecisionRecord)>,
    ) -> Self {
        let mut manifest = Manifest {
            tenant,
            run,
            decisions: 0,
            discovery_requests: 0,
            versions: BTreeSet::new(),
            tools: BTreeMap::new(),
            chains: None,
        };
        for (chain, record) in records {
            if record.tenant != tenant
                || record.run_id.as_deref() != Some(run)
                || record.downstream_outcome.is_some()
            {
                continue;
            }
            if record.listing.is_some() {
                manifest.discovery_requests += 1;
                continue;
            }
            manifest.decisions += 1;
            if let Some(chain) = chain {
                *manifest
                    .chains
                    .get_or_insert_with(BTreeMap::new)
                    .entry(chain)
                    .or_default() += 1;
            }
            manifest.versions.insert(record.policy_version);
            *manifest
                .tools
                .entry(record.resource)
                .or_default()
                .entry(record.decision)
                .or_default() += 1;
        }
        manifest
    }

    fn json(self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "tenant": self.tenant,
            "run": self.run,
            "decisions": self.decisions,
            "discovery_requests": self.discovery_requests,
            "policy_versions": self.versions,
            "tools": self.tools,
        });
        if let Some(chains) = self.chains {
            json["chains"] = serde_json::json!(chains);
        }
        json
    }
}
