//! Verified claims become the [`CompositeActor`], under the issuer's claim mapping: the user
//! (`sub`), tenant, roles and scopes; the agent from the RFC 8693 `act` claim (nested actors
//! make the delegation chain) or from a configured claim; the runtime service (`azp`, else
//! `client_id`).

use serde_json::{Map, Value};

use crate::config::ClaimMapping;

use super::actor::{AgentIdentity, CompositeActor, UserIdentity};
use super::auth_error::AuthError;

fn string_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::InvalidClaim(name.into())),
    }
}

/// A list claim given as a JSON array of strings or a space-delimited string (OAuth `scope`).
fn list_claim(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(AuthError::InvalidClaim(name.into())),
            })
            .collect(),
        Some(_) => Err(AuthError::InvalidClaim(name.into())),
    }
}

pub(super) fn actor_from_claims(
    issuer: &str,
    claims: &Map<String, Value>,
    mapping: &ClaimMapping,
) -> Result<CompositeActor, AuthError> {
    let user_id =
        string_claim(claims, "sub")?.ok_or_else(|| AuthError::MissingClaim("sub".into()))?;
    let tenant = string_claim(claims, &mapping.tenant)?
        .ok_or_else(|| AuthError::MissingClaim(mapping.tenant.clone()))?;
    let mut delegation_chain = vec![user_id.clone()];

    let agent = if mapping.agent == "act" {
        match claims.get("act") {
            None | Some(Value::Null) => None,
            Some(Value::Object(act)) => {
                // RFC 8693: the outermost `act` is the current actor; nested ones are prior actors.
                let id = string_claim(act, "sub")?
                    .ok_or_else(|| AuthError::MissingClaim("act.sub".into()))?;
                let mut prior = Vec::new();
                let mut nested = act.get("act");
                while let Some(Value::Object(inner)) = nested {
                    if let Some(sub) = string_claim(inner, "sub")? {
                        prior.push(sub);
                    }
                    nested = inner.get("act");
                }
                delegation_chain.extend(prior.into_iter().rev());
                delegation_chain.push(id.clone());
                let role = string_claim(act, &mapping.agent_role)?.unwrap_or_else(|| id.clone());
                Some(AgentIdentity { id, role })
            }
            Some(_) => return Err(AuthError::InvalidClaim("act".into())),
        }
    } else {
        match string_claim(claims, &mapping.agent)? {
            None => None,
            Some(id) => {
                delegation_chain.push(id.clone());
                let role = string_claim(claims, &mapping.agent_role)?.unwrap_or_else(|| id.clone());
                Some(AgentIdentity { id, role })
            }
        }
    };

    let service = match string_claim(claims, "azp")? {
        Some(azp) => Some(azp),
        None => string_claim(claims, "client_id")?,
    };

    Ok(CompositeActor {
        issuer: issuer.to_string(),
        user: UserIdentity {
            id: user_id,
            roles: list_claim(claims, &mapping.roles)?,
            scopes: list_claim(claims, &mapping.scope)?,
        },
        agent,
        service,
        tenant,
        run_id: string_claim(claims, &mapping.run_id)?,
        delegation_chain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn nested_act_builds_the_delegation_chain() {
        let c = claims(serde_json::json!({
            "sub": "alice", "tenant": "acme", "roles": ["analyst"], "scope": "cases.read cases.write",
            "act": {"sub": "drafting-agent", "act": {"sub": "supervisor-agent"}},
            "azp": "agent-runtime", "run_id": "run-1"
        }));
        let actor = actor_from_claims("iss", &c, &ClaimMapping::default()).expect("valid");
        assert_eq!(
            actor.delegation_chain,
            vec!["alice", "supervisor-agent", "drafting-agent"]
        );
        assert_eq!(
            actor.agent.as_ref().map(|a| a.role.as_str()),
            Some("drafting-agent")
        );
        assert_eq!(actor.user.scopes, vec!["cases.read", "cases.write"]);
        assert_eq!(actor.service.as_deref(), Some("agent-runtime"));
    }

    #[test]
    fn tenant_is_required() {
        let c = claims(serde_json::json!({"sub": "alice"}));
        assert_eq!(
            actor_from_claims("iss", &c, &ClaimMapping::default()),
            Err(AuthError::MissingClaim("tenant".into()))
        );
    }

    #[test]
    fn malformed_act_is_refused() {
        let c = claims(serde_json::json!({"sub": "alice", "tenant": "t", "act": "x"}));
        assert_eq!(
            actor_from_claims("iss", &c, &ClaimMapping::default()),
            Err(AuthError::InvalidClaim("act".into()))
        );
    }
}
