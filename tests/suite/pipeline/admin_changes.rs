//! What an admin changes binds the traffic already flowing: a kill switch flipped during a
//! burst stops every call not yet forwarded; a revoked break-glass grant refuses the next
//! call; a relationship update through the admin API takes effect and survives a restart.

use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_kill_switch_flip_stops_every_call_not_yet_forwarded() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        // 40 calls at once from one principal: above the default 32, some got 429 instead.
        limits: Some("concurrent_requests_per_principal = 64".into()),
        ..Default::default()
    })
    .await;
    let client = std::sync::Arc::new(
        gateway
            .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
            .await,
    );
    // As many calls at once as one principal may have in progress (the session's notification
    // stream is one more request): beyond that the front door answers 429, not the switch.
    let in_flight = capgate::config::LimitsConfig::default().concurrent_requests_per_principal - 2;
    let calls: Vec<_> = (0..in_flight)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                call_with_meta(
                    &client,
                    "case__create_notice_draft",
                    json!({"case_id": "case-101", "body": format!("Notice {i}")}),
                    key(&format!("burst-{i}")),
                )
                .await
            })
        })
        .collect();
    until("a draft of the burst is created", || async {
        drafts_created(&gateway) > 0
    })
    .await;
    let (status, body) = admin_request(
        &gateway,
        &gateway.platform_admin_token(),
        "/admin/kill-switches",
        json!({"scope": "tool", "target": "case__create_notice_draft", "reason": "stop drafts"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let at_flip = drafts_created(&gateway);
    let results = futures::future::join_all(calls).await;
    let performed = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.is_error != Some(true)))
        .count();
    let killed = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| text_of(r).contains("kill switch")))
        .count();
    assert_eq!(
        drafts_created(&gateway),
        at_flip,
        "nothing forwarded after the flip answered"
    );
    assert_eq!(
        performed, at_flip,
        "every success was forwarded before the flip"
    );
    assert_eq!(
        performed + killed,
        in_flight as usize,
        "every other call was stopped by the switch"
    );
}

#[tokio::test]
async fn a_revoked_grant_refuses_the_next_call_and_relationship_updates_survive_restart() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let opener = gateway.token(&TokenSpec {
        user: "erin",
        tenant: Some("acme"),
        roles: vec!["break-glass"],
        agent: None,
        service: None,
    });
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let unassigned = json!({"case_id": "case-103"});
    let refused = call(&alice, "case__read_case", unassigned.clone()).await;
    assert_eq!(refused.is_error, Some(true), "case-103 is not alice's");

    let (status, body) = admin_request(
        &gateway,
        &opener,
        "/break-glass",
        json!({"user": "alice", "tool": "case__read_case", "reason": "incident review of case 103", "expires_in_seconds": 600}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let grant = body["grant"]["id"].as_str().expect("grant id").to_string();
    let allowed = call(&alice, "case__read_case", unassigned.clone()).await;
    assert_ne!(allowed.is_error, Some(true), "{}", text_of(&allowed));
    let (status, body) = admin_request(
        &gateway,
        &opener,
        &format!("/break-glass/{grant}/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let after = call(&alice, "case__read_case", unassigned.clone()).await;
    assert_eq!(
        after.is_error,
        Some(true),
        "the revoked grant no longer covers the call"
    );

    // Assign case-103 to alice through the admin API; it holds across a restart.
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("policies/entities/case-platform.json"))
            .expect("entities"),
    )
    .expect("entity json");
    let mut entity = case
        .as_array()
        .expect("entity list")
        .iter()
        .find(|e| e["uid"]["id"] == "case-103")
        .expect("case-103 entity")
        .clone();
    let assigned = entity["attrs"]["assignees"]
        .as_array_mut()
        .expect("assignees");
    assigned.push(json!({"__entity": {"type": "User", "id": "alice"}}));
    let (status, body) = admin_request(
        &gateway,
        &gateway.platform_admin_token(),
        "/admin/relationships",
        json!([entity]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let now_assigned = call(&alice, "case__read_case", unassigned.clone()).await;
    assert_ne!(
        now_assigned.is_error,
        Some(true),
        "{}",
        text_of(&now_assigned)
    );
    gateway.restart().await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let after_restart = call(&alice, "case__read_case", unassigned).await;
    assert_ne!(
        after_restart.is_error,
        Some(true),
        "{}",
        text_of(&after_restart)
    );
}
