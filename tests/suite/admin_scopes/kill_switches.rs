//! Kill switches in the table: set and lifted at every scope by each kind of caller (a tenant
//! admin within its tenant, a platform admin anywhere), invalid switches refused, and each
//! admin listing the switches it may see. Beside the table: a tenant admin's user switch stops
//! that user in its tenant only, and only a platform admin's stops the user everywhere.

use serde_json::{json, Value};

use super::Caller::*;
use super::{ids, only, post, token, Caller, Table, ADMINS};
use crate::common::*;
use capgate::server::admin::Endpoint;

/// The table's rows for kill switches.
pub(super) async fn rows(table: &mut Table<'_>) {
    // Kill switches at every scope, flipped and lifted by each caller.
    let switches: Vec<(Value, Vec<Caller>)> = vec![
        (json!({"scope": "global"}), vec![PlatformAdmin]),
        (
            json!({"scope": "global", "tenant": "acme"}),
            vec![PlatformAdmin],
        ),
        (
            json!({"scope": "server", "target": "case", "tenant": "acme"}),
            vec![PlatformAdmin],
        ),
        (
            json!({"scope": "tool", "target": "case__delete_evidence"}),
            vec![PlatformAdmin],
        ),
        (
            json!({"scope": "tool", "target": "case__delete_evidence", "tenant": "acme"}),
            vec![PlatformAdmin],
        ),
        (
            json!({"scope": "tenant", "target": "acme"}),
            vec![AcmeAdmin, PlatformAdmin],
        ),
        (
            json!({"scope": "tenant", "target": "globex"}),
            vec![GlobexAdmin, PlatformAdmin],
        ),
        (
            json!({"scope": "agent_role", "target": "risk-agent", "tenant": "acme"}),
            vec![AcmeAdmin, PlatformAdmin],
        ),
        (
            json!({"scope": "agent_role", "target": "risk-agent"}),
            vec![PlatformAdmin],
        ),
        (
            json!({"scope": "user", "target": "bob", "tenant": "acme"}),
            vec![AcmeAdmin, PlatformAdmin],
        ),
        (
            json!({"scope": "user", "target": "bob", "tenant": "globex"}),
            vec![GlobexAdmin, PlatformAdmin],
        ),
        (
            json!({"scope": "user", "target": "bob"}),
            vec![PlatformAdmin],
        ),
    ];
    for (switch, allowed) in &switches {
        let mut set = switch.clone();
        set["reason"] = json!("admin scope table");
        for (caller, status) in only(allowed) {
            table
                .ask_one(
                    Endpoint::KillSwitchSet,
                    "/admin/kill-switches",
                    Some(&set),
                    caller,
                    status,
                )
                .await;
            let lifted = table
                .ask_one(
                    Endpoint::KillSwitchLift,
                    "/admin/kill-switches/lift",
                    Some(switch),
                    caller,
                    status,
                )
                .await;
            if status == 200 {
                assert_eq!(
                    lifted["lifted"], true,
                    "{caller:?} lifts {switch}: {lifted}"
                );
            }
        }
    }
    // What is invalid is invalid for whoever may flip it; who may not is refused first.
    let inconsistent =
        json!({"scope": "tenant", "target": "acme", "tenant": "globex", "reason": "r"});
    table
        .ask_one(
            Endpoint::KillSwitchSet,
            "/admin/kill-switches",
            Some(&inconsistent),
            PlatformAdmin,
            422,
        )
        .await;
    let no_reason = json!({"scope": "tool", "target": "case__delete_evidence"});
    table
        .ask_one(
            Endpoint::KillSwitchSet,
            "/admin/kill-switches",
            Some(&no_reason),
            PlatformAdmin,
            422,
        )
        .await;
    table
        .ask_one(
            Endpoint::KillSwitchSet,
            "/admin/kill-switches",
            Some(&no_reason),
            AcmeAdmin,
            403,
        )
        .await;

    // Listing: each admin sees the switches it may see.
    let on = [
        (
            AcmeAdmin,
            json!({"scope": "user", "target": "bob", "tenant": "acme"}),
        ),
        (
            GlobexAdmin,
            json!({"scope": "user", "target": "erin", "tenant": "globex"}),
        ),
        (
            PlatformAdmin,
            json!({"scope": "tool", "target": "case__delete_evidence"}),
        ),
    ];
    for (caller, switch) in &on {
        let mut set = switch.clone();
        set["reason"] = json!("listed");
        table
            .ask_one(
                Endpoint::KillSwitchSet,
                "/admin/kill-switches",
                Some(&set),
                *caller,
                200,
            )
            .await;
    }
    let listed = table
        .ask(
            Endpoint::KillSwitches,
            "/admin/kill-switches",
            None,
            &only(&ADMINS),
        )
        .await;
    let targets = |caller: Caller| {
        let mut targets = ids(&listed[&caller], "kill_switches", |s| &s["target"]);
        targets.sort();
        targets
    };
    assert_eq!(targets(AcmeAdmin), ["bob"]);
    assert_eq!(targets(GlobexAdmin), ["erin"]);
    assert_eq!(
        targets(PlatformAdmin),
        ["bob", "case__delete_evidence", "erin"]
    );
    for (_, switch) in &on {
        table
            .ask_one(
                Endpoint::KillSwitchLift,
                "/admin/kill-switches/lift",
                Some(switch),
                PlatformAdmin,
                200,
            )
            .await;
    }
}

#[tokio::test]
async fn a_tenant_admins_user_switch_stops_that_user_in_its_tenant_only() {
    let gateway = TestGateway::start(GatewayOptions {
        admin: true,
        ..Default::default()
    })
    .await;
    let acme_bob = gateway
        .client(&gateway.token(&analyst("acme", "bob", "drafting-agent")))
        .await;
    let globex_bob = gateway
        .client(&gateway.token(&analyst("globex", "bob", "drafting-agent")))
        .await;
    assert!(!tool_names(&acme_bob).await.is_empty());
    assert!(!tool_names(&globex_bob).await.is_empty());
    let acme_admin = gateway.admin_token();
    let globex_admin = token(&gateway, GlobexAdmin);
    let bob_in_acme =
        json!({"scope": "user", "target": "bob", "tenant": "acme", "reason": "incident 12"});

    let (status, body) = post(&gateway, &acme_admin, "/admin/kill-switches", &bob_in_acme).await;
    assert_eq!(status, 200, "{body}");
    assert!(tool_names(&acme_bob).await.is_empty());
    let stopped = call(&acme_bob, "case__read_case", json!({"case_id": "case-103"})).await;
    assert_eq!(stopped.is_error, Some(true));
    assert!(
        text_of(&stopped).contains("kill switch"),
        "{}",
        text_of(&stopped)
    );
    assert!(
        !tool_names(&globex_bob).await.is_empty(),
        "bob of globex is another user's business"
    );

    // globex's admin can neither lift nor see it; acme's cannot widen it to every tenant.
    let lift = json!({"scope": "user", "target": "bob", "tenant": "acme"});
    let (status, _) = post(&gateway, &globex_admin, "/admin/kill-switches/lift", &lift).await;
    assert_eq!(status, 403);
    let (status, listed) = gateway
        .admin_request(Some(&globex_admin), "GET", "/admin/kill-switches", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["kill_switches"], json!([]), "{listed}");
    assert!(tool_names(&acme_bob).await.is_empty());
    let everywhere = json!({"scope": "user", "target": "bob", "reason": "incident 12"});
    let (status, _) = post(&gateway, &acme_admin, "/admin/kill-switches", &everywhere).await;
    assert_eq!(status, 403);
    assert!(!tool_names(&globex_bob).await.is_empty());

    // A platform admin's switch without a tenant stops bob everywhere.
    let platform = gateway.platform_admin_token();
    let (status, _) = post(&gateway, &platform, "/admin/kill-switches", &everywhere).await;
    assert_eq!(status, 200);
    assert!(tool_names(&globex_bob).await.is_empty());
    let (status, _) = post(
        &gateway,
        &platform,
        "/admin/kill-switches/lift",
        &json!({"scope": "user", "target": "bob"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!tool_names(&globex_bob).await.is_empty());
    assert!(
        tool_names(&acme_bob).await.is_empty(),
        "acme's own switch is still on"
    );

    let (status, body) = post(&gateway, &acme_admin, "/admin/kill-switches/lift", &lift).await;
    assert_eq!(status, 200);
    assert_eq!(body["lifted"], true, "{body}");
    let restored = call(&acme_bob, "case__read_case", json!({"case_id": "case-103"})).await;
    assert_ne!(restored.is_error, Some(true), "{}", text_of(&restored));
}
