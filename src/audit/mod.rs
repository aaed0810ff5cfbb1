//! The decision log: every call's decision, durable and hash-chained, so that no one can edit,
//! delete or reorder a record without `capgate audit verify` naming it.
//!
//! Records go to `<data_dir>/audit.db` through one writer thread that commits whatever has
//! queued up in a single transaction (group commit). Side-effecting calls wait until their record
//! is durable before they are forwarded; if it cannot be written, the call is denied.
//! Each record stores the previous record's hash and its own: SHA-256 over the previous hash and
//! the record's canonical JSON. Every `CHECKPOINT_EVERY` records the writer signs a checkpoint
//! (sequence number and hash) with an Ed25519 key (`[audit] signing_key_file`, by default
//! `<data_dir>/audit-signing.key`), so that cutting records off the end is detected too.
//! Verification needs only the public key, which can be kept away from the gateway's disk.
//!
//! This file holds what a record is and how records chain; the rooms around it:
//! - `keys`: the checkpoint signing key (load, generate) and the public key to verify with;
//! - `log`: the handle ([`DecisionLog`]): `append`, `append_durable`, `flush`, and the SQLite
//!   sink;
//! - `writer`: the writer thread: the hash chain, group commit, checkpoints, and the records a
//!   database that is away could not take yet;
//! - `verify`: reading the chain back and naming every record that was tampered with;
//! - `query`: filtering records, replaying decisions under other policies, run manifests;
//! - `browse`: reading newest first for the admin API and the console, one record by its
//!   place, and each chain's verification status;
//! - `postgres`: the log of replicas in the shared database, one chain per replica, and
//!   reading every chain back.

mod browse;
mod keys;
mod log;
mod postgres;
mod query;
mod sink;
mod verify;
mod writer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use browse::{ChainStatus, CheckpointInfo, Found, Place, Scan, ScanEnd, Visit};
pub use keys::{generate_signing_key, load_signing_key, parse_public_key, SIGNING_KEY_FILE};
pub use log::DecisionLog;
pub use postgres::{is_valid_chain_id, read_chains, Chain};
pub use query::{query, query_rows, replay, replay_records, run_manifest, Query, ReplayChange};
pub use sink::{CheckpointPolicy, CHECKPOINT_EVERY};
pub use verify::{read_all, verify, verify_any, verify_chain, ChainProblem};
pub use writer::UNWRITTEN_LIMIT;

/// The hash the first record chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How a decision was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Enforce,
    BreakGlass,
    Degraded,
    /// Decided and logged as if enforcing, but a refused call was let through.
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::BreakGlass => "break_glass",
            Mode::Degraded => "degraded",
            Mode::DryRun => "dry_run",
        }
    }
}

/// One logged decision (and, once known, its downstream outcome in a later record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub time: i64,
    pub request_id: String,
    pub tenant: String,
    pub run_id: Option<String>,
    pub action: String,
    pub resource: String,
    pub decision: String,
    pub reason: String,
    pub policy_id: Option<String>,
    pub policy_version: String,
    pub actor: String,
    pub delegation_chain: Vec<String>,
    pub action_digest: Option<String>,
    pub obligations: Vec<String>,
    pub mode: Mode,
    pub shadow_decision: Option<String>,
    /// Set on outcome records: `ok`, `tool_error` or the downstream failure.
    pub downstream_outcome: Option<String>,
    pub added_latency_us: Option<u64>,
    /// The request as the PDP saw it, for replay under other policies: on decision records
    /// only; an outcome record (with `downstream_outcome`) leaves it to the decision record of
    /// its request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<crate::policy::PolicyRequest>,
    /// Set on the one summary record of a discovery (`*/list`) request: what was shown and
    /// what was hidden, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<ListingSummary>,
    /// The control that refused the call (`kill_switch`, `budget`, `idempotency`, ...); `None`
    /// when the policy decided. Left out of the JSON when `None`, so that records written
    /// before the field existed hash the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_by: Option<String>,
    /// On the record of an idempotency replay: the request id of the original call, whose
    /// stored result was returned. Left out of the JSON when `None`, like `refused_by`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
}

impl DecisionRecord {
    /// A record of `resource` with nothing filled in yet but the time and `request_id`.
    pub fn blank(resource: &str, request_id: String) -> Self {
        Self {
            time: crate::policy::now_unix(),
            request_id,
            tenant: String::new(),
            run_id: None,
            action: String::new(),
            resource: resource.into(),
            decision: String::new(),
            reason: String::new(),
            policy_id: None,
            policy_version: String::new(),
            actor: String::new(),
            delegation_chain: Vec::new(),
            action_digest: None,
            obligations: Vec::new(),
            mode: Mode::Enforce,
            shadow_decision: None,
            downstream_outcome: None,
            added_latency_us: None,
            request: None,
            listing: None,
            refused_by: None,
            replay_of: None,
        }
    }

    /// A record of something capgate itself did or saw, not a request (a tool quarantined, a
    /// definition accepted): its actor is `capgate`, its tenant `-` (the whole gateway).
    pub fn system(action: &str, resource: &str, request_id: String) -> Self {
        Self {
            tenant: "-".into(),
            actor: "capgate".into(),
            action: action.into(),
            ..Self::blank(resource, request_id)
        }
    }
}

/// What one discovery request showed and hid; its record's `decision` is `summary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListingSummary {
    pub shown: Vec<String>,
    pub hidden: Vec<HiddenEntry>,
}

/// A capability a discovery request left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiddenEntry {
    pub name: String,
    /// `deny`, `require_approval`, ... or `kill_switch` / `unbound` when no decision was made.
    pub decision: String,
    pub policy_id: Option<String>,
    pub reason: String,
}

/// The `decision` of a discovery summary record.
pub const LISTING_SUMMARY: &str = "summary";

/// A stored record with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainedRecord {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    pub record: DecisionRecord,
}

#[derive(Debug, thiserror::Error)]
#[error("the decision log cannot be written: {0}")]
pub struct AuditError(pub String);

/// SHA-256 over the previous hash and the record's canonical JSON.
pub fn chain_hash(prev_hash: &str, record_json: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(prev_hash.as_bytes());
    digest.update(record_json.as_bytes());
    hex::encode(digest.finalize())
}

/// The log's path under a data directory.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("audit.db")
}

/// Records, keys and logs for the unit tests of every part of the log.
#[cfg(test)]
mod test_support {
    use std::path::Path;

    use rusqlite::Connection;

    use super::*;

    pub fn record(n: usize) -> DecisionRecord {
        DecisionRecord {
            time: n as i64,
            request_id: format!("req-{n}"),
            tenant: "acme".into(),
            run_id: None,
            action: "call_tool".into(),
            resource: "case__read_case".into(),
            decision: "allow".into(),
            reason: "r".into(),
            policy_id: None,
            policy_version: "case-platform@3".into(),
            actor: "alice/drafting-agent".into(),
            delegation_chain: vec!["alice".into(), "drafting-agent".into()],
            action_digest: None,
            obligations: vec![],
            mode: Mode::Enforce,
            shadow_decision: None,
            downstream_outcome: None,
            added_latency_us: None,
            request: None,
            listing: None,
            refused_by: None,
            replay_of: None,
        }
    }

    pub fn signing_key(dir: &Path) -> Result<ed25519_dalek::SigningKey, AuditError> {
        load_signing_key(&dir.join(SIGNING_KEY_FILE), true)
    }

    /// The log in `dir`, with the default checkpoints and the key in `dir`.
    pub fn opened(dir: &Path) -> DecisionLog {
        let key = signing_key(dir).expect("key");
        DecisionLog::open(&log_path(dir), key, CheckpointPolicy::default()).expect("open")
    }

    /// A log in `dir` with `n + 1` records, the last appended durably.
    pub async fn filled(dir: &Path, n: usize) {
        let log = opened(dir);
        for i in 0..n {
            log.append(record(i));
        }
        log.append_durable(record(n)).await.expect("durable");
    }

    /// Runs `sql` on the log's database behind the writer's back.
    pub fn tamper(dir: &Path, sql: &str) {
        Connection::open(log_path(dir))
            .and_then(|c| c.execute_batch(sql))
            .expect("tamper");
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::record;
    use super::*;

    /// A record without a refusing control or a replayed original serializes with exactly the
    /// keys records had before `refused_by` and `replay_of` existed, so its canonical JSON and
    /// hash are unchanged and old logs still verify; old records read back with `None`.
    #[test]
    fn records_without_the_new_fields_serialize_and_hash_as_before() {
        let value = serde_json::to_value(record(1)).expect("json");
        let mut keys: Vec<&str> = value
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort();
        let mut before = vec![
            "time",
            "request_id",
            "tenant",
            "run_id",
            "action",
            "resource",
            "decision",
            "reason",
            "policy_id",
            "policy_version",
            "actor",
            "delegation_chain",
            "action_digest",
            "obligations",
            "mode",
            "shadow_decision",
            "downstream_outcome",
            "added_latency_us",
        ];
        before.sort();
        assert_eq!(keys, before);
        let old = crate::store::canonical_json(&value);
        let read: DecisionRecord = serde_json::from_str(&old).expect("an old record reads");
        assert_eq!(read, record(1));

        let refused = DecisionRecord {
            refused_by: Some("budget".into()),
            replay_of: Some("req-0".into()),
            ..record(1)
        };
        let json = serde_json::to_string(&refused).expect("json");
        assert!(json.contains("\"refused_by\":\"budget\""), "{json}");
        assert!(json.contains("\"replay_of\":\"req-0\""), "{json}");
        assert_eq!(
            serde_json::from_str::<DecisionRecord>(&json).expect("reads back"),
            refused
        );
        assert_ne!(
            chain_hash(GENESIS, &crate::store::canonical_json(&value)),
            chain_hash(
                GENESIS,
                &crate::store::canonical_json(&serde_json::to_value(&refused).expect("json"))
            ),
            "the new fields are covered by the hash when set"
        );
    }
}
