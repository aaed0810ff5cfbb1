//! Obligations, kill switches and budgets bind every capability kind: the same redaction
//! through a tool and a resource, resource reads counted against a run's budget, and a global
//! kill switch hiding and refusing tools, resources, templates and prompts alike.

use super::error_answer;
use crate::common::*;
use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::json;

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
