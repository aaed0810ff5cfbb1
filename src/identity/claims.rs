//! Verified claims become the [`CompositeActor`], under the issuer's claim mapping: the user
//! (`sub`), tenant, roles and scopes; the agent from the RFC 8693 `act` claim (nested actors
//! make the delegation chain) or from a configured claim; the runtime service (`azp`, else
//! `client_id`).
//!
//! Every id among them — the user, the tenant, each agent of the chain and the agent's role —
//! is checked (`ids`) before the actor exists, so nothing downstream of authentication ever
//! holds an id like `"acme "` or `"ac\u{0}me"`.

use serde_json::{Map, Value};

use crate::config::ClaimMapping;

use super::actor::{AgentIdentity, CompositeActor, UserIdentity};
use super::auth_error::AuthError;
use super::ids::check_id;

fn string_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::InvalidClaim(name.into())),
    }
}

/// A string claim that names an id (`shown_as` is its path in the token, as in `act.sub`).
fn id_claim(
    claims: &Map<String, Value>,
    name: &str,
    shown_as: &str,
) -> Result<Option<String>, AuthError> {
    let value = string_claim(claims, name)?;
    if let Some(id) = &value {
        check_id(id).map_err(|problem| AuthError::InvalidId {
            claim: shown_as.to_string(),
            problem,
        })?;
    }
    Ok(value)
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
        id_claim(claims, "sub", "sub")?.ok_or_else(|| AuthError::MissingClaim("sub".into()))?;
    let tenant = id_claim(claims, &mapping.tenant, &mapping.tenant)?
        .ok_or_else(|| AuthError::MissingClaim(mapping.tenant.clone()))?;
    let mut delegation_chain = vec![user_id.clone()];

    let agent = if mapping.agent == "act" {
        match claims.get("act") {
            None | Some(Value::Null) => None,
            Some(Value::Object(act)) => {
                // RFC 8693: the outermost `act` is the current actor; nested ones are prior actors.
                let id = id_claim(act, "sub", "act.sub")?
                    .ok_or_else(|| AuthError::MissingClaim("act.sub".into()))?;
                let mut prior = Vec::new();
                let mut nested = act.get("act");
                let mut path = String::from("act");
                while let Some(Value::Object(inner)) = nested {
                    path.push_str(".act");
                    if let Some(sub) = id_claim(inner, "sub", &format!("{path}.sub"))? {
                        prior.push(sub);
                    }
                    nested = inner.get("act");
                }
                delegation_chain.extend(prior.into_iter().rev());
                delegation_chain.push(id.clone());
                let role_path = format!("act.{}", mapping.agent_role);
                let role =
                    id_claim(act, &mapping.agent_role, &role_path)?.unwrap_or_else(|| id.clone());
                Some(AgentIdentity { id, role })
            }
            Some(_) => return Err(AuthError::InvalidClaim("act".into())),
        }
    } else {
        match id_claim(claims, &mapping.agent, &mapping.agent)? {
            None => None,
            Some(id) => {
                delegation_chain.push(id.clone());
                let role = id_claim(claims, &mapping.agent_role, &mapping.agent_role)?
                    .unwrap_or_else(|| id.clone());
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

    /// Each bad id, wherever the token carries it, refuses the token and names the claim.
    #[test]
    fn bad_ids_are_refused_with_the_claim_and_the_reason() {
        use crate::identity::ids::IdProblem as P;
        use serde_json::json;
        let long = "a".repeat(257);
        let invalid = |claim: &str, problem| AuthError::InvalidId {
            claim: claim.into(),
            problem,
        };
        let table = [
            (
                json!({"sub": "alice", "tenant": "acme "}),
                invalid("tenant", P::SurroundingWhitespace),
            ),
            (
                json!({"sub": "alice", "tenant": " acme"}),
                invalid("tenant", P::SurroundingWhitespace),
            ),
            (
                json!({"sub": "alice", "tenant": "ac\u{0}me"}),
                invalid("tenant", P::ControlCharacter { at: 2 }),
            ),
            (
                json!({"sub": "alice", "tenant": long}),
                invalid("tenant", P::TooLong { chars: 257 }),
            ),
            (
                json!({"sub": "alice", "tenant": "ac\u{200b}me"}),
                invalid(
                    "tenant",
                    P::DisallowedCharacter {
                        found: '\u{200b}',
                        at: 2,
                    },
                ),
            ),
            (
                json!({"sub": "alice\t", "tenant": "acme"}),
                invalid("sub", P::ControlCharacter { at: 5 }),
            ),
            (
                json!({"sub": "al ice", "tenant": "acme"}),
                invalid("sub", P::DisallowedCharacter { found: ' ', at: 2 }),
            ),
            (
                json!({"sub": "alice", "tenant": "acme", "act": {"sub": "bot "}}),
                invalid("act.sub", P::SurroundingWhitespace),
            ),
            (
                json!({"sub": "alice", "tenant": "acme",
                       "act": {"sub": "bot", "act": {"sub": "sup\u{7f}"}}}),
                invalid("act.act.sub", P::ControlCharacter { at: 3 }),
            ),
            (
                json!({"sub": "alice", "tenant": "acme",
                       "act": {"sub": "bot", "agent_role": "drafter\n"}}),
                invalid("act.agent_role", P::ControlCharacter { at: 7 }),
            ),
            (
                json!({"sub": "alice", "tenant": "", "act": {"sub": "bot"}}),
                AuthError::MissingClaim("tenant".into()),
            ),
            (
                json!({"sub": "alice", "tenant": 7}),
                AuthError::InvalidClaim("tenant".into()),
            ),
        ];
        for (token_claims, expected) in table {
            let shown = token_claims.to_string();
            assert_eq!(
                actor_from_claims("iss", &claims(token_claims), &ClaimMapping::default()),
                Err(expected),
                "{shown}"
            );
        }
    }

    /// Ids of the forms the integration tests and real issuers use are accepted as they are.
    #[test]
    fn ids_with_slashes_and_unicode_pass_unchanged() {
        let c = claims(serde_json::json!({
            "sub": "org/alice", "tenant": "urn:acme:eu",
            "act": {"sub": "alice/bot", "agent_role": "drafting-agent",
                    "act": {"sub": "spiffe://acme/ns/süpervisor"}}
        }));
        let actor = actor_from_claims("iss", &c, &ClaimMapping::default()).expect("valid");
        assert_eq!(actor.user.id, "org/alice");
        assert_eq!(actor.tenant, "urn:acme:eu");
        assert_eq!(
            actor.delegation_chain,
            vec!["org/alice", "spiffe://acme/ns/süpervisor", "alice/bot"]
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
