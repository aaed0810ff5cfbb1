//! The decision log with real traffic, where it is kept and what happens when it cannot be
//! written: the log and its checkpoint key where configured (verified with the public half
//! alone); side effects, and with `durable_for = "every_call"` reads too, refused when their
//! record cannot be made durable, also on a full disk.

use std::process::Command;

use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn side_effects_are_refused_when_their_record_cannot_be_written() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let log = rusqlite::Connection::open(gateway.dir.path().join("data/audit.db")).expect("open");
    log.execute_batch("BEGIN IMMEDIATE")
        .expect("hold the log's write lock");
    let refused = call_with_meta(
        &alice,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "Notice"}),
        key("log-down-1"),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text_of(&refused).contains("decision log"),
        "{}",
        text_of(&refused)
    );
    assert!(!gateway
        .journal_entries()
        .iter()
        .any(|e| e["name"] == "create_notice_draft"));
    log.execute_batch("ROLLBACK").expect("release");
}

fn capgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(args)
        .output()
        .expect("run capgate")
}

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The log and its checkpoint key can live outside the data directory, and `verify` needs only
/// the key's public half, kept elsewhere; a log checked against another key fails.
#[tokio::test]
async fn the_log_and_its_key_live_where_configured_and_verify_needs_only_the_public_key() {
    let outside = tempfile::tempdir().expect("tempdir");
    let key_file = outside.path().join("keys/checkpoint.key");
    std::fs::create_dir_all(key_file.parent().expect("parent")).expect("mkdir");
    let made = capgate(&["audit", "keygen", "--out", path_str(&key_file)]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let public = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert_eq!(public.len(), 64, "{public}");
    let again = capgate(&["audit", "keygen", "--out", path_str(&key_file)]);
    assert!(!again.status.success(), "keygen never overwrites a key");
    let shown = capgate(&["audit", "public-key", "--key-file", path_str(&key_file)]);
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), public);

    let log = outside.path().join("ledger/decisions.db");
    let gateway = TestGateway::start(GatewayOptions {
        audit: Some(format!(
            "log_file = \"{}\"\nsigning_key_file = \"{}\"",
            log.display(),
            key_file.display()
        )),
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    // One summary record per tools/list: enough for a signed checkpoint (every 64 records).
    for _ in 0..70 {
        tool_names(&alice).await;
    }
    let durable = call_with_meta(
        &alice,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "Notice"}),
        key("elsewhere-1"),
    )
    .await;
    assert_ne!(durable.is_error, Some(true), "{}", text_of(&durable));
    let data = gateway.dir.path().join("data");
    assert!(
        !data.join("audit.db").exists(),
        "the log went where configured"
    );
    assert!(
        !data.join("audit-signing.key").exists(),
        "no key was generated"
    );
    let checkpoints: i64 = rusqlite::Connection::open(&log)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0)))
        .expect("checkpoints");
    assert!(checkpoints >= 1);

    let verified = capgate(&[
        "audit",
        "verify",
        "--log",
        path_str(&log),
        "--public-key",
        &public,
    ]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // The public key can also be given as a file.
    let public_file = outside.path().join("public.hex");
    std::fs::write(&public_file, &public).expect("write");
    let from_file = capgate(&[
        "audit",
        "verify",
        "--log",
        path_str(&log),
        "--public-key",
        path_str(&public_file),
    ]);
    assert!(from_file.status.success());

    // Through the CLI, on copies of this log: each kind of tampering fails, naming the record.
    let records: i64 = rusqlite::Connection::open(&log)
        .and_then(|c| c.query_row("SELECT MAX(seq) FROM decisions", [], |r| r.get(0)))
        .expect("count");
    let cases = [
        (
            "edited",
            "UPDATE decisions SET record = replace(record, 'alice', 'mallory') WHERE seq = 10".to_string(),
            "record 10:",
            "edited",
        ),
        (
            "deleted",
            "DELETE FROM decisions WHERE seq = 20".to_string(),
            "record 21:",
            "missing",
        ),
        (
            "swapped",
            "UPDATE decisions SET seq = -1 WHERE seq = 30; UPDATE decisions SET seq = 30 WHERE seq = 31; UPDATE decisions SET seq = 31 WHERE seq = -1;".to_string(),
            "record 30:",
            "does not chain",
        ),
        (
            "truncated",
            "DELETE FROM decisions WHERE seq > 60".to_string(),
            "record 64:",
            "truncated",
        ),
    ];
    assert!(records > 64, "{records}");
    for (name, sql, named, problem) in cases {
        let copy = outside.path().join(format!("{name}.db"));
        rusqlite::Connection::open(&log)
            .and_then(|c| c.execute("VACUUM INTO ?1", [path_str(&copy)]))
            .expect("copy the log");
        let intact = capgate(&[
            "audit",
            "verify",
            "--log",
            path_str(&copy),
            "--public-key",
            &public,
        ]);
        assert!(
            intact.status.success(),
            "{name}: the copy verifies before tampering"
        );
        rusqlite::Connection::open(&copy)
            .and_then(|c| c.execute_batch(&sql))
            .expect("tamper");
        let broken = capgate(&[
            "audit",
            "verify",
            "--log",
            path_str(&copy),
            "--public-key",
            &public,
        ]);
        let stderr = String::from_utf8_lossy(&broken.stderr);
        assert!(!broken.status.success(), "{name} must fail verification");
        assert!(
            stderr.contains(named) && stderr.contains(problem),
            "{name}: expected `{named}` … `{problem}` in:\n{stderr}"
        );
    }

    // Against another key, the checkpoint is named as not verifying.
    let other_key = outside.path().join("other.key");
    let other = capgate(&["audit", "keygen", "--out", path_str(&other_key)]);
    let other_public = String::from_utf8_lossy(&other.stdout).trim().to_string();
    let wrong = capgate(&[
        "audit",
        "verify",
        "--log",
        path_str(&log),
        "--public-key",
        &other_public,
    ]);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("record 64:") && stderr.contains("signature"),
        "{stderr}"
    );
}

/// A small tmpfs of our own: a disk that can really be filled. Unmounted (lazily) on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path) -> Option<Self> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self(dir.to_path_buf()))
    }

    /// Writes a filler file until the disk refuses another byte.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        for chunk in [65536usize, 4096, 1] {
            while file.write_all(&vec![0u8; chunk]).is_ok() && file.flush().is_ok() {}
        }
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// With the log's disk full, side-effect calls are refused with a clear reason and never reach
/// the downstream; reads still pass (their lost records are counted), and once space is back the
/// chain continues intact.
#[tokio::test]
async fn with_the_logs_disk_full_side_effects_are_refused_with_a_clear_reason() {
    let outside = tempfile::tempdir().expect("tempdir");
    let Some(disk) = SmallDisk::mount(outside.path()) else {
        // Mounting needs CAP_SYS_ADMIN; `side_effects_are_refused_when_their_record_cannot_be_
        // written` covers the refusal with a held write lock everywhere.
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    };
    let log = outside.path().join("decisions.db");
    let gateway = TestGateway::start(GatewayOptions {
        audit: Some(format!("log_file = \"{}\"", log.display())),
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let before = call_with_meta(
        &alice,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "Before"}),
        key("full-1"),
    )
    .await;
    assert_ne!(before.is_error, Some(true), "{}", text_of(&before));

    let filler = disk.fill();
    let refused = call_with_meta(
        &alice,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "While full"}),
        key("full-2"),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));
    let reason = text_of(&refused);
    assert!(
        reason.contains("decision record could not be made durable") && reason.contains("full"),
        "{reason}"
    );
    let drafts = |gateway: &TestGateway| {
        gateway
            .journal_entries()
            .iter()
            .filter(|e| e["name"] == "create_notice_draft")
            .count()
    };
    assert_eq!(
        drafts(&gateway),
        1,
        "the refused call never reached the downstream"
    );
    // A read is not held to durability by default: it passes, and its lost record is counted.
    let read = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    let failed = || async {
        gateway.health().await["decision_log"]["failed_records"]
            .as_u64()
            .unwrap_or(0)
    };
    until("two lost records are counted", || async {
        failed().await >= 2
    })
    .await;
    assert!(failed().await >= 2, "lost records are counted");

    std::fs::remove_file(filler).expect("free the disk");
    let after = call_with_meta(
        &alice,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "After"}),
        key("full-3"),
    )
    .await;
    assert_ne!(after.is_error, Some(true), "{}", text_of(&after));
    assert_eq!(drafts(&gateway), 2);
    let public = capgate(&[
        "audit",
        "public-key",
        "--key-file",
        path_str(&gateway.dir.path().join("data/audit-signing.key")),
    ]);
    let verified = capgate(&[
        "audit",
        "verify",
        "--log",
        path_str(&log),
        "--public-key",
        String::from_utf8_lossy(&public.stdout).trim(),
    ]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    drop(gateway);
}

/// `durable_for = "every_call"`: reads too are refused when their record cannot be written.
#[tokio::test]
async fn every_call_durability_refuses_reads_the_log_cannot_account_for() {
    let gateway = TestGateway::start(GatewayOptions {
        audit: Some("durable_for = \"every_call\"".into()),
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let fine = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(fine.is_error, Some(true), "{}", text_of(&fine));
    let log = rusqlite::Connection::open(gateway.dir.path().join("data/audit.db")).expect("open");
    log.execute_batch("BEGIN IMMEDIATE")
        .expect("hold the log's write lock");
    let refused = call(&alice, "case__read_case", json!({"case_id": "case-102"})).await;
    log.execute_batch("ROLLBACK").expect("release");
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text_of(&refused).contains("could not be made durable"),
        "{}",
        text_of(&refused)
    );
    let reads: Vec<Value> = gateway
        .journal_entries()
        .into_iter()
        .filter(|e| e["name"] == "read_case")
        .collect();
    assert_eq!(
        reads.len(),
        1,
        "only the accounted read reached the downstream"
    );
}
