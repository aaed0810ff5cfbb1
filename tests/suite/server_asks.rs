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

pub(crate) async fn gateway_speaking(protocol: Option<&'static str>) -> TestGateway {
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
pub(crate) fn rounds(gateway: &TestGateway, tool: &str) -> Vec<(Value, Value)> {
    gateway
        .flaky_journal_entries()
        .iter()
        .filter(|e| e["method"] == "tools/call" && e["name"] == tool)
        .map(|e| (e["request_state"].clone(), e["input_responses"].clone()))
        .collect()
}

/// The SSN the client answers with: the policy's obligation keeps it from the downstream.
pub(crate) const SSN: &str = "123-45-6789";

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
pub(crate) struct Asked {
    declares: bool,
    seen: Arc<Mutex<Vec<String>>>,
    answer: &'static str,
}

impl Asked {
    pub(crate) fn new(declares: bool) -> Self {
        Self {
            declares,
            seen: Arc::default(),
            answer: "yes",
        }
    }

    pub(crate) fn answering(mut self, answer: &'static str) -> Self {
        self.answer = answer;
        self
    }

    pub(crate) fn seen(&self) -> Vec<String> {
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
    until("the sleep starts", || async {
        gateway
            .flaky_journal_entries()
            .iter()
            .any(|e| e["method"] == "tools/call" && e["name"] == "debug_sleep")
    })
    .await;
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
