//! Tampering with a real decision log (`fuzz/fixtures/decision-log.db`): bytes of its file
//! flipped, or its rows and checkpoints edited (characters of a record, a hash or a signature
//! changed, records deleted, swapped, duplicated or renumbered, checkpoints moved, deleted or
//! forged with another key, hashes recomputed after an edit), then `audit verify`.
//!
//! Invariants:
//! - no panic;
//! - verify never accepts an edited record: when it finds no problem, every record a signed
//!   checkpoint covers is there, unchanged; and unless the hashes were recomputed (which only
//!   the unsigned tail after the last checkpoint can survive), every record left is the
//!   original record of its sequence number, with only the tail cut off.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use capgate::audit::{chain_hash, verify_any, verify_chain, GENESIS};
use capgate_fuzz::decision_log::{checkpoints, reference, scratch, write_log};
use ed25519_dalek::Signer as _;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum RowEdit {
    RecordChar { row: u8, at: u16, with: char },
    RecordInsert { row: u8, at: u16, text: String },
    RecordDelete { row: u8, at: u16, len: u8 },
    RecordReplace { row: u8, text: String },
    PrevHashChar { row: u8, at: u8, with: char },
    HashChar { row: u8, at: u8, with: char },
    Seq { row: u8, seq: i64 },
    Swap { a: u8, b: u8 },
    Delete { row: u8 },
    Duplicate { row: u8 },
    Truncate { keep: u8 },
    /// Recompute the hash chain from this row on, as anyone who can write the file can.
    RehashFrom { row: u8 },
    CheckpointSeq { cp: u8, seq: i64 },
    CheckpointHashChar { cp: u8, at: u8, with: char },
    CheckpointSignatureChar { cp: u8, at: u8, with: char },
    CheckpointDelete { cp: u8 },
    /// A checkpoint over a row's hash, signed with a key no one trusts.
    CheckpointForge { row: u8 },
}

#[derive(Debug, Arbitrary)]
enum Input {
    File(Vec<(u32, u8)>),
    Rows(Vec<RowEdit>),
}

fn edit_char(text: &mut String, at: usize, with: char) {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return;
    }
    let at = at % chars.len();
    *text = chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i == at { with } else { *c })
        .collect();
}

fn pick<T>(items: &[T], index: u8) -> Option<usize> {
    (!items.is_empty()).then(|| usize::from(index) % items.len())
}

type Rows = Vec<(i64, String, String, String)>;
type Checkpoints = Vec<(i64, String, String)>;

/// Checks what a log that verified holds against the original.
fn check_accepted(rows: &Rows, checkpoints: &Checkpoints, rehashed: bool) {
    let original = &reference().rows;
    let signed_upto = checkpoints.iter().map(|c| c.0).max().unwrap_or(0);
    for row in original.iter().filter(|r| r.0 <= signed_upto) {
        assert!(
            rows.iter().any(|r| r == row),
            "verify accepted a log in which signed record {} was edited or removed",
            row.0
        );
    }
    if !rehashed {
        assert!(
            rows.len() <= original.len() && rows[..] == original[..rows.len()],
            "verify accepted a log whose records are not the original's first {}",
            rows.len()
        );
    }
}

fn apply(rows: &mut Rows, checkpoints: &mut Checkpoints, edit: &RowEdit) -> bool {
    let mut rehashed = false;
    match edit {
        RowEdit::RecordChar { row, at, with } => {
            if let Some(i) = pick(rows, *row) {
                edit_char(&mut rows[i].1, usize::from(*at), *with);
            }
        }
        RowEdit::RecordInsert { row, at, text } => {
            if let Some(i) = pick(rows, *row) {
                let record = &mut rows[i].1;
                let at = record
                    .char_indices()
                    .map(|(i, _)| i)
                    .nth(usize::from(*at) % record.chars().count().max(1))
                    .unwrap_or(0);
                record.insert_str(at, text);
            }
        }
        RowEdit::RecordDelete { row, at, len } => {
            if let Some(i) = pick(rows, *row) {
                let chars: Vec<char> = rows[i].1.chars().collect();
                if !chars.is_empty() {
                    let at = usize::from(*at) % chars.len();
                    let end = (at + usize::from(*len).max(1)).min(chars.len());
                    rows[i].1 = chars[..at].iter().chain(&chars[end..]).collect();
                }
            }
        }
        RowEdit::RecordReplace { row, text } => {
            if let Some(i) = pick(rows, *row) {
                rows[i].1 = text.clone();
            }
        }
        RowEdit::PrevHashChar { row, at, with } => {
            if let Some(i) = pick(rows, *row) {
                edit_char(&mut rows[i].2, usize::from(*at), *with);
            }
        }
        RowEdit::HashChar { row, at, with } => {
            if let Some(i) = pick(rows, *row) {
                edit_char(&mut rows[i].3, usize::from(*at), *with);
            }
        }
        RowEdit::Seq { row, seq } => {
            if let Some(i) = pick(rows, *row) {
                rows[i].0 = *seq;
            }
        }
        RowEdit::Swap { a, b } => {
            if let (Some(a), Some(b)) = (pick(rows, *a), pick(rows, *b)) {
                rows.swap(a, b);
            }
        }
        RowEdit::Delete { row } => {
            if let Some(i) = pick(rows, *row) {
                rows.remove(i);
            }
        }
        RowEdit::Duplicate { row } => {
            if let Some(i) = pick(rows, *row) {
                let copy = rows[i].clone();
                rows.insert(i, copy);
            }
        }
        RowEdit::Truncate { keep } => rows.truncate(usize::from(*keep)),
        RowEdit::RehashFrom { row } => {
            if let Some(i) = pick(rows, *row) {
                let mut prev = if i == 0 {
                    GENESIS.to_string()
                } else {
                    rows[i - 1].3.clone()
                };
                for r in rows.iter_mut().skip(i) {
                    r.2 = prev.clone();
                    r.3 = chain_hash(&r.2, &r.1);
                    prev = r.3.clone();
                }
                rehashed = true;
            }
        }
        RowEdit::CheckpointSeq { cp, seq } => {
            if let Some(i) = pick(checkpoints, *cp) {
                checkpoints[i].0 = *seq;
            }
        }
        RowEdit::CheckpointHashChar { cp, at, with } => {
            if let Some(i) = pick(checkpoints, *cp) {
                edit_char(&mut checkpoints[i].1, usize::from(*at), *with);
            }
        }
        RowEdit::CheckpointSignatureChar { cp, at, with } => {
            if let Some(i) = pick(checkpoints, *cp) {
                edit_char(&mut checkpoints[i].2, usize::from(*at), *with);
            }
        }
        RowEdit::CheckpointDelete { cp } => {
            if let Some(i) = pick(checkpoints, *cp) {
                checkpoints.remove(i);
            }
        }
        RowEdit::CheckpointForge { row } => {
            if let Some(i) = pick(rows, *row) {
                let forger = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
                let (seq, hash) = (rows[i].0, rows[i].3.clone());
                let signature = forger.sign(format!("capgate-checkpoint:{seq}:{hash}").as_bytes());
                checkpoints.push((seq, hash, hex::encode(signature.to_bytes())));
            }
        }
    }
    rehashed
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let reference = reference();
    match input {
        Input::File(flips) => {
            let mut bytes = reference.bytes.clone();
            for (at, xor) in flips.iter().take(8) {
                let at = *at as usize % bytes.len();
                bytes[at] ^= (*xor).max(1);
            }
            let path = scratch("audit-tamper.db");
            write_log(&path, &bytes);
            let Ok((_, problems)) = verify_any(&path, &[reference.key]) else {
                return;
            };
            if problems.is_empty() {
                let rows = capgate::audit::read_all(&path).expect("a verified log reads");
                let checkpoints = checkpoints(&path).expect("verified checkpoints read");
                check_accepted(&rows, &checkpoints, false);
            }
        }
        Input::Rows(edits) => {
            let mut rows = reference.rows.clone();
            let mut checkpoints = reference.checkpoints.clone();
            let mut rehashed = false;
            for edit in edits.iter().take(6) {
                rehashed |= apply(&mut rows, &mut checkpoints, edit);
            }
            // The store keeps rows in sequence order and one checkpoint per sequence number.
            rows.sort_by_key(|r| r.0);
            checkpoints.sort_by_key(|c| c.0);
            let problems = verify_chain(&rows, &checkpoints, &[reference.key]);
            if problems.is_empty() {
                check_accepted(&rows, &checkpoints, rehashed);
            }
        }
    }
});
