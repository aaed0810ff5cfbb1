//! Reading the log back: every record in order, and the check that names each record that was
//! edited, deleted, reordered or cut off the end (against the signed checkpoints).

use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;

use super::keys::checkpoint_message;
use super::{chain_hash, AuditError, GENESIS};

/// A problem `capgate audit verify` found, naming the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainProblem {
    pub seq: i64,
    pub problem: String,
}

/// Reads every record in order.
pub fn read_all(path: &Path) -> Result<Vec<(i64, String, String, String)>, AuditError> {
    let connection = Connection::open(path).map_err(|e| AuditError(e.to_string()))?;
    // A gateway may be writing the log meanwhile: wait out a moment's lock rather than fail.
    connection
        .busy_timeout(std::time::Duration::from_millis(1500))
        .map_err(|e| AuditError(e.to_string()))?;
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
    verify_any(path, std::slice::from_ref(key))
}

/// [`verify`], a checkpoint verifying with any of `keys`.
pub fn verify_any(
    path: &Path,
    keys: &[ed25519_dalek::VerifyingKey],
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
    let problems = verify_chain(&rows, &checkpoints, keys);
    Ok((rows.len(), problems))
}

/// The check of one chain read into memory: `rows` are (seq, record, prev_hash, hash) in
/// order, `checkpoints` (seq, hash, signature); a checkpoint must verify with one of `keys`.
pub fn verify_chain(
    rows: &[(i64, String, String, String)],
    checkpoints: &[(i64, String, String)],
    keys: &[ed25519_dalek::VerifyingKey],
) -> Vec<ChainProblem> {
    let mut problems = checkpoint_problems(rows, checkpoints, keys);
    let mut expected_prev = GENESIS.to_string();
    // Wider than a sequence number: a stored one can be anything, `i64::MAX` included.
    let mut expected_seq: i128 = 1;
    for (seq, json, prev_hash, hash) in rows {
        let at = i128::from(*seq);
        if at > expected_seq {
            problems.push(ChainProblem {
                seq: *seq,
                problem: format!("records {expected_seq}..{} are missing (deleted)", at - 1),
            });
        } else if at < expected_seq {
            problems.push(ChainProblem {
                seq: *seq,
                problem: format!(
                    "numbered {seq} where record {expected_seq} is due (duplicated or renumbered)"
                ),
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
        expected_seq = at + 1;
    }
    problems
}

fn checkpoint_problems(
    rows: &[(i64, String, String, String)],
    checkpoints: &[(i64, String, String)],
    keys: &[ed25519_dalek::VerifyingKey],
) -> Vec<ChainProblem> {
    let mut problems = Vec::new();
    let last = rows.last().map(|r| r.0).unwrap_or(0);
    for (seq, hash, signature) in checkpoints {
        let signed = hex::decode(signature)
            .ok()
            // Only the writer's own spelling (lower-case hex): a checkpoint edited into another
            // spelling of the same bytes is an edited checkpoint.
            .filter(|bytes| hex::encode(bytes) == *signature)
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .map(|bytes| ed25519_dalek::Signature::from_bytes(&bytes))
            .is_some_and(|sig| {
                keys.iter().any(|key| {
                    key.verify_strict(checkpoint_message(*seq, hash).as_bytes(), &sig)
                        .is_ok()
                })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::{filled, signing_key, tamper};
    use crate::audit::{log_path, CHECKPOINT_EVERY};

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

    /// Found by the `audit_tamper` fuzz target (fuzz/corpus/audit_tamper/crash-seq-overflow): a
    /// record renumbered to `i64::MAX` (or `i64::MIN`) overflowed the next expected sequence
    /// number (or the "missing" message) and verify panicked instead of naming the record.
    #[test]
    fn sequence_numbers_at_the_ends_of_i64_are_named_not_a_panic() {
        let row = |seq: i64, prev: &str, record: &str| {
            (
                seq,
                record.to_string(),
                prev.to_string(),
                chain_hash(prev, record),
            )
        };
        let first = row(1, GENESIS, "{}");
        let last = row(i64::MAX, &first.3, "{\"a\":1}");
        let after = row(i64::MAX, &last.3, "{\"a\":2}");
        let problems = verify_chain(&[first.clone(), last.clone(), after], &[], &[]);
        assert_eq!(
            problems.iter().map(|p| p.seq).collect::<Vec<_>>(),
            [i64::MAX, i64::MAX],
            "{problems:?}"
        );
        assert!(problems[0].problem.contains("missing"), "{problems:?}");
        assert!(problems[1].problem.contains("duplicated"), "{problems:?}");
        let lowest = row(i64::MIN, GENESIS, "{}");
        let problems = verify_chain(&[lowest], &[], &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].problem.contains("renumbered"), "{problems:?}");
    }

    /// Found by the property `a_decision_log_with_any_single_byte_changed_fails_verification`
    /// (tests/suite/properties.rs): one hex digit of a checkpoint's signature turned upper-case
    /// decoded to the same signature, and verify accepted the edited log.
    #[test]
    fn a_signature_spelled_otherwise_is_an_edited_checkpoint() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
        let rows = vec![(
            1,
            "{}".to_string(),
            GENESIS.to_string(),
            chain_hash(GENESIS, "{}"),
        )];
        let signature =
            ed25519_dalek::Signer::sign(&key, checkpoint_message(1, &rows[0].3).as_bytes());
        let written = hex::encode(signature.to_bytes());
        let keys = [key.verifying_key()];
        let checkpoint = |signature: String| vec![(1, rows[0].3.clone(), signature)];
        assert!(verify_chain(&rows, &checkpoint(written.clone()), &keys).is_empty());
        let at = written
            .find(|c: char| c.is_ascii_alphabetic())
            .expect("a hex letter");
        let mut edited = written.clone();
        edited.replace_range(at..=at, &written[at..=at].to_uppercase());
        let problems = verify_chain(&rows, &checkpoint(edited), &keys);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].problem.contains("signature"), "{problems:?}");
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
