//! The decision log with real traffic: every decision is recorded in a hash chain that
//! `capgate audit verify` checks; an edit is named; side effects are refused when their record
//! cannot be made durable.

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

fn audit(data_dir: &std::path::Path, verb: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["audit", verb, "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run capgate audit")
}

#[tokio::test]
async fn decisions_are_chained_and_an_edit_is_named() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    call(&alice, "case__read_case", json!({"case_id": "case-201"})).await;
    call_with_meta(
        &alice,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "Notice"}),
        key("log-1"),
    )
    .await;
    let data = gateway.dir.path().join("data");
    // Records are group-committed; wait for the outcome records to land.
    let mut records: Vec<Value> = Vec::new();
    for _ in 0..50 {
        let export = audit(&data, "export");
        records = String::from_utf8_lossy(&export.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if records.len() >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(records.len() >= 5, "{records:?}");
    let decisions: Vec<&str> = records
        .iter()
        .filter_map(|r| r["record"]["decision"].as_str())
        .collect();
    assert!(decisions.contains(&"deny") && decisions.contains(&"allow"));
    let outcome = records
        .iter()
        .find(|r| r["record"]["downstream_outcome"] == "ok")
        .expect("an outcome record");
    assert!(outcome["record"]["added_latency_us"].as_u64().is_some());
    assert_eq!(outcome["record"]["policy_version"], "case-platform@3");
    let side_effect = records
        .iter()
        .find(|r| r["record"]["resource"] == "case__create_notice_draft")
        .expect("side effect recorded");
    assert!(side_effect["record"]["action_digest"].as_str().is_some());

    let verified = audit(&data, "verify");
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    // Edit one decision: verify fails and names it.
    let edited = records
        .iter()
        .filter(|r| r["record"]["action"] == "call_tool")
        .nth(1)
        .and_then(|r| r["seq"].as_i64())
        .expect("seq");
    rusqlite::Connection::open(data.join("audit.db"))
        .and_then(|c| {
            c.execute(
                "UPDATE decisions SET record = replace(record, 'call_tool', 'read_resource') WHERE seq = ?1",
                [edited],
            )
        })
        .expect("tamper");
    let broken = audit(&data, "verify");
    assert!(!broken.status.success());
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains(&format!("record {edited}:")), "{stderr}");
}

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

#[tokio::test]
async fn replay_under_a_stricter_candidate_reports_exactly_the_changed_decisions() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    // Two allowed reads of case-101, one refused read, one allowed search.
    call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    call(&alice, "case__read_case", json!({"case_id": "case-201"})).await;
    call(
        &alice,
        "case__search_evidence",
        json!({"case_id": "case-101", "query": "loan"}),
    )
    .await;
    let data = gateway.dir.path().join("data");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let denied = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["audit", "query", "--decision", "deny", "--data-dir"])
        .arg(&data)
        .output()
        .expect("query");
    let denied: Vec<Value> = String::from_utf8_lossy(&denied.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["record"]["resource"], "case__read_case");

    let replay = |candidate: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_capgate"))
            .args(["policy", "replay", "--candidate"])
            .arg(candidate)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("replay")
    };
    let same = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo_root().join("policies"), same.path());
    let unchanged = replay(same.path());
    assert_eq!(
        unchanged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&unchanged.stdout)
    );

    let stricter = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo_root().join("policies"), stricter.path());
    std::fs::write(
        stricter.path().join("freeze.cedar"),
        "@id(\"read-freeze\")\nforbid(principal, action == Action::\"call_tool\", resource is Tool) when { resource.name == \"read_case\" };\n",
    )
    .expect("write");
    let report = replay(stricter.path());
    assert_eq!(report.status.code(), Some(3), "a CI job can gate on it");
    let stdout = String::from_utf8_lossy(&report.stdout);
    assert!(stdout.contains("2 changed, 2 unchanged"), "{stdout}");
    assert!(stdout.contains("allow -> deny"), "{stdout}");
    assert_eq!(
        stdout
            .matches("policy case-agents-read -> read-freeze")
            .count(),
        2,
        "{stdout}"
    );
}

#[tokio::test]
async fn after_sigkills_under_load_every_executed_side_effect_has_a_durable_record() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let data = gateway.dir.path().join("data");
    for round in 0..20 {
        let token = gateway.token(&analyst("acme", "alice", "drafting-agent"));
        let client = std::sync::Arc::new(gateway.client(&token).await);
        // A load of side-effect calls, killed part-way through.
        let load: Vec<_> = (0..8)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut params = rmcp::model::CallToolRequestParams::new(
                        "case__create_notice_draft",
                    )
                    .with_arguments(args(
                        json!({"case_id": "case-101", "body": format!("round {round} call {i}")}),
                    ));
                    let mut meta = rmcp::model::RequestMetaObject::new();
                    meta.0 .0.insert(
                        "dev.capgate/idempotency-key".into(),
                        json!(format!("crash-{round}-{i}")),
                    );
                    params.meta = Some(meta);
                    // The gateway may die mid-call: errors are expected here.
                    let _ = client.call_tool(params).await;
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(
            20 + (round as u64 * 7) % 60,
        ))
        .await;
        gateway.restart().await; // SIGKILL, then start again on the same data
        for task in load {
            task.abort();
        }
    }
    // Every draft the downstream created has an allow record that was durable before forwarding.
    let executed = gateway
        .journal_entries()
        .iter()
        .filter(|e| e["name"] == "create_notice_draft")
        .count();
    let export = audit(&data, "export");
    let records: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let allowed = records
        .iter()
        .filter(|r| {
            r["record"]["resource"] == "case__create_notice_draft"
                && r["record"]["decision"] == "allow"
                && r["record"]["downstream_outcome"].is_null()
        })
        .count();
    assert!(executed > 0, "the load reached the downstream");
    assert!(
        allowed >= executed,
        "{executed} drafts executed but only {allowed} durable allow records"
    );
    let verified = audit(&data, "verify");
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

#[tokio::test]
async fn a_runs_manifest_lists_its_policy_versions_tools_and_decisions() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let token = gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-42");
    let client = gateway.client(&token).await;
    tool_names(&client).await;
    call(&client, "case__read_case", json!({"case_id": "case-101"})).await;
    call(&client, "case__read_case", json!({"case_id": "case-102"})).await;
    call(&client, "case__read_case", json!({"case_id": "case-201"})).await;
    call(
        &client,
        "case__search_evidence",
        json!({"case_id": "case-101", "query": "loan"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let admin = gateway.admin_token();
    let manifest: Value = reqwest::Client::new()
        .get(format!(
            "{}/admin/runs?tenant=acme&run=run-42",
            gateway.admin_url.as_deref().expect("admin")
        ))
        .bearer_auth(admin)
        .send()
        .await
        .expect("manifest")
        .json()
        .await
        .expect("json");
    assert_eq!(manifest["decisions"], 4, "{manifest}");
    assert_eq!(manifest["discovery_requests"], 1, "{manifest}");
    assert!(manifest["tools"].get("tools/list").is_none(), "{manifest}");
    assert_eq!(manifest["policy_versions"], json!(["case-platform@3"]));
    assert_eq!(manifest["tools"]["case__read_case"]["allow"], 2);
    assert_eq!(manifest["tools"]["case__read_case"]["deny"], 1);
    assert_eq!(manifest["tools"]["case__search_evidence"]["allow"], 1);
}

#[tokio::test]
async fn dry_run_lets_refused_calls_through_marked_and_logged_and_masks_arguments() {
    let gateway = TestGateway::start(GatewayOptions {
        audit: Some(
            "dry_run_tools = [\"case__update_case_status\"]\nmask_arguments = [\"sensitivity\"]"
                .into(),
        ),
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    // Policy refuses the drafting agent this tool; dry-run lets it through, marked.
    let through = call_with_meta(
        &alice,
        "case__update_case_status",
        json!({"case_id": "case-104", "status": "under_review"}),
        key("dry-1"),
    )
    .await;
    assert_ne!(through.is_error, Some(true), "{}", text_of(&through));
    let meta = serde_json::to_value(&through.meta).expect("meta");
    assert_eq!(meta["dev.capgate/dry-run"], true, "{meta}");
    assert!(gateway
        .journal_entries()
        .iter()
        .any(|e| e["name"] == "update_case_status"));
    // Other tools are still enforced.
    let refused = call_with_meta(
        &alice,
        "case__propose_risk_update",
        json!({"case_id": "case-101", "risk": "high", "rationale": "r"}),
        key("dry-2"),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));

    // The record says what policy decided, in dry-run mode; masked arguments never reach disk.
    let curator = gateway
        .client(&gateway.token(&analyst("acme", "alice", "memory-curator-agent")))
        .await;
    call_with_meta(
        &curator,
        "case__write_memory",
        json!({"scope": "user", "key": "k", "value": "v", "sensitivity": "internal"}),
        key("mask-1"),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let export = audit(&gateway.dir.path().join("data"), "export");
    let records: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let dry = records
        .iter()
        .find(|r| {
            r["record"]["resource"] == "case__update_case_status"
                && r["record"]["downstream_outcome"].is_null()
        })
        .expect("dry-run record");
    assert_eq!(dry["record"]["mode"], "dry_run");
    assert_eq!(dry["record"]["decision"], "deny");
    let memory = records
        .iter()
        .find(|r| {
            r["record"]["resource"] == "case__write_memory" && r["record"]["request"].is_object()
        })
        .expect("memory record");
    assert_eq!(
        memory["record"]["request"]["arguments"]["sensitivity"],
        "***"
    );
    assert_eq!(memory["record"]["request"]["arguments"]["scope"], "user");
}

/// Discovery requests are summarised: one record per `*/list` request naming what was shown and
/// what was hidden (with the decision and policy), not one record per capability.
#[tokio::test]
async fn each_discovery_request_gets_one_summary_record() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let shown = tool_names(&alice).await;
    assert_eq!(shown.len(), 6, "{shown:?}");
    tool_names(&alice).await;
    let prompts = alice.list_all_prompts().await.expect("prompts/list");
    let resources = alice.list_all_resources().await.expect("resources/list");
    // A read after the lists: once its allow is durable, the summaries before it are too.
    call_with_meta(
        &alice,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "Notice"}),
        key("summary-1"),
    )
    .await;

    let data = gateway.dir.path().join("data");
    let export = audit(&data, "export");
    let records: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| r["record"].clone())
        .collect();
    let summaries = |method: &str| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["resource"] == method && r["decision"] == "summary")
            .cloned()
            .collect()
    };
    let tool_lists = summaries("tools/list");
    assert_eq!(
        tool_lists.len(),
        2,
        "one record per tools/list: {records:#?}"
    );
    assert!(
        !records
            .iter()
            .any(|r| r["action"] == "discover_tool" && r["decision"] != "summary"),
        "no per-tool discovery records"
    );
    let listing = &tool_lists[0]["listing"];
    let logged_shown: Vec<String> = listing["shown"]
        .as_array()
        .expect("shown")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    assert_eq!(logged_shown, shown);
    let hidden = listing["hidden"].as_array().expect("hidden");
    let risk = hidden
        .iter()
        .find(|h| h["name"] == "case__propose_risk_update")
        .expect("the risk tool is logged as hidden");
    assert_eq!(risk["decision"], "deny");
    assert!(!risk["reason"].as_str().unwrap_or("").is_empty());
    assert_eq!(tool_lists[0]["tenant"], "acme");
    assert_eq!(tool_lists[0]["actor"], "alice/drafting-agent");
    assert_eq!(tool_lists[0]["policy_version"], "case-platform@3");
    assert!(tool_lists[0]["reason"]
        .as_str()
        .unwrap_or("")
        .starts_with(&format!("tools/list: showed 6 of {}", 6 + hidden.len())));

    let prompt_lists = summaries("prompts/list");
    assert_eq!(prompt_lists.len(), 1, "{records:#?}");
    assert_eq!(
        prompt_lists[0]["listing"]["shown"].as_array().map(Vec::len),
        Some(prompts.len())
    );
    let resource_lists = summaries("resources/list");
    assert_eq!(resource_lists.len(), 1, "{records:#?}");
    assert_eq!(
        resource_lists[0]["listing"]["shown"]
            .as_array()
            .map(Vec::len),
        Some(resources.len())
    );
    // Cases alice is not assigned to are logged as hidden, naming the policy that hid them.
    assert!(resource_lists[0]["listing"]["hidden"]
        .as_array()
        .is_some_and(
            |h| h.iter().any(|r| r["name"] == "case://acme/cases/case-103"
                && r["decision"] == "deny"
                && r["policy_id"] == "case-assignment")
        ));
    assert!(audit(&data, "verify").status.success());
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
    let mut failed = 0;
    for _ in 0..50 {
        failed = gateway.health().await["decision_log"]["failed_records"]
            .as_u64()
            .unwrap_or(0);
        if failed >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(failed >= 2, "lost records are counted: {failed}");

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
