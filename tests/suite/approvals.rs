//! Approvals: a `require_approval` decision opens a request bound to the exact call; an
//! approver (right role, same tenant, not the requester) grants it; the retry with the reference
//! is checked for digest, expiry, single use and policy version, atomically with its idempotency
//! claim. Every misuse is refused; the honest path sends exactly one notice.

use crate::common::*;
use serde_json::{json, Value};

fn person(
    gateway: &TestGateway,
    user: &'static str,
    tenant: &'static str,
    roles: Vec<&'static str>,
) -> String {
    gateway.token(&TokenSpec {
        user,
        tenant: Some(tenant),
        roles,
        agent: None,
        service: None,
    })
}

async fn decide(gateway: &TestGateway, token: &str, id: &str, verb: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/approvals/{id}/{verb}",
            gateway.admin_url.as_deref().expect("admin")
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("approval request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn with_approval(key_text: &str, approval: &str) -> Value {
    json!({"dev.capgate/idempotency-key": key_text, "dev.capgate/approval": approval})
}

fn notices_sent(gateway: &TestGateway) -> usize {
    gateway
        .journal_entries()
        .iter()
        .filter(|e| e["name"] == "send_approved_notice")
        .count()
}

const SEND: &str = "case__send_approved_notice";

#[tokio::test]
async fn the_honest_path_sends_exactly_one_notice_and_every_misuse_is_refused() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        enforcement: Some("approval_ttl_seconds = 600".into()),
        ..Default::default()
    })
    .await;
    let client = gateway.client(&gateway.token(&notifier())).await;
    let bob = person(&gateway, "bob", "acme", vec!["senior_reviewer"]);

    // 1. The request: a high-risk notice needs a senior reviewer's approval.
    let first = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-906"}),
        key("send-906"),
    )
    .await;
    assert_eq!(first.is_error, Some(true));
    assert!(text_of(&first).contains("approval"), "{}", text_of(&first));
    let approval = approval_id(&first);
    assert_eq!(notices_sent(&gateway), 0);

    // Using it before it is approved is refused.
    let early = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-906"}),
        with_approval("send-906", &approval),
    )
    .await;
    assert!(text_of(&early).contains("pending"), "{}", text_of(&early));

    // Who may not approve: the requester, another tenant, someone without the role, an agent.
    let requester = person(&gateway, "svc-notify", "acme", vec!["senior_reviewer"]);
    assert_eq!(
        decide(&gateway, &requester, &approval, "approve").await.0,
        403,
        "self-approval"
    );
    let gina = person(&gateway, "gina", "globex", vec!["senior_reviewer"]);
    assert_eq!(
        decide(&gateway, &gina, &approval, "approve").await.0,
        403,
        "other tenant"
    );
    let alice = person(&gateway, "alice", "acme", vec!["analyst"]);
    assert_eq!(
        decide(&gateway, &alice, &approval, "approve").await.0,
        403,
        "no role"
    );
    let agent = gateway.token(&analyst("acme", "bob", "supervisor-agent"));
    assert_eq!(
        decide(&gateway, &agent, &approval, "approve").await.0,
        403,
        "an agent"
    );

    // 2. The approver grants it.
    let (status, body) = decide(&gateway, &bob, &approval, "approve").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approval"]["status"], "approved");

    // Another call's digest: the approval is for draft-906 only.
    let other_call = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-901"}),
        with_approval("send-901", &approval),
    )
    .await;
    assert_eq!(other_call.is_error, Some(true));
    assert!(
        text_of(&other_call).contains("different call"),
        "{}",
        text_of(&other_call)
    );
    assert_eq!(notices_sent(&gateway), 0);

    // 3. The honest retry sends the notice.
    let sent = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-906"}),
        with_approval("send-906", &approval),
    )
    .await;
    assert_ne!(sent.is_error, Some(true), "{}", text_of(&sent));
    assert_eq!(notices_sent(&gateway), 1);

    // A second use of the approval (with a new key, to get past idempotency) is refused.
    let again = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-906"}),
        with_approval("send-906-b", &approval),
    )
    .await;
    assert_eq!(again.is_error, Some(true));
    assert!(
        text_of(&again).contains("already used"),
        "{}",
        text_of(&again)
    );
    // The same key replays the stored result; nothing is sent twice.
    let replay = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-906"}),
        key("send-906"),
    )
    .await;
    let meta = serde_json::to_value(&replay.meta).expect("meta");
    assert_eq!(meta["dev.capgate/replay"], true, "{meta}");
    assert_eq!(notices_sent(&gateway), 1, "exactly one notice");

    // An expired approval is refused.
    let second = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-903"}),
        key("send-903"),
    )
    .await;
    // draft-903 is not approved: refused outright, no approval asked.
    assert!(
        !text_of(&second).contains("approval request"),
        "{}",
        text_of(&second)
    );
    let fresh = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-906"}),
        key("send-906-c"),
    )
    .await;
    let expiring = approval_id(&fresh);
    assert_eq!(decide(&gateway, &bob, &expiring, "approve").await.0, 200);
    // Past its 600 s on the gateway's clock (the test moves it; nobody waits).
    gateway.advance_clock(601);
    let expired = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-906"}),
        with_approval("send-906-c", &expiring),
    )
    .await;
    assert!(
        text_of(&expired).contains("expired"),
        "{}",
        text_of(&expired)
    );
    assert_eq!(notices_sent(&gateway), 1);
}

#[tokio::test]
async fn an_approval_does_not_survive_a_policy_version_change() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let client = gateway.client(&gateway.token(&notifier())).await;
    let bob = person(&gateway, "bob", "acme", vec!["senior_reviewer"]);
    let first = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-906"}),
        key("v-906"),
    )
    .await;
    let approval = approval_id(&first);
    assert_eq!(decide(&gateway, &bob, &approval, "approve").await.0, 200);

    // Policy version 3 → 4.
    let manifest = gateway.policies_dir().join("manifest.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(
        &manifest,
        text.replace("version = \"3\"", "version = \"4\""),
    )
    .expect("write");
    let admin = gateway.platform_admin_token();
    let reload = reqwest::Client::new()
        .post(format!(
            "{}/admin/policy/reload",
            gateway.admin_url.as_deref().expect("admin")
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("reload");
    assert_eq!(reload.status().as_u16(), 200);

    let retry = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-906"}),
        with_approval("v-906", &approval),
    )
    .await;
    assert_eq!(retry.is_error, Some(true));
    assert!(
        text_of(&retry).contains("case-platform@3") && text_of(&retry).contains("case-platform@4"),
        "{}",
        text_of(&retry)
    );
    assert_eq!(notices_sent(&gateway), 0);

    // A rejected approval can never be used.
    let next = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-906"}),
        key("v-906-b"),
    )
    .await;
    let rejected = approval_id(&next);
    assert_eq!(decide(&gateway, &bob, &rejected, "reject").await.0, 200);
    assert_eq!(
        decide(&gateway, &bob, &rejected, "approve").await.0,
        409,
        "decided once"
    );
    let refused = call_with_meta(
        &client,
        SEND,
        json!({"draft_id": "draft-906"}),
        with_approval("v-906-b", &rejected),
    )
    .await;
    assert!(
        text_of(&refused).contains("rejected"),
        "{}",
        text_of(&refused)
    );
    assert_eq!(notices_sent(&gateway), 0);
}
