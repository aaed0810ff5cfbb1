//! The writer thread: the one owner of the log's sink. It takes whatever queued while the last
//! batch was written, and while nobody in the batch waits, what arrives within [`LINGER`],
//! and commits it in one transaction (group commit), answers the callers who wait, and signs checkpoints every `CheckpointPolicy::every` records and, on a quiet log,
//! within `CheckpointPolicy::interval`.
//!
//! A sink whose failures are expected to pass (a replica's chain in PostgreSQL while the
//! database is away: [`Sink::keeps_unwritten`]) does not lose the records no caller waited
//! for: they stay in memory, in order, up to [`UNWRITTEN_LIMIT`], and are written ahead of the
//! next batch (retried every [`RETRY_EVERY`] while nothing else arrives). A record whose caller
//! waited (`append_durable`) is never retried: its caller was told it failed, and refused its
//! call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::sink::{encode, CheckpointPolicy, Sink};
use super::DecisionRecord;

/// Most records kept unwritten in memory; beyond it records are dropped (and counted).
pub const UNWRITTEN_LIMIT: usize = 50_000;

/// How often unwritten records are retried while nothing else arrives.
const RETRY_EVERY: Duration = Duration::from_secs(1);

pub(super) type Ack = tokio::sync::oneshot::Sender<Result<i64, String>>;
pub(super) type FlushAck = tokio::sync::oneshot::Sender<Result<(), String>>;

/// What the writer thread is sent, in order.
// A record travels by value: boxing it would cost an allocation per call for the sake of the
// rare, small flush marker.
#[allow(clippy::large_enum_variant)]
pub(super) enum Queued {
    /// A record to append; `ack` (for `append_durable`) gets its sequence number once committed.
    Record {
        record: DecisionRecord,
        ack: Option<Ack>,
    },
    /// Answered once the batch holding it is committed (with every record kept unwritten
    /// before it). `failed_before` is the count of lost records no caller waited for when the
    /// flush before it was called: more by then mean such a record queued since was lost
    /// (even one the writer had already given up on when this flush was called). A durable
    /// record that failed was answered to its own caller.
    Flush { failed_before: u64, ack: FlushAck },
}

impl Queued {
    fn record(&self) -> Option<&DecisionRecord> {
        match self {
            Queued::Record { record, .. } => Some(record),
            Queued::Flush { .. } => None,
        }
    }
}

/// Counters the writer keeps and the handles read.
#[derive(Default)]
pub(super) struct Counts {
    /// Records that could not be written and never will be.
    pub failed: AtomicU64,
    /// Records kept in memory to be written once the sink takes them.
    pub unwritten: AtomicU64,
    /// Of `failed`, the records no caller waited for: nobody was told of them but a flush.
    pub unanswered: AtomicU64,
    /// `unanswered` as the last flush found it when called: a flush answers for every such
    /// loss since.
    pub flush_mark: AtomicU64,
}

/// Most records committed in one transaction.
const BATCH_LIMIT: usize = 4096;

/// How long a batch that nobody waits for stays open for more records: a call's decision and
/// outcome records, and other calls', share one commit instead of one each. The writer sleeps
/// meanwhile, so records queued without a waiter do not wake it; a durable record or a flush
/// wakes it ([`std::thread::Thread::unpark`]) and closes the batch, so no caller waits for
/// the linger.
pub const LINGER: Duration = Duration::from_millis(2);

/// Whether someone waits for the commit of this item.
fn waits(queued: &Queued) -> bool {
    match queued {
        Queued::Record { ack, .. } => ack.is_some(),
        Queued::Flush { .. } => true,
    }
}

/// The batch that starts with `first`: what already queued, then, while nobody in it waits
/// and it has room, what arrives within `linger` ([`LINGER`]) of `first`.
fn gather(first: Queued, incoming: &mpsc::Receiver<Queued>, linger: Duration) -> Vec<Queued> {
    let until = Instant::now() + linger;
    let mut waited_for = waits(&first);
    let mut batch = vec![first];
    while batch.len() < BATCH_LIMIT {
        match incoming.try_recv() {
            Ok(next) => {
                waited_for |= waits(&next);
                batch.push(next);
            }
            // Every handle is gone: the batch is what there is (the loop sees the rest).
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {
                let left = until.saturating_duration_since(Instant::now());
                if waited_for || left.is_zero() {
                    break;
                }
                // Woken early by a waiter's unpark (or spuriously): the queue is read again.
                std::thread::park_timeout(left);
            }
        }
    }
    batch
}

/// What one commit wrote.
struct Committed {
    /// The sequence numbers of the batch's own records, in order.
    seqs: Vec<i64>,
    /// The last sequence number written, kept records included.
    last: Option<i64>,
}

/// The writer thread's state: the one sink that writes to the log.
pub(super) struct Writer {
    pub sink: Box<dyn Sink>,
    pub key: ed25519_dalek::SigningKey,
    pub checkpoints: CheckpointPolicy,
    pub counts: Arc<Counts>,
    /// Records no caller waits for that a failed batch held, oldest first.
    pub unwritten: Vec<DecisionRecord>,
    /// How many records the last failed batch tried to write: a batch that failed in its
    /// commit's answer may have committed all the same, so those are checked for before the
    /// unwritten records are written again.
    pub uncertain: usize,
}

impl Writer {
    /// Commits what arrives, in batches, until every handle is dropped; signs the tail of a log
    /// that has been quiet for `checkpoints.interval`, and the tail again when it stops.
    pub fn run(mut self, incoming: mpsc::Receiver<Queued>) {
        let mut unsigned_since: Option<Instant> = None;
        loop {
            let retrying = !self.unwritten.is_empty();
            let checkpoint_wait = unsigned_since
                .map(|since| self.checkpoints.interval.saturating_sub(since.elapsed()))
                .unwrap_or(Duration::from_secs(3600));
            let wait = match retrying {
                true => checkpoint_wait.min(RETRY_EVERY),
                false => checkpoint_wait,
            };
            let first = match incoming.recv_timeout(wait) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if retrying {
                        let result = self.commit(&[]);
                        self.track_tail(&result, &mut unsigned_since);
                    }
                    let due = match unsigned_since {
                        Some(since) => since.elapsed() >= self.checkpoints.interval,
                        None => !retrying,
                    };
                    if due {
                        match self.sink.checkpoint_tail(&self.key) {
                            Ok(_) => unsigned_since = None,
                            Err(error) => {
                                tracing::error!(%error, "decision log checkpoint failed")
                            }
                        }
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if !self.unwritten.is_empty() {
                        let result = self.commit(&[]);
                        self.track_tail(&result, &mut unsigned_since);
                        self.give_up_unwritten();
                    }
                    if unsigned_since.is_some() {
                        let _ = self.sink.checkpoint_tail(&self.key);
                    }
                    break;
                }
            };
            // Group commit: everything that queued while the last batch was written and, while
            // nobody in the batch waits, what arrives within `LINGER` of the first record.
            let batch = gather(first, &incoming, LINGER);
            let result = self.commit(&batch);
            self.track_tail(&result, &mut unsigned_since);
            self.answer(batch, result.map(|committed| committed.seqs));
        }
    }

    /// Since when the log's tail has been unsigned, after a commit.
    fn track_tail(&self, result: &Result<Committed, String>, unsigned_since: &mut Option<Instant>) {
        // A commit that wrote nothing left the tail as signed as it was.
        if let Some(last) = result.as_ref().ok().and_then(|c| c.last) {
            let tail_signed = last % self.checkpoints.every == 0;
            *unsigned_since = match (tail_signed, *unsigned_since) {
                (true, _) => None,
                (false, Some(since)) => Some(since),
                (false, None) => Some(Instant::now()),
            };
        }
    }

    /// Writes the records kept unwritten and then the batch's, in one transaction.
    fn commit(&mut self, batch: &[Queued]) -> Result<Committed, String> {
        let fresh: Vec<&DecisionRecord> = batch.iter().filter_map(Queued::record).collect();
        if fresh.is_empty() && self.unwritten.is_empty() {
            return Ok(Committed {
                seqs: Vec::new(),
                last: None,
            });
        }
        // Records a failed batch may have committed after all are not written twice.
        let checked = match self.uncertain > 0 && !self.unwritten.is_empty() {
            true => self.drop_committed(),
            false => Ok(()),
        };
        let kept = self.unwritten.len();
        let records: Vec<&DecisionRecord> = self.unwritten.iter().chain(fresh).collect();
        let attempted = records.len();
        let written = checked.and_then(|()| {
            self.sink
                .write_batch(&records, &self.key, self.checkpoints.every)
        });
        match written {
            Ok(mut seqs) => {
                self.uncertain = 0;
                self.unwritten.clear();
                self.counts.unwritten.store(0, Ordering::SeqCst);
                let last = seqs.last().copied();
                Ok(Committed {
                    seqs: seqs.split_off(kept.min(seqs.len())),
                    last,
                })
            }
            Err(error) => {
                self.uncertain = self.uncertain.max(attempted);
                let (lost, unanswered) = self.keep(batch);
                // Counted before anyone is answered, so a flush in this or a later batch sees it.
                self.counts.failed.fetch_add(lost, Ordering::SeqCst);
                self.counts
                    .unanswered
                    .fetch_add(unanswered, Ordering::SeqCst);
                tracing::error!(%error, records = attempted, lost, kept = self.unwritten.len(), "decision log write failed");
                Err(error)
            }
        }
    }

    /// Keeps the failed batch's records that no caller waits for, when the sink keeps
    /// unwritten records and there is room; how many records are lost, and how many of those
    /// no caller waited for (the others' callers are told).
    fn keep(&mut self, batch: &[Queued]) -> (u64, u64) {
        let (mut lost, mut unanswered) = (0, 0);
        for queued in batch {
            match queued {
                Queued::Record { record, ack: None }
                    if self.sink.keeps_unwritten() && self.unwritten.len() < UNWRITTEN_LIMIT =>
                {
                    self.unwritten.push(record.clone());
                }
                Queued::Record { ack: None, .. } => {
                    lost += 1;
                    unanswered += 1;
                }
                Queued::Record { ack: Some(_), .. } => lost += 1,
                Queued::Flush { .. } => {}
            }
        }
        self.counts
            .unwritten
            .store(self.unwritten.len() as u64, Ordering::SeqCst);
        (lost, unanswered)
    }

    /// Drops the unwritten records that the last failed batch committed after all (its
    /// commit's answer was lost): they are among the chain's last records.
    fn drop_committed(&mut self) -> Result<(), String> {
        let recent = self.sink.recent(self.uncertain)?;
        if !recent.is_empty() {
            let before = self.unwritten.len();
            self.unwritten
                .retain(|record| !recent.contains(&encode(record)));
            let committed = before - self.unwritten.len();
            if committed > 0 {
                tracing::warn!(
                    committed,
                    "decision records of a batch reported failed were committed after all"
                );
            }
            self.counts
                .unwritten
                .store(self.unwritten.len() as u64, Ordering::SeqCst);
        }
        self.uncertain = 0;
        Ok(())
    }

    /// The writer stops with records it could not write: they are lost.
    fn give_up_unwritten(&mut self) {
        let lost = self.unwritten.len();
        if lost > 0 {
            // Records kept unwritten are those no caller waits for.
            self.counts.failed.fetch_add(lost as u64, Ordering::SeqCst);
            self.counts
                .unanswered
                .fetch_add(lost as u64, Ordering::SeqCst);
            self.counts.unwritten.store(0, Ordering::SeqCst);
            tracing::error!(
                lost,
                "the decision log stopped with records it could not write"
            );
            self.unwritten.clear();
        }
    }

    /// Answers everyone in the batch who waits: each durable record with its sequence number,
    /// each flush marker with whether everything queued before it was written.
    fn answer(&self, batch: Vec<Queued>, result: Result<Vec<i64>, String>) {
        let mut index = 0;
        for queued in batch {
            match queued {
                Queued::Record { ack, .. } => {
                    if let Some(ack) = ack {
                        let _ = ack.send(match &result {
                            Ok(seqs) => seqs.get(index).copied().ok_or_else(|| {
                                "the writer lost count of its batch (a bug)".to_string()
                            }),
                            Err(error) => Err(error.clone()),
                        });
                    }
                    index += 1;
                }
                Queued::Flush { failed_before, ack } => {
                    let lost = self
                        .counts
                        .unanswered
                        .load(Ordering::SeqCst)
                        .saturating_sub(failed_before);
                    let _ = ack.send(match &result {
                        Err(error) => Err(error.clone()),
                        Ok(_) if lost > 0 => Err(format!(
                            "{lost} record(s) queued before the flush could not be written"
                        )),
                        Ok(_) => Ok(()),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::audit::test_support::record;
    use crate::audit::DecisionLog;

    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Up,
        Away,
        /// Commits, but the answer is lost: the writer is told the batch failed.
        AnswerLost,
    }

    /// A chain in memory whose database can go away, as a replica's does.
    #[derive(Clone)]
    struct Flaky {
        rows: Arc<Mutex<Vec<String>>>,
        state: Arc<Mutex<State>>,
    }

    impl Flaky {
        fn set(&self, state: State) {
            *self.state.lock().expect("state") = state;
        }
        fn request_ids(&self) -> Vec<String> {
            self.rows
                .lock()
                .expect("rows")
                .iter()
                .map(|json| {
                    serde_json::from_str::<DecisionRecord>(json)
                        .expect("a record")
                        .request_id
                })
                .collect()
        }
    }

    impl Sink for Flaky {
        fn write_batch(
            &mut self,
            records: &[&DecisionRecord],
            _key: &ed25519_dalek::SigningKey,
            _every: i64,
        ) -> Result<Vec<i64>, String> {
            let state = *self.state.lock().expect("state");
            if state == State::Away {
                return Err("the database is away".into());
            }
            let mut rows = self.rows.lock().expect("rows");
            let mut seqs = Vec::new();
            for record in records {
                rows.push(encode(record));
                seqs.push(rows.len() as i64);
            }
            match state {
                State::AnswerLost => Err("the connection closed in COMMIT's answer".into()),
                State::Up | State::Away => Ok(seqs),
            }
        }
        fn checkpoint_tail(&mut self, _key: &ed25519_dalek::SigningKey) -> Result<bool, String> {
            Ok(false)
        }
        fn keeps_unwritten(&self) -> bool {
            true
        }
        fn recent(&mut self, n: usize) -> Result<Vec<String>, String> {
            if *self.state.lock().expect("state") == State::Away {
                return Err("the database is away".into());
            }
            Ok(self
                .rows
                .lock()
                .expect("rows")
                .iter()
                .rev()
                .take(n)
                .cloned()
                .collect())
        }
    }

    fn started() -> (DecisionLog, Flaky) {
        let sink = Flaky {
            rows: Arc::default(),
            state: Arc::new(Mutex::new(State::Up)),
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let log = DecisionLog::start(
            "memory".into(),
            Box::new(sink.clone()),
            key,
            CheckpointPolicy::default(),
        )
        .expect("start");
        (log, sink)
    }

    fn queued(
        n: usize,
        waited_for: bool,
    ) -> (
        Queued,
        Option<tokio::sync::oneshot::Receiver<Result<i64, String>>>,
    ) {
        let (ack, done) = tokio::sync::oneshot::channel();
        let queued = Queued::Record {
            record: record(n),
            ack: waited_for.then_some(ack),
        };
        (queued, waited_for.then_some(done))
    }

    fn ids(batch: &[Queued]) -> Vec<String> {
        batch
            .iter()
            .filter_map(Queued::record)
            .map(|r| r.request_id.clone())
            .collect()
    }

    /// A batch nobody waits for stays open for what arrives while it lingers, and the first
    /// record someone waits for closes it at once (the linger here is 20 s: only the waiter's
    /// wake-up can end the batch sooner).
    #[test]
    fn a_lingering_batch_takes_what_arrives_until_someone_waits() {
        let linger = Duration::from_secs(20);
        let started = Instant::now();
        let (queue, incoming) = mpsc::channel();
        let gatherer = std::thread::current();
        let sender = std::thread::spawn(move || {
            for n in 1..=2 {
                queue.send(queued(n, false).0).expect("send");
            }
            let (durable, done) = queued(3, true);
            queue.send(durable).expect("send");
            gatherer.unpark();
            (queue, done)
        });
        let batch = gather(queued(0, false).0, &incoming, linger);
        assert_eq!(ids(&batch), ["req-0", "req-1", "req-2", "req-3"]);
        let (queue, _done) = sender.join().expect("sender");

        // Someone waits for the first: what queued is taken, nothing more is waited for.
        queue.send(queued(5, false).0).expect("send");
        let (first, _done) = queued(4, true);
        let batch = gather(first, &incoming, linger);
        assert_eq!(ids(&batch), ["req-4", "req-5"]);

        // A flush is waited for too; and every handle gone ends a batch.
        let (ack, _flushed) = tokio::sync::oneshot::channel();
        queue
            .send(Queued::Flush {
                failed_before: 0,
                ack,
            })
            .expect("send");
        drop(queue);
        let batch = gather(queued(6, false).0, &incoming, linger);
        assert_eq!(batch.len(), 2);
        assert!(matches!(batch[1], Queued::Flush { .. }));
        assert!(
            started.elapsed() < linger,
            "a batch someone waited for lingered: {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn records_nobody_waits_for_outlive_an_outage_and_durable_ones_fail() {
        let (log, sink) = started();
        log.append(record(0));
        log.flush().await.expect("flush");
        sink.set(State::Away);
        log.append(record(1));
        log.append(record(2));
        let refused = log.append_durable(record(3)).await;
        assert!(refused.is_err(), "a durable record is refused while away");
        log.append(record(4));
        assert!(log.flush().await.is_err(), "nothing is written while away");
        assert_eq!(log.unwritten_records(), 3);
        assert_eq!(log.failed_records(), 1, "only the refused durable record");
        assert_eq!(sink.request_ids(), ["req-0"]);

        sink.set(State::Up);
        log.append(record(5));
        log.flush()
            .await
            .expect("written once the database is back");
        assert_eq!(
            sink.request_ids(),
            ["req-0", "req-1", "req-2", "req-4", "req-5"],
            "in order, the refused durable record not among them"
        );
        assert_eq!(log.unwritten_records(), 0);
        assert_eq!(log.failed_records(), 1);
    }

    #[tokio::test]
    async fn a_batch_committed_although_reported_failed_is_not_written_twice() {
        let (log, sink) = started();
        log.append(record(0));
        log.flush().await.expect("flush");
        sink.set(State::AnswerLost);
        log.append(record(1));
        log.append(record(2));
        assert!(log.flush().await.is_err());
        // One batch or two, as the writer happened to group them: none is lost.
        let unwritten = log.unwritten_records();
        assert!((1..=2).contains(&unwritten), "{unwritten}");
        sink.set(State::Up);
        log.append(record(3));
        log.flush().await.expect("flush");
        assert_eq!(sink.request_ids(), ["req-0", "req-1", "req-2", "req-3"]);
        assert_eq!(log.unwritten_records(), 0);
    }

    #[tokio::test]
    async fn unwritten_records_are_retried_without_new_ones_arriving() {
        let (log, sink) = started();
        sink.set(State::Away);
        log.append(record(0));
        assert!(log.flush().await.is_err());
        sink.set(State::Up);
        // Nothing more is appended: the writer's retry writes it.
        let deadline = Instant::now() + RETRY_EVERY * 5;
        while sink.request_ids().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the unwritten record was never retried"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(sink.request_ids(), ["req-0"]);
    }
}
