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

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::canonical_json;

/// Records between signed checkpoints.
pub const CHECKPOINT_EVERY: i64 = 64;

/// When the writer signs checkpoints: every `every` records, and, when records arrived since the
/// last checkpoint, at least every `interval` (so a quiet log's tail is covered too).
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    pub every: i64,
    pub interval: std::time::Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every: CHECKPOINT_EVERY,
            interval: std::time::Duration::from_secs(5),
        }
    }
}
/// The default signing key's file in the data directory (32-byte seed, hex).
pub const SIGNING_KEY_FILE: &str = "audit-signing.key";

/// Reads the checkpoint signing key from `path`; when the file is missing, creates one (readable
/// by its owner only) if `create_if_missing`, else refuses.
pub fn load_signing_key(
    path: &Path,
    create_if_missing: bool,
) -> Result<ed25519_dalek::SigningKey, AuditError> {
    let seed = match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim())
            .map_err(|e| AuditError(format!("{}: not a hex key: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create_if_missing => {
            let key = generate_signing_key(path)?;
            return Ok(key);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AuditError(format!(
                "the checkpoint signing key {} does not exist (make one with `capgate audit keygen --out {}`)",
                path.display(),
                path.display()
            )))
        }
        Err(e) => return Err(AuditError(format!("cannot read {}: {e}", path.display()))),
    };
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| AuditError(format!("{}: the key must be 32 bytes", path.display())))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// Writes a new signing key to `path` (which must not exist), readable by its owner only.
pub fn generate_signing_key(path: &Path) -> Result<ed25519_dalek::SigningKey, AuditError> {
    use std::io::Write;
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut file| file.write_all(hex::encode(seed).as_bytes()))
        .map_err(|e| AuditError(format!("cannot write {}: {e}", path.display())))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// A verifying key given as 64 hex digits, or as a file holding them.
pub fn parse_public_key(given: &str) -> Result<ed25519_dalek::VerifyingKey, AuditError> {
    let text = if given.len() == 64 && given.chars().all(|c| c.is_ascii_hexdigit()) {
        given.to_string()
    } else {
        std::fs::read_to_string(given)
            .map_err(|e| AuditError(format!("cannot read the public key {given}: {e}")))?
    };
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| AuditError(format!("{given}: a public key is 64 hex digits")))?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|e| AuditError(format!("{given}: not an Ed25519 public key: {e}")))
}

fn checkpoint_message(seq: i64, hash: &str) -> String {
    format!("capgate-checkpoint:{seq}:{hash}")
}

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
    /// The request as the PDP saw it (decision records only), for replay under other policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<crate::policy::PolicyRequest>,
    /// Set on the one summary record of a discovery (`*/list`) request: what was shown and
    /// what was hidden, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<ListingSummary>,
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

type Ack = tokio::sync::oneshot::Sender<Result<i64, String>>;

/// The writer's handle. Cloning is cheap; the writer thread ends when all handles are dropped.
#[derive(Clone)]
pub struct DecisionLog {
    queue: mpsc::Sender<(DecisionRecord, Option<Ack>)>,
    path: PathBuf,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// SHA-256 over the previous hash and the record's canonical JSON.
pub fn chain_hash(prev_hash: &str, record_json: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(prev_hash.as_bytes());
    digest.update(record_json.as_bytes());
    hex::encode(digest.finalize())
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.busy_timeout(std::time::Duration::from_millis(1500))?;
    connection.set_prepared_statement_cache_capacity(16);
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS decisions (
            seq INTEGER PRIMARY KEY,
            record TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS checkpoints (
            seq INTEGER PRIMARY KEY,
            hash TEXT NOT NULL,
            signature TEXT NOT NULL
        );",
    )?;
    Ok(connection)
}

fn sign_checkpoint(
    tx: &rusqlite::Transaction<'_>,
    key: &ed25519_dalek::SigningKey,
    seq: i64,
    hash: &str,
) -> rusqlite::Result<()> {
    use ed25519_dalek::Signer;
    let signature = key.sign(checkpoint_message(seq, hash).as_bytes());
    tx.prepare_cached(
        "INSERT OR IGNORE INTO checkpoints (seq, hash, signature) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![seq, hash, hex::encode(signature.to_bytes())])?;
    Ok(())
}

/// Signs a checkpoint over the last record when it has none yet; whether one was written.
fn checkpoint_tail(
    connection: &mut Connection,
    key: &ed25519_dalek::SigningKey,
) -> rusqlite::Result<bool> {
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let last: Option<(i64, String)> = tx
        .prepare_cached("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((seq, hash)) = last else {
        return Ok(false);
    };
    let signed: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM checkpoints WHERE seq = ?1)")?
        .query_row(params![seq], |row| row.get(0))?;
    if !signed {
        sign_checkpoint(&tx, key, seq, &hash)?;
    }
    tx.commit()?;
    Ok(!signed)
}

fn write_batch(
    connection: &mut Connection,
    batch: &[(DecisionRecord, Option<Ack>)],
    key: &ed25519_dalek::SigningKey,
    every: i64,
) -> rusqlite::Result<Vec<i64>> {
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (mut seq, mut prev): (i64, String) = tx
        .prepare_cached("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .unwrap_or((0, GENESIS.to_string()));
    let mut written = Vec::with_capacity(batch.len());
    for (record, _) in batch {
        let json = canonical_json(&serde_json::to_value(record).unwrap_or_default());
        let hash = chain_hash(&prev, &json);
        seq += 1;
        tx.prepare_cached(
            "INSERT INTO decisions (seq, record, prev_hash, hash) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![seq, json, prev, hash])?;
        if seq % every == 0 {
            sign_checkpoint(&tx, key, seq, &hash)?;
        }
        written.push(seq);
        prev = hash;
    }
    tx.commit()?;
    Ok(written)
}

impl DecisionLog {
    /// Opens the log at `path` and starts the writer thread, which signs checkpoints with `key`
    /// as `checkpoints` says.
    pub fn open(
        path: &Path,
        key: ed25519_dalek::SigningKey,
        checkpoints: CheckpointPolicy,
    ) -> Result<Self, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| AuditError(format!("cannot create {}: {e}", dir.display())))?;
        }
        if checkpoints.every < 1 || checkpoints.interval.is_zero() {
            return Err(AuditError(
                "checkpoints need a positive record count and interval ([audit] checkpoint_every_records, checkpoint_interval_seconds)".into(),
            ));
        }
        let path = path.to_path_buf();
        let mut connection =
            open(&path).map_err(|e| AuditError(format!("{}: {e}", path.display())))?;
        let (queue, incoming) = mpsc::channel::<(DecisionRecord, Option<Ack>)>();
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let failures = failed.clone();
        std::thread::Builder::new()
            .name("capgate-decision-log".into())
            .spawn(move || {
                let mut unsigned_since: Option<std::time::Instant> = None;
                loop {
                    let wait = unsigned_since
                        .map(|since| checkpoints.interval.saturating_sub(since.elapsed()))
                        .unwrap_or(std::time::Duration::from_secs(3600));
                    let first = match incoming.recv_timeout(wait) {
                        Ok(first) => first,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            match checkpoint_tail(&mut connection, &key) {
                                Ok(_) => unsigned_since = None,
                                Err(error) => {
                                    tracing::error!(%error, "decision log checkpoint failed")
                                }
                            }
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            if unsigned_since.is_some() {
                                let _ = checkpoint_tail(&mut connection, &key);
                            }
                            break;
                        }
                    };
                    // Group commit: everything that queued while the last batch was written.
                    let mut batch = vec![first];
                    while let Ok(more) = incoming.try_recv() {
                        batch.push(more);
                        if batch.len() >= 4096 {
                            break;
                        }
                    }
                    let result = write_batch(&mut connection, &batch, &key, checkpoints.every);
                    match &result {
                        Ok(seqs) => {
                            let tail_signed =
                                seqs.last().is_some_and(|seq| seq % checkpoints.every == 0);
                            unsigned_since = match (tail_signed, unsigned_since) {
                                (true, _) => None,
                                (false, Some(since)) => Some(since),
                                (false, None) => Some(std::time::Instant::now()),
                            };
                        }
                        Err(error) => {
                            failures.fetch_add(
                                batch.len() as u64,
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            tracing::error!(%error, records = batch.len(), "decision log write failed");
                        }
                    }
                    for (index, (_, ack)) in batch.into_iter().enumerate() {
                        if let Some(ack) = ack {
                            let _ = ack.send(match &result {
                                Ok(seqs) => Ok(seqs[index]),
                                Err(error) => Err(error.to_string()),
                            });
                        }
                    }
                }
            })
            .map_err(|e| AuditError(format!("cannot start the log writer: {e}")))?;
        Ok(Self {
            queue,
            path,
            failed,
        })
    }

    /// Records that could not be written since start.
    pub fn failed_records(&self) -> u64 {
        self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The log's database file (readable while the writer runs: WAL).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a record; it is written with the next group commit.
    pub fn append(&self, record: DecisionRecord) {
        if self.queue.send((record, None)).is_err() {
            self.failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!("the decision log writer has stopped");
        }
    }

    /// Appends a record and waits until it is durable; its sequence number.
    pub async fn append_durable(&self, record: DecisionRecord) -> Result<i64, AuditError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.queue
            .send((record, Some(ack)))
            .map_err(|_| AuditError("the log writer has stopped".into()))?;
        done.await
            .map_err(|_| AuditError("the log writer stopped before answering".into()))?
            .map_err(AuditError)
    }
}

/// A problem `capgate audit verify` found, naming the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainProblem {
    pub seq: i64,
    pub problem: String,
}

/// Reads every record in order.
pub fn read_all(path: &Path) -> Result<Vec<(i64, String, String, String)>, AuditError> {
    let connection = Connection::open(path).map_err(|e| AuditError(e.to_string()))?;
    let mut statement = connection
        .prepare("SELECT seq, record, prev_hash, hash FROM decisions ORDER BY seq")
        .map_err(|e| AuditError(e.to_string()))?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .map_err(|e| AuditError(e.to_string()))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| AuditError(e.to_string()))
}

/// Checks the chain: every record's hash matches its content and its predecessor, no sequence
/// number is missing, every signed checkpoint verifies with `key` and its record is present and
/// unchanged (so a cut-off tail is found). Returns every problem (empty when intact).
pub fn verify(
    path: &Path,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<(usize, Vec<ChainProblem>), AuditError> {
    let rows = read_all(path)?;
    let checkpoints: Vec<(i64, String, String)> = {
        let connection = Connection::open(path).map_err(|e| AuditError(e.to_string()))?;
        let mut statement = connection
            .prepare("SELECT seq, hash, signature FROM checkpoints ORDER BY seq")
            .map_err(|e| AuditError(e.to_string()))?;
        let found = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .map_err(|e| AuditError(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AuditError(e.to_string()))?;
        found
    };
    let mut problems = checkpoint_problems(&rows, &checkpoints, key);
    let mut expected_prev = GENESIS.to_string();
    let mut expected_seq = 1;
    for (seq, json, prev_hash, hash) in &rows {
        if *seq != expected_seq {
            problems.push(ChainProblem {
                seq: *seq,
                problem: format!("records {expected_seq}..{} are missing (deleted)", seq - 1),
            });
        }
        if *prev_hash != expected_prev {
            problems.push(ChainProblem {
                seq: *seq,
                problem: "does not chain to the record before it (deleted, reordered or replaced)"
                    .into(),
            });
        }
        if chain_hash(prev_hash, json) != *hash {
            problems.push(ChainProblem {
                seq: *seq,
                problem: "its content does not match its hash (edited)".into(),
            });
        }
        expected_prev = hash.clone();
        expected_seq = seq + 1;
    }
    Ok((rows.len(), problems))
}

fn checkpoint_problems(
    rows: &[(i64, String, String, String)],
    checkpoints: &[(i64, String, String)],
    key: &ed25519_dalek::VerifyingKey,
) -> Vec<ChainProblem> {
    let mut problems = Vec::new();
    let last = rows.last().map(|r| r.0).unwrap_or(0);
    for (seq, hash, signature) in checkpoints {
        let signed = hex::decode(signature)
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .map(|bytes| ed25519_dalek::Signature::from_bytes(&bytes))
            .is_some_and(|sig| {
                key.verify_strict(checkpoint_message(*seq, hash).as_bytes(), &sig)
                    .is_ok()
            });
        if !signed {
            problems.push(ChainProblem {
                seq: *seq,
                problem: "its checkpoint signature does not verify (forged or edited checkpoint)"
                    .into(),
            });
            continue;
        }
        if *seq > last {
            problems.push(ChainProblem {
                seq: *seq,
                problem: format!(
                    "the log ends at record {last} but a signed checkpoint covers {seq} (truncated)"
                ),
            });
            continue;
        }
        if let Some((_, _, _, stored)) = rows.iter().find(|r| r.0 == *seq) {
            if stored != hash {
                problems.push(ChainProblem {
                    seq: *seq,
                    problem: "differs from its signed checkpoint (rewritten)".into(),
                });
            }
        }
    }
    problems
}

/// The log's path under a data directory.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("audit.db")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> DecisionRecord {
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
        }
    }

    fn signing_key(dir: &Path) -> Result<ed25519_dalek::SigningKey, AuditError> {
        load_signing_key(&dir.join(SIGNING_KEY_FILE), true)
    }

    async fn filled(dir: &Path, n: usize) {
        let key = signing_key(dir).expect("key");
        let log =
            DecisionLog::open(&log_path(dir), key, CheckpointPolicy::default()).expect("open");
        for i in 0..n {
            log.append(record(i));
        }
        log.append_durable(record(n)).await.expect("durable");
    }

    fn tamper(dir: &Path, sql: &str) {
        Connection::open(log_path(dir))
            .and_then(|c| c.execute_batch(sql))
            .expect("tamper");
    }

    #[tokio::test]
    async fn verify_names_edited_deleted_and_swapped_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path(), 9).await;
        let key = signing_key(dir.path()).expect("key").verifying_key();
        let (count, problems) = verify(&log_path(dir.path()), &key).expect("verify");
        assert_eq!((count, problems.len()), (10, 0));

        tamper(
            dir.path(),
            "UPDATE decisions SET record = replace(record, '\"allow\"', '\"deny\"') WHERE seq = 4",
        );
        let (_, problems) = verify(&log_path(dir.path()), &key).expect("verify");
        assert_eq!(problems.first().map(|p| p.seq), Some(4), "{problems:?}");
        assert!(problems[0].problem.contains("edited"));

        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path(), 9).await;
        tamper(dir.path(), "DELETE FROM decisions WHERE seq = 6");
        let key = signing_key(dir.path()).expect("key").verifying_key();
        let (_, problems) = verify(&log_path(dir.path()), &key).expect("verify");
        assert_eq!(problems.first().map(|p| p.seq), Some(7), "{problems:?}");
        assert!(problems[0].problem.contains("missing"));

        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path(), 9).await;
        tamper(
            dir.path(),
            "UPDATE decisions SET seq = -1 WHERE seq = 2; UPDATE decisions SET seq = 2 WHERE seq = 3; UPDATE decisions SET seq = 3 WHERE seq = -1;",
        );
        let key = signing_key(dir.path()).expect("key").verifying_key();
        let (_, problems) = verify(&log_path(dir.path()), &key).expect("verify");
        assert_eq!(problems.first().map(|p| p.seq), Some(2), "{problems:?}");
    }

    #[tokio::test]
    async fn a_quiet_logs_tail_is_checkpointed_within_the_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = signing_key(dir.path()).expect("key");
        let public = key.verifying_key();
        let policy = CheckpointPolicy {
            every: 64,
            interval: std::time::Duration::from_millis(100),
        };
        let log = DecisionLog::open(&log_path(dir.path()), key, policy).expect("open");
        for i in 0..4 {
            log.append(record(i));
        }
        log.append_durable(record(4)).await.expect("durable");
        let checkpointed = || {
            Connection::open(log_path(dir.path()))
                .and_then(|c| {
                    c.query_row("SELECT MAX(seq) FROM checkpoints", [], |r| {
                        r.get::<_, Option<i64>>(0)
                    })
                })
                .expect("query")
        };
        let mut last = None;
        for _ in 0..100 {
            last = checkpointed();
            if last == Some(5) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(last, Some(5), "the tail of 5 records is signed");
        // Cutting the tail is now named, although fewer than 64 records were written.
        tamper(dir.path(), "DELETE FROM decisions WHERE seq > 3");
        let (_, problems) = verify(&log_path(dir.path()), &public).expect("verify");
        assert!(
            problems
                .iter()
                .any(|p| p.seq == 5 && p.problem.contains("truncated")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_configured_key_is_never_created_silently_and_public_keys_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("elsewhere.key");
        let refused = load_signing_key(&path, false).expect_err("missing key");
        assert!(refused.to_string().contains("keygen"), "{refused}");
        assert!(!path.exists());
        let made = generate_signing_key(&path).expect("keygen");
        assert!(
            generate_signing_key(&path).is_err(),
            "never overwrites a key"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is private: {mode:o}");
        }
        let loaded = load_signing_key(&path, false).expect("load");
        assert_eq!(loaded.to_bytes(), made.to_bytes());
        let public = hex::encode(made.verifying_key().to_bytes());
        assert_eq!(
            parse_public_key(&public).expect("hex"),
            made.verifying_key()
        );
        let file = dir.path().join("public.hex");
        std::fs::write(&file, format!("{public}\n")).expect("write");
        assert_eq!(
            parse_public_key(&file.display().to_string()).expect("file"),
            made.verifying_key()
        );
        assert!(parse_public_key("abcd").is_err());
    }

    #[tokio::test]
    async fn a_tail_cut_past_the_last_checkpoint_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path(), (CHECKPOINT_EVERY * 2 + 9) as usize).await;
        let key = signing_key(dir.path()).expect("key").verifying_key();
        // When the writer stops (every handle dropped), it signs the tail.
        let tail = CHECKPOINT_EVERY * 2 + 10;
        let mut signed = false;
        for _ in 0..100 {
            signed = Connection::open(log_path(dir.path()))
                .and_then(|c| {
                    c.query_row(
                        "SELECT EXISTS (SELECT 1 FROM checkpoints WHERE seq = ?1)",
                        [tail],
                        |r| r.get(0),
                    )
                })
                .expect("query");
            if signed {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(signed, "the tail is signed when the writer stops");
        assert!(verify(&log_path(dir.path()), &key)
            .expect("verify")
            .1
            .is_empty());
        // A crash before the tail was signed: that checkpoint never existed.
        tamper(
            dir.path(),
            &format!("DELETE FROM checkpoints WHERE seq = {tail}"),
        );
        // Cutting records after the last checkpoint cannot be told from a shorter log...
        tamper(
            dir.path(),
            &format!("DELETE FROM decisions WHERE seq > {}", CHECKPOINT_EVERY * 2),
        );
        assert!(verify(&log_path(dir.path()), &key)
            .expect("verify")
            .1
            .is_empty());
        // ...but cutting past it is named.
        tamper(
            dir.path(),
            &format!(
                "DELETE FROM decisions WHERE seq > {}",
                CHECKPOINT_EVERY * 2 - 5
            ),
        );
        let (_, problems) = verify(&log_path(dir.path()), &key).expect("verify");
        assert_eq!(
            problems.first().map(|p| p.seq),
            Some(CHECKPOINT_EVERY * 2),
            "{problems:?}"
        );
        assert!(problems[0].problem.contains("truncated"));
        // A checkpoint signed by another key is named too.
        let other = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let (_, problems) = verify(&log_path(dir.path()), &other).expect("verify");
        assert!(
            problems.iter().any(|p| p.problem.contains("signature")),
            "{problems:?}"
        );
    }
}

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
    let mut out = Vec::new();
    for (seq, json, prev_hash, hash) in read_all(path)? {
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
    let mut replayed = 0;
    let mut changes = Vec::new();
    for chained in query(path, &Query::default())? {
        let record = chained.record;
        let Some(mut request) = record.request.clone() else {
            continue;
        };
        if record.downstream_outcome.is_some() {
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
    Ok((replayed, changes))
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
