//! The front door under hostile clients, with raw HTTP on loopback: sessions belong to the
//! principal that opened them; idle connections are closed while others are served; session
//! and request floods stop at their caps for the flooding principal only; plain keep-alive
//! clients get answers without delayed-ACK stalls; Origin, malformed bodies and DELETE get the
//! answers the MCP transport specifies.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

fn alice(gateway: &TestGateway) -> String {
    gateway.token(&analyst("acme", "alice", "drafting-agent"))
}

fn gina(gateway: &TestGateway) -> String {
    gateway.token(&analyst("globex", "gina", "drafting-agent"))
}

#[tokio::test]
async fn another_principals_session_id_is_a_session_that_does_not_exist() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let raw = Raw::new(&gateway);
    let (a, b) = (alice(&gateway), gina(&gateway));
    let session = raw.open(&a).await.expect("alice opens a session");

    // B's valid token with A's session id: POST, GET (with and without Last-Event-ID), DELETE.
    let (status, _) = raw.request(&b, &session, 1, "tools/list", json!({})).await;
    assert_eq!(status, 404, "POST");
    for last_event in [None, Some("0"), Some("1/0")] {
        let mut get = raw
            .http
            .get(&raw.url)
            .bearer_auth(&b)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", PROTOCOL);
        if let Some(id) = last_event {
            get = get.header("last-event-id", id);
        }
        let response = get.send().await.expect("GET");
        assert_eq!(response.status().as_u16(), 404, "GET {last_event:?}");
    }
    let delete = raw
        .http
        .delete(&raw.url)
        .bearer_auth(&b)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(delete.status().as_u16(), 404, "DELETE");

    // A's session is untouched: it still lists and calls.
    let (status, answer) = raw.request(&a, &session, 2, "tools/list", json!({})).await;
    assert_eq!(status, 200);
    assert!(
        answer.iter().any(|m| m["result"]["tools"].is_array()),
        "{answer:?}"
    );
    let (status, answer) = raw
        .request(
            &a,
            &session,
            3,
            "tools/call",
            json!({"name": "case__read_case", "arguments": {"case_id": "case-101"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        answer
            .iter()
            .any(|m| m["result"]["isError"] != true && m["id"] == 3),
        "{answer:?}"
    );

    // Its owner closes it with 204; then it is gone for everyone.
    let delete = raw
        .http
        .delete(&raw.url)
        .bearer_auth(&a)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(delete.status().as_u16(), 204);
    let (status, _) = raw.request(&a, &session, 4, "tools/list", json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn origin_malformed_bodies_and_oversized_names_get_the_transports_answers() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let raw = Raw::new(&gateway);
    let token = alice(&gateway);

    let evil = raw
        .http
        .post(&raw.url)
        .bearer_auth(&token)
        .header("origin", "http://evil.example")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(evil.status().as_u16(), 403, "a foreign Origin");
    let own = raw
        .http
        .post(&raw.url)
        .bearer_auth(&token)
        .header("origin", gateway.base_url())
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL, "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"}}})
            .to_string(),
        )
        .send()
        .await
        .expect("POST");
    assert_eq!(own.status().as_u16(), 200, "the gateway's own origin");

    let malformed = raw
        .http
        .post(&raw.url)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\":")
        .send()
        .await
        .expect("POST");
    assert_eq!(malformed.status().as_u16(), 400);
    let body: Value = malformed.json().await.expect("a JSON-RPC error");
    assert_eq!(body["error"]["code"], -32700, "{body}");
    assert_eq!(body["jsonrpc"], "2.0");

    // A 1 MB tool name is not echoed whole.
    let session = raw.open(&token).await.expect("session");
    let name = "x".repeat(1_000_000);
    let (status, answer) = raw
        .request(
            &token,
            &session,
            5,
            "tools/call",
            json!({"name": name, "arguments": {}}),
        )
        .await;
    assert_eq!(status, 200);
    let text = serde_json::to_string(&answer).expect("json");
    assert!(text.len() < 2_000, "echoed {} bytes", text.len());
    assert!(text.contains("unknown tool"), "{text}");
}

#[tokio::test]
async fn idle_connections_are_closed_while_a_legitimate_client_is_served() {
    let gateway = TestGateway::start(GatewayOptions {
        limits: Some("header_read_timeout_ms = 1000".into()),
        ..Default::default()
    })
    .await;
    let address = format!("127.0.0.1:{}", gateway.port);
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(
            tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect"),
        );
    }
    // Meanwhile a real client is served.
    let client = gateway.client(&alice(&gateway)).await;
    let served = call(&client, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(served.is_error, Some(true), "{}", text_of(&served));

    // Every idle connection is closed by the gateway within the timeout (plus scheduling).
    let started = Instant::now();
    for stream in &mut idle {
        let mut buffer = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            use tokio::io::AsyncReadExt;
            stream.read(&mut buffer).await
        })
        .await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "an idle connection stayed open: {closed:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

async fn sessions_open(gateway: &TestGateway) -> f64 {
    gateway
        .metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("capgate_sessions_open "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_session_flood_stops_at_its_cap_and_expired_sessions_are_freed() {
    let gateway = TestGateway::start(GatewayOptions {
        limits: Some("sessions_per_principal = 5\nsession_idle_seconds = 2".into()),
        ..Default::default()
    })
    .await;
    let raw = Raw::new(&gateway);
    let (a, b) = (alice(&gateway), gina(&gateway));
    for _ in 0..5 {
        raw.open(&a).await.expect("within the cap");
    }
    let (status, body) = raw.open(&a).await.expect_err("over the cap");
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("sessions"), "{body}");
    // Another principal is not affected.
    raw.open(&b).await.expect("gina's own session");
    assert_eq!(sessions_open(&gateway).await, 6.0);

    // Idle sessions end and free their place (and memory).
    until_within(
        Duration::from_secs(30),
        || async { sessions_open(&gateway).await <= 0.0 },
        || "sessions never expired".into(),
    )
    .await;
    raw.open(&a).await.expect("a place again after expiry");
}

#[tokio::test]
async fn a_request_flood_from_one_principal_is_refused_while_another_is_served() {
    let gateway = TestGateway::start(GatewayOptions {
        limits: Some("requests_per_second = 5\nrequest_burst = 5".into()),
        ..Default::default()
    })
    .await;
    let raw = Raw::new(&gateway);
    let (a, b) = (alice(&gateway), gina(&gateway));
    let session = raw.open(&a).await.expect("session");
    let mut refused = 0;
    let mut retry_after = None;
    for id in 0..30 {
        let response = raw
            .post(
                &a,
                Some(&session),
                json!({"jsonrpc": "2.0", "id": id, "method": "ping"}),
            )
            .await;
        if response.status().as_u16() == 429 {
            refused += 1;
            retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
        }
    }
    assert!(refused >= 20, "only {refused} of 30 refused");
    let wait: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    // The other principal's bucket is its own.
    let other = raw.open(&b).await.expect("gina is served");
    let (status, _) = raw.request(&b, &other, 1, "ping", json!({})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_plain_keep_alive_client_gets_answers_without_delayed_ack_stalls() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let raw = Raw::new(&gateway);
    let token = alice(&gateway);
    let session = raw.open(&token).await.expect("session");
    let mut times = Vec::new();
    for id in 0..60u64 {
        let started = Instant::now();
        let (status, answer) = raw.request(&token, &session, id, "ping", json!({})).await;
        times.push(started.elapsed());
        assert_eq!(status, 200);
        assert!(answer.iter().any(|m| m["id"] == id), "{answer:?}");
    }
    times.sort();
    let median = times[times.len() / 2];
    // A client that waits for the delayed ACK sees ~40 ms per answer; a debug build on two
    // busy cores answers in a few ms. The order of magnitude is what this checks.
    assert!(
        median < Duration::from_millis(15),
        "median {median:?}; all: {times:?}"
    );
}
