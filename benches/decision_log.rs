//! The decision log's throughput with group commit, and the latency one durable append adds to
//! a side-effecting call. Prints records/s and the median/p99 of `append_durable`, and writes
//! them to target/capgate-bench/decision_log.json.
//!
//! First, the chained form of a record side by side in one run: the log's own encoding
//! (`capgate::store::canonical_json_of`) against serde_json_canonicalizer's, which the log
//! used before, over every record of a real gateway's log (fuzz/fixtures/decision-log.db:
//! decision records with their policy requests, outcome records, discovery summaries).

use std::time::Instant;

use capgate::audit::{log_path, verify, DecisionLog, DecisionRecord, Mode};

fn record(n: usize) -> DecisionRecord {
    DecisionRecord {
        time: 1_795_000_000 + n as i64,
        request_id: format!("req-{n:016x}"),
        tenant: "acme".into(),
        run_id: Some("run-1".into()),
        action: "call_tool".into(),
        resource: "case__read_case".into(),
        decision: "allow".into(),
        reason: "allowed drafting-agent for user alice call_tool `case__read_case` by `case-agents-read` (under policy set case-platform@3)".into(),
        policy_id: Some("case-agents-read".into()),
        policy_version: "case-platform@3".into(),
        actor: "alice/drafting-agent".into(),
        delegation_chain: vec!["alice".into(), "drafting-agent".into()],
        action_digest: Some("9f2c".repeat(16)),
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// Median µs per record of encoding every record of the fixture log, over `rounds` rounds.
fn encoding(
    records: &[DecisionRecord],
    rounds: usize,
    encode: &dyn Fn(&DecisionRecord) -> usize,
) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let bytes: usize = records.iter().map(encode).sum();
            std::hint::black_box(bytes);
            start.elapsed().as_secs_f64() * 1e6 / records.len() as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    percentile(&samples, 0.5)
}

fn fixture_records() -> Vec<DecisionRecord> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fixtures/decision-log.db");
    let db =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the fixture log");
    let mut statement = db
        .prepare("SELECT record FROM decisions ORDER BY seq")
        .expect("query");
    let texts: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("texts");
    texts
        .iter()
        .map(|text| serde_json::from_str(text).expect("a record"))
        .collect()
}

fn main() {
    let records = fixture_records();
    let mut ours = 0.0;
    let mut theirs = 0.0;
    // Interleaved, five times each; the medians of the five.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        a.push(encoding(&records, 400, &|r| {
            capgate::store::canonical_json_of(r).expect("json").len()
        }));
        b.push(encoding(&records, 400, &|r| {
            serde_json_canonicalizer::to_string(r).expect("jcs").len()
        }));
    }
    for (samples, out) in [(&mut a, &mut ours), (&mut b, &mut theirs)] {
        samples.sort_by(|x, y| x.total_cmp(y));
        *out = samples[samples.len() / 2];
    }
    println!(
        "a record's chained form ({} records of a real log): canonical_json_of {ours:.2} µs, serde_json_canonicalizer {theirs:.2} µs per record ({:.0} % of it)",
        records.len(),
        ours / theirs * 100.0
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("audit-signing.key");
    let signing = capgate::audit::generate_signing_key(&key_file).expect("key");
    let public = signing.verifying_key();
    let log = DecisionLog::open(
        &log_path(dir.path()),
        signing,
        capgate::audit::CheckpointPolicy::default(),
    )
    .expect("open");
    let total = std::env::var("CAPGATE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000usize);

    // Throughput: queue everything, then wait for the last record to be durable.
    let started = Instant::now();
    for n in 0..total - 1 {
        log.append(record(n));
    }
    runtime
        .block_on(log.append_durable(record(total - 1)))
        .expect("durable");
    let elapsed = started.elapsed().as_secs_f64();
    let per_second = total as f64 / elapsed;

    // Latency of one durable append at a time (what a side-effecting call waits for).
    let mut samples: Vec<f64> = (0..2_000)
        .map(|n| {
            let start = Instant::now();
            runtime
                .block_on(log.append_durable(record(total + n)))
                .expect("durable");
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));

    let (count, problems) = verify(&log_path(dir.path()), &public).expect("verify");
    assert!(problems.is_empty(), "{problems:?}");

    println!("decision log, group commit, WAL + synchronous=NORMAL:");
    println!("  {total} records in {elapsed:.2} s: {per_second:.0} records/s");
    println!("  one durable append (a side effect's wait): p50 {p50:.0} µs, p99 {p99:.0} µs");
    println!("  chain verified: {count} records");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/capgate-bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(
        out.join("decision_log.json"),
        serde_json::json!({"encode_us_per_record": ours, "canonicalizer_us_per_record": theirs,
                           "records": total, "seconds": elapsed, "records_per_second": per_second,
                           "durable_append_p50_us": p50, "durable_append_p99_us": p99})
        .to_string(),
    );
}
