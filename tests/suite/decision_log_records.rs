//! The decision log with real traffic, what it records: every decision in a hash chain that
//! `capgate audit verify` checks, an edit named; replay under a candidate policy set; a run's
//! manifest; dry-run records; one summary per discovery request; and, after SIGKILLs under load,
//! a durable record for every executed side effect.

use std::process::Command;

use crate::common::*;
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
    // Records are group-committed: a flush writes every record queued so far.
    flush_log(&gateway).await;
    let export = audit(&data, "export");
    let records: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
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
    // An outcome record leaves the request to the decision record of the same request id.
    let outcomes: Vec<&Value> = records
        .iter()
        .map(|r| &r["record"])
        .filter(|r| !r["downstream_outcome"].is_null())
        .collect();
    assert!(outcomes.len() >= 2, "{records:?}");
    for outcome in outcomes {
        assert!(outcome.get("request").is_none(), "{outcome}");
        let decided = records
            .iter()
            .map(|r| &r["record"])
            .find(|r| r["request_id"] == outcome["request_id"] && r["downstream_outcome"].is_null())
            .unwrap_or_else(|| panic!("no decision record for {outcome}"));
        assert_eq!(
            decided["request"]["request_id"], outcome["request_id"],
            "{decided}"
        );
    }
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
    flush_log(&gateway).await;

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
        // Killed once the first of this round's calls has reached the downstream: the others
        // are then anywhere between the front door and their answer.
        let reached = |round: usize| {
            let prefix = format!("round {round} call ");
            gateway.journal_entries().iter().any(|e| {
                e["arguments"]["body"]
                    .as_str()
                    .is_some_and(|body| body.starts_with(&prefix))
            })
        };
        until_within(
            std::time::Duration::from_secs(30),
            || async { reached(round) },
            || format!("no call of round {round} reached the downstream"),
        )
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
    flush_log(&gateway).await;
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
    flush_log(&gateway).await;
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
