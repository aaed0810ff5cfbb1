//! Seed data of the case platform: tenants `acme` and `globex`.
//!
//! The gateway's policy entity file (`policies/entities/case-platform.json`) mirrors these cases
//! (ids, tenants, risk, assignees) and drafts (tenant, case, author, status), as a relationship
//! store mirrors a system of record: change both together. The tests below hold them to it.

use std::collections::{BTreeMap, HashMap};

use crate::state::{
    Case, CaseStatus, Draft, DraftStatus, Edge, Entity, Evidence, EvidenceSensitivity, Platform,
    Risk, TenantState,
};

/// `(id, title, risk, assigned users)`; every seeded case starts `open`.
type CaseRow = (&'static str, &'static str, Risk, &'static [&'static str]);
/// `(id, case id, title, sensitivity, text)`.
type EvidenceRow = (
    &'static str,
    &'static str,
    &'static str,
    EvidenceSensitivity,
    &'static str,
);
/// `(id, kind, label)`.
type EntityRow = (&'static str, &'static str, &'static str);
/// `(from, relation, to)`.
type EdgeRow = (&'static str, &'static str, &'static str);

const ACME_CASES: &[CaseRow] = &[
    (
        "case-101",
        "Unlicensed lending — Northwind",
        Risk::Medium,
        &["alice"],
    ),
    (
        "case-102",
        "Market manipulation — Contoso",
        Risk::High,
        &["alice", "bob"],
    ),
    (
        "case-103",
        "Sanctions breach — Fabrikam",
        Risk::Critical,
        &["bob"],
    ),
    ("case-104", "Late filing — Tailspin", Risk::Low, &[]),
    (
        "case-105",
        "Misleading advertising — Litware",
        Risk::Low,
        &["alice"],
    ),
];

const GLOBEX_CASES: &[CaseRow] = &[(
    "case-201",
    "Data breach — Initech",
    Risk::Medium,
    &["carol"],
)];

const ACME_EVIDENCE: &[EvidenceRow] = &[
    (
        "ev-1001",
        "case-101",
        "Loan agreements — Northwind Credit",
        EvidenceSensitivity::Internal,
        "Northwind Credit Ltd issued at least 240 consumer loans between March and August \
         without holding a lending licence. The loan agreements reviewed carry annual rates \
         above 60 percent. Repayments were collected through a bank account controlled by \
         J. Smith.",
    ),
    (
        "ev-1002",
        "case-101",
        "Whistleblower statement",
        EvidenceSensitivity::Restricted,
        "A former Northwind employee states that management knew the licence application had \
         been refused and kept lending regardless. The statement names J. Smith as the person \
         who approved the lending programme. The witness identity is restricted.",
    ),
    (
        "ev-1021",
        "case-102",
        "Trading pattern analysis — Contoso",
        EvidenceSensitivity::Internal,
        "Order book analysis shows repeated layering in Contoso shares: large orders placed \
         and cancelled within seconds ahead of small executions on the opposite side. The \
         pattern recurs on 14 trading days before the quarterly results announcement.",
    ),
    (
        "ev-1031",
        "case-103",
        "Payment trail — Fabrikam",
        EvidenceSensitivity::Confidential,
        "Fabrikam routed three payments totalling 1.2 million EUR to a shipping company on the \
         consolidated sanctions list through an intermediary bank. The invoices describe the \
         goods as agricultural machinery parts.",
    ),
];

const GLOBEX_EVIDENCE: &[EvidenceRow] = &[(
    "ev-2001",
    "case-201",
    "Incident report — Initech",
    EvidenceSensitivity::Internal,
    "Initech reported unauthorised access to its customer database. Roughly 18,000 records, \
     including account numbers, were exfiltrated. The breach notification reached the \
     regulator nine days after discovery, beyond the 72-hour deadline.",
)];

const ACME_ENTITIES: &[EntityRow] = &[
    ("case-101", "case", "Unlicensed lending — Northwind"),
    ("case-102", "case", "Market manipulation — Contoso"),
    ("case-103", "case", "Sanctions breach — Fabrikam"),
    ("case-104", "case", "Late filing — Tailspin"),
    ("case-105", "case", "Misleading advertising — Litware"),
    ("northwind", "company", "Northwind Credit Ltd"),
    ("contoso", "company", "Contoso plc"),
    ("fabrikam", "company", "Fabrikam Inc."),
    ("tailspin", "company", "Tailspin Toys"),
    ("litware", "company", "Litware Inc."),
    ("j.smith", "person", "J. Smith"),
    ("v.petrov", "person", "V. Petrov"),
    ("acct-5520", "account", "Account 5520 (Woodgrove Bank)"),
];

const ACME_EDGES: &[EdgeRow] = &[
    ("case-101", "subject", "northwind"),
    ("northwind", "director", "j.smith"),
    ("j.smith", "shareholder_of", "contoso"),
    ("j.smith", "controls_account", "acct-5520"),
    ("case-102", "subject", "contoso"),
    ("contoso", "counterparty", "fabrikam"),
    ("case-103", "subject", "fabrikam"),
    ("fabrikam", "beneficial_owner", "v.petrov"),
    ("case-104", "subject", "tailspin"),
    ("case-105", "subject", "litware"),
];

const GLOBEX_ENTITIES: &[EntityRow] = &[
    ("case-201", "case", "Data breach — Initech"),
    ("initech", "company", "Initech LLC"),
    ("m.bolton", "person", "M. Bolton"),
    ("acct-7781", "account", "Account 7781 (Initech payroll)"),
];

const GLOBEX_EDGES: &[EdgeRow] = &[
    ("case-201", "subject", "initech"),
    ("initech", "employee", "m.bolton"),
    ("m.bolton", "controls_account", "acct-7781"),
];

fn tenant(
    cases: &[CaseRow],
    evidence: &[EvidenceRow],
    entities: &[EntityRow],
    edges: &[EdgeRow],
) -> TenantState {
    let cases: BTreeMap<String, Case> = cases
        .iter()
        .map(|(id, title, risk, users)| {
            (
                (*id).to_owned(),
                Case {
                    id: (*id).to_owned(),
                    title: (*title).to_owned(),
                    status: CaseStatus::Open,
                    risk: *risk,
                    assigned_users: users.iter().map(|u| (*u).to_owned()).collect(),
                },
            )
        })
        .collect();
    let evidence = evidence
        .iter()
        .map(|(id, case_id, title, sensitivity, text)| {
            (
                (*id).to_owned(),
                Evidence {
                    id: (*id).to_owned(),
                    case_id: (*case_id).to_owned(),
                    title: (*title).to_owned(),
                    sensitivity: *sensitivity,
                    text: (*text).to_owned(),
                },
            )
        })
        .collect();
    let entities = entities
        .iter()
        .map(|(id, kind, label)| {
            (
                (*id).to_owned(),
                Entity {
                    id: (*id).to_owned(),
                    kind: (*kind).to_owned(),
                    label: (*label).to_owned(),
                },
            )
        })
        .collect();
    let edges = edges
        .iter()
        .map(|(from, relation, to)| Edge {
            from: (*from).to_owned(),
            to: (*to).to_owned(),
            relation: (*relation).to_owned(),
        })
        .collect();
    TenantState {
        cases,
        evidence,
        entities,
        edges,
        ..TenantState::default()
    }
}

/// Seeded notice drafts: (tenant, id, case, author, status). They mirror the gateway's
/// relationship store (policies/entities/case-platform.json), as a system of record would.
const SEED_DRAFTS: &[(&str, &str, &str, &str, DraftStatus)] = &[
    (
        "acme",
        "draft-901",
        "case-101",
        "alice",
        DraftStatus::Approved,
    ),
    (
        "acme",
        "draft-902",
        "case-101",
        "alice",
        DraftStatus::Drafted,
    ),
    (
        "acme",
        "draft-903",
        "case-102",
        "alice",
        DraftStatus::ApprovalRequested,
    ),
    (
        "acme",
        "draft-904",
        "case-105",
        "alice",
        DraftStatus::Approved,
    ),
    (
        "acme",
        "draft-905",
        "case-102",
        "bob",
        DraftStatus::ApprovalRequested,
    ),
    (
        "acme",
        "draft-906",
        "case-102",
        "alice",
        DraftStatus::Approved,
    ),
    (
        "globex",
        "draft-951",
        "case-201",
        "carol",
        DraftStatus::Approved,
    ),
];

/// A fresh platform holding the seed data.
pub fn platform() -> Platform {
    let mut tenants = HashMap::new();
    tenants.insert(
        "acme".to_owned(),
        tenant(ACME_CASES, ACME_EVIDENCE, ACME_ENTITIES, ACME_EDGES),
    );
    tenants.insert(
        "globex".to_owned(),
        tenant(GLOBEX_CASES, GLOBEX_EVIDENCE, GLOBEX_ENTITIES, GLOBEX_EDGES),
    );
    for (tenant_id, id, case_id, author, status) in SEED_DRAFTS {
        if let Some(state) = tenants.get_mut(*tenant_id) {
            state.drafts.insert(
                (*id).to_owned(),
                Draft {
                    id: (*id).to_owned(),
                    case_id: (*case_id).to_owned(),
                    body: format!("Seeded notice for {case_id}"),
                    status: *status,
                    created_by: Some((*author).to_owned()),
                    approval_requested_by: None,
                    approved_by: None,
                    sent_by: None,
                },
            );
        }
    }
    Platform::with_tenants(tenants)
}

#[cfg(test)]
mod tests {
    //! The seed and the gateway's relationship store describe the same cases and drafts: a case
    //! the policies know and the platform does not (or the other way round) makes every call on
    //! it fail in a way no policy explains.

    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;

    const ENTITY_FILE: &str = include_str!("../../policies/entities/case-platform.json");

    /// The entity file's entities of one type: id → attributes.
    fn filed(kind: &str) -> BTreeMap<String, Value> {
        let entities: Vec<Value> =
            serde_json::from_str(ENTITY_FILE).expect("the entity file is a JSON array");
        entities
            .into_iter()
            .filter(|e| e["uid"]["type"] == kind)
            .map(|e| {
                let id = e["uid"]["id"].as_str().expect("an entity id").to_owned();
                (id, e["attrs"].clone())
            })
            .collect()
    }

    fn reference(value: &Value) -> String {
        value["__entity"]["id"]
            .as_str()
            .expect("an entity reference")
            .to_owned()
    }

    fn text(value: &Value) -> String {
        value.as_str().expect("a string attribute").to_owned()
    }

    /// (tenant, status, risk, assignees) of each case.
    type CaseFacts = (String, String, String, Vec<String>);
    /// (tenant, case, author, status) of each draft.
    type DraftFacts = (String, String, String, String);

    #[test]
    fn every_case_agrees_with_the_relationship_store() {
        let platform = platform();
        let tenants = filed("Tenant");
        let seeded: BTreeMap<String, CaseFacts> = tenants
            .keys()
            .flat_map(|tenant| {
                platform.tenant(tenant).cases.values().map(|case| {
                    let facts = (
                        tenant.clone(),
                        case.status.as_str().to_owned(),
                        case.risk.as_str().to_owned(),
                        case.assigned_users.clone(),
                    );
                    (case.id.clone(), facts)
                })
            })
            .collect();
        let in_file: BTreeMap<String, CaseFacts> = filed("Case")
            .into_iter()
            .map(|(id, attrs)| {
                let assignees = attrs["assignees"]
                    .as_array()
                    .expect("assignees")
                    .iter()
                    .map(reference)
                    .collect();
                let facts = (
                    reference(&attrs["tenant"]),
                    text(&attrs["status"]),
                    text(&attrs["risk"]),
                    assignees,
                );
                (id, facts)
            })
            .collect();
        assert_eq!(seeded, in_file);
    }

    #[test]
    fn every_risk_level_matches_its_risk() {
        for (id, attrs) in filed("Case") {
            let level = match attrs["risk"].as_str() {
                Some("low") => 0,
                Some("medium") => 1,
                Some("high") => 2,
                Some("critical") => 3,
                other => panic!("{id}: unknown risk {other:?}"),
            };
            assert_eq!(attrs["risk_level"], level, "{id}");
        }
    }

    #[test]
    fn every_draft_agrees_with_the_relationship_store() {
        let seeded: BTreeMap<String, DraftFacts> = SEED_DRAFTS
            .iter()
            .map(|(tenant, id, case, author, status)| {
                let facts = (
                    (*tenant).to_owned(),
                    (*case).to_owned(),
                    (*author).to_owned(),
                    status.as_str().to_owned(),
                );
                ((*id).to_owned(), facts)
            })
            .collect();
        let in_file: BTreeMap<String, DraftFacts> = filed("Draft")
            .into_iter()
            .map(|(id, attrs)| {
                let facts = (
                    reference(&attrs["tenant"]),
                    reference(&attrs["case"]),
                    reference(&attrs["author"]),
                    text(&attrs["status"]),
                );
                (id, facts)
            })
            .collect();
        assert_eq!(seeded, in_file);
        let platform = platform();
        for (id, (tenant, case, _, _)) in &seeded {
            assert!(
                platform.tenant(tenant).cases.contains_key(case),
                "{id} is on {case}, which {tenant} does not have"
            );
        }
    }
}
