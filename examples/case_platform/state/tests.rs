//! The platform's operations against the seeded tenants: isolation, the notice workflow,
//! memory, the graph bound and grants.

use serde_json::{json, Value};

use super::*;
use crate::seed;

fn acme() -> Actor {
    Actor::new("acme", "alice")
}

fn globex() -> Actor {
    Actor::new("globex", "carol")
}

#[test]
fn seed_matches_the_spec() {
    let p = seed::platform();
    let acme = p.tenant("acme");
    assert_eq!(
        acme.cases.keys().collect::<Vec<_>>(),
        ["case-101", "case-102", "case-103", "case-104", "case-105"]
    );
    assert_eq!(acme.cases["case-103"].risk, Risk::Critical);
    assert_eq!(acme.cases["case-102"].assigned_users, ["alice", "bob"]);
    assert!(acme.cases["case-104"].assigned_users.is_empty());
    assert_eq!(
        p.tenant("globex").cases.keys().collect::<Vec<_>>(),
        ["case-201"]
    );
    let ev: Vec<_> = acme.evidence.keys().collect();
    assert_eq!(ev, ["ev-1001", "ev-1002", "ev-1021", "ev-1031"]);
    assert_eq!(
        acme.evidence["ev-1002"].sensitivity,
        EvidenceSensitivity::Restricted
    );
    assert_eq!(
        acme.evidence["ev-1031"].sensitivity,
        EvidenceSensitivity::Confidential
    );
}

#[test]
fn read_case_lists_evidence() {
    let p = seed::platform();
    let v = p.read_case(&acme(), "case-101").expect("case");
    assert_eq!(v["case"]["title"], "Unlicensed lending — Northwind");
    assert_eq!(v["case"]["evidence_ids"], json!(["ev-1001", "ev-1002"]));
    assert_eq!(v["case"]["status"], "open");
}

#[test]
fn tenants_are_isolated() {
    let mut p = seed::platform();
    let nf = |kind: &'static str, id: &str| DomainError::NotFound {
        kind,
        id: id.to_owned(),
    };
    assert_eq!(
        p.read_case(&globex(), "case-101"),
        Err(nf("case", "case-101"))
    );
    assert_eq!(
        p.read_case(&acme(), "case-201"),
        Err(nf("case", "case-201"))
    );
    assert_eq!(
        p.search_evidence(&globex(), "case-101", "loan"),
        Err(nf("case", "case-101"))
    );
    assert_eq!(
        p.delete_evidence(&globex(), "ev-1001"),
        Err(nf("evidence", "ev-1001"))
    );
    assert_eq!(
        p.traverse_entity_graph(&globex(), "northwind", 2),
        Err(nf("entity", "northwind"))
    );
    // A draft made in acme cannot be touched from globex.
    let d = p
        .create_notice_draft(&acme(), "case-101", "Notice of breach")
        .expect("draft");
    let id = d["draft"]["id"].as_str().expect("id").to_owned();
    assert_eq!(p.request_approval(&globex(), &id), Err(nf("draft", &id)));
    assert_eq!(
        p.send_approved_notice(&globex(), &id),
        Err(nf("draft", &id))
    );
    // Memory too.
    p.write_memory(
        &acme(),
        MemoryScope::Tenant,
        "k",
        "v",
        MemorySensitivity::Internal,
    )
    .expect("write");
    assert!(p.read_memory(&globex(), MemoryScope::Tenant, "k").is_err());
    assert!(p.read_memory(&acme(), MemoryScope::Tenant, "k").is_ok());
    // Snapshots only count the caller's objects.
    let g = p.state_snapshot(&globex()).expect("snapshot");
    // Only globex's own seeded draft (draft-951); acme's drafts are not counted.
    assert_eq!(g["counts"]["drafts"], 1);
    assert_eq!(g["counts"]["memory_entries"], 0);
    assert_eq!(g["counts"]["cases"], 1);
    // An unknown tenant sees nothing.
    let other = Actor::new("initech", "x");
    assert!(p.read_case(&other, "case-101").is_err());
    assert_eq!(
        p.state_snapshot(&other).expect("snap")["counts"]["cases"],
        0
    );
}

#[test]
fn draft_lifecycle_and_send_only_when_approved() {
    let mut p = seed::platform();
    let a = acme();
    let d = p
        .create_notice_draft(&a, "case-102", "You are required to respond.")
        .expect("draft");
    assert_eq!(d["draft"]["status"], "drafted");
    let id = d["draft"]["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("draft-"));

    assert_eq!(
        p.send_approved_notice(&a, &id),
        Err(DomainError::DraftNotApproved)
    );
    // Approval must be requested first.
    assert!(matches!(
        p.approve_notice_draft(&a, &id),
        Err(DomainError::InvalidState(_))
    ));
    let r = p.request_approval(&a, &id).expect("request");
    assert_eq!(r["draft"]["status"], "approval_requested");
    assert_eq!(
        p.send_approved_notice(&a, &id),
        Err(DomainError::DraftNotApproved)
    );
    assert_eq!(
        p.state_snapshot(&a).expect("s")["counts"]["sent_notices"],
        0
    );

    let ap = p
        .approve_notice_draft(&Actor::new("acme", "bob"), &id)
        .expect("approve");
    assert_eq!(ap["draft"]["status"], "approved");
    assert_eq!(ap["draft"]["approved_by"], "bob");

    let sent = p.send_approved_notice(&a, &id).expect("send");
    assert_eq!(sent["draft"]["status"], "sent");
    assert_eq!(sent["sent_notices_total"], 1);
    // Sending twice is refused.
    assert_eq!(
        p.send_approved_notice(&a, &id),
        Err(DomainError::DraftNotApproved)
    );
    let snap = p.state_snapshot(&a).expect("snapshot");
    assert_eq!(snap["counts"]["sent_notices"], 1);
    assert_eq!(snap["sent_notices"][0]["draft_id"], json!(id));
    assert_eq!(
        DomainError::DraftNotApproved.to_string(),
        "draft not approved"
    );
}

#[test]
fn proposals_do_not_change_the_case() {
    let mut p = seed::platform();
    let a = acme();
    let v = p
        .propose_risk_update(&a, "case-101", Risk::High, "new evidence")
        .expect("proposal");
    assert!(v["proposal"]["id"]
        .as_str()
        .is_some_and(|s| s.starts_with("prop-")));
    assert_eq!(v["proposal"]["current_risk"], "medium");
    assert_eq!(p.tenant("acme").cases["case-101"].risk, Risk::Medium);
    assert!(p
        .propose_risk_update(&a, "case-101", Risk::High, "  ")
        .is_err());
    assert_eq!(p.state_snapshot(&a).expect("s")["counts"]["proposals"], 1);
}

#[test]
fn ids_are_unique_across_tenants() {
    let mut p = seed::platform();
    let a = p.create_notice_draft(&acme(), "case-101", "a").expect("a");
    let g = p
        .create_notice_draft(&globex(), "case-201", "g")
        .expect("g");
    assert_eq!(a["draft"]["id"], "draft-1");
    assert_eq!(g["draft"]["id"], "draft-2");
    let prop = p
        .propose_risk_update(&acme(), "case-101", Risk::Low, "settled")
        .expect("proposal");
    assert_eq!(prop["proposal"]["id"], "prop-1");
}

#[test]
fn case_status_and_evidence_changes() {
    let mut p = seed::platform();
    let a = acme();
    let v = p
        .update_case_status(&a, "case-104", CaseStatus::UnderReview)
        .expect("update");
    assert_eq!(v["previous_status"], "open");
    assert_eq!(
        p.tenant("acme").cases["case-104"].status,
        CaseStatus::UnderReview
    );

    let s = p
        .search_evidence(&a, "case-101", "J. SMITH")
        .expect("search");
    assert_eq!(s["count"], 2);
    let s = p
        .search_evidence(&a, "case-101", "whistleblower")
        .expect("s");
    assert_eq!(s["matches"][0]["id"], "ev-1002");
    assert!(p.search_evidence(&a, "case-101", "").is_err());

    p.delete_evidence(&a, "ev-1002").expect("delete");
    let c = p.read_case(&a, "case-101").expect("case");
    assert_eq!(c["case"]["evidence_ids"], json!(["ev-1001"]));
    assert!(p.delete_evidence(&a, "ev-1002").is_err());
}

#[test]
fn user_memory_is_per_user() {
    let mut p = seed::platform();
    let alice = acme();
    let bob = Actor::new("acme", "bob");
    p.write_memory(
        &alice,
        MemoryScope::User,
        "pref",
        "terse",
        MemorySensitivity::Public,
    )
    .expect("w");
    assert_eq!(
        p.read_memory(&alice, MemoryScope::User, "pref").expect("r")["value"],
        "terse"
    );
    assert!(p.read_memory(&bob, MemoryScope::User, "pref").is_err());
    assert!(p.read_memory(&alice, MemoryScope::Team, "pref").is_err());
}

#[test]
fn graph_traversal_is_bounded() {
    let p = seed::platform();
    let a = acme();
    let one = p.traverse_entity_graph(&a, "case-101", 1).expect("1");
    let ids = |v: &Value| -> Vec<String> {
        v["nodes"]
            .as_array()
            .map(|n| {
                n.iter()
                    .filter_map(|x| x["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(ids(&one), ["case-101", "northwind"]);
    let three = p.traverse_entity_graph(&a, "case-101", 3).expect("3");
    assert_eq!(
        ids(&three),
        ["case-101", "northwind", "j.smith", "contoso", "acct-5520"]
    );
    let big = p.traverse_entity_graph(&a, "case-101", 10).expect("10");
    assert_eq!(big["depth_applied"], 3);
    assert_eq!(big["clamped"], true);
    assert_eq!(ids(&big), ids(&three));
}

#[test]
fn grants_are_recorded() {
    let mut p = seed::platform();
    let v = p
        .grant_tool_access(&acme(), "triage-bot", "read_case")
        .expect("grant");
    assert_eq!(v["grant"]["agent"], "triage-bot");
    assert_eq!(p.tenant("acme").grants.len(), 1);
    assert!(p.tenant("globex").grants.is_empty());
}
