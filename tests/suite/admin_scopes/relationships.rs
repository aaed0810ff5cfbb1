//! Relationship updates in the table: a tenant admin writes its own tenant's entities only;
//! one that assigns another tenant's case, or takes it over by naming its own tenant, is
//! refused and changes nothing; the case's own tenant admin may assign it.

use serde_json::{json, Value};

use super::Caller::*;
use super::{only, Table};
use crate::common::*;
use capgate::server::admin::Endpoint;

fn entities() -> Vec<Value> {
    serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("policies/entities/case-platform.json"))
            .expect("entities"),
    )
    .expect("entity json")
}

fn entity(id: &str) -> Value {
    entities()
        .into_iter()
        .find(|e| e["uid"]["id"] == id)
        .unwrap_or_else(|| panic!("no entity {id}"))
}

async fn reads_case(
    gateway: &TestGateway,
    user: &'static str,
    tenant: &'static str,
    case: &str,
) -> bool {
    let client = gateway
        .client(&gateway.token(&analyst(tenant, user, "drafting-agent")))
        .await;
    let result = call(&client, "case__read_case", json!({"case_id": case})).await;
    result.is_error != Some(true)
}

/// The table's rows for relationship updates.
pub(super) async fn rows(gateway: &TestGateway, table: &mut Table<'_>) {
    // Relationships: a tenant admin writes its own tenant's entities only.
    let path = "/admin/relationships";
    table
        .ask(
            Endpoint::Relationships,
            path,
            Some(&json!([entity("case-102")])),
            &only(&[AcmeAdmin, PlatformAdmin]),
        )
        .await;
    table
        .ask(
            Endpoint::Relationships,
            path,
            Some(&json!([entity("drafting-agent")])),
            &only(&[PlatformAdmin]),
        )
        .await;
    // A globex case assigned to gil: refused to acme's admin, and nothing changes.
    assert!(!reads_case(gateway, "gil", "globex", "case-201").await);
    let mut assigned = entity("case-201");
    assigned["attrs"]["assignees"]
        .as_array_mut()
        .expect("assignees")
        .push(json!({"__entity": {"type": "User", "id": "gil"}}));
    let assign = json!([assigned.clone()]);
    table
        .ask_one(Endpoint::Relationships, path, Some(&assign), AcmeAdmin, 403)
        .await;
    let mixed = json!([entity("case-102"), assigned.clone()]);
    table
        .ask_one(Endpoint::Relationships, path, Some(&mixed), AcmeAdmin, 403)
        .await;
    // Taking globex's case over by naming acme is refused to both tenants' admins.
    let mut taken = assigned.clone();
    taken["attrs"]["tenant"] = json!({"__entity": {"type": "Tenant", "id": "acme"}});
    taken["parents"] = json!([{"type": "Tenant", "id": "acme"}]);
    for caller in [AcmeAdmin, GlobexAdmin] {
        table
            .ask_one(
                Endpoint::Relationships,
                path,
                Some(&json!([taken.clone()])),
                caller,
                403,
            )
            .await;
    }
    assert!(
        !reads_case(gateway, "gil", "globex", "case-201").await,
        "refused updates changed nothing"
    );
    table
        .ask(
            Endpoint::Relationships,
            path,
            Some(&assign),
            &[
                (Agent, 403),
                (Plain, 403),
                (GlobexAdmin, 200),
                (PlatformAdmin, 200),
            ],
        )
        .await;
    assert!(
        reads_case(gateway, "gil", "globex", "case-201").await,
        "globex's own admin may assign its case"
    );
    table
        .ask_one(
            Endpoint::Relationships,
            path,
            Some(&json!([])),
            PlatformAdmin,
            422,
        )
        .await;
}
