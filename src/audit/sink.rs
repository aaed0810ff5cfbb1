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

/// The chained form of a record: its canonical JSON ([`crate::store::canonical_json`]: RFC
/// 8785, integers with every digit), the text its hash is taken over. `audit verify` hashes
/// the stored text itself, so records written under an earlier form verify as written.
pub(crate) fn encode(record: &DecisionRecord) -> String {
    // A record always serialises (string keys, no floats that are not finite); were it not to,
    // the text below still differs from every real record's form.
    crate::store::canonical_json_of(record)
        .unwrap_or_else(|e| format!("<a record that cannot be canonicalised: {e}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log a real gateway wrote (fuzz/fixtures/decision-log.db, under the earlier
    /// encoder, straight RFC 8785 through serde_json_canonicalizer): every record, read back,
    /// is written to the very text that was hashed.
    #[test]
    fn every_record_of_a_real_log_encodes_to_the_text_it_was_hashed_over() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fixtures/decision-log.db");
        let db = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("the fixture log opens");
        let mut statement = db
            .prepare("SELECT record FROM decisions ORDER BY seq")
            .expect("query");
        let texts: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("texts");
        assert!(
            texts.iter().filter(|t| t.contains("\"request\":{")).count() >= 10,
            "the fixture holds decision records with their policy requests"
        );
        for text in &texts {
            let record: DecisionRecord = serde_json::from_str(text).expect("a record");
            assert_eq!(&encode(&record), text);
            let jcs = serde_json_canonicalizer::to_string(&record).expect("jcs");
            assert_eq!(&encode(&record), &jcs);
        }
    }
}
