//! OTLP trace export. With `[telemetry] otlp_endpoint`, every `tools/call` reaches a real
//! OTLP/HTTP receiver as one span carrying its decision (decoded with the official
//! `opentelemetry-proto` messages); spans still queued are flushed when the gateway is stopped
//! with SIGTERM; a collector that is down costs a warning, never a call; an invalid endpoint
//! refuses start.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use serde_json::json;

const SPAN_NAME: &str = "capgate.tools_call";

/// One span as the receiver decoded it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service_name: Option<String>,
    name: String,
    attributes: BTreeMap<String, String>,
}

impl ReceivedSpan {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map(String::as_str).unwrap_or("")
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// The `x-capgate-test` header of each export request.
    test_headers: Vec<Option<String>>,
}

/// An OTLP/HTTP traces receiver on a free loopback port.
struct Receiver {
    base_url: String,
    received: Arc<Mutex<Received>>,
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

async fn receive_traces(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/x-protobuf");
    if !protobuf {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                spans.push(ReceivedSpan {
                    service_name: resource.get("service.name").cloned(),
                    name: span.name.clone(),
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    if let Ok(mut received) = received.lock() {
        received.spans.extend(spans);
        received.test_headers.push(
            headers
                .get("x-capgate-test")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        );
    }
    (
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let received = Arc::new(Mutex::new(Received::default()));
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(receive_traces))
            .with_state(received.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            base_url: format!("http://127.0.0.1:{port}"),
            received,
        }
    }

    fn call_spans(&self) -> Vec<ReceivedSpan> {
        self.received
            .lock()
            .map(|r| {
                r.spans
                    .iter()
                    .filter(|s| s.name == SPAN_NAME)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Polls until at least `count` call spans arrived, or the limit passes.
    async fn wait_for_call_spans(&self, count: usize, limit: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + limit;
        loop {
            let spans = self.call_spans();
            if spans.len() >= count || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn telemetry_table(endpoint: &str) -> String {
    format!(
        "otlp_endpoint = \"{endpoint}\"\nservice_name = \"capgate-under-test\"\nheaders = {{ \"x-capgate-test\" = \"otlp\" }}"
    )
}

/// Two allowed reads by alice (acme) and one cross-tenant read by carol (globex), refused;
/// returns the refusal's text.
async fn make_calls(alice: &str, carol: &str, url: &str) -> String {
    let connect = |token: &str| {
        let transport = rmcp::transport::StreamableHttpClientTransport::from_config(
            rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                url.to_string(),
            )
            .auth_header(token),
        );
        rmcp::ServiceExt::serve((), transport)
    };
    let alice = connect(alice).await.expect("alice connects");
    for _ in 0..2 {
        let read = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
        assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    }
    let carol = connect(carol).await.expect("carol connects");
    let refused = call(&carol, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_eq!(refused.is_error, Some(true), "{}", text_of(&refused));
    let _ = alice.cancel().await;
    let _ = carol.cancel().await;
    text_of(&refused)
}

fn assert_decision_spans(spans: &[ReceivedSpan], policy_version: &str, refusal: &str) {
    assert_eq!(spans.len(), 3, "one span per call: {spans:#?}");
    for span in spans {
        assert_eq!(
            span.service_name.as_deref(),
            Some("capgate-under-test"),
            "{span:?}"
        );
        assert_eq!(span.attr("tool"), "case__read_case", "{span:?}");
        assert_eq!(span.attr("policy_version"), policy_version, "{span:?}");
    }
    let allowed: Vec<_> = spans
        .iter()
        .filter(|s| s.attr("outcome") == "allow")
        .collect();
    assert_eq!(allowed.len(), 2, "{spans:#?}");
    for span in &allowed {
        assert_eq!(span.attr("tenant"), "acme", "{span:?}");
        assert_eq!(span.attr("user"), "alice", "{span:?}");
        assert_eq!(span.attr("agent"), "drafting-agent", "{span:?}");
        assert_eq!(span.attr("policy_id"), "case-agents-read", "{span:?}");
        assert_eq!(span.attr("mode"), "enforce", "{span:?}");
    }
    let denied: Vec<_> = spans
        .iter()
        .filter(|s| s.attr("outcome") == "deny")
        .collect();
    assert_eq!(denied.len(), 1, "{spans:#?}");
    assert_eq!(denied[0].attr("tenant"), "globex", "{:?}", denied[0]);
    assert_eq!(denied[0].attr("user"), "carol", "{:?}", denied[0]);
    // The deciding policy, as the (detailed) refusal names it.
    let policy_id = denied[0].attr("policy_id");
    assert!(
        !policy_id.is_empty() && policy_id != "-" && refusal.contains(policy_id),
        "{:?} / {refusal}",
        denied[0]
    );
}

#[tokio::test]
async fn every_call_is_exported_as_one_span_carrying_its_decision() {
    let receiver = Receiver::start().await;
    let gateway = TestGateway::start(GatewayOptions {
        telemetry: Some(telemetry_table(&receiver.base_url)),
        ..Default::default()
    })
    .await;
    let policy_version = gateway.health().await["policy_version"]
        .as_str()
        .map(str::to_string)
        .expect("healthz names the policy version");
    let refusal = make_calls(
        &gateway.token(&analyst("acme", "alice", "drafting-agent")),
        &gateway.token(&analyst("globex", "carol", "drafting-agent")),
        &gateway.url,
    )
    .await;

    // The batch processor exports every few seconds.
    let spans = receiver
        .wait_for_call_spans(3, Duration::from_secs(30))
        .await;
    assert_decision_spans(&spans, &policy_version, &refusal);
    let headers = receiver
        .received
        .lock()
        .map(|r| r.test_headers.clone())
        .unwrap_or_default();
    assert!(
        !headers.is_empty() && headers.iter().all(|h| h.as_deref() == Some("otlp")),
        "configured headers go with every export: {headers:?}"
    );
}

/// Waits for the gateway to exit by itself (its handle kills it past the limit). Async, so the
/// receiver on this test's runtime keeps answering meanwhile.
async fn wait_exit(gateway: &TestGateway, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = gateway.exited() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn queued_spans_are_flushed_when_the_gateway_stops_on_sigterm() {
    let receiver = Receiver::start().await;
    // A ten-minute export interval: spans can only arrive through the flush at shutdown.
    let gateway = TestGateway::start(GatewayOptions {
        telemetry: Some(telemetry_table(&receiver.base_url)),
        env: vec![("OTEL_BSP_SCHEDULE_DELAY".into(), "600000".into())],
        ..Default::default()
    })
    .await;
    let url = gateway.url.clone();
    let health = gateway.health().await;
    let policy_version = health["policy_version"]
        .as_str()
        .map(str::to_string)
        .expect("healthz names the policy version");
    let token = |spec: &TokenSpec| sign_hs256(&claims(spec, &url), TEST_SECRET.as_bytes());
    let refusal = make_calls(
        &token(&analyst("acme", "alice", "drafting-agent")),
        &token(&analyst("globex", "carol", "drafting-agent")),
        &url,
    )
    .await;
    assert!(
        receiver.call_spans().is_empty(),
        "nothing is exported before the interval or shutdown"
    );

    let pid = gateway.pid().to_string();
    let signalled = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    let status = wait_exit(&gateway, Duration::from_secs(30)).await;
    let log_text = gateway.log();
    assert!(
        status.is_some_and(|s| s.success()),
        "capgate exits cleanly on SIGTERM ({status:?}); log:\n{log_text}"
    );
    // The flush finished before the process exited.
    assert_decision_spans(&receiver.call_spans(), &policy_version, &refusal);
}

#[tokio::test]
async fn a_collector_that_is_down_costs_a_warning_never_a_call() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let gateway = TestGateway::start(GatewayOptions {
        telemetry: Some(format!("otlp_endpoint = \"{closed}\"")),
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    for _ in 0..3 {
        let read = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
        assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    }
    until_within(
        Duration::from_secs(60),
        || async { gateway.log().contains("OTLP export failed") },
        || format!("no export warning in the log:\n{}", gateway.log()),
    )
    .await;
    let log = gateway.log();
    let warning = log
        .lines()
        .find(|l| l.contains("OTLP export failed"))
        .unwrap_or_else(|| panic!("no export warning in the log:\n{log}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert_eq!(
        log.matches("OTLP export failed;").count(),
        1,
        "one warning per outage:\n{log}"
    );
    // Still serving.
    let read = call(&alice, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
}

#[tokio::test]
async fn an_invalid_endpoint_refuses_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        free_port(),
        &GatewayOptions {
            telemetry: Some("otlp_endpoint = \"collector:4318\"".into()),
            ..Default::default()
        },
    );
    let stderr = serve_must_refuse(&config);
    assert!(stderr.contains("telemetry.otlp_endpoint"), "{stderr}");
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    assert!(stderr.contains("Fix:"), "{stderr}");
}
