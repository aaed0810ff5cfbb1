//! `capgate audit verify` (and `audit query`, `policy replay`) over arbitrary files: the input
//! is the decision log's file itself (seeds: the reference log a real gateway wrote).
//!
//! Invariants:
//! - no panic, whatever the file holds (not SQLite, another schema, corrupt pages, records
//!   that are not JSON, absurd sequence numbers, checkpoints that are not hex);
//! - a log that verifies has a chain where every record's hash covers its predecessor's hash
//!   and its own text, in sequence order from 1.

#![no_main]

use capgate::audit::{chain_hash, query_rows, replay_records, verify_any, Query, GENESIS};
use capgate_fuzz::decision_log::{reference, scratch, write_log};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reference = reference();
    let path = scratch("audit-file.db");
    write_log(&path, data);
    let Ok((count, problems)) = verify_any(&path, &[reference.key]) else {
        return;
    };
    let Ok(rows) = capgate::audit::read_all(&path) else {
        return;
    };
    assert_eq!(count, rows.len());
    if problems.is_empty() {
        let mut prev = GENESIS.to_string();
        for (i, (seq, record, prev_hash, hash)) in rows.iter().enumerate() {
            assert_eq!(*seq, i as i64 + 1, "a verified log is numbered from 1 without gaps");
            assert_eq!(*prev_hash, prev, "a verified record chains to its predecessor");
            assert_eq!(*hash, chain_hash(prev_hash, record), "a verified record matches its hash");
            prev = hash.clone();
        }
    }
    // What `audit query` and `policy replay` do with the same rows.
    // Replaying decides every record's request: a few records are enough here.
    if let Ok(records) = query_rows(rows, &Query::default()) {
        let _ = replay_records(records.into_iter().take(4).collect(), capgate_fuzz::engine());
    }
});
