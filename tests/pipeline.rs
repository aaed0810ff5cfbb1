//! One enforcement pipeline for tools, resources and prompts, with real MCP traffic: every
//! refusal kind leaves exactly one record and one count and a safe agent text; obligations,
//! kill switches and budgets bind every capability kind; replays are records; claims carry
//! leases; scope keys are structures; a kill switch flipped mid-call stops what waits.

mod common;

use std::collections::BTreeMap;

use common::*;
use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{json, Value};

type Client = RunningService<RoleClient, ()>;

/// Every `capgate_decisions_total` series: labels → value.
async fn decision_counts(gateway: &TestGateway) -> BTreeMap<String, f64> {
    let text = reqwest::get(format!("{}/metrics", gateway.base_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with("capgate_decisions_total{"))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once(' ')?;
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The series that grew between two scrapes, with how much.
fn grown(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let delta = v - before.get(k).copied().unwrap_or(0.0);
            (delta != 0.0).then(|| (k.clone(), delta))
        })
        .collect()
}

/// Waits until everything the gateway logged so far is committed, then exports the log.
async fn flushed_records(gateway: &TestGateway) -> Vec<Value> {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/admin/audit/flush",
            gateway.admin_url.as_deref().expect("admin listener")
        ))
        .bearer_auth(gateway.admin_token())
        .send()
        .await
        .expect("flush");
    assert_eq!(response.status().as_u16(), 200, "flush");
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["audit", "export", "--data-dir"])
        .arg(gateway.dir.path().join("data"))
        .output()
        .expect("capgate audit export");
    String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| r["record"].clone())
        .collect()
}

async fn admin_post(gateway: &TestGateway, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", gateway.admin_url.as_deref().expect("admin")))
        .bearer_auth(gateway.admin_token())
        .json(&body)
        .send()
        .await
        .expect("admin request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// What a request's answer said: its request id and the text an agent reads.
struct Answer {
    request_id: String,
    text: String,
}

fn tool_answer(result: &rmcp::model::CallToolResult) -> Answer {
    let meta = serde_json::to_value(&result.meta).expect("meta");
    Answer {
        request_id: meta["dev.capgate/decision"]["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request id in {meta}; text {}", text_of(result)))
            .to_string(),
        text: text_of(result),
    }
}

fn error_answer(error: rmcp::ServiceError) -> Answer {
    let rmcp::ServiceError::McpError(error) = error else {
        panic!("expected an MCP error, got {error}");
    };
    let data = error.data.clone().unwrap_or(Value::Null);
    Answer {
        request_id: data["dev.capgate/decision"]["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request id in {data}"))
            .to_string(),
        text: error.message.to_string(),
    }
}

async fn tool(client: &Client, name: &str, arguments: Value, meta: Value) -> Answer {
    let mut params =
        rmcp::model::CallToolRequestParams::new(name.to_string()).with_arguments(args(arguments));
    let mut request_meta = rmcp::model::RequestMetaObject::new();
    if let Value::Object(entries) = meta {
        request_meta.0 .0.extend(entries);
    }
    params.meta = Some(request_meta);
    match client.call_tool(params).await {
        Ok(result) => {
            assert_eq!(result.is_error, Some(true), "{}", text_of(&result));
            tool_answer(&result)
        }
        Err(error) => error_answer(error),
    }
}

async fn resource(client: &Client, uri: &str) -> Answer {
    match client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
    {
        Ok(result) => panic!("{uri} was read: {result:?}"),
        Err(error) => error_answer(error),
    }
}

async fn prompt(client: &Client, name: &str) -> Answer {
    match client
        .get_prompt(GetPromptRequestParams::new(name.to_string()))
        .await
    {
        Ok(result) => panic!("{name} was served: {result:?}"),
        Err(error) => error_answer(error),
    }
}

fn policy_ids() -> Vec<String> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("policies")).expect("policies") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "cedar") {
            let text = std::fs::read_to_string(&path).expect("policy file");
            for line in text.lines() {
                if let Some(rest) = line.trim().strip_prefix("@id(\"") {
                    ids.push(rest.trim_end_matches("\")").to_string());
                }
            }
        }
    }
    ids
}

const ADMIN_REASON: &str = "INC-4242 containment for the fraud ring";

#[tokio::test]
async fn every_refusal_kind_leaves_one_record_one_count_and_a_safe_text() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        safe_explanations: true,
        with_flaky: true,
        enforcement: Some("max_calls_per_tool = 2".into()),
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let notifier = gateway
        .client(&gateway.token(&TokenSpec {
            user: "svc-notify",
            tenant: Some("acme"),
            roles: vec![],
            agent: Some("notification-service"),
            service: Some("notification-service"),
        }))
        .await;
    let killed = gateway
        .client(&gateway.token(&analyst("acme", "carol", "drafting-agent")))
        .await;
    let budgeted = gateway
        .client(&gateway.token_in_run(&analyst("acme", "alice", "risk-agent"), "run-budget"))
        .await;
    let (status, body) = admin_post(
        &gateway,
        "/admin/kill-switches",
        json!({"scope": "user", "target": "carol", "reason": ADMIN_REASON}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Set-ups whose refusal comes later.
    let draft = json!({"case_id": "case-101", "body": "Notice"});
    let performed = call_with_meta(&alice, "case__create_notice_draft", draft.clone(), key("k-1")).await;
    assert_ne!(performed.is_error, Some(true), "{}", text_of(&performed));
    for _ in 0..2 {
        let read = call(&budgeted, "case__read_case", json!({"case_id": "case-101"})).await;
        assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    }
    let approval_needed = call_with_meta(
        &notifier,
        "case__send_approved_notice",
        json!({"draft_id": "draft-906"}),
        key("send-906"),
    )
    .await;
    let pending: String = serde_json::to_value(&approval_needed.meta).expect("meta")
        ["dev.capgate/decision"]["approval"]["id"]
        .as_str()
        .expect("an approval was opened")
        .into();
    let with_approval = |key: &str, approval: &str| {
        json!({"dev.capgate/idempotency-key": key, "dev.capgate/approval": approval})
    };

    // kind, expected final outcome, expected refused_by ("" for the PDP's own refusals)
    type Row = (&'static str, &'static str, &'static str);
    let mut rows: Vec<(Row, Answer)> = Vec::new();
    let mut counts = decision_counts(&gateway).await;
    let mut check = |row: Row, answer: Answer, before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>| {
        let growth = grown(before, after);
        assert_eq!(growth.len(), 1, "{}: one series grows: {growth:?}", row.0);
        let (labels, delta) = &growth[0];
        assert_eq!(*delta, 1.0, "{}: counted once", row.0);
        assert!(
            labels.contains(&format!("outcome=\"{}\"", row.1)),
            "{}: {labels}",
            row.0
        );
        assert!(
            labels.contains(&format!("refused_by=\"{}\"", row.2)),
            "{}: {labels}",
            row.0
        );
        rows.push((row, answer));
    };

    macro_rules! row {
        ($kind:expr, $outcome:expr, $by:expr, $answer:expr) => {{
            let answer = $answer;
            let after = decision_counts(&gateway).await;
            check(($kind, $outcome, $by), answer, &counts, &after);
            counts = after;
        }};
    }
    row!("policy deny", "deny", "", tool(&alice, "case__read_case", json!({"case_id": "case-201"}), json!({})).await);
    row!("require_more_context", "require_more_context", "", tool(&alice, "case__read_case", json!({"case_id": "case-999"}), json!({})).await);
    row!("require_approval", "require_approval", "", tool(&notifier, "case__send_approved_notice", json!({"draft_id": "draft-906"}), key("send-906-again")).await);
    row!("kill switch", "deny", "kill_switch", tool(&killed, "case__read_case", json!({"case_id": "case-101"}), json!({})).await);
    row!("budget", "deny", "budget", tool(&budgeted, "case__read_case", json!({"case_id": "case-101"}), json!({})).await);
    row!("missing idempotency key", "deny", "idempotency", tool(&alice, "case__create_notice_draft", draft.clone(), json!({})).await);
    row!("mismatched idempotency key", "deny", "idempotency", tool(&alice, "case__create_notice_draft", json!({"case_id": "case-101", "body": "Other"}), key("k-1")).await);
    row!("unknown approval", "deny", "approval", tool(&notifier, "case__send_approved_notice", json!({"draft_id": "draft-906"}), with_approval("s-1", "apr-does-not-exist")).await);
    row!("pending approval", "deny", "approval", tool(&notifier, "case__send_approved_notice", json!({"draft_id": "draft-906"}), with_approval("s-2", &pending)).await);
    row!("approval for another call", "deny", "approval", tool(&notifier, "case__send_approved_notice", json!({"draft_id": "draft-901"}), with_approval("s-3", &pending)).await);
    row!("unknown tool", "deny", "unknown_capability", tool(&alice, "case__no_such_tool", json!({}), json!({})).await);
    row!("uncontracted tool", "deny", "unknown_capability", tool(&alice, "flaky__read_case", json!({"case_id": "case-101"}), json!({})).await);
    row!("unbindable argument", "deny", "unbound_argument", tool(&alice, "case__read_case", json!({"case_id": {}}), json!({})).await);
    row!("resource URI no contract matches", "deny", "unknown_capability", resource(&alice, "nowhere://acme/x").await);
    row!("resource of another tenant", "deny", "", resource(&alice, "case://globex/cases/case-201").await);
    row!("unknown prompt", "deny", "unknown_capability", prompt(&alice, "case__no_such_prompt").await);
    row!("prompt killed for its user", "deny", "kill_switch", prompt(&killed, "case__summarize_case").await);

    // Downstream unavailable: the flaky server crashes; a call while it is down is refused.
    let _ = call(&alice, "flaky__debug_crash", json!({})).await;
    let mut unavailable = None;
    for _ in 0..200 {
        let before = decision_counts(&gateway).await;
        let result = call(&alice, "flaky__read_memory", json!({"scope": "user"})).await;
        if result.is_error == Some(true) && text_of(&result).contains("unavailable") {
            let after = decision_counts(&gateway).await;
            unavailable = Some((tool_answer(&result), before, after));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    if let Some((answer, before, after)) = unavailable {
        check(("downstream unavailable", "deny", "downstream_unavailable"), answer, &before, &after);
    } else {
        panic!("the crashed downstream was never seen unavailable");
    }

    // Exactly one decision record per request, under its own id, and no internals in the text.
    let records = flushed_records(&gateway).await;
    let ids = policy_ids();
    for ((kind, outcome, by), answer) in &rows {
        let mine: Vec<&Value> = records
            .iter()
            .filter(|r| r["request_id"] == answer.request_id.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{kind}: one record: {mine:?}");
        assert_eq!(mine[0]["decision"], *outcome, "{kind}: {}", mine[0]);
        if by.is_empty() {
            assert!(mine[0].get("refused_by").is_none(), "{kind}: {}", mine[0]);
        } else {
            assert_eq!(mine[0]["refused_by"], *by, "{kind}");
        }
        let text = &answer.text;
        for id in &ids {
            assert!(!text.contains(id.as_str()), "{kind}: policy id {id} in {text}");
        }
        for leak in [ADMIN_REASON, "INC-4242", "SELECT", "sqlite", "/tmp/", "/work/", "carol\""] {
            assert!(!text.contains(leak), "{kind}: {leak} in {text}");
        }
    }
}
