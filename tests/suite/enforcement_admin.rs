//! Enforcement controls that operators flip, with real MCP traffic: kill switches that act on
//! the next request and tell connected sessions, time-limited break-glass, and the admin CLI
//! over the admin API.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// A platform admin's request (the tool switches here are not a tenant admin's).
async fn admin(gateway: &TestGateway, path: &str, body: Value) -> Value {
    let admin = gateway.platform_admin_token();
    let response = reqwest::Client::new()
        .post(format!(
            "{}{path}",
            gateway.admin_url.as_deref().expect("admin")
        ))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .expect("admin request");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_kill_switch_hides_and_denies_a_tool_on_the_next_request_and_lifting_restores_it() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let client = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    assert!(tool_names(&client)
        .await
        .contains(&"case__read_case".to_string()));

    admin(
        &gateway,
        "/admin/kill-switches",
        json!({"scope": "tool", "target": "case__read_case", "reason": "incident 42: leaking data"}),
    )
    .await;
    // The same, already connected session: hidden and denied on its next requests.
    assert!(!tool_names(&client)
        .await
        .contains(&"case__read_case".to_string()));
    let denied = call(&client, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_eq!(denied.is_error, Some(true));
    assert!(
        text_of(&denied).contains("incident 42"),
        "{}",
        text_of(&denied)
    );
    // Other tools are untouched.
    assert!(tool_names(&client)
        .await
        .contains(&"case__search_evidence".to_string()));

    // Survives a restart.
    gateway.restart().await;
    let client = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    assert!(!tool_names(&client)
        .await
        .contains(&"case__read_case".to_string()));

    admin(
        &gateway,
        "/admin/kill-switches/lift",
        json!({"scope": "tool", "target": "case__read_case"}),
    )
    .await;
    assert!(tool_names(&client)
        .await
        .contains(&"case__read_case".to_string()));
    let restored = call(&client, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_ne!(restored.is_error, Some(true), "{}", text_of(&restored));
    assert_eq!(
        gateway
            .journal_entries()
            .iter()
            .filter(|e| e["name"] == "read_case")
            .count(),
        1,
        "the killed call never reached the downstream"
    );
}

async fn open_grant(gateway: &TestGateway, token: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/break-glass",
            gateway.admin_url.as_deref().expect("admin")
        ))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn break_glass_is_time_limited_and_loud() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let status_change = json!({"case_id": "case-104", "status": "under_review"});
    let refused = call_with_meta(
        &alice,
        "case__update_case_status",
        status_change.clone(),
        key("bg-1"),
    )
    .await;
    assert_eq!(refused.is_error, Some(true), "policy refuses it");

    let officer = gateway.token(&TokenSpec {
        user: "sam",
        tenant: Some("acme"),
        roles: vec!["break-glass"],
        agent: None,
        service: None,
    });
    let not_allowed = gateway.admin_token();
    let grant = json!({"user": "alice", "tool": "case__update_case_status", "reason": "incident 77: regulator deadline", "expires_in_seconds": 60});
    assert_eq!(
        open_grant(&gateway, &not_allowed, grant.clone()).await.0,
        403
    );
    let too_long = json!({"user": "alice", "reason": "incident 77: regulator deadline", "expires_in_seconds": 999_999});
    assert_eq!(open_grant(&gateway, &officer, too_long).await.0, 422);
    let (status, opened) = open_grant(&gateway, &officer, grant).await;
    assert_eq!(status, 200, "{opened}");
    let grant_id = opened["grant"]["id"].as_str().expect("id").to_string();

    let allowed = call_with_meta(
        &alice,
        "case__update_case_status",
        status_change.clone(),
        key("bg-2"),
    )
    .await;
    assert_ne!(allowed.is_error, Some(true), "{}", text_of(&allowed));
    let meta = serde_json::to_value(&allowed.meta).expect("meta");
    assert_eq!(meta["dev.capgate/break-glass"], grant_id.as_str(), "{meta}");
    assert!(gateway
        .log()
        .contains("BREAK-GLASS: call allowed against policy"));

    // Listed for review, with its use.
    let listed: Value = reqwest::Client::new()
        .get(format!(
            "{}/break-glass",
            gateway.admin_url.as_deref().expect("admin")
        ))
        .bearer_auth(&officer)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let entry = listed["grants"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["grant"]["id"] == grant_id.as_str()))
        .cloned()
        .expect("grant listed");
    assert_eq!(entry["grant"]["uses"], 1);
    assert_eq!(entry["open"], true);

    // An expired grant does nothing.
    let short = json!({"user": "alice", "tool": "case__propose_risk_update", "reason": "incident 78: short window", "expires_in_seconds": 1});
    assert_eq!(open_grant(&gateway, &officer, short).await.0, 200);
    gateway.advance_clock(2);
    let expired = call_with_meta(
        &alice,
        "case__propose_risk_update",
        json!({"case_id": "case-101", "risk": "high", "rationale": "r"}),
        key("bg-3"),
    )
    .await;
    assert_eq!(expired.is_error, Some(true), "{}", text_of(&expired));
    assert_eq!(
        gateway
            .journal_entries()
            .iter()
            .filter(|e| e["name"] == "propose_risk_update")
            .count(),
        0
    );
}

#[derive(Clone, Default)]
struct ListChanges(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl rmcp::ClientHandler for ListChanges {
    async fn on_tool_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn connected_sessions_are_told_when_a_kill_switch_changes_their_tools() {
    use rmcp::ServiceExt;
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let changes = ListChanges::default();
    let transport = rmcp::transport::StreamableHttpClientTransport::from_config(
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            gateway.url.clone(),
        )
        .auth_header(gateway.token(&analyst("acme", "alice", "drafting-agent"))),
    );
    let session = changes.clone().serve(transport).await.expect("session");
    // Let the session's notification stream open.
    let _ = session.list_all_tools().await.expect("tools/list");
    gateway.until_logged("notification stream opened").await;
    let seen = |n: usize| {
        let counter = changes.0.clone();
        async move {
            until("a list_changed notification", || async {
                counter.load(std::sync::atomic::Ordering::SeqCst) >= n
            })
            .await;
        }
    };
    admin(
        &gateway,
        "/admin/kill-switches",
        json!({"scope": "tool", "target": "case__read_case", "reason": "incident 43"}),
    )
    .await;
    seen(1).await;
    let names: Vec<String> = session
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(!names.contains(&"case__read_case".to_string()));
    admin(
        &gateway,
        "/admin/kill-switches/lift",
        json!({"scope": "tool", "target": "case__read_case"}),
    )
    .await;
    seen(2).await;
}

/// A 2026-07-28 client has no session: it listens (`subscriptions/listen`) and is told the same.
#[tokio::test]
async fn a_listening_2026_client_is_told_when_a_kill_switch_changes_its_tools() {
    use rmcp::model::{ProtocolVersion, ServerNotification, SubscriptionFilter};
    use rmcp::{ClientLifecycleMode, ClientServiceExt};
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let transport = rmcp::transport::StreamableHttpClientTransport::from_config(
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            gateway.url.clone(),
        )
        .auth_header(gateway.token(&analyst("acme", "alice", "drafting-agent"))),
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
    // Acknowledged: from here on no change is missed.
    let mut subscription = client
        .peer()
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .expect("listening");
    assert_eq!(subscription.acknowledged().tools_list_changed, Some(true));
    admin(
        &gateway,
        "/admin/kill-switches",
        json!({"scope": "tool", "target": "case__read_case", "reason": "incident 44"}),
    )
    .await;
    let told = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("told within 10 s")
        .expect("the subscription stays open");
    assert!(
        matches!(
            told,
            Some(ServerNotification::ToolListChangedNotification(_))
        ),
        "{told:?}"
    );
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(!names.contains(&"case__read_case".to_string()), "{names:?}");
}

#[tokio::test]
async fn the_admin_cli_drives_the_admin_api_and_the_api_is_described() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let admin_token = gateway.platform_admin_token();
    let url = gateway.admin_url.clone().expect("admin");
    let cli = move |args: Vec<&'static str>| {
        let (url, token) = (url.clone(), admin_token.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_capgate"))
                    .args(["admin", "--url", &url])
                    .args(args)
                    .env("CAPGATE_ADMIN_TOKEN", token)
                    .output()
                    .expect("run capgate admin")
            })
            .await
            .expect("join")
        }
    };
    let killed = cli(vec![
        "kill",
        "--scope",
        "tool",
        "--target",
        "case__read_case",
        "--reason",
        "incident 44",
    ])
    .await;
    assert!(
        killed.status.success(),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let listed = cli(vec!["kill-switches"]).await;
    assert!(String::from_utf8_lossy(&listed.stdout).contains("incident 44"));
    let client = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    assert!(!tool_names(&client)
        .await
        .contains(&"case__read_case".to_string()));
    let lifted = cli(vec![
        "lift",
        "--scope",
        "tool",
        "--target",
        "case__read_case",
    ])
    .await;
    assert!(lifted.status.success());
    assert!(tool_names(&client)
        .await
        .contains(&"case__read_case".to_string()));
    // Without the token the CLI fails clearly.
    let no_token = std::process::Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["admin", "--url", "http://127.0.0.1:1", "policy"])
        .env_remove("CAPGATE_ADMIN_TOKEN")
        .output()
        .expect("run");
    assert!(!no_token.status.success());
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("CAPGATE_ADMIN_TOKEN"));

    // The OpenAPI document describes every admin route.
    let doc = std::process::Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["admin", "openapi"])
        .output()
        .expect("run");
    let doc: Value = serde_json::from_slice(&doc.stdout).expect("OpenAPI JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/admin/policy",
        "/admin/policy/reload",
        "/admin/relationships",
        "/admin/kill-switches",
        "/admin/kill-switches/lift",
        "/admin/budgets",
        "/approvals",
        "/approvals/{id}/approve",
        "/approvals/{id}/reject",
        "/break-glass",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Approval"].is_object());
}
