//! Every refusal kind — the PDP's own, kill switch, budget, idempotency, approval, unknown or
//! uncontracted capability, unbindable argument, resource and prompt refusals, a downstream
//! unavailable — leaves exactly one decision record under its request's id, grows exactly one
//! `capgate_decisions_total` series by one, and answers the agent a text with no policy id
//! and no internals.

use std::collections::BTreeMap;

use super::{error_answer, tool_answer, Answer};
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

/// `case__read_case` of one case, with no `_meta`.
async fn read_case(client: &Client, case: &str) -> Answer {
    tool(
        client,
        "case__read_case",
        json!({"case_id": case}),
        json!({}),
    )
    .await
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
        read_case(&alice, "case-201").await
    );
    row!(
        "require_more_context",
        "require_more_context",
        "",
        read_case(&alice, "case-999").await
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
        read_case(&killed, "case-101").await
    );
    row!(
        "budget",
        "deny",
        "budget",
        read_case(&budgeted, "case-101").await
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
