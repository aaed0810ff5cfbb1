//! Multi round-trip tool calls of 2026-07-28 clients: what a 2026-07-28 downstream asks for
//! comes back to the client as `input_required` (decided, logged, restricted), and only the
//! retry capgate asked for, with its sealed request state, reaches the downstream.

use rmcp::model::CallToolRequestParams;
use rmcp::service::RoleClient;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;

use super::server_asks::{gateway_speaking, rounds, Asked, SSN};
use crate::common::*;

/// A client of the 2026-07-28 revision: no session, so what a downstream asks comes back to it
/// as `input_required`, and it calls again with its answers.
async fn stateless_client(
    gateway: &TestGateway,
    handler: Asked,
    user: &'static str,
) -> rmcp::service::RunningService<RoleClient, Asked> {
    use rmcp::{ClientLifecycleMode, ClientServiceExt};
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(gateway.url.clone())
            .auth_header(gateway.token(&analyst("acme", user, "drafting-agent"))),
    );
    handler
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("2026-07-28 discover")
}

#[tokio::test]
async fn a_2026_client_answers_input_required_and_only_its_answer_restricted_reaches_the_downstream(
) {
    let gateway = gateway_speaking(Some("2026-07-28")).await;
    let handler = Asked::new(true).answering("mine is 123-45-6789");
    let client = stateless_client(&gateway, handler.clone(), "alice").await;
    for (tool, said) in [
        ("flaky__debug_elicit", "elicited"),
        ("flaky__debug_sample", "sampled test-model"),
    ] {
        // rmcp's client answers each input_required round with its handler and calls again.
        let result = client
            .call_tool(
                CallToolRequestParams::new(tool).with_arguments(args(json!({"message": "q"}))),
            )
            .await
            .expect("answered");
        let text = serde_json::to_string(&result).expect("json");
        assert_ne!(result.is_error, Some(true), "{tool}: {text}");
        assert!(
            text.contains(said) && text.contains("mine is"),
            "{tool}: {text}"
        );
        assert!(
            !text.contains(SSN),
            "{tool}: the SSN reached the downstream: {text}"
        );
        // The downstream got its own state back, never capgate's seal.
        let rounds = rounds(&gateway, tool.trim_start_matches("flaky__"));
        assert_eq!(rounds.len(), 2, "{tool}: {rounds:?}");
        assert_eq!(rounds[1].0, "asked-for-answer", "{tool}: {rounds:?}");
    }
    assert_eq!(handler.seen(), ["elicit", "sample"]);
    // Each input is decided when shown and again when answered; each retry is a call decided
    // anew.
    let records = flushed_records(&gateway).await;
    for action in ["elicit", "sample"] {
        let decided = records
            .iter()
            .filter(|r| r["action"] == action && r["decision"] == "allow")
            .count();
        assert!(decided >= 2, "{action}: {records:?}");
    }
    let interim = records
        .iter()
        .filter(|r| r["downstream_outcome"] == "input_required")
        .count();
    assert_eq!(interim, 2, "{records:?}");
}

#[tokio::test]
async fn a_2026_clients_retry_is_refused_unless_it_is_the_one_capgate_asked_for() {
    use rmcp::model::{CallToolResponse, InputRequiredResult, InputResponses};
    let gateway = gateway_speaking(Some("2026-07-28")).await;
    let alice = stateless_client(&gateway, Asked::new(true), "alice").await;
    let carol = stateless_client(&gateway, Asked::new(true), "carol").await;
    let params = |message: &str| {
        CallToolRequestParams::new("flaky__debug_elicit")
            .with_arguments(args(json!({"message": message})))
    };
    let asked = || async {
        match alice
            .peer()
            .call_tool_once(params("q"))
            .await
            .expect("answered")
        {
            CallToolResponse::InputRequired(asked) => asked,
            other => panic!("not input_required: {other:?}"),
        }
    };
    let answer = || {
        InputResponses::from([(
            "answer".to_string(),
            json!({"action": "accept", "content": {"answer": "yes"}}),
        )])
    };
    let first: InputRequiredResult = asked().await;
    let state = first.request_state.clone().expect("a sealed state");
    assert!(state.starts_with("cg1."), "{state}");
    assert_ne!(
        state, "asked-for-answer",
        "the downstream's own state was passed on"
    );
    let mut edited = state.clone().into_bytes();
    let middle = edited.len() / 2;
    edited[middle] = if edited[middle] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).expect("ascii");

    // kind of retry | by alice (else carol) | message | responses | state | refused
    type Retry = (
        &'static str,
        bool,
        &'static str,
        InputResponses,
        Option<String>,
        bool,
    );
    let table: [Retry; 5] = [
        ("an edited state", true, "q", answer(), Some(edited), true),
        (
            "another actor's",
            false,
            "q",
            answer(),
            Some(state.clone()),
            true,
        ),
        (
            "other arguments",
            true,
            "other",
            answer(),
            Some(state.clone()),
            true,
        ),
        (
            "other inputs",
            true,
            "q",
            InputResponses::from([("other".to_string(), json!({"action": "decline"}))]),
            Some(state.clone()),
            true,
        ),
        (
            "the one asked for",
            true,
            "q",
            answer(),
            Some(state.clone()),
            false,
        ),
    ];
    for (kind, by_alice, message, responses, state, refused) in table {
        let before = rounds(&gateway, "debug_elicit").len();
        let mut retry = params(message);
        retry.input_responses = Some(responses);
        retry.request_state = state;
        let client = if by_alice { &alice } else { &carol };
        let response = client.peer().call_tool_once(retry).await.expect("answered");
        let CallToolResponse::Complete(result) = response else {
            panic!("{kind}: {response:?}");
        };
        let text = serde_json::to_string(&result).expect("json");
        let after = rounds(&gateway, "debug_elicit");
        if refused {
            assert_eq!(result.is_error, Some(true), "{kind}: {text}");
            assert!(text.contains("input"), "{kind}: {text}");
            assert_eq!(
                after.len(),
                before,
                "{kind}: the downstream was called: {after:?}"
            );
        } else {
            assert_ne!(result.is_error, Some(true), "{kind}: {text}");
            assert!(text.contains("yes"), "{kind}: {text}");
            assert_eq!(after.len(), before + 1, "{kind}");
            assert_eq!(after[before].0, "asked-for-answer", "{kind}");
        }
    }
    let records = flushed_records(&gateway).await;
    let refused = records
        .iter()
        .filter(|r| r["refused_by"] == "input_state")
        .count();
    assert_eq!(refused, 4, "{records:?}");
    // inputResponses without the state they answer: invalid params.
    let mut bare = params("q");
    bare.input_responses = Some(answer());
    let error = alice
        .peer()
        .call_tool_once(bare)
        .await
        .expect_err("invalid");
    assert!(error.to_string().contains("requestState"), "{error}");
}

#[tokio::test]
async fn a_2026_clients_inputs_are_refused_by_policy_and_when_it_did_not_declare_them() {
    let gateway = gateway_speaking(Some("2026-07-28")).await;
    // kind | user | client declares | refused_by
    let table = [
        ("policy forbids the server to ask for bob", "bob", true, ""),
        (
            "the client did not declare the capability",
            "alice",
            false,
            "client_capability",
        ),
    ];
    for (kind, user, declares, refused_by) in table {
        let handler = Asked::new(declares);
        let client = stateless_client(&gateway, handler.clone(), user).await;
        for (tool, action) in [
            ("flaky__debug_elicit", "elicit"),
            ("flaky__debug_sample", "sample"),
        ] {
            let before = rounds(&gateway, tool.trim_start_matches("flaky__")).len();
            let result = client
                .call_tool(
                    CallToolRequestParams::new(tool).with_arguments(args(json!({"message": "q"}))),
                )
                .await
                .expect("the call is answered");
            let text = serde_json::to_string(&result).expect("json");
            // No input_required reached the client: the call failed, and the downstream was
            // never called again.
            assert_eq!(result.is_error, Some(true), "{kind}/{action}: {text}");
            let after = rounds(&gateway, tool.trim_start_matches("flaky__"));
            assert_eq!(after.len(), before + 1, "{kind}/{action}: {after:?}");
            assert!(after[before].0.is_null(), "{kind}/{action}: {after:?}");
            let records = flushed_records(&gateway).await;
            let refused = records
                .iter()
                .filter(|r| {
                    r["action"] == action
                        && r["refused_by"].as_str().unwrap_or_default() == refused_by
                        && r["actor"].as_str().unwrap_or_default().contains(user)
                })
                .count();
            assert_eq!(refused, 1, "{kind}/{action}: {records:?}");
        }
        assert!(handler.seen().is_empty(), "{kind}: {:?}", handler.seen());
    }
}
