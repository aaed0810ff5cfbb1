//! What MCP carries passes through capgate when policy allows it: the client's request `_meta`
//! (minus capgate's own keys), progress notifications under the client's own token, and the
//! client's cancellation, which reaches the downstream.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientRequest, ProgressNotificationParam,
    ProgressToken, RequestMetaObject,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RoleClient};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{json, Value};

/// A client that keeps the progress and resource-update notifications it receives.
#[derive(Clone, Default)]
struct Listener {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    updated: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Listener {
    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut seen) = self.updated.lock() {
            seen.push(params.uri);
        }
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut seen) = self.progress.lock() {
            seen.push(params);
        }
    }
}

impl Listener {
    fn seen(&self) -> Vec<ProgressNotificationParam> {
        self.progress.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn updates(&self) -> Vec<String> {
        self.updated.lock().map(|s| s.clone()).unwrap_or_default()
    }

    async fn connect(
        self,
        gateway: &TestGateway,
        token: String,
    ) -> rmcp::service::RunningService<RoleClient, Listener> {
        self.serve(StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(gateway.url.clone()).auth_header(token),
        ))
        .await
        .expect("client connects")
    }
}

async fn gateway() -> TestGateway {
    TestGateway::start(GatewayOptions {
        with_flaky: true,
        flaky_timeout_ms: Some(8_000),
        ..Default::default()
    })
    .await
}

fn sleep_request(ms: u64) -> ClientRequest {
    ClientRequest::CallToolRequest(CallToolRequest::new(
        CallToolRequestParams::new("flaky__debug_sleep").with_arguments(args(json!({"ms": ms}))),
    ))
}

fn journal_of(gateway: &TestGateway, method: &str) -> Vec<Value> {
    gateway
        .flaky_journal_entries()
        .into_iter()
        .filter(|e| e["method"] == method && e["name"] == "debug_sleep")
        .collect()
}

#[tokio::test]
async fn progress_arrives_under_the_clients_token_and_cancellation_reaches_the_downstream() {
    // A session's client, and a 2026-07-28 client (each request on its own).
    for discover in [false, true] {
        progress_and_cancellation(discover).await;
    }
}

async fn progress_and_cancellation(discover: bool) {
    use rmcp::model::ProtocolVersion;
    use rmcp::{ClientLifecycleMode, ClientServiceExt};
    let gateway = gateway().await;
    let token = gateway.token(&analyst("acme", "alice", "drafting-agent"));
    let listener = Listener::default();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(gateway.url.clone()).auth_header(token),
    );
    let lifecycle = if discover {
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        }
    } else {
        ClientLifecycleMode::Initialize
    };
    let client = listener
        .clone()
        .serve_with_lifecycle(transport, lifecycle)
        .await
        .expect("client connects");

    // Progress: the client's own token on every notification, up to the total.
    let handle = client
        .send_request_with_option(sleep_request(500), PeerRequestOptions::default())
        .await
        .expect("sent");
    let mine: ProgressToken = handle.progress_token.clone();
    let answer = handle.await_response().await.expect("answered");
    let text = serde_json::to_string(&answer).expect("json");
    assert!(text.contains("slept"), "{text}");
    let seen = listener.seen();
    assert!(
        seen.len() >= 3,
        "discover {discover}: progress notifications: {seen:?}"
    );
    assert!(
        seen.iter().all(|p| p.progress_token == mine),
        "{seen:?} vs {mine:?}"
    );
    assert!(seen.iter().any(|p| p.total == Some(500.0)), "{seen:?}");

    // Cancellation: a long sleep cancelled by the client stops at the downstream within 1 s.
    let handle = client
        .send_request_with_option(sleep_request(8_000), PeerRequestOptions::default())
        .await
        .expect("sent");
    until("the call reaches the downstream", || async {
        journal_of(&gateway, "tools/call").len() >= 2
    })
    .await;
    let cancelled_at = Instant::now();
    handle
        .cancel(Some("the user changed their mind".into()))
        .await
        .expect("cancel sent");
    until_within(
        Duration::from_secs(1).saturating_sub(cancelled_at.elapsed()),
        || async { !journal_of(&gateway, "cancelled").is_empty() },
        || format!("discover {discover}: the downstream was not told within 1 s"),
    )
    .await;
}

#[tokio::test]
async fn the_clients_meta_reaches_the_downstream_without_capgates_own_keys() {
    let gateway = gateway().await;
    let client = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut params =
        CallToolRequestParams::new("flaky__debug_sleep").with_arguments(args(json!({"ms": 1})));
    let mut meta = RequestMetaObject::new();
    meta.0 .0.insert("traceparent".into(), json!(traceparent));
    meta.0
         .0
        .insert("example.com/custom".into(), json!({"n": 1}));
    meta.0
         .0
        .insert("dev.capgate/idempotency-key".into(), json!("k-1"));
    meta.0 .0.insert(
        "dev.capgate/actor".into(),
        json!({"tenant": "globex", "user": "mallory"}),
    );
    params.meta = Some(meta);
    let result = client.call_tool(params).await.expect("call");
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));

    let received = journal_of(&gateway, "tools/call");
    let entry = received.last().expect("the downstream got the call");
    let keys: Vec<&str> = entry["meta_keys"]
        .as_array()
        .expect("meta keys")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(keys.contains(&"traceparent"), "{keys:?}");
    assert!(keys.contains(&"example.com/custom"), "{keys:?}");
    assert!(!keys.contains(&"dev.capgate/idempotency-key"), "{keys:?}");
    assert_eq!(entry["traceparent"], traceparent);
    // The actor is capgate's, whatever the client put under that key.
    assert_eq!(entry["actor"]["tenant"], "acme");
    assert_eq!(entry["actor"]["user"], "alice");
}

fn case_table(dir: &std::path::Path, id: &str, naming: &str) -> String {
    format!(
        r#"
[[downstream]]
id = "{id}"
command = "{bin}"
timeout_ms = 10000
{naming}
env = {{ CASE_PLATFORM_JOURNAL = "{journal}" }}
"#,
        bin = env!("CARGO_BIN_EXE_case-platform"),
        journal = dir.join("case-journal.jsonl").display(),
    )
}

fn case_contracts(id: &str) -> (String, String) {
    let text = std::fs::read_to_string(repo_root().join("capabilities/case-platform.toml"))
        .expect("contracts")
        .replace("server = \"case\"", &format!("server = \"{id}\""));
    (format!("{id}.toml"), text)
}

#[tokio::test]
async fn a_downstream_without_a_prefix_shows_its_own_names_and_collisions_refuse_start() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let gateway = TestGateway::start(GatewayOptions {
        downstreams: Some(Downstreams {
            contracts: vec![case_contracts("case")],
            tables: case_table(scratch.path(), "case", "namespace = \"none\""),
        }),
        ..Default::default()
    })
    .await;
    let client = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let names = tool_names(&client).await;
    assert!(names.contains(&"read_case".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("__")), "{names:?}");
    let read = call(&client, "read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    let refused = call(&client, "read_case", json!({"case_id": "case-201"})).await;
    assert_eq!(refused.is_error, Some(true), "policy still decides");

    // Two unprefixed servers offering the same names: start is refused, naming both.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        0,
        &GatewayOptions {
            downstreams: Some(Downstreams {
                contracts: vec![case_contracts("case"), case_contracts("mirror")],
                tables: case_table(dir.path(), "case", "namespace = \"none\"")
                    + &case_table(dir.path(), "mirror", "namespace = \"none\""),
            }),
            ..Default::default()
        },
    );
    let stderr = serve_must_refuse(&config);
    assert!(
        stderr.contains("collides") && stderr.contains("`case`") && stderr.contains("`mirror`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn completions_are_decided_as_reads_of_what_they_complete() {
    use rmcp::model::{ArgumentInfo, CompleteRequestParams, Reference};
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let advertised = alice
        .peer_info()
        .is_some_and(|info| info.capabilities.completions.is_some());
    assert!(
        advertised,
        "the downstream offers completions, so capgate advertises them"
    );

    let prompt = |name: &str| {
        CompleteRequestParams::new(
            Reference::for_prompt(name),
            ArgumentInfo::new("case_id", "case-1"),
        )
    };
    let completed = alice
        .complete(prompt("case__summarize_case"))
        .await
        .expect("completion");
    let values = completed.completion.values;
    assert!(values.contains(&"case-101".to_string()), "{values:?}");
    assert!(values.iter().all(|v| v.starts_with("case-1")), "{values:?}");
    let template = alice
        .complete(CompleteRequestParams::new(
            Reference::for_resource("case://{tenant}/cases/{case_id}"),
            ArgumentInfo::new("case_id", "case-10"),
        ))
        .await
        .expect("template completion");
    assert!(template.completion.values.contains(&"case-101".to_string()));

    // An actor the prompt is not for gets no completion of its arguments, and it is logged.
    let notifier = gateway
        .client(&gateway.token(&TokenSpec {
            user: "svc-notify",
            tenant: Some("acme"),
            roles: vec![],
            agent: Some("notification-service"),
            service: Some("notification-service"),
        }))
        .await;
    let refused = notifier
        .complete(prompt("case__summarize_case"))
        .await
        .expect_err("refused");
    let rmcp::ServiceError::McpError(error) = refused else {
        panic!("a refusal, not {refused}");
    };
    let request_id = error.data.as_ref().expect("decision")["dev.capgate/decision"]["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    let completions = gateway
        .journal_entries()
        .into_iter()
        .filter(|e| e["method"] == "completion/complete")
        .count();
    assert_eq!(
        completions, 2,
        "the refused completion never reached the downstream"
    );
    let record = flushed_records(&gateway)
        .await
        .into_iter()
        .find(|r| r["request_id"] == request_id.as_str())
        .expect("the refusal's record");
    assert_eq!(record["action"], "get_prompt");
    assert_eq!(record["decision"], "deny");
}

#[tokio::test]
#[allow(deprecated)] // resources/subscribe is how 2025-11-25 clients subscribe
async fn subscriptions_are_decided_as_reads_and_updates_reach_the_subscriber() {
    use rmcp::model::SubscribeRequestParams;
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let bob = TokenSpec {
        user: "bob",
        tenant: Some("acme"),
        roles: vec!["senior_reviewer"],
        agent: Some("supervisor-agent"),
        service: Some("agent-runtime"),
    };
    let listener = Listener::default();
    let subscriber = listener
        .clone()
        .connect(&gateway, gateway.token(&bob))
        .await;
    let advertised = subscriber.peer_info().is_some_and(|info| {
        info.capabilities
            .resources
            .as_ref()
            .is_some_and(|r| r.subscribe == Some(true))
    });
    assert!(
        advertised,
        "the downstream takes subscriptions, so capgate offers them"
    );
    let own = "case://acme/cases/case-104";
    subscriber
        .subscribe(SubscribeRequestParams::new(own))
        .await
        .expect("subscribing to a case bob may read");
    let foreign = subscriber
        .subscribe(SubscribeRequestParams::new("case://globex/cases/case-201"))
        .await;
    assert!(foreign.is_err(), "another tenant's case: {foreign:?}");
    let subscribed = gateway
        .journal_entries()
        .into_iter()
        .filter(|e| e["method"] == "resources/subscribe")
        .count();
    assert_eq!(
        subscribed, 1,
        "the refused subscription never reached the downstream"
    );

    // Someone else's session that did not subscribe.
    let bystander = Listener::default();
    let other = bystander
        .clone()
        .connect(
            &gateway,
            gateway.token(&analyst("acme", "alice", "drafting-agent")),
        )
        .await;

    // The case changes: the subscriber hears of it.
    let actor = gateway.client(&gateway.token(&bob)).await;
    let changed = call_with_meta(
        &actor,
        "case__update_case_status",
        json!({"case_id": "case-104", "status": "under_review"}),
        key("status-104"),
    )
    .await;
    assert_ne!(changed.is_error, Some(true), "{}", text_of(&changed));
    until_within(
        Duration::from_secs(5),
        || async { !listener.updates().is_empty() },
        || "no update reached the subscriber".into(),
    )
    .await;
    assert_eq!(listener.updates(), vec![own.to_string()]);
    assert!(bystander.updates().is_empty(), "{:?}", bystander.updates());
    drop(other);
}

/// A 2026-07-28 client subscribes by listening: decided per URI like a read, its updates on
/// the listen stream.
#[tokio::test]
async fn a_listening_2026_client_hears_of_its_own_resources_and_is_refused_another_tenants() {
    use rmcp::model::{ProtocolVersion, ServerNotification, SubscriptionFilter};
    use rmcp::{ClientLifecycleMode, ClientServiceExt};
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let bob = TokenSpec {
        user: "bob",
        tenant: Some("acme"),
        roles: vec!["senior_reviewer"],
        agent: Some("supervisor-agent"),
        service: Some("agent-runtime"),
    };
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(gateway.url.clone())
            .auth_header(gateway.token(&bob)),
    );
    let client = ()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("2026-07-28 discover");
    let own = "case://acme/cases/case-104";
    let listen = |uris: Vec<&str>| {
        let filter = SubscriptionFilter::builder()
            .resource_subscriptions(uris.into_iter().map(str::to_string))
            .build();
        client.peer().listen(filter)
    };
    let mut subscription = listen(vec![own]).await.expect("listening");
    assert_eq!(
        subscription.acknowledged().resource_subscriptions,
        Some(vec![own.to_string()])
    );

    // Another tenant's case among the URIs: the subscription ends with the refusal, and the
    // downstream is never asked for it.
    let mut foreign = listen(vec!["case://globex/cases/case-201"])
        .await
        .expect("acknowledged before it is decided");
    let ended = tokio::time::timeout(Duration::from_secs(10), foreign.next())
        .await
        .expect("ended within 10 s");
    assert!(
        ended.is_err() || foreign.end().is_some(),
        "another tenant's resource: {ended:?}"
    );
    // rmcp acknowledges a listen before its handler runs: the own URI reaches the downstream
    // just after the acknowledgement (wait for it); the foreign one never does.
    let subscribes = || -> Vec<Value> {
        gateway
            .journal_entries()
            .into_iter()
            .filter(|e| e["method"] == "resources/subscribe")
            .collect()
    };
    until("the subscribe reaches the downstream", || async {
        !subscribes().is_empty()
    })
    .await;
    let asked = subscribes();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["name"], own, "{asked:?}");

    // Its own case changes: the listener hears of it.
    let actor = gateway.client(&gateway.token(&bob)).await;
    let changed = call_with_meta(
        &actor,
        "case__update_case_status",
        json!({"case_id": "case-104", "status": "under_review"}),
        key("status-104-listen"),
    )
    .await;
    assert_ne!(changed.is_error, Some(true), "{}", text_of(&changed));
    let heard = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("heard within 10 s")
        .expect("the subscription stays open");
    match heard {
        Some(ServerNotification::ResourceUpdatedNotification(update)) => {
            assert_eq!(update.params.uri, own)
        }
        other => panic!("not an update: {other:?}"),
    }
    let records = flushed_records(&gateway).await;
    let refused = records
        .iter()
        .filter(|r| r["request"]["resource"]["id"] == "case://globex/cases/case-201")
        .count();
    assert_eq!(refused, 1, "{records:?}");
    assert!(records.iter().any(|r| r["request"]["resource"]["id"]
        == "case://globex/cases/case-201"
        && r["decision"] == "deny"));
}
