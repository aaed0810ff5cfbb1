//! Approvals and break-glass in the table: an approval is listed to and decided by people of
//! its tenant only (and its approver role); a break-glass grant is opened in the opener's own
//! tenant, listed and revoked within it. Beside the table: a break-glass grant never lets
//! anyone across tenants, for tools and resources alike.

use rmcp::model::ReadResourceRequestParams;
use serde_json::{json, Value};

use super::Caller::*;
use super::{ids, only, post, token, Table, PEOPLE};
use crate::common::*;
use capgate::server::admin::Endpoint;

/// The table's rows for approvals and break-glass grants.
pub(super) async fn rows(gateway: &TestGateway, table: &mut Table<'_>) {
    let empty = json!({});

    // Approvals: people of the approval's tenant (and its approver role) only.
    let notifier = gateway.client(&gateway.token(&notifier())).await;
    let mut approvals = Vec::new();
    for key_text in ["table-1", "table-2"] {
        let refused = call_with_meta(
            &notifier,
            "case__send_approved_notice",
            json!({"draft_id": "draft-906"}),
            key(key_text),
        )
        .await;
        approvals.push(approval_id(&refused));
    }
    let listed = table
        .ask(Endpoint::Approvals, "/approvals", None, &only(&PEOPLE))
        .await;
    for (caller, sees) in [
        (AcmeAdmin, true),
        (Plain, true),
        (GlobexAdmin, false),
        (PlatformAdmin, false),
    ] {
        assert_eq!(
            ids(&listed[&caller], "approvals", |a| &a["id"]).contains(&approvals[0]),
            sees,
            "{caller:?}: {}",
            listed[&caller]
        );
    }
    // Refused by the admin policy (other tenants, the agent) and by the controls (paul has
    // no approver role), then decided by acme's admin.
    let decided_by_acme = [
        (GlobexAdmin, 403),
        (PlatformAdmin, 403),
        (Agent, 403),
        (Plain, 403),
        (AcmeAdmin, 200),
    ];
    for (endpoint, approval, verb) in [
        (Endpoint::Approve, &approvals[0], "approve"),
        (Endpoint::Reject, &approvals[1], "reject"),
    ] {
        table
            .ask(
                endpoint,
                &format!("/approvals/{approval}/{verb}"),
                None,
                &decided_by_acme,
            )
            .await;
    }
    table
        .ask(
            Endpoint::Approve,
            "/approvals/apr-none/approve",
            None,
            &[(AcmeAdmin, 404), (Agent, 403)],
        )
        .await;

    // Break-glass: opened in the opener's own tenant; listed and revoked within it.
    let grant_request = json!({"user": "alice", "reason": "incident 90: admin scope table", "expires_in_seconds": 600});
    let opened = table
        .ask(
            Endpoint::BreakGlassOpen,
            "/break-glass",
            Some(&grant_request),
            &[
                (Agent, 403),
                (Plain, 403),
                (AcmeAdmin, 200),
                (GlobexAdmin, 200),
                (PlatformAdmin, 200),
            ],
        )
        .await;
    for (caller, tenant) in [
        (AcmeAdmin, "acme"),
        (GlobexAdmin, "globex"),
        (PlatformAdmin, "ops"),
    ] {
        assert_eq!(
            opened[&caller]["grant"]["tenant"], tenant,
            "{}",
            opened[&caller]
        );
    }
    let mut elsewhere = grant_request.clone();
    elsewhere["tenant"] = json!("globex");
    table
        .ask_one(
            Endpoint::BreakGlassOpen,
            "/break-glass",
            Some(&elsewhere),
            AcmeAdmin,
            422,
        )
        .await;
    let acme_grant = opened[&AcmeAdmin]["grant"]["id"]
        .as_str()
        .expect("grant id")
        .to_string();
    let listed = table
        .ask(
            Endpoint::BreakGlassGrants,
            "/break-glass",
            None,
            &only(&PEOPLE),
        )
        .await;
    for (caller, sees) in [
        (AcmeAdmin, true),
        (Plain, true),
        (GlobexAdmin, false),
        (PlatformAdmin, false),
    ] {
        assert_eq!(
            ids(&listed[&caller], "grants", |g| &g["grant"]["id"]).contains(&acme_grant),
            sees,
            "{caller:?}: {}",
            listed[&caller]
        );
    }
    table
        .ask(
            Endpoint::BreakGlassRevoke,
            &format!("/break-glass/{acme_grant}/revoke"),
            Some(&empty),
            &decided_by_acme,
        )
        .await;
    table
        .ask(
            Endpoint::BreakGlassRevoke,
            "/break-glass/bg-none/revoke",
            Some(&empty),
            &[(AcmeAdmin, 404), (Agent, 403)],
        )
        .await;
}

#[tokio::test]
async fn a_break_glass_grant_never_crosses_tenants() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let alice = gateway
        .client(&gateway.token(&analyst("acme", "alice", "drafting-agent")))
        .await;
    let read = |case: &'static str| call(&alice, "case__read_case", json!({"case_id": case}));
    let read_uri = |uri: &'static str| alice.read_resource(ReadResourceRequestParams::new(uri));
    assert_eq!(
        read("case-103").await.is_error,
        Some(true),
        "not alice's case"
    );
    assert_eq!(read("case-201").await.is_error, Some(true), "globex's case");

    // acme's officer opens a grant for alice over every capability.
    let grant = json!({"user": "alice", "reason": "incident 91: cross-tenant probe", "expires_in_seconds": 600});
    let (status, opened) = post(
        &gateway,
        &token(&gateway, AcmeAdmin),
        "/break-glass",
        &grant,
    )
    .await;
    assert_eq!(status, 200, "{opened}");

    // Within acme it overrides the assignment rule, for tools and resources alike.
    let unassigned = read("case-103").await;
    assert_ne!(unassigned.is_error, Some(true), "{}", text_of(&unassigned));
    let meta = serde_json::to_value(&unassigned.meta).expect("meta");
    assert_eq!(
        meta["dev.capgate/break-glass"], opened["grant"]["id"],
        "{meta}"
    );
    read_uri("case://acme/cases/case-103")
        .await
        .expect("the grant covers acme's resource");

    // Across tenants it does nothing: tenant isolation is never overridden.
    let across = read("case-201").await;
    assert_eq!(across.is_error, Some(true), "{}", text_of(&across));
    assert!(
        text_of(&across).contains("tenant-isolation-case"),
        "{}",
        text_of(&across)
    );
    assert!(
        read_uri("case://globex/cases/case-201").await.is_err(),
        "the grant does not cover globex's resource"
    );

    // Nor does a grant globex opens for a user called alice reach acme's alice.
    let (status, _) = post(
        &gateway,
        &token(&gateway, GlobexAdmin),
        "/break-glass",
        &grant,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read("case-201").await.is_error, Some(true));

    let forwarded: Vec<Value> = gateway
        .journal_entries()
        .into_iter()
        .filter(|e| e.to_string().contains("case-201"))
        .collect();
    assert!(
        forwarded.is_empty(),
        "nothing of globex was forwarded: {forwarded:?}"
    );
}
