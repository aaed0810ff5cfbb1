//! Every console page, with real traffic of two tenants behind it: drawn for the person signed
//! in (who, in which tenant), screenshotted at 1280x800, checked with axe-core; a tenant admin
//! sees nothing of another tenant's; a reload shows validation errors by file and line.

use serde_json::json;

use super::browser::Browser;
use super::person;
use crate::common::*;

/// Reads, refusals and an approval request in acme and globex, one acme run among them.
async fn traffic(gateway: &TestGateway) {
    let alice = gateway
        .client(&gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-7"))
        .await;
    for case in ["case-101", "case-101", "case-201"] {
        call(&alice, "case__read_case", json!({"case_id": case})).await;
    }
    let carol = gateway
        .client(&gateway.token(&analyst("globex", "carol", "drafting-agent")))
        .await;
    for _ in 0..2 {
        call(&carol, "case__read_case", json!({"case_id": "case-101"})).await;
    }
    let notifier = gateway.client(&gateway.token(&notifier())).await;
    call_with_meta(
        &notifier,
        "case__send_approved_notice",
        json!({"draft_id": "draft-906"}),
        key("pages-906"),
    )
    .await;
}

#[tokio::test]
async fn every_page_is_drawn_for_its_reader_accessible_and_screenshotted() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    traffic(&gateway).await;
    let mut browser = Browser::start(gateway.admin()).await;

    browser.goto("pat", "/console/sign-in").await;
    browser.check_page("pat", "sign-in").await;
    browser
        .sign_in("pat", &gateway.platform_admin_token())
        .await;

    // Overview of every tenant: the chart, the most refused tools, pending approvals, health.
    browser.goto("pat", "/console/overview?tenant=*").await;
    browser.wait("pat", "#who-user", "platform-admin").await;
    browser.wait("pat", "#who-tenant", "ops").await;
    browser.wait("pat", "figure svg[role=img]", "").await;
    let overview = browser.text("pat", "main").await;
    for expected in ["case__read_case", "Downstream case", "up"] {
        assert!(overview.contains(expected), "`{expected}`:\n{overview}");
    }
    assert_eq!(browser.text("pat", "#pending-approvals").await, "1");
    assert!(browser.count("pat", "svg .bar").await > 0);
    browser.check_page("pat", "overview").await;

    // The decision log: filtered, a record in full, the chain verified.
    browser
        .goto("pat", "/console/decisions?tenant=*&tool=case__read_case")
        .await;
    browser
        .wait("pat", "#chain-status", "verified up to record")
        .await;
    assert!(browser.count("pat", "tr[data-seq]").await >= 5);
    let listed = browser.text("pat", "tr[data-seq]").await;
    assert!(!listed.contains("case__send_approved_notice"), "{listed}");
    assert!(
        listed.contains("alice/") && listed.contains("carol/"),
        "{listed}"
    );
    browser
        .cmd(json!({"cmd": "click", "who": "pat", "selector": "tr[data-seq] button"}))
        .await;
    browser
        .wait("pat", "#record-detail pre", "policy_version")
        .await;
    browser.check_page("pat", "decisions").await;

    // Policy: the version, a reload, a run's manifest; an invalid set named by file and line.
    browser
        .goto("pat", "/console/policy?tenant=acme&run=run-7")
        .await;
    browser.wait("pat", "#policy-facts", "case-platform").await;
    browser
        .wait("pat", "#run-manifest", "case__read_case")
        .await;
    browser.click_button("pat", "Reload policies").await;
    browser.wait("pat", "#reload-status", "Reloaded").await;
    browser.check_page("pat", "policy").await;
    std::fs::write(
        gateway.policies_dir().join("broken.cedar"),
        "// a policy with a syntax error\npermit (principal, action, resource) when { principal ==  };\n",
    )
    .expect("write a broken policy");
    browser.click_button("pat", "Reload policies").await;
    browser
        .wait("pat", "#reload-status table", "broken.cedar")
        .await;
    let errors = browser.text("pat", "#reload-status table").await;
    assert!(errors.contains("\t2\t"), "line 2 is named:\n{errors}");
    std::fs::remove_file(gateway.policies_dir().join("broken.cedar")).expect("remove");

    // Break-glass: opening a grant needs a reason and shows its expiry; revoking it.
    let sam = person(&gateway, "sam", "acme", vec!["break-glass"]);
    browser.sign_in("sam", &sam).await;
    browser.goto("sam", "/console/break-glass").await;
    browser.wait("sam", "#grant-expiry", "Expires").await;
    browser.fill("sam", "#grant-user", "alice").await;
    browser.fill("sam", "#grant-tool", "case__read_case").await;
    browser
        .fill("sam", "#grant-reason", "INC-13: reviewing a stuck case")
        .await;
    browser.click_button("sam", "Open break-glass grant").await;
    browser
        .wait("sam", "#grant-status [role=status]", "expires")
        .await;
    browser.wait("sam", "tr[data-grant]", "open").await;
    browser.check_page("sam", "break-glass").await;
    let grant = browser.text("sam", "tr[data-grant] code").await;
    browser
        .click_button("sam", &format!("Revoke {}", grant.trim()))
        .await;
    browser
        .wait("sam", "#grant-status [role=status]", "Revoked")
        .await;
    browser.wait("sam", "tr[data-grant]", "revoked").await;

    // A tenant admin sees its own tenant only, page after page.
    let gus = person(&gateway, "gus", "globex", vec!["capgate-admin"]);
    browser.sign_in("gus", &gus).await;
    for page in [
        "/console/overview",
        "/console/decisions",
        "/console/approvals",
        "/console/kill-switches",
        "/console/break-glass",
    ] {
        browser.goto("gus", page).await;
        browser.wait("gus", "#who-tenant", "globex").await;
        let shown = browser.text("gus", "main").await;
        for acme in [
            "alice",
            "svc-notify",
            "case__send_approved_notice",
            "run-7",
            "INC-13",
        ] {
            assert!(
                !shown.contains(acme),
                "{page} shows `{acme}` to globex:\n{shown}"
            );
        }
    }
    browser.goto("gus", "/console/decisions").await;
    assert_eq!(
        browser.count("gus", "tr[data-seq]").await,
        2,
        "carol's two reads"
    );
    browser.goto("gus", "/console/decisions?tenant=acme").await;
    browser
        .wait("gus", "main [role=alert]", "Not permitted")
        .await;
    browser.goto("gus", "/console/overview?tenant=acme").await;
    browser
        .wait("gus", "main [role=alert]", "Not permitted")
        .await;
    browser.check_page("gus", "overview-refused").await;
}
