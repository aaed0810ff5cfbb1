//! What a downstream asks of the client while serving a tool call — elicitation, sampling —
//! reaches the client that made the call, under policy (`elicit` / `sample` actions, with
//! obligations both ways), and is logged; log messages reach the session that caused them, at
//! the level it set.

use std::process::Command;
use std::sync::{Arc, Mutex};

#[allow(deprecated)]
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequestParams, ElicitResult, ElicitationAction,
    ElicitationCapability, ErrorData, Implementation, SamplingCapability, SamplingMessage,
};
use rmcp::service::{RequestContext, RoleClient};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{json, Value};

use crate::common::*;

/// The revisions `flaky` may speak: a 2025-11-25 session (it sends `elicitation/create` and
/// `sampling/createMessage` while serving the call), or only 2026-07-28 (capgate falls back to
/// `server/discover`; the server answers `input_required` and is called again with the input).
const REVISIONS: [Option<&str>; 2] = [None, Some("2026-07-28")];

async fn gateway_speaking(protocol: Option<&'static str>) -> TestGateway {
    TestGateway::start(GatewayOptions {
        with_flaky: true,
        flaky_protocol: protocol,
        ..Default::default()
    })
    .await
}

async fn gateway() -> TestGateway {
    gateway_speaking(None).await
}

/// The `debug_elicit` / `debug_sample` calls the downstream received: (request state, input
/// responses) of each round.
fn rounds(gateway: &TestGateway, tool: &str) -> Vec<(Value, Value)> {
    gateway
        .flaky_journal_entries()
        .iter()
        .filter(|e| e["method"] == "tools/call" && e["name"] == tool)
        .map(|e| (e["request_state"].clone(), e["input_responses"].clone()))
        .collect()
}

/// The SSN the client answers with: the policy's obligation keeps it from the downstream.
const SSN: &str = "123-45-6789";

#[tokio::test]
async fn the_python_sdk_answers_elicitation_and_sampling_and_gets_its_log_messages() {
    for protocol in REVISIONS {
        the_python_sdk_answers(protocol).await;
    }
}

async fn the_python_sdk_answers(protocol: Option<&'static str>) {
    let python = python_venv();
    let gateway = gateway_speaking(protocol).await;
    let token = gateway.token(&analyst("acme", "alice", "drafting-agent"));
    let script = repo_root().join("tests/python/sdk_asks.py");
    let url = gateway.url.clone();
    let answer = format!("mine is {SSN}");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(url)
            .arg(token)
            .arg(answer)
            .output()
    })
    .await
    .expect("join")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("JSON report");

    // The client was asked, by the downstream through capgate, and the calls completed with
    // its answers; the SSN in its answer never reached the downstream.
    assert_eq!(
        report["asked"]["elicitations"],
        json!(["Your answer?"]),
        "{report}"
    );
    assert_eq!(
        report["asked"]["samplings"],
        json!(["Say hello"]),
        "{report}"
    );
    let elicited = report["elicited"]["text"].as_str().unwrap_or_default();
    assert_eq!(report["elicited"]["is_error"], false, "{report}");
    assert!(
        elicited.contains("accept") && elicited.contains("mine is"),
        "{elicited}"
    );
    assert!(
        !elicited.contains(SSN),
        "the SSN reached the downstream: {elicited}"
    );
    let sampled = report["sampled"]["text"].as_str().unwrap_or_default();
    assert_eq!(report["sampled"]["is_error"], false, "{report}");
    assert!(
        sampled.contains("sampled: Say hello") && sampled.contains("test-model"),
        "{sampled}"
    );

    if protocol.is_some() {
        // The 2026-07-28 downstream asked twice (elicit, sample) with input_required, and was
        // called again with the answers (the SSN redacted) and its own request state.
        for tool in ["debug_elicit", "debug_sample"] {
            let rounds = rounds(&gateway, tool);
            assert_eq!(rounds.len(), 2, "{tool}: {rounds:?}");
            assert_eq!(rounds[0], (Value::Null, Value::Null), "{tool}");
            assert_eq!(rounds[1].0, "asked-for-answer", "{tool}: {rounds:?}");
            assert!(rounds[1].1.get("answer").is_some(), "{tool}: {rounds:?}");
            assert!(!rounds[1].1.to_string().contains(SSN), "{tool}: {rounds:?}");
        }
    } else {
        // Logging is advertised (the downstream offers it), and the session gets the messages
        // at or above the level it set (warning, error), not the others.
        session_logs(&report);
    }
    ask_records(&gateway).await;
}

fn session_logs(report: &Value) {
    assert!(report["capabilities"].get("logging").is_some(), "{report}");
    // (rmcp hands each notification to its own task: their order is not kept.)
    let mut levels: Vec<&str> = report["asked"]["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter_map(|l| l["level"].as_str())
        .collect();
    levels.sort();
    assert_eq!(levels, ["error", "warning"], "{report}");
}

/// Each ask is a decision of its own, logged with its action, on the call's tool.
async fn ask_records(gateway: &TestGateway) {
    let records = flushed_records(gateway).await;
    for (action, tool) in [
        ("elicit", "flaky__debug_elicit"),
        ("sample", "flaky__debug_sample"),
    ] {
        let mine: Vec<&Value> = records
            .iter()
            .filter(|r| r["action"] == action && r["decision"] == "allow")
            .collect();
        assert!(!mine.is_empty(), "no {action} record in {records:?}");
        assert!(
            mine.iter()
                .any(|r| r["resource"].as_str().unwrap_or_default().contains(tool)),
            "{action}: {mine:?}"
        );
        assert!(
            mine.iter()
                .any(|r| r["obligations"] == json!(["redact_pattern:ssn"])),
            "{action}: {mine:?}"
        );
    }
}

/// A Rust client that declares (or not) elicitation and sampling, answers both, and counts
/// what it was asked.
#[derive(Clone)]
struct Asked {
    declares: bool,
    seen: Arc<Mutex<Vec<String>>>,
    answer: &'static str,
}

impl Asked {
    fn new(declares: bool) -> Self {
        Self {
            declares,
            seen: Arc::default(),
            answer: "yes",
        }
    }

    fn answering(mut self, answer: &'static str) -> Self {
        self.answer = answer;
        self
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl ClientHandler for Asked {
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        if self.declares {
            capabilities.elicitation = Some(ElicitationCapability::default());
            capabilities.sampling = Some(SamplingCapability::default());
        }
        ClientConfig::new(capabilities, Implementation::new("asks-test", "1"))
    }

    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push("elicit".into());
        }
        Ok(ElicitResult::new(ElicitationAction::Accept)
            .with_content(json!({"answer": self.answer})))
    }

    #[allow(deprecated)]
    async fn create_message(
        &self,
        _request: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push("sample".into());
        }
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(self.answer),
            "test-model".into(),
        ))
    }
}

#[tokio::test]
async fn asks_are_refused_by_policy_and_for_clients_that_did_not_declare_them() {
    for protocol in REVISIONS {
        asks_are_refused(protocol).await;
    }
}

async fn asks_are_refused(protocol: Option<&'static str>) {
    let gateway = gateway_speaking(protocol).await;
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
        let token = gateway.token(&analyst("acme", user, "drafting-agent"));
        let client = handler
            .clone()
            .serve(StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(gateway.url.clone())
                    .auth_header(token),
            ))
            .await
            .expect("client connects");
        for (tool, action, code) in [
            ("flaky__debug_elicit", "elicit", "elicitation_refused"),
            ("flaky__debug_sample", "sample", "sampling_refused"),
        ] {
            let result = client
                .call_tool(
                    CallToolRequestParams::new(tool).with_arguments(args(json!({"message": "q"}))),
                )
                .await
                .expect("the call is answered");
            let text = serde_json::to_string(&result).expect("json");
            assert_eq!(result.is_error, Some(true), "{kind}/{action}: {text}");
            if protocol.is_some() {
                // capgate refused the input the downstream asked for: the call fails, and the
                // downstream is never called again with an answer.
                assert!(
                    text.contains("asked for input that was not given"),
                    "{kind}/{action}: {text}"
                );
                let downstream_tool = tool.trim_start_matches("flaky__");
                let rounds = rounds(&gateway, downstream_tool);
                assert!(
                    rounds.iter().all(|(state, _)| state.is_null()),
                    "{kind}/{action}: {rounds:?}"
                );
            } else {
                // The downstream got a refusal and said so in its result.
                assert!(text.contains(code), "{kind}/{action}: {text}");
            }
            let records = flushed_records(&gateway).await;
            let refused: Vec<&Value> = records
                .iter()
                .filter(|r| {
                    let by = r["refused_by"].as_str().unwrap_or_default();
                    r["action"] == action
                        && by == refused_by
                        && r["actor"].as_str().unwrap_or_default().contains(user)
                })
                .collect();
            assert_eq!(refused.len(), 1, "{kind}/{action}: {records:?}");
            assert_eq!(refused[0]["decision"], "deny", "{kind}/{action}");
        }
        assert!(
            handler.seen().is_empty(),
            "{kind}: the client was asked: {:?}",
            handler.seen()
        );
        client.cancel().await.expect("closed");
    }
}

#[tokio::test]
async fn an_ask_that_cannot_be_told_apart_from_another_sessions_call_is_refused() {
    let gateway = gateway().await;
    let other = gateway
        .client(&gateway.token(&analyst("acme", "carol", "drafting-agent")))
        .await;
    let handler = Asked::new(true);
    let client = handler
        .clone()
        .serve(StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(gateway.url.clone())
                .auth_header(gateway.token(&analyst("acme", "alice", "drafting-agent"))),
        ))
        .await
        .expect("client connects");
    // Another session's call is in flight on the same (stdio) downstream connection...
    let sleeping = tokio::spawn(async move {
        other
            .call_tool(
                CallToolRequestParams::new("flaky__debug_sleep")
                    .with_arguments(args(json!({"ms": 2_000}))),
            )
            .await
    });
    let started = std::time::Instant::now();
    while !gateway
        .flaky_journal_entries()
        .iter()
        .any(|e| e["method"] == "tools/call" && e["name"] == "debug_sleep")
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the sleep never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // ... so nothing on the wire says whose this elicitation is: refused, nobody asked.
    let result = client
        .call_tool(
            CallToolRequestParams::new("flaky__debug_elicit")
                .with_arguments(args(json!({"message": "whose?"}))),
        )
        .await
        .expect("the call is answered");
    let text = serde_json::to_string(&result).expect("json");
    assert_eq!(result.is_error, Some(true), "{text}");
    assert!(text.contains("cannot tell which call"), "{text}");
    assert!(handler.seen().is_empty(), "{:?}", handler.seen());
    sleeping.await.expect("join").expect("the sleep completes");
}

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
