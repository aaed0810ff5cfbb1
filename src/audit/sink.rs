//! What the decision log's writer appends to, whatever holds the chain: the [`Sink`] trait
//! (the SQLite file, or one replica's chain in PostgreSQL), when checkpoints are signed, and the
//! chained form of a record.

use super::DecisionRecord;

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

/// Where the writer appends one chain: the SQLite file, or one replica's chain in the
/// PostgreSQL database (`super::postgres`).
pub(crate) trait Sink: Send {
    /// Appends `records` in one transaction, chained to the last record, signing a checkpoint
    /// at every multiple of `every`; their sequence numbers.
    fn write_batch(
        &mut self,
        records: &[&DecisionRecord],
        key: &ed25519_dalek::SigningKey,
        every: i64,
    ) -> Result<Vec<i64>, String>;
    /// Signs a checkpoint over the last record when it has none yet; whether one was written.
    fn checkpoint_tail(&mut self, key: &ed25519_dalek::SigningKey) -> Result<bool, String>;
    /// Whether the writer keeps records no caller waits for when a batch fails, to write them
    /// with a later one: for a sink whose failures are expected to pass (a database that is
    /// away for a while). A file's failures (a full disk) count the records lost instead.
    fn keeps_unwritten(&self) -> bool {
        false
    }
    /// The canonical JSON of the chain's last `n` records: what a failed batch may have
    /// committed after all. Needed only where a commit's answer can be lost (a network).
    fn recent(&mut self, _n: usize) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// The chained form of a record: its canonical JSON (RFC 8785), serialised straight from the
/// record, without an intermediate JSON tree.
pub(crate) fn encode(record: &DecisionRecord) -> String {
    // A record always serialises (string keys, no floats that are not finite); were it not to,
    // the text below still differs from every real record's form.
    serde_json_canonicalizer::to_string(record)
        .unwrap_or_else(|e| format!("<a record that cannot be canonicalised: {e}>"))
}
