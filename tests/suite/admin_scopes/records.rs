//! What happened, in the table: a run's manifest and budgets (a tenant admin's own tenant, a
//! platform admin's any), who one is (anyone with a token), the decision log, its chain's
//! verification and the overview (admins, each of their own tenant; platform admins any, or
//! every tenant).

use serde_json::json;

use super::Caller::*;
use super::{only, post, Table, ADMINS, CALLERS};
use crate::common::*;
use capgate::server::admin::Endpoint;

/// The table's rows for runs and budgets, with one call of acme's run-7 behind them.
pub(super) async fn run_rows(gateway: &TestGateway, table: &mut Table<'_>) {
    // Runs and budgets: a tenant admin's own tenant; a platform admin's any.
    let acme_run = gateway
        .client(&gateway.token_in_run(&analyst("acme", "alice", "drafting-agent"), "run-7"))
        .await;
    call(&acme_run, "case__read_case", json!({"case_id": "case-101"})).await;
    post(
        gateway,
        &gateway.platform_admin_token(),
        "/admin/audit/flush",
        &json!({}),
    )
    .await;
    let manifests = table
        .ask(
            Endpoint::Runs,
            "/admin/runs?tenant=acme&run=run-7",
            None,
            &only(&[AcmeAdmin, PlatformAdmin]),
        )
        .await;
    assert_eq!(
        manifests[&AcmeAdmin]["decisions"], 1,
        "{}",
        manifests[&AcmeAdmin]
    );
    table
        .ask(
            Endpoint::Runs,
            "/admin/runs?tenant=globex&run=run-7",
            None,
            &only(&[GlobexAdmin, PlatformAdmin]),
        )
        .await;
    let budgets = table
        .ask(
            Endpoint::Budgets,
            "/admin/budgets?run=run-7",
            None,
            &only(&ADMINS),
        )
        .await;
    assert_eq!(
        budgets[&AcmeAdmin]["usage"]["calls"], 1,
        "{}",
        budgets[&AcmeAdmin]
    );
    assert_eq!(budgets[&GlobexAdmin]["tenant"], "globex");
    assert_eq!(
        budgets[&GlobexAdmin]["usage"]["calls"], 0,
        "globex's own run-7"
    );
    for (tenant, admin) in [("acme", AcmeAdmin), ("globex", GlobexAdmin)] {
        table
            .ask(
                Endpoint::Budgets,
                &format!("/admin/budgets?run=run-7&tenant={tenant}"),
                None,
                &only(&[admin, PlatformAdmin]),
            )
            .await;
    }
}

/// The table's rows for who one is, the decision log, its verification and the overview.
pub(super) async fn decision_rows(table: &mut Table<'_>) {
    // Who one is, for everyone with a token; the decision log and the overview for admins,
    // each of their own tenant (platform admins: any, or every tenant); the chain's status
    // for admins.
    table
        .ask(Endpoint::Me, "/admin/me", None, &only(&CALLERS))
        .await;
    let own = table
        .ask(
            Endpoint::Decisions,
            "/admin/decisions",
            None,
            &only(&ADMINS),
        )
        .await;
    for (caller, tenant) in [
        (AcmeAdmin, "acme"),
        (GlobexAdmin, "globex"),
        (PlatformAdmin, "ops"),
    ] {
        let records = own[&caller]["records"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            records.iter().all(|r| r["tenant"] == tenant),
            "{caller:?} sees only {tenant}: {}",
            own[&caller]
        );
    }
    table
        .ask(
            Endpoint::Decisions,
            "/admin/decisions?tenant=acme",
            None,
            &only(&[AcmeAdmin, PlatformAdmin]),
        )
        .await;
    table
        .ask(
            Endpoint::Decisions,
            "/admin/decisions?tenant=*",
            None,
            &only(&[PlatformAdmin]),
        )
        .await;
    let acme_record = own[&AcmeAdmin]["records"][0]["seq"]
        .as_i64()
        .expect("acme has decision records by now");
    table
        .ask(
            Endpoint::DecisionRecord,
            &format!("/admin/decisions/{acme_record}"),
            None,
            &only(&[AcmeAdmin, PlatformAdmin]),
        )
        .await;
    table
        .ask_one(
            Endpoint::DecisionRecord,
            "/admin/decisions/999999",
            None,
            AcmeAdmin,
            404,
        )
        .await;
    table
        .ask(
            Endpoint::LogVerification,
            "/admin/audit/verification",
            None,
            &only(&ADMINS),
        )
        .await;
    table
        .ask(Endpoint::Overview, "/admin/overview", None, &only(&ADMINS))
        .await;
    table
        .ask(
            Endpoint::Overview,
            "/admin/overview?tenant=globex",
            None,
            &only(&[GlobexAdmin, PlatformAdmin]),
        )
        .await;
}
