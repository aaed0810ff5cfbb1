//! The web console in a real browser (headless Chromium, see `console/browser.rs`) against a
//! real gateway with the example case platform: an approval an agent's call asked for is
//! approved in the inbox and the agent's retry succeeds once; the requester cannot approve
//! their own request; another tenant's admin sees none of it; a kill switch flipped in the
//! browser hides the tool from a connected MCP client; a state change without the CSRF token is
//! refused. Every page is screenshotted at 1280x800 (`target/console-screenshots/`) and passes
//! axe-core with no serious or critical violation.

mod browser;
mod pages;

use serde_json::{json, Value};

use crate::common::*;
use browser::Browser;

pub(crate) fn person(
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

const SEND: &str = "case__send_approved_notice";

fn notices_sent(gateway: &TestGateway) -> usize {
    gateway
        .journal_entries()
        .iter()
        .filter(|e| e["name"] == "send_approved_notice")
        .count()
}

async fn approval_status(gateway: &TestGateway, token: &str, id: &str) -> Value {
    let (status, listed) = gateway
        .admin_request(Some(token), "GET", "/approvals", None)
        .await;
    assert_eq!(status, 200, "{listed}");
    listed["approvals"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["id"] == id))
        .map(|a| a["status"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_approval_is_approved_in_the_inbox_and_the_agents_retry_succeeds_once() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        audit: Some("mask_arguments = [\"draft_id\"]".into()),
        ..Default::default()
    })
    .await;
    let agent = gateway.client(&gateway.token(&notifier())).await;
    let refused =
        call_with_meta(&agent, SEND, json!({"draft_id": "draft-906"}), key("c-906")).await;
    assert_eq!(refused.is_error, Some(true), "{}", text_of(&refused));
    let approval = approval_id(&refused);
    let row = format!("tr[data-approval='{approval}']");
    let bob = person(&gateway, "bob", "acme", vec!["senior_reviewer"]);
    let mut browser = Browser::start(gateway.admin()).await;

    // The requester, a senior reviewer too, cannot approve their own request.
    let requester = person(&gateway, "svc-notify", "acme", vec!["senior_reviewer"]);
    browser.sign_in("requester", &requester).await;
    browser.goto("requester", "/console/approvals").await;
    browser.wait("requester", &row, SEND).await;
    browser
        .click_button("requester", &format!("Approve {approval}"))
        .await;
    browser
        .wait(
            "requester",
            "#approvals-status [role=alert]",
            "requester cannot approve",
        )
        .await;
    assert_eq!(approval_status(&gateway, &bob, &approval).await, "pending");

    // Another tenant's admin (an approver there too) sees none of it.
    let gus = person(
        &gateway,
        "gus",
        "globex",
        vec!["capgate-admin", "senior_reviewer"],
    );
    browser.sign_in("globex", &gus).await;
    browser.goto("globex", "/console/approvals").await;
    assert_eq!(browser.count("globex", &row).await, 0);
    let inbox = browser.text("globex", "main").await;
    assert!(
        !inbox.contains(&approval) && !inbox.contains("svc-notify"),
        "{inbox}"
    );
    let (status, body) = browser
        .fetch(
            "globex",
            "POST",
            &format!("/approvals/{approval}/approve"),
            json!({}),
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "without the CSRF token first: {body}");

    // The approver sees who asked (user and agent), the masked arguments, the policy and
    // reason that required approval, and the expiry; approves with a note.
    browser.sign_in("bob", &bob).await;
    browser.goto("bob", "/console/approvals").await;
    browser.wait("bob", &row, "notification-service").await;
    let shown = browser.text("bob", &row).await;
    for expected in [
        SEND,
        "svc-notify",
        "notification-service",
        "***",
        "senior_reviewer",
        "in ",
    ] {
        assert!(
            shown.contains(expected),
            "`{expected}` not in the row:\n{shown}"
        );
    }
    assert!(
        !shown.contains("draft-906"),
        "the masked argument leaked:\n{shown}"
    );
    let (_, listed) = gateway
        .admin_request(Some(&bob), "GET", "/approvals", None)
        .await;
    let policy = listed["approvals"][0]["request"]["policy_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!policy.is_empty() && shown.contains(&policy), "{listed}");
    browser.check_page("bob", "approvals").await;
    browser
        .fill(
            "bob",
            &format!("#note-{approval}"),
            "checked the draft with legal",
        )
        .await;
    browser
        .click_button("bob", &format!("Approve {approval}"))
        .await;
    browser
        .wait(
            "bob",
            "#approvals-status [role=status]",
            &format!("Approved {approval}"),
        )
        .await;
    assert_eq!(approval_status(&gateway, &bob, &approval).await, "approved");
    browser
        .wait("bob", &row, "checked the draft with legal")
        .await;

    // The agent's retry succeeds, once.
    let with_approval = |key_text: &str| json!({"dev.capgate/idempotency-key": key_text, "dev.capgate/approval": approval});
    assert_eq!(notices_sent(&gateway), 0);
    let sent = call_with_meta(
        &agent,
        SEND,
        json!({"draft_id": "draft-906"}),
        with_approval("c-906"),
    )
    .await;
    assert_ne!(sent.is_error, Some(true), "{}", text_of(&sent));
    assert_eq!(notices_sent(&gateway), 1);
    let again = call_with_meta(
        &agent,
        SEND,
        json!({"draft_id": "draft-906"}),
        with_approval("c-906-b"),
    )
    .await;
    assert_eq!(again.is_error, Some(true));
    assert!(
        text_of(&again).contains("already used"),
        "{}",
        text_of(&again)
    );
    assert_eq!(notices_sent(&gateway), 1, "exactly one notice");
}

#[tokio::test]
async fn a_kill_switch_flipped_in_the_browser_hides_the_tool_from_a_connected_client() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let agent = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    assert!(tool_names(&agent)
        .await
        .contains(&"case__read_case".to_string()));
    let mut browser = Browser::start(gateway.admin()).await;
    browser
        .sign_in("pat", &gateway.platform_admin_token())
        .await;
    browser.goto("pat", "/console/kill-switches").await;
    browser
        .cmd(json!({"cmd": "select", "who": "pat", "selector": "#kill-scope", "value": "tool"}))
        .await;
    browser.fill("pat", "#kill-target", "case__read_case").await;
    browser
        .fill("pat", "#kill-reason", "INC-12: case reads leak")
        .await;
    browser.click_button("pat", "Flip kill switch").await;
    browser
        .wait("pat", "#kill-status [role=status]", "Kill switch on")
        .await;
    browser
        .wait("pat", "tr[data-switch='tool:case__read_case:']", "INC-12")
        .await;
    browser.check_page("pat", "kill-switches").await;

    // The switch answered once in force: the connected client no longer sees or reaches it.
    assert!(!tool_names(&agent)
        .await
        .contains(&"case__read_case".to_string()));
    let stopped = call(&agent, "case__read_case", json!({"case_id": "case-101"})).await;
    assert_eq!(stopped.is_error, Some(true));
    assert!(text_of(&stopped).contains("kill"), "{}", text_of(&stopped));

    // Lifted in the browser, the tool is back.
    browser
        .click_button("pat", "Lift the tool switch on case__read_case")
        .await;
    browser
        .wait("pat", "#kill-status [role=status]", "Lifted")
        .await;
    assert!(tool_names(&agent)
        .await
        .contains(&"case__read_case".to_string()));

    // A tenant admin cannot flip a tool switch: the admin policy's refusal is shown.
    let ann = person(&gateway, "ann", "acme", vec!["capgate-admin"]);
    browser.sign_in("ann", &ann).await;
    browser.goto("ann", "/console/kill-switches").await;
    browser
        .cmd(json!({"cmd": "select", "who": "ann", "selector": "#kill-scope", "value": "tool"}))
        .await;
    browser.fill("ann", "#kill-target", "case__read_case").await;
    browser.fill("ann", "#kill-tenant", "").await;
    browser
        .fill("ann", "#kill-reason", "not mine to flip")
        .await;
    browser.click_button("ann", "Flip kill switch").await;
    browser
        .wait("ann", "#kill-status [role=alert]", "Not permitted")
        .await;
    assert!(tool_names(&agent)
        .await
        .contains(&"case__read_case".to_string()));
}

#[tokio::test]
async fn a_state_change_without_the_csrf_token_is_refused() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let agent = gateway.client(&gateway.token(&notifier())).await;
    let refused =
        call_with_meta(&agent, SEND, json!({"draft_id": "draft-906"}), key("x-906")).await;
    let approval = approval_id(&refused);
    let bob = person(&gateway, "bob", "acme", vec!["senior_reviewer"]);
    let mut browser = Browser::start(gateway.admin()).await;
    browser.sign_in("bob", &bob).await;
    browser.goto("bob", "/console/approvals").await;

    // The session cookie is HttpOnly and SameSite=Strict: the page's scripts cannot read it.
    let cookies = browser.cmd(json!({"cmd": "cookies", "who": "bob"})).await;
    assert_eq!(cookies["document"], "", "{cookies}");
    assert_eq!(cookies["jar"][0]["httpOnly"], true, "{cookies}");
    assert_eq!(cookies["jar"][0]["sameSite"], "Strict", "{cookies}");

    // With the cookie but without the CSRF token, or with a wrong one: refused, nothing done.
    let path = format!("/approvals/{approval}/approve");
    for headers in [json!({}), json!({"X-CSRF-Token": "0".repeat(64)})] {
        let (status, body) = browser
            .fetch("bob", "POST", &path, headers, json!({}))
            .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"], "csrf", "{body}");
    }
    assert_eq!(approval_status(&gateway, &bob, &approval).await, "pending");
    let pat = gateway.platform_admin_token();
    browser.sign_in("pat", &pat).await;
    browser.goto("pat", "/console/kill-switches").await;
    let (status, _) = browser
        .fetch(
            "pat",
            "POST",
            "/admin/kill-switches",
            json!({"Content-Type": "application/json"}),
            json!({"scope": "global", "reason": "no csrf"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = browser
        .fetch("pat", "POST", "/console/api/sign-out", json!({}), json!({}))
        .await;
    assert_eq!(status, 403, "signing out is a state change too");
    let (_, switches) = gateway
        .admin_request(Some(&pat), "GET", "/admin/kill-switches", None)
        .await;
    assert_eq!(switches["kill_switches"], json!([]), "{switches}");

    // Reads need no token; with the page's own token the same change goes through.
    let (status, _) = browser
        .fetch("bob", "GET", "/approvals", json!({}), Value::Null)
        .await;
    assert_eq!(status, 200);
    let session = browser
        .fetch("bob", "GET", "/console/api/session", json!({}), Value::Null)
        .await
        .1;
    let csrf = session["session"]["csrf"]
        .as_str()
        .expect("csrf")
        .to_string();
    let (status, body) = browser
        .fetch(
            "bob",
            "POST",
            &path,
            json!({"X-CSRF-Token": csrf, "Content-Type": "application/json"}),
            json!({"note": "ok"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Outside the browser: another origin is refused even with the right token and cookie,
    // and a sign-in from another origin (login CSRF) is refused.
    let http = reqwest::Client::new();
    let sign_in = |origin: &str| {
        http.post(format!("{}/console/api/sign-in", gateway.admin()))
            .header("Origin", origin)
            .json(&json!({"token": bob}))
    };
    let foreign = sign_in("http://evil.example")
        .send()
        .await
        .expect("sign-in");
    assert_eq!(foreign.status().as_u16(), 403);
    let host = gateway.admin().trim_start_matches("http://").to_string();
    let own = sign_in(&format!("http://{host}"))
        .send()
        .await
        .expect("sign-in");
    assert_eq!(own.status().as_u16(), 200);
    let cookie = own.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    let session_id = cookie.split(';').next().expect("pair").to_string();
    let answer: Value = own.json().await.expect("json");
    let csrf = answer["session"]["csrf"]
        .as_str()
        .expect("csrf")
        .to_string();
    let cross = http
        .post(format!("{}/admin/kill-switches", gateway.admin()))
        .header("Cookie", &session_id)
        .header("Origin", "http://evil.example")
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"scope": "user", "target": "x", "tenant": "acme", "reason": "cross"}))
        .send()
        .await
        .expect("request");
    assert_eq!(cross.status().as_u16(), 403);
    // Over HTTPS (as the page's origin says), the cookie is Secure and host-bound.
    let secure = sign_in("https://console.example")
        .header("Host", "console.example")
        .send()
        .await
        .expect("sign-in");
    assert_eq!(secure.status().as_u16(), 200);
    let cookie = secure.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        cookie.starts_with("__Host-capgate_console=") && cookie.contains("Secure"),
        "{cookie}"
    );
    // A bad token opens no session.
    let bad = sign_in(&format!("http://{host}"))
        .json(&json!({"token": "not-a-token"}))
        .send()
        .await
        .expect("sign-in");
    assert_eq!(bad.status().as_u16(), 401);
    assert!(bad.headers().get("set-cookie").is_none());
}
