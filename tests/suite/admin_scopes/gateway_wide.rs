//! The admin endpoints of the gateway as a whole in the table: the policy status for any
//! admin; reload, audit flush, health and tool pins for platform admins only; metrics for
//! anyone, without a token. Beside the table: every operation the OpenAPI document describes
//! is served, and those it marks as needing a token refuse a request without one.

use serde_json::json;

use super::Caller::*;
use super::{only, Caller, Table, ADMINS, CALLERS};
use crate::common::*;
use capgate::server::admin::Endpoint;

/// The table's rows for the gateway as a whole.
pub(super) async fn rows(gateway: &TestGateway, table: &mut Table<'_>) {
    let empty = json!({});

    // The gateway as a whole: the policy status for any admin; the rest for platform admins.
    table
        .ask(
            Endpoint::PolicyStatus,
            "/admin/policy",
            None,
            &only(&ADMINS),
        )
        .await;
    for (endpoint, path) in [
        (Endpoint::PolicyReload, "/admin/policy/reload"),
        (Endpoint::AuditFlush, "/admin/audit/flush"),
    ] {
        table
            .ask(endpoint, path, Some(&empty), &only(&[PlatformAdmin]))
            .await;
    }
    table
        .ask(
            Endpoint::Health,
            "/admin/health",
            None,
            &only(&[PlatformAdmin]),
        )
        .await;
    // Tool pins: platform admins only; accepting names the digest listed now (a stale one is
    // 422 even for them).
    table
        .ask(
            Endpoint::ToolPins,
            "/admin/tools",
            None,
            &only(&[PlatformAdmin]),
        )
        .await;
    let stale = json!({"server": "case", "tool": "read_case", "digest": format!("sha256:{}", "0".repeat(64))});
    let accept: Vec<(Caller, u16)> = only(&[PlatformAdmin])
        .into_iter()
        .map(|(c, s)| (c, if s == 200 { 422 } else { s }))
        .collect();
    table
        .ask(
            Endpoint::ToolAccept,
            "/admin/tools/accept",
            Some(&stale),
            &accept,
        )
        .await;
    // Metrics need no token (the admin listener is kept off the agents' network).
    table
        .ask(Endpoint::Metrics, "/metrics", None, &only(&CALLERS))
        .await;
    let (status, _) = gateway.admin_request(None, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let (status, _) = gateway
        .admin_request(None, "GET", "/admin/policy", None)
        .await;
    assert_eq!(status, 401, "everything else needs a token");
}

/// The OpenAPI document against the running listener: every operation it describes is served
/// (a platform admin's request reaches a handler: no 405, and a 404 is a handler's JSON answer,
/// not the router's), and those it marks as needing a token refuse a request without one.
#[tokio::test]
async fn every_operation_the_openapi_document_describes_is_served() {
    let gateway = TestGateway::start(GatewayOptions::default()).await;
    let admin = gateway.platform_admin_token();
    let doc = capgate::server::admin::openapi();
    let paths = doc["paths"].as_object().expect("paths");
    let mut described = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "no-such-id")
            .replace("{seq}", "999999");
        for (method, operation) in item.as_object().expect("a path item") {
            described += 1;
            let method = method.to_uppercase();
            // An empty JSON object: each body-reading handler answers it without acting.
            let body = (method == "POST").then(|| json!({}));
            let (status, answer) = gateway
                .admin_request(Some(&admin), &method, &concrete, body.as_ref())
                .await;
            assert_ne!(status, 405, "{method} {path}: not served");
            assert!(
                status != 404 || answer.is_object(),
                "{method} {path}: the router does not know it"
            );
            let (status, _) = gateway
                .admin_request(None, &method, &concrete, body.as_ref())
                .await;
            let needs_token = operation.get("security").is_some();
            assert_eq!(
                status == 401,
                needs_token,
                "{method} {path}: {status} without a token"
            );
        }
    }
    assert_eq!(described, Endpoint::ALL.len());
}
