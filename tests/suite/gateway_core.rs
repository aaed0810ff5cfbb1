//! Discovery filtering and call enforcement, with real MCP traffic: the capgate binary on
//! 127.0.0.1, an rmcp client, and the example case platform as a real child process.

use std::time::{Duration, Instant};

use crate::common::*;
use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientLifecycleMode, ClientServiceExt};
use serde_json::{json, Value};

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn each_agent_sees_exactly_the_tools_policy_allows() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;

    let drafting = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    assert_eq!(
        tool_names(&drafting).await,
        strings(&[
            "case__create_notice_draft",
            "case__read_case",
            "case__read_memory",
            "case__request_approval",
            "case__search_evidence",
            "case__traverse_entity_graph",
        ])
    );

    let risk = gateway
        .client(&gateway.token(&analyst("acme", "alice", "risk-agent")))
        .await;
    assert_eq!(
        tool_names(&risk).await,
        strings(&[
            "case__propose_risk_update",
            "case__read_case",
            "case__read_memory",
            "case__search_evidence",
            "case__traverse_entity_graph",
        ])
    );

    // An agent with no role in policy sees nothing at all.
    let stranger = gateway
        .client(&gateway.token(&analyst("acme", "alice", "unknown-agent")))
        .await;
    assert!(tool_names(&stranger).await.is_empty());
}

#[tokio::test]
async fn cross_tenant_read_is_denied_and_never_reaches_the_downstream() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let carol = gateway
        .client(&gateway.token(&analyst("globex", "carol", "drafting-agent")))
        .await;

    // Her own tenant's case passes, and the downstream records it: the journal is live.
    let own = call(&carol, "case__read_case", json!({"case_id": "case-201"})).await;
    assert_ne!(own.is_error, Some(true), "{}", text_of(&own));
    assert!(text_of(&own).contains("Initech"), "{}", text_of(&own));

    // Tenant A's case is refused with the specific policy.
    let other = call(&carol, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_eq!(other.is_error, Some(true));
    let reason = text_of(&other);
    assert!(reason.contains("tenant-isolation-case"), "{reason}");
    assert!(reason.contains("another tenant"), "{reason}");

    let journal = gateway.journal_entries();
    let received: Vec<&Value> = journal
        .iter()
        .filter(|e| e["method"] == "tools/call" && e["name"] == "read_case")
        .collect();
    assert_eq!(received.len(), 1, "journal: {journal:?}");
    assert_eq!(received[0]["arguments"]["case_id"], "case-201");
    assert_eq!(received[0]["tenant"], "globex");
}

#[tokio::test]
async fn relationships_and_guardrails_are_enforced() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;

    // Assigned case: allowed, and the drafting agent can create a draft on it.
    let read = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    let draft = call_with_meta(
        &alice,
        "case__create_notice_draft",
        json!({"case_id": "case-101", "body": "Notice of investigation"}),
        key("draft-case-101-1"),
    )
    .await;
    assert_ne!(draft.is_error, Some(true), "{}", text_of(&draft));

    // Case-103 is assigned to bob only (ReBAC).
    let unassigned = call(&alice, "case__read_case", json!({"case_id": "case-103"})).await;
    assert_eq!(unassigned.is_error, Some(true));
    assert!(
        text_of(&unassigned).contains("case-assignment"),
        "{}",
        text_of(&unassigned)
    );

    // A case the entity store does not know is denied, never guessed.
    let unknown = call(&alice, "case__read_case", json!({"case_id": "case-999"})).await;
    assert_eq!(unknown.is_error, Some(true));

    // A bound argument that is missing is refused before any decision.
    let missing = call(&alice, "case__read_case", json!({})).await;
    assert_eq!(missing.is_error, Some(true));
    assert!(
        text_of(&missing).contains("case_id"),
        "{}",
        text_of(&missing)
    );

    // No agent deletes evidence, even when asked for a real document of its own tenant.
    let delete = call(
        &alice,
        "case__delete_evidence",
        json!({"evidence_id": "ev-1001"}),
    )
    .await;
    assert_eq!(delete.is_error, Some(true));
    assert!(
        text_of(&delete).contains("no-agent-deletes-evidence"),
        "{}",
        text_of(&delete)
    );

    // The drafting agent cannot send notices.
    let send = call(
        &alice,
        "case__send_approved_notice",
        json!({"draft_id": "draft-1"}),
    )
    .await;
    assert_eq!(send.is_error, Some(true));

    // An unknown tool name is a protocol error, as for any MCP server.
    let unknown_tool = alice
        .call_tool(CallToolRequestParams::new("delete_evidence"))
        .await;
    assert!(unknown_tool.is_err());

    let journal = gateway.journal_entries();
    let names: Vec<&str> = journal.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(
        names,
        vec!["read_case", "create_notice_draft"],
        "{journal:?}"
    );
}

#[tokio::test]
async fn resources_and_prompts_are_filtered_and_decided() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;

    let mut uris: Vec<String> = alice
        .list_all_resources()
        .await
        .expect("resources/list")
        .into_iter()
        .map(|r| r.uri.clone())
        .collect();
    uris.sort();
    // Only the acme cases alice is assigned to.
    assert_eq!(
        uris,
        strings(&[
            "case://acme/cases/case-101",
            "case://acme/cases/case-102",
            "case://acme/cases/case-105"
        ])
    );

    let read = alice
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "case://acme/cases/case-101",
        ))
        .await
        .expect("resources/read allowed");
    assert!(!read.contents.is_empty());
    let denied = alice
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "case://globex/cases/case-201",
        ))
        .await;
    assert!(denied.is_err(), "cross-tenant resource read must fail");

    let prompts: Vec<String> = alice
        .list_all_prompts()
        .await
        .expect("prompts/list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(
        prompts.contains(&"case__summarize_case".to_string()),
        "{prompts:?}"
    );
    let prompt = alice
        .get_prompt(
            rmcp::model::GetPromptRequestParams::new("case__summarize_case")
                .with_arguments(args(json!({"case_id": "case-101"}))),
        )
        .await
        .expect("prompts/get allowed");
    assert!(!prompt.messages.is_empty());
    let refused = alice
        .get_prompt(
            rmcp::model::GetPromptRequestParams::new("case__summarize_case")
                .with_arguments(args(json!({"case_id": "case-201"}))),
        )
        .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn session_based_and_stateless_2026_clients_both_list_and_call() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let token = gateway.token(&analyst("acme", "alice", "drafting-agent"));

    // Session-based (initialize, Mcp-Session-Id).
    let session = gateway.client(&token).await;
    assert!(tool_names(&session)
        .await
        .contains(&"case__read_case".to_string()));
    let result = call(&session, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));

    // Stateless 2026-07-28 (server/discover, per-request _meta, no session).
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(gateway.url.clone())
            .auth_header(token.clone()),
    );
    let stateless = ()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("2026-07-28 discover");
    assert!(tool_names(&stateless)
        .await
        .contains(&"case__read_case".to_string()));
    let result = call(
        &stateless,
        "case__read_case",
        json!({"case_id": "case-102"}),
    )
    .await;
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));

    // And one bare 2026-07-28 HTTP request with no session at all.
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-http", "version": "1"}
    });
    let response = reqwest::Client::new()
        .post(&gateway.url)
        .bearer_auth(&token)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "case__read_case")
        .json(&json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "case__read_case", "arguments": {"case_id": "case-101"}, "_meta": meta}
        }))
        .send()
        .await
        .expect("raw request");
    assert!(response.headers().get("mcp-session-id").is_none());
    let body = response.text().await.expect("body");
    assert!(body.contains("Northwind"), "{body}");

    let calls = gateway
        .journal_entries()
        .into_iter()
        .filter(|e| e["name"] == "read_case")
        .count();
    assert_eq!(calls, 3);
}

#[tokio::test]
async fn a_tool_added_at_runtime_without_a_contract_stays_hidden_and_uncallable() {
    let gateway = TestGateway::start(GatewayOptions {
        with_flaky: true,
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let before = tool_names(&alice).await;
    assert!(before.contains(&"flaky__debug_add_tool".to_string()));

    let added = call_with_meta(
        &alice,
        "flaky__debug_add_tool",
        json!({"name": "exfiltrate"}),
        key("add-exfiltrate"),
    )
    .await;
    assert_ne!(added.is_error, Some(true), "{}", text_of(&added));

    // The gateway refreshes on list_changed and warns about the contract-less tool.
    until_within(
        Duration::from_secs(10),
        || async { gateway.log().contains("exfiltrate") },
        || format!("no refresh seen; log:\n{}", gateway.log()),
    )
    .await;
    assert!(
        gateway.log().contains("has no contract"),
        "{}",
        gateway.log()
    );

    let after = tool_names(&alice).await;
    assert_eq!(
        before, after,
        "the catalogue change must not expose anything"
    );
    assert!(!after.iter().any(|n| n.contains("exfiltrate")));
    for name in ["flaky__exfiltrate", "exfiltrate"] {
        let refused = alice.call_tool(CallToolRequestParams::new(name)).await;
        assert!(refused.is_err(), "{name} must be unknown");
    }
    assert!(!gateway
        .flaky_journal_entries()
        .iter()
        .any(|e| e["name"] == "exfiltrate"));
}

#[tokio::test]
async fn a_crashing_downstream_fails_only_its_own_call_and_is_restarted() {
    let timeout_ms = 3000;
    let gateway = TestGateway::start(GatewayOptions {
        with_flaky: true,
        flaky_timeout_ms: Some(timeout_ms),
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;

    let started = Instant::now();
    let crashed = call(&alice, "flaky__debug_crash", json!({})).await;
    let elapsed = started.elapsed();
    assert_eq!(crashed.is_error, Some(true));
    assert!(text_of(&crashed).contains("flaky"), "{}", text_of(&crashed));
    assert!(
        elapsed <= Duration::from_millis(timeout_ms + 1000),
        "the crashed call must end within its timeout, took {elapsed:?}"
    );

    // The other server keeps working while flaky is down or restarting.
    let other = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(other.is_error, Some(true), "{}", text_of(&other));

    // flaky comes back by itself, as a new process.
    gateway.wait_healthy(Duration::from_secs(30)).await;
    let after = call(
        &alice,
        "flaky__read_memory",
        json!({"scope": "user", "key": "k"}),
    )
    .await;
    assert!(
        !text_of(&after).contains("unavailable"),
        "flaky must be restarted: {}",
        text_of(&after)
    );
    let pids: std::collections::BTreeSet<String> = gateway
        .flaky_journal_entries()
        .iter()
        .map(|e| e["pid"].to_string())
        .collect();
    assert_eq!(
        pids.len(),
        2,
        "one process crashed, a new one served: {pids:?}"
    );
}
