//! The log's handle ([`DecisionLog`]) and where it writes: one thread (`writer`) owns the sink
//! and appends records in order, each chained to the one before it (`prev_hash`, `hash`), in
//! group commits, with signed checkpoints. The SQLite sink is here; the PostgreSQL one, a
//! replica's chain in the shared database, is in `postgres`.
//!
//! `append` queues a record; `append_durable` waits until its record is committed; `flush` waits
//! until everything queued before it is. The last two send their answer channel through the same
//! queue, so the writer answers them in order, after the batch that holds them, and wake the
//! writer when it lingers over a batch nobody waited for (see `writer`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use rusqlite::{params, Connection, OptionalExtension};

use super::keys::checkpoint_message;
use super::sink::{encode, CheckpointPolicy, Sink};
use super::writer::{Counts, Queued, Writer};
use super::{chain_hash, AuditError, DecisionRecord, GENESIS};

/// The writer's handle. Cloning is cheap; the writer thread ends when all handles are dropped.
#[derive(Clone)]
pub struct DecisionLog {
    queue: mpsc::Sender<Queued>,
    /// The writer thread, woken by whoever waits for a commit while it lingers over a batch.
    writer: std::thread::Thread,
    path: PathBuf,
    counts: Arc<Counts>,
    /// The database URL of a replica's chain in PostgreSQL (every replica's chain is read
    /// there); `None` for a SQLite file.
    pub(super) database: Option<Arc<str>>,
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

/// The log in one SQLite file.
struct SqliteSink(Connection);

impl Sink for SqliteSink {
    fn write_batch(
        &mut self,
        records: &[&DecisionRecord],
        key: &ed25519_dalek::SigningKey,
        every: i64,
    ) -> Result<Vec<i64>, String> {
        write_batch(&mut self.0, records, key, every).map_err(|e| e.to_string())
    }

    fn checkpoint_tail(&mut self, key: &ed25519_dalek::SigningKey) -> Result<bool, String> {
        checkpoint_tail(&mut self.0, key).map_err(|e| e.to_string())
    }
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
    records: &[&DecisionRecord],
    key: &ed25519_dalek::SigningKey,
    every: i64,
) -> rusqlite::Result<Vec<i64>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (mut seq, mut prev): (i64, String) = tx
        .prepare_cached("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .unwrap_or((0, GENESIS.to_string()));
    let mut written = Vec::with_capacity(records.len());
    for record in records {
        let json = encode(record);
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
        let path = path.to_path_buf();
        let connection = open(&path).map_err(|e| AuditError(format!("{}: {e}", path.display())))?;
        Self::start(path, Box::new(SqliteSink(connection)), key, checkpoints)
    }

    /// Starts the writer thread over `sink`; `path` names the log in messages and health.
    pub(super) fn start(
        path: PathBuf,
        sink: Box<dyn Sink>,
        key: ed25519_dalek::SigningKey,
        checkpoints: CheckpointPolicy,
    ) -> Result<Self, AuditError> {
        Self::start_with(path, move || Ok(sink), key, checkpoints)
    }

    /// Starts the writer thread, which first makes its sink with `make` (in the thread, so a
    /// sink may own a runtime) and reports whether that worked before this returns.
    pub(super) fn start_with(
        path: PathBuf,
        make: impl FnOnce() -> Result<Box<dyn Sink>, AuditError> + Send + 'static,
        key: ed25519_dalek::SigningKey,
        checkpoints: CheckpointPolicy,
    ) -> Result<Self, AuditError> {
        if checkpoints.every < 1 || checkpoints.interval.is_zero() {
            return Err(AuditError(
                "checkpoints need a positive record count and interval ([audit] checkpoint_every_records, checkpoint_interval_seconds)".into(),
            ));
        }
        let (queue, incoming) = mpsc::channel::<Queued>();
        let counts = Arc::new(Counts::default());
        let writer_counts = counts.clone();
        let (ready, started) = mpsc::channel::<Result<(), AuditError>>();
        let writer = std::thread::Builder::new()
            .name("capgate-decision-log".into())
            .spawn(move || {
                let sink = match make() {
                    Ok(sink) => sink,
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                let writer = Writer {
                    sink,
                    key,
                    checkpoints,
                    counts: writer_counts,
                    unwritten: Vec::new(),
                    uncertain: 0,
                };
                writer.run(incoming)
            })
            .map_err(|e| AuditError(format!("cannot start the log writer: {e}")))?
            .thread()
            .clone();
        started
            .recv()
            .map_err(|_| AuditError("the log writer stopped while starting".into()))??;
        Ok(Self {
            queue,
            writer,
            path,
            counts,
            database: None,
        })
    }

    /// Records that could not be written since start, and never will be.
    pub fn failed_records(&self) -> u64 {
        self.counts.failed.load(Ordering::Relaxed)
    }

    /// Records kept in memory because the database could not take them yet; they are written
    /// once it can (replicas on PostgreSQL).
    pub fn unwritten_records(&self) -> u64 {
        self.counts.unwritten.load(Ordering::Relaxed)
    }

    /// The log's database file (readable while the writer runs: WAL).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a record; it is written with the next group commit.
    pub fn append(&self, record: DecisionRecord) {
        if self
            .queue
            .send(Queued::Record { record, ack: None })
            .is_err()
        {
            self.counts.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("the decision log writer has stopped");
        }
    }

    /// Appends a record and waits until it is durable; its sequence number.
    pub async fn append_durable(&self, record: DecisionRecord) -> Result<i64, AuditError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.queue
            .send(Queued::Record {
                record,
                ack: Some(ack),
            })
            .map_err(|_| AuditError("the log writer has stopped".into()))?;
        // A writer lingering over a batch commits it now.
        self.writer.unpark();
        done.await
            .map_err(|_| AuditError("the log writer stopped before answering".into()))?
            .map_err(AuditError)
    }

    /// Waits until every record appended before this call (by `append` or `append_durable`) is
    /// committed. Fails when the writer has stopped, or when a record still queued (or kept
    /// unwritten) at the call could not be written now (records lost before the call are
    /// counted in `failed_records`).
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        // Losses no caller was told of since the flush before this one: a record appended
        // before this call may have failed before it, and must fail this flush too.
        let lost_now = self.counts.unanswered.load(Ordering::SeqCst);
        let failed_before = self.counts.flush_mark.swap(lost_now, Ordering::SeqCst);
        self.queue
            .send(Queued::Flush { failed_before, ack })
            .map_err(|_| AuditError("the log writer has stopped".into()))?;
        // A writer lingering over a batch commits it now.
        self.writer.unpark();
        done.await
            .map_err(|_| AuditError("the log writer stopped before answering".into()))?
            .map_err(AuditError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::{opened, record, signing_key, tamper};
    use crate::audit::{log_path, read_all, verify};

    #[tokio::test]
    async fn flush_returns_once_every_appended_record_is_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = opened(dir.path());
        log.flush()
            .await
            .expect("nothing queued: nothing to wait for");
        const N: usize = 500;
        for i in 0..N {
            log.append(record(i));
        }
        log.flush().await.expect("flush");
        let rows = read_all(&log_path(dir.path())).expect("read");
        assert_eq!(rows.len(), N);
        let last: DecisionRecord = serde_json::from_str(&rows[N - 1].1).expect("record");
        assert_eq!(last, record(N - 1));
        assert_eq!(log.failed_records(), 0);
    }

    /// Whether the writer gave up on the records before the flush was called, or the flush's
    /// marker shared their failing batch or came after it, the flush fails.
    #[tokio::test]
    async fn flush_fails_when_a_record_queued_before_it_was_not_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = opened(dir.path());
        log.append(record(0));
        log.flush().await.expect("flush");
        tamper(
            dir.path(),
            "CREATE TRIGGER refuse BEFORE INSERT ON decisions BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        );
        for i in 1..4 {
            log.append(record(i));
        }
        // The writer may give up on them before the flush is called (it did under load, and
        // the flush succeeded): wait for that, the harder case.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while log.failed_records() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never gave up on them"
            );
            tokio::task::yield_now().await;
        }
        let refused = log.flush().await.expect_err("the records were lost");
        assert!(
            refused.to_string().contains("could not be written")
                || refused.to_string().contains("disk full"),
            "{refused}"
        );
        assert_eq!(log.failed_records(), 3);
        // Once writes succeed again, a flush with nothing lost since its call succeeds.
        tamper(dir.path(), "DROP TRIGGER refuse;");
        log.append(record(4));
        log.flush().await.expect("flush after recovery");
        assert_eq!(read_all(&log_path(dir.path())).expect("read").len(), 2);
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
}
