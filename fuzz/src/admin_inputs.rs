//! The query strings and JSON bodies of admin API requests, built from each endpoint's shape
//! (the router's own table, `Endpoint`) with junk in them: what the `admin_api` target sends.

use arbitrary::Unstructured;
use capgate::server::admin::Endpoint;
use serde_json::{json, Map, Value};

use crate::{json_value, text};

const TENANTS: &[&str] = &["acme", "globex", "initech"];

fn tenantish(u: &mut Unstructured) -> arbitrary::Result<String> {
    if u.ratio(4, 5)? {
        Ok(u.choose(TENANTS)?.to_string())
    } else {
        text(u)
    }
}

fn optional(u: &mut Unstructured, map: &mut Map<String, Value>, key: &str, value: Value) -> arbitrary::Result<()> {
    if u.ratio(3, 4)? {
        map.insert(key.into(), value);
    }
    Ok(())
}

fn kill_body(u: &mut Unstructured) -> arbitrary::Result<Value> {
    let mut body = Map::new();
    let scope = u.choose(&["global", "tenant", "server", "tool", "agent_role", "user", "other"])?;
    body.insert("scope".into(), Value::String(scope.to_string()));
    let target = match *scope {
        "tenant" => tenantish(u)?,
        "tool" => u.choose(&["case__read_case", "case__send_approved_notice"])?.to_string(),
        _ => text(u)?,
    };
    optional(u, &mut body, "target", Value::String(target))?;
    if u.arbitrary()? {
        body.insert("tenant".into(), Value::String(tenantish(u)?));
    }
    let reason = Value::String(text(u)?);
    optional(u, &mut body, "reason", reason)?;
    Ok(Value::Object(body))
}

fn grant_body(u: &mut Unstructured) -> arbitrary::Result<Value> {
    let mut body = Map::new();
    let user = Value::String(u.choose(&["alice", "bob", "carol"])?.to_string());
    optional(u, &mut body, "user", user)?;
    if u.arbitrary()? {
        body.insert("agent_role".into(), Value::String(text(u)?));
    }
    if u.arbitrary()? {
        body.insert("tool".into(), Value::String(text(u)?));
    }
    let reason = Value::String(text(u)?);
    optional(u, &mut body, "reason", reason)?;
    let expires = if u.arbitrary()? {
        Value::from(u.int_in_range(-10i64..=100_000)?)
    } else {
        json_value(u, 0)?
    };
    optional(u, &mut body, "expires_in_seconds", expires)?;
    Ok(Value::Object(body))
}

fn entity(u: &mut Unstructured) -> arbitrary::Result<Value> {
    let kind = u.choose(&["Case", "Team", "Tenant", "Draft", "Evidence", "User", "Nope"])?;
    let id = if u.ratio(1, 2)? {
        u.choose(&["case-101", "case-201", "case-999", "acme", "globex", "acme-enforcement", "draft-901"])?.to_string()
    } else {
        text(u)?
    };
    let mut attrs = Map::new();
    if u.ratio(3, 4)? {
        attrs.insert("tenant".into(), json!({"__entity": {"type": "Tenant", "id": tenantish(u)?}}));
    }
    for (key, value) in [
        ("team", json!({"__entity": {"type": "Team", "id": "acme-enforcement"}})),
        ("status", json!("open")),
        ("risk", json!("low")),
        ("risk_level", json!(0)),
        ("assignees", json!([{"__entity": {"type": "User", "id": "alice"}}])),
    ] {
        if u.ratio(2, 3)? {
            attrs.insert(key.into(), value);
        }
    }
    for _ in 0..u.int_in_range(0u8..=1)? {
        attrs.insert(text(u)?, json_value(u, 2)?);
    }
    let mut entity = Map::new();
    entity.insert("uid".into(), json!({"type": kind, "id": id}));
    entity.insert("attrs".into(), Value::Object(attrs));
    let parents = if u.arbitrary()? {
        json!([{"type": "Tenant", "id": tenantish(u)?}])
    } else {
        json!([])
    };
    entity.insert("parents".into(), parents);
    Ok(Value::Object(entity))
}

/// Query parameters from a list of (name, kind), each present three times in four.
fn params(u: &mut Unstructured, names: &[(&str, Param)]) -> arbitrary::Result<Vec<(String, String)>> {
    let mut query = Vec::new();
    for (name, kind) in names {
        if u.ratio(3, 4)? {
            let value = match kind {
                Param::Tenant => {
                    if u.ratio(1, 6)? {
                        "*".to_string()
                    } else {
                        tenantish(u)?
                    }
                }
                Param::Text => text(u)?,
                Param::Number => {
                    if u.ratio(3, 4)? {
                        u.int_in_range(-5i64..=2_000_000_000)?.to_string()
                    } else {
                        text(u)?
                    }
                }
                Param::OneOf(values) => {
                    if u.ratio(3, 4)? {
                        u.choose(values)?.to_string()
                    } else {
                        text(u)?
                    }
                }
            };
            query.push((name.to_string(), value));
        }
    }
    Ok(query)
}

#[derive(Clone, Copy)]
enum Param {
    Tenant,
    Text,
    Number,
    OneOf(&'static [&'static str]),
}

/// The query string each endpoint reads (and junk for those that read none).
pub fn query_of(u: &mut Unstructured, endpoint: Endpoint) -> arbitrary::Result<Vec<(String, String)>> {
    const DECISIONS: &[&str] = &[
        "allow",
        "deny",
        "require_approval",
        "require_more_context",
        "replay",
        "summary",
    ];
    match endpoint {
        Endpoint::Runs | Endpoint::Budgets => params(
            u,
            &[("tenant", Param::Tenant), ("run", Param::Text), ("tool", Param::Text)],
        ),
        Endpoint::Decisions => params(
            u,
            &[
                ("tenant", Param::Tenant),
                ("run", Param::Text),
                ("actor", Param::OneOf(&["alice", "bob", "gina", "drafting-agent"])),
                ("tool", Param::OneOf(&["case__read_case", "case__draft_summary"])),
                ("decision", Param::OneOf(DECISIONS)),
                ("refused_by", Param::OneOf(&["policy", "kill_switch", "budget", "quarantine"])),
                ("since", Param::Number),
                ("until", Param::Number),
                ("shadow", Param::OneOf(&["differs"])),
                ("after", Param::OneOf(&["", "0", "1:5", "main:3"])),
                ("limit", Param::Number),
            ],
        ),
        Endpoint::DecisionRecord => params(u, &[("chain", Param::Text)]),
        Endpoint::Overview => params(u, &[("tenant", Param::Tenant)]),
        Endpoint::PolicyStatus
        | Endpoint::PolicyReload
        | Endpoint::Relationships
        | Endpoint::AuditFlush
        | Endpoint::Health
        | Endpoint::KillSwitches
        | Endpoint::KillSwitchSet
        | Endpoint::KillSwitchLift
        | Endpoint::Approvals
        | Endpoint::Approve
        | Endpoint::Reject
        | Endpoint::BreakGlassGrants
        | Endpoint::BreakGlassOpen
        | Endpoint::BreakGlassRevoke
        | Endpoint::ToolPins
        | Endpoint::ToolAccept
        | Endpoint::Me
        | Endpoint::LogVerification
        | Endpoint::Metrics => {
            if u.ratio(1, 8)? {
                Ok(vec![(text(u)?, text(u)?)])
            } else {
                Ok(Vec::new())
            }
        }
    }
}

/// The JSON body each endpoint reads, built from its shape (None for those that read none).
pub fn body_of(u: &mut Unstructured, endpoint: Endpoint) -> arbitrary::Result<Option<Value>> {
    Ok(match endpoint {
        Endpoint::KillSwitchSet | Endpoint::KillSwitchLift => Some(kill_body(u)?),
        Endpoint::BreakGlassOpen => Some(grant_body(u)?),
        Endpoint::Relationships => {
            let mut entities = Vec::new();
            for _ in 0..u.int_in_range(0u8..=3)? {
                entities.push(entity(u)?);
            }
            Some(Value::Array(entities))
        }
        Endpoint::ToolAccept => {
            let mut body = Map::new();
            let server = Value::String(u.choose(&["case", "finance", "nope"])?.to_string());
            optional(u, &mut body, "server", server)?;
            let tool = Value::String(u.choose(&["read_case", "draft_summary"])?.to_string());
            optional(u, &mut body, "tool", tool)?;
            let digest = if u.arbitrary()? {
                format!("sha256:{}", hex::encode(u.bytes(32)?))
            } else {
                text(u)?
            };
            optional(u, &mut body, "digest", Value::String(digest))?;
            Some(Value::Object(body))
        }
        Endpoint::Approve | Endpoint::Reject => {
            if u.arbitrary()? {
                Some(json!({ "note": text(u)? }))
            } else {
                None
            }
        }
        Endpoint::PolicyStatus
        | Endpoint::PolicyReload
        | Endpoint::AuditFlush
        | Endpoint::Health
        | Endpoint::KillSwitches
        | Endpoint::Budgets
        | Endpoint::Runs
        | Endpoint::Approvals
        | Endpoint::BreakGlassGrants
        | Endpoint::BreakGlassRevoke
        | Endpoint::ToolPins
        | Endpoint::Me
        | Endpoint::Decisions
        | Endpoint::DecisionRecord
        | Endpoint::LogVerification
        | Endpoint::Overview
        | Endpoint::Metrics => None,
    })
}

