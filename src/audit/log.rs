//! The writer: one thread owns the database connection and appends records in order, each
//! chained to the one before it (`prev_hash`, `hash`). Whatever queued while the last batch was
//! written is committed in one transaction (group commit), and checkpoints are signed every
//! `CheckpointPolicy::every` records and, on a quiet log, within `CheckpointPolicy::interval`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::{params, Connection, OptionalExtension};

use super::keys::checkpoint_message;
use super::{chain_hash, AuditError, DecisionRecord, GENESIS};
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

type Ack = tokio::sync::oneshot::Sender<Result<i64, String>>;

/// The writer's handle. Cloning is cheap; the writer thread ends when all handles are dropped.
#[derive(Clone)]
pub struct DecisionLog {
    queue: mpsc::Sender<(DecisionRecord, Option<Ack>)>,
    path: PathBuf,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::{record, signing_key, tamper};
    use crate::audit::{log_path, verify};

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
}
