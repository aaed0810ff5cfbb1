//! One enforcement pipeline for tools, resources and prompts, with real MCP traffic: every
//! refusal kind leaves exactly one record and one count and a safe agent text; obligations,
//! kill switches and budgets bind every capability kind; replays are records; claims carry
//! leases; scope keys are structures; a kill switch flipped mid-call stops what waits.

use std::collections::BTreeMap;

use crate::common::*;
use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{json, Value};

type Client = RunningService<RoleClient, ()>;

/// Every `capgate_decisions_total` series: labels → value.
async fn decision_counts(gateway: &TestGateway) -> BTreeMap<String, f64> {
    let text = gateway.metrics_text().await;
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
    let notifier = gateway.client(&gateway.token(&notifier())).await;
    let killed = gateway
        .client(&gateway.token(&analyst("acme", "carol", "drafting-agent")))
        .await;
    let budgeted = gateway
        .client(&gateway.token_in_run(&analyst("acme", "alice", "risk-agent"), "run-budget"))
        .await;
    let (status, body) = admin_request(
        &gateway,
        &gateway.platform_admin_token(),
        "/admin/kill-switches",
        json!({"scope": "user", "target": "carol", "reason": ADMIN_REASON}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Set-ups whose refusal comes later.
    let draft = json!({"case_id": "case-101", "body": "Notice"});
    let performed = call_with_meta(
        &alice,
        "case__create_notice_draft",
        draft.clone(),
        key("k-1"),
    )
    .await;
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
    let with_approval = |key: &str, approval: &str| json!({"dev.capgate/idempotency-key": key, "dev.capgate/approval": approval});

    // kind, expected final outcome, expected refused_by ("" for the PDP's own refusals)
    type Row = (&'static str, &'static str, &'static str);
    let mut rows: Vec<(Row, Answer)> = Vec::new();
    let mut counts = decision_counts(&gateway).await;
    let mut check = |row: Row,
                     answer: Answer,
                     before: &BTreeMap<String, f64>,
                     after: &BTreeMap<String, f64>| {
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
            #[allow(unused_assignments)]
            {
                counts = after;
            }
        }};
    }
    row!(
        "policy deny",
        "deny",
        "",
        tool(
            &alice,
            "case__read_case",
            json!({"case_id": "case-201"}),
            json!({})
        )
        .await
    );
    row!(
        "require_more_context",
        "require_more_context",
        "",
        tool(
            &alice,
            "case__read_case",
            json!({"case_id": "case-999"}),
            json!({})
        )
        .await
    );
    row!(
        "require_approval",
        "require_approval",
        "",
        tool(
            &notifier,
            "case__send_approved_notice",
            json!({"draft_id": "draft-906"}),
            key("send-906-again")
        )
        .await
    );
    row!(
        "kill switch",
        "deny",
        "kill_switch",
        tool(
            &killed,
            "case__read_case",
            json!({"case_id": "case-101"}),
            json!({})
        )
        .await
    );
    row!(
        "budget",
        "deny",
        "budget",
        tool(
            &budgeted,
            "case__read_case",
            json!({"case_id": "case-101"}),
            json!({})
        )
        .await
    );
    row!(
        "missing idempotency key",
        "deny",
        "idempotency",
        tool(
            &alice,
            "case__create_notice_draft",
            draft.clone(),
            json!({})
        )
        .await
    );
    row!(
        "mismatched idempotency key",
        "deny",
        "idempotency",
        tool(
            &alice,
            "case__create_notice_draft",
            json!({"case_id": "case-101", "body": "Other"}),
            key("k-1")
        )
        .await
    );
    row!(
        "unknown approval",
        "deny",
        "approval",
        tool(
            &notifier,
            "case__send_approved_notice",
            json!({"draft_id": "draft-906"}),
            with_approval("s-1", "apr-does-not-exist")
        )
        .await
    );
    row!(
        "pending approval",
        "deny",
        "approval",
        tool(
            &notifier,
            "case__send_approved_notice",
            json!({"draft_id": "draft-906"}),
            with_approval("s-2", &pending)
        )
        .await
    );
    row!(
        "approval for another call",
        "deny",
        "approval",
        tool(
            &notifier,
            "case__send_approved_notice",
            json!({"draft_id": "draft-901"}),
            with_approval("s-3", &pending)
        )
        .await
    );
    row!(
        "unknown tool",
        "deny",
        "unknown_capability",
        tool(&alice, "case__no_such_tool", json!({}), json!({})).await
    );
    row!(
        "uncontracted tool",
        "deny",
        "unknown_capability",
        tool(
            &alice,
            "flaky__read_case",
            json!({"case_id": "case-101"}),
            json!({})
        )
        .await
    );
    row!(
        "unbindable argument",
        "deny",
        "unbound_argument",
        tool(&alice, "case__read_case", json!({"case_id": {}}), json!({})).await
    );
    row!(
        "resource URI no contract matches",
        "deny",
        "unknown_capability",
        resource(&alice, "nowhere://acme/x").await
    );
    row!(
        "resource of another tenant",
        "deny",
        "",
        resource(&alice, "case://globex/cases/case-201").await
    );
    row!(
        "unknown prompt",
        "deny",
        "unknown_capability",
        prompt(&alice, "case__no_such_prompt").await
    );
    row!(
        "prompt killed for its user",
        "deny",
        "kill_switch",
        prompt(&killed, "case__summarize_case").await
    );

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
        check(
            ("downstream unavailable", "deny", "downstream_unavailable"),
            answer,
            &before,
            &after,
        );
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
            assert!(
                !text.contains(id.as_str()),
                "{kind}: policy id {id} in {text}"
            );
        }
        for leak in [
            ADMIN_REASON,
            "INC-4242",
            "SELECT",
            "sqlite",
            "/tmp/",
            "/work/",
            "carol\"",
        ] {
            assert!(!text.contains(leak), "{kind}: {leak} in {text}");
        }
    }
}

fn contents_text(result: &rmcp::model::ReadResourceResult) -> String {
    serde_json::to_string(&result.contents).expect("contents")
}

#[tokio::test]
async fn obligations_kill_switches_and_budgets_bind_every_capability_kind() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        enforcement: Some("max_calls_per_run = 3".into()),
        ..Default::default()
    })
    .await;
    let risk = gateway
        .client(&gateway.token_in_run(&analyst("acme", "alice", "risk-agent"), "run-redact"))
        .await;

    // The same redaction through the tool and through the resource.
    let through_tool = call(&risk, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(
        through_tool.is_error,
        Some(true),
        "{}",
        text_of(&through_tool)
    );
    let tool_text = serde_json::to_string(&through_tool).expect("json");
    assert!(tool_text.contains("case-101"), "{tool_text}");
    assert!(!tool_text.contains("assigned_users"), "{tool_text}");
    let through_resource = risk
        .read_resource(ReadResourceRequestParams::new("case://acme/cases/case-101"))
        .await
        .expect("resources/read");
    let resource_text = contents_text(&through_resource);
    assert!(resource_text.contains("case-101"), "{resource_text}");
    assert!(!resource_text.contains("assigned_users"), "{resource_text}");
    // The drafting agent has no such obligation: the field is there, so the test can fail.
    let drafting = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let unredacted = drafting
        .read_resource(ReadResourceRequestParams::new("case://acme/cases/case-101"))
        .await
        .expect("resources/read");
    assert!(contents_text(&unredacted).contains("assigned_users"));

    // Resource reads count against the run's budget (3 calls: 1 tool call and 1 read so far).
    let third = risk
        .read_resource(ReadResourceRequestParams::new("case://acme/cases/case-101"))
        .await;
    assert!(third.is_ok(), "{third:?}");
    let fourth = risk
        .read_resource(ReadResourceRequestParams::new("case://acme/cases/case-101"))
        .await;
    let refused = error_answer(fourth.expect_err("the run's budget is spent"));
    assert!(refused.text.contains("budget"), "{}", refused.text);

    // A global kill switch hides and refuses tools, resources, templates and prompts alike.
    assert!(!tool_names(&drafting).await.is_empty());
    assert!(!drafting
        .list_all_prompts()
        .await
        .expect("prompts")
        .is_empty());
    let (status, body) = admin_request(
        &gateway,
        &gateway.platform_admin_token(),
        "/admin/kill-switches",
        json!({"scope": "global", "reason": "stop everything"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(tool_names(&drafting).await.is_empty());
    assert!(drafting
        .list_all_prompts()
        .await
        .expect("prompts")
        .is_empty());
    assert!(drafting
        .list_all_resources()
        .await
        .expect("resources")
        .is_empty());
    assert!(drafting
        .list_all_resource_templates()
        .await
        .expect("templates")
        .is_empty());
    let tool_refusal = call(&drafting, "case__read_case", json!({"case_id": "case-101"})).await;
    assert!(
        text_of(&tool_refusal).contains("kill switch"),
        "{}",
        text_of(&tool_refusal)
    );
    let resource_refusal = error_answer(
        drafting
            .read_resource(ReadResourceRequestParams::new("case://acme/cases/case-101"))
            .await
            .expect_err("killed"),
    );
    assert!(
        resource_refusal.text.contains("kill switch"),
        "{}",
        resource_refusal.text
    );
    let prompt_refusal = error_answer(
        drafting
            .get_prompt(
                GetPromptRequestParams::new("case__summarize_case")
                    .with_arguments(args(json!({"case_id": "case-101"}))),
            )
            .await
            .expect_err("killed"),
    );
    assert!(
        prompt_refusal.text.contains("kill switch"),
        "{}",
        prompt_refusal.text
    );
}

#[tokio::test]
async fn replays_are_records_pointing_at_the_original_and_the_chain_verifies() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let draft = json!({"case_id": "case-101", "body": "Notice of investigation"});
    let first = call_with_meta(
        &alice,
        "case__create_notice_draft",
        draft.clone(),
        key("replay-1"),
    )
    .await;
    assert_ne!(first.is_error, Some(true), "{}", text_of(&first));
    const N: usize = 5;
    for _ in 0..N {
        let again = call_with_meta(
            &alice,
            "case__create_notice_draft",
            draft.clone(),
            key("replay-1"),
        )
        .await;
        let meta = serde_json::to_value(&again.meta).expect("meta");
        assert_eq!(meta["dev.capgate/replay"], true, "{meta}");
        assert_eq!(text_of(&again), text_of(&first));
    }
    assert_eq!(drafts_created(&gateway), 1, "one downstream effect");

    let records = flushed_records(&gateway).await;
    let calls: Vec<&Value> = records
        .iter()
        .filter(|r| r["resource"] == "case__create_notice_draft")
        .collect();
    let original = calls
        .iter()
        .find(|r| r["decision"] == "allow" && r["downstream_outcome"].is_null())
        .expect("the original's decision record");
    let replays: Vec<&&Value> = calls.iter().filter(|r| r["decision"] == "replay").collect();
    assert_eq!(replays.len(), N, "{calls:?}");
    for replay in &replays {
        assert_eq!(replay["replay_of"], original["request_id"]);
        assert_ne!(replay["request_id"], original["request_id"]);
    }
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["audit", "verify", "--data-dir"])
        .arg(gateway.dir.path().join("data"))
        .output()
        .expect("capgate audit verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// A test policy: the drafting agent's calls of the flaky server's `debug_sleep` need an
/// idempotency key, and its `read_memory` is limited to three calls per run.
const FLAKY_OBLIGATIONS: &str = r#"
@id("test-sleep-needs-a-key")
@obligation("require_idempotency")
permit (
  principal in AgentRole::"drafting-agent",
  action == Action::"call_tool",
  resource is Tool
)
when { resource.server == "flaky" && resource.name == "debug_sleep" };

@id("test-memory-three-per-run")
@obligation("max_calls:3")
permit (
  principal in AgentRole::"drafting-agent",
  action == Action::"call_tool",
  resource is Tool
)
when { resource.server == "flaky" && resource.name == "read_memory" };
"#;

fn sleeps(gateway: &TestGateway, ms: u64) -> usize {
    gateway
        .flaky_journal_entries()
        .iter()
        .filter(|e| e["name"] == "debug_sleep" && e["arguments"]["ms"] == ms)
        .count()
}

async fn flaky_gateway() -> TestGateway {
    TestGateway::start(GatewayOptions {
        admin: true,
        with_flaky: true,
        flaky_timeout_ms: Some(2_000),
        case_timeout_ms: Some(2_000),
        enforcement: Some("idempotency_lease_seconds = 3".into()),
        extra_policies: vec![("test-obligations.cedar".into(), FLAKY_OBLIGATIONS.into())],
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_claim_left_by_a_killed_gateway_performs_once_its_lease_has_passed() {
    let gateway = flaky_gateway().await;
    let token = gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-lease");
    let client = gateway.client(&token).await;
    let sleep = json!({"ms": 1500});

    // The gateway dies while the downstream works on the call: its claim stays behind.
    let pending = tokio::spawn(async move {
        call_with_meta(
            &client,
            "flaky__debug_sleep",
            json!({"ms": 1500}),
            key("lease-1"),
        )
        .await
    });
    while sleeps(&gateway, 1500) == 0 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    gateway.restart().await;
    pending.abort();

    // Before the lease has passed, a retry is refused as in flight.
    let client = gateway.client(&token).await;
    let early = call_with_meta(&client, "flaky__debug_sleep", sleep.clone(), key("lease-1")).await;
    assert_eq!(early.is_error, Some(true));
    assert!(
        text_of(&early).contains("still in progress"),
        "{}",
        text_of(&early)
    );

    // Once it has passed, concurrent retries perform exactly once; the rest wait or replay.
    let client = std::sync::Arc::new(client);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sleeps(&gateway, 1500) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never passed"
        );
        let retries = (0..8).map(|_| {
            let client = client.clone();
            let sleep = sleep.clone();
            tokio::spawn(async move {
                call_with_meta(&client, "flaky__debug_sleep", sleep, key("lease-1")).await
            })
        });
        let results = futures::future::join_all(retries).await;
        for result in results {
            let result = result.expect("task");
            if result.is_error == Some(true) {
                assert!(
                    text_of(&result).contains("still in progress"),
                    "{}",
                    text_of(&result)
                );
            }
        }
        // Poll the lease at a pace the per-principal rate limit allows.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let replay = call_with_meta(&client, "flaky__debug_sleep", sleep, key("lease-1")).await;
    let meta = serde_json::to_value(&replay.meta).expect("meta");
    assert_eq!(
        meta["dev.capgate/replay"],
        true,
        "{meta} {}",
        text_of(&replay)
    );
    assert_eq!(
        sleeps(&gateway, 1500),
        2,
        "once before the crash, once after the lease"
    );
}

#[tokio::test]
async fn max_calls_holds_under_concurrency_and_slashes_never_share_a_scope() {
    let gateway = flaky_gateway().await;
    let client = std::sync::Arc::new(
        gateway
            .client(&gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-max"))
            .await,
    );
    let calls = (0..20).map(|_| {
        let client = client.clone();
        tokio::spawn(
            async move { call(&client, "flaky__read_memory", json!({"scope": "user"})).await },
        )
    });
    let results = futures::future::join_all(calls).await;
    let texts: Vec<String> = results
        .iter()
        .map(|r| r.as_ref().map(text_of).unwrap_or_default())
        .collect();
    // Refusals carry capgate's decision; what the downstream answered does not.
    let refused = |r: &rmcp::model::CallToolResult| {
        serde_json::to_value(&r.meta).is_ok_and(|m| m.get("dev.capgate/decision").is_some())
    };
    let allowed = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| !refused(r)))
        .count();
    let forwarded = gateway
        .flaky_journal_entries()
        .iter()
        .filter(|e| e["name"] == "read_memory")
        .count();
    assert_eq!(forwarded, 3, "exactly max_calls forwarded: {texts:?}");
    assert_eq!(allowed, 3, "{texts:?}");

    // `org/alice` with agent `bot` and `org` with agent `alice/bot`: same key, same call, yet
    // each performs its own (the second is no replay of the first).
    let actor = |user: &str, agent: &str| {
        let mut claims = claims(
            &TokenSpec {
                user: "placeholder",
                tenant: Some("acme"),
                roles: vec!["analyst"],
                agent: None,
                service: Some("agent-runtime"),
            },
            &gateway.url,
        );
        claims.insert("sub".into(), user.into());
        claims.insert(
            "act".into(),
            json!({"sub": agent, "agent_role": "drafting-agent"}),
        );
        sign_hs256(&claims, TEST_SECRET.as_bytes())
    };
    for (user, agent) in [("org/alice", "bot"), ("org", "alice/bot")] {
        let client = gateway.client(&actor(user, agent)).await;
        let result = call_with_meta(
            &client,
            "flaky__debug_sleep",
            json!({"ms": 1}),
            key("shared"),
        )
        .await;
        assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
        let meta = serde_json::to_value(&result.meta).expect("meta");
        assert!(
            meta.get("dev.capgate/replay").is_none(),
            "{user}+{agent} got a replay: {meta}"
        );
    }
    assert_eq!(sleeps(&gateway, 1), 2, "each actor performed its own call");
}

#[tokio::test]
async fn a_kill_switch_flip_stops_every_call_not_yet_forwarded() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        // 40 calls at once from one principal: above the default 32, some got 429 instead.
        limits: Some("concurrent_requests_per_principal = 64".into()),
        ..Default::default()
    })
    .await;
    let client = std::sync::Arc::new(
        gateway
            .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
            .await,
    );
    // As many calls at once as one principal may have in progress (the session's notification
    // stream is one more request): beyond that the front door answers 429, not the switch.
    let in_flight = capgate::config::LimitsConfig::default().concurrent_requests_per_principal - 2;
    let calls: Vec<_> = (0..in_flight)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                call_with_meta(
                    &client,
                    "case__create_notice_draft",
                    json!({"case_id": "case-101", "body": format!("Notice {i}")}),
                    key(&format!("burst-{i}")),
                )
                .await
            })
        })
        .collect();
    while drafts_created(&gateway) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let (status, body) = admin_request(
        &gateway,
        &gateway.platform_admin_token(),
        "/admin/kill-switches",
        json!({"scope": "tool", "target": "case__create_notice_draft", "reason": "stop drafts"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let at_flip = drafts_created(&gateway);
    let results = futures::future::join_all(calls).await;
    let performed = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.is_error != Some(true)))
        .count();
    let killed = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| text_of(r).contains("kill switch")))
        .count();
    assert_eq!(
        drafts_created(&gateway),
        at_flip,
        "nothing forwarded after the flip answered"
    );
    assert_eq!(
        performed, at_flip,
        "every success was forwarded before the flip"
    );
    assert_eq!(
        performed + killed,
        in_flight as usize,
        "every other call was stopped by the switch"
    );
}

#[tokio::test]
async fn a_revoked_grant_refuses_the_next_call_and_relationship_updates_survive_restart() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let opener = gateway.token(&TokenSpec {
        user: "erin",
        tenant: Some("acme"),
        roles: vec!["break-glass"],
        agent: None,
        service: None,
    });
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let unassigned = json!({"case_id": "case-103"});
    let refused = call(&alice, "case__read_case", unassigned.clone()).await;
    assert_eq!(refused.is_error, Some(true), "case-103 is not alice's");

    let (status, body) = admin_request(
        &gateway,
        &opener,
        "/break-glass",
        json!({"user": "alice", "tool": "case__read_case", "reason": "incident review of case 103", "expires_in_seconds": 600}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let grant = body["grant"]["id"].as_str().expect("grant id").to_string();
    let allowed = call(&alice, "case__read_case", unassigned.clone()).await;
    assert_ne!(allowed.is_error, Some(true), "{}", text_of(&allowed));
    let (status, body) = admin_request(
        &gateway,
        &opener,
        &format!("/break-glass/{grant}/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let after = call(&alice, "case__read_case", unassigned.clone()).await;
    assert_eq!(
        after.is_error,
        Some(true),
        "the revoked grant no longer covers the call"
    );

    // Assign case-103 to alice through the admin API; it holds across a restart.
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("policies/entities/case-platform.json"))
            .expect("entities"),
    )
    .expect("entity json");
    let mut entity = case
        .as_array()
        .expect("entity list")
        .iter()
        .find(|e| e["uid"]["id"] == "case-103")
        .expect("case-103 entity")
        .clone();
    let assigned = entity["attrs"]["assignees"]
        .as_array_mut()
        .expect("assignees");
    assigned.push(json!({"__entity": {"type": "User", "id": "alice"}}));
    let (status, body) = admin_request(
        &gateway,
        &gateway.platform_admin_token(),
        "/admin/relationships",
        json!([entity]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let now_assigned = call(&alice, "case__read_case", unassigned.clone()).await;
    assert_ne!(
        now_assigned.is_error,
        Some(true),
        "{}",
        text_of(&now_assigned)
    );
    gateway.restart().await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let after_restart = call(&alice, "case__read_case", unassigned).await;
    assert_ne!(
        after_restart.is_error,
        Some(true),
        "{}",
        text_of(&after_restart)
    );
}

#[tokio::test]
async fn a_call_that_may_have_acted_is_never_performed_again_under_its_key() {
    let gateway = flaky_gateway().await;
    let client = gateway
        .client(&gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-timeout"))
        .await;
    // Longer than the flaky server's 2 s timeout: the downstream may act after capgate gave up.
    let slow = json!({"ms": 2500});
    let first = call_with_meta(&client, "flaky__debug_sleep", slow.clone(), key("slow-1")).await;
    assert_eq!(first.is_error, Some(true));
    assert!(
        text_of(&first).contains("did not answer"),
        "{}",
        text_of(&first)
    );
    let retry = call_with_meta(&client, "flaky__debug_sleep", slow, key("slow-1")).await;
    assert_eq!(retry.is_error, Some(true));
    let meta = serde_json::to_value(&retry.meta).expect("meta");
    assert_eq!(
        meta["dev.capgate/replay"],
        true,
        "{meta} {}",
        text_of(&retry)
    );
    assert!(
        text_of(&retry).contains("may have acted"),
        "{}",
        text_of(&retry)
    );
    assert_eq!(sleeps(&gateway, 2500), 1, "performed once");
}
