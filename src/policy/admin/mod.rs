//! The admin PDP: who may administer what, decided by a Cedar policy set of its own
//! (`policies/admin/`: the schema `admin.cedarschema`, the policies `*.cedar`, scenarios in
//! `tests/`). It is loaded, strictly validated and reloaded beside the capability policy set, and
//! never consulted on an agent's call path.
//!
//! The admin API asks one [`AdminRequest`] per operation: the principal is the person asking
//! (their tenant, their token's roles, and the admin roles the configuration maps those to), or
//! the agent when one acts; the action is the operation; the resource is what it acts on, with
//! the tenant it belongs to. The rule reads like Cedar's: a matching forbid denies, else a
//! matching permit allows, else deny by default; a policy that cannot be evaluated denies.

mod request;

use std::collections::HashMap;
use std::path::Path;

use cedar_policy::{Authorizer, Context, Entities, PolicyId, PolicySet, Request, Schema};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use request::{AdminAction, AdminRequest, AdminResource, AdminRoles};

use super::entities::uid;
use super::load::{
    parse_policy_files, read_schema, ParsedPolicies, PolicyLoadError, PolicyProblem,
};

/// The admin policy set's directory inside the policies directory.
pub const ADMIN_DIR: &str = "admin";
/// The admin policy set's schema file.
pub const ADMIN_SCHEMA_FILE: &str = "admin.cedarschema";

/// The Cedar entity types the admin PDP builds; the admin schema must declare them all.
const ADMIN_TYPES: [&str; 11] = [
    "User",
    "Agent",
    "Role",
    "AdminRole",
    "Tenant",
    "Platform",
    "KillSwitch",
    "Run",
    "Relationship",
    "Approval",
    "BreakGlassGrant",
];

/// Allow or deny: the admin PDP knows no other outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminOutcome {
    Allow,
    Deny,
}

/// The admin PDP's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminDecision {
    pub outcome: AdminOutcome,
    /// The policies that decided (permits on allow, forbids or erring policies on deny; none
    /// for a deny by default), in the set's order.
    pub policy_ids: Vec<String>,
    /// Who asked for what, and which policy decided why.
    pub reason: String,
}

impl AdminDecision {
    pub fn is_allow(&self) -> bool {
        self.outcome == AdminOutcome::Allow
    }

    /// The deciding policy, if any.
    pub fn policy_id(&self) -> Option<&str> {
        self.policy_ids.first().map(String::as_str)
    }
}

/// What an admin policy's annotations say, read once at load.
#[derive(Debug, Clone)]
struct AdminPolicyMeta {
    ordinal: usize,
    /// "`id` (reason)", as reasons name the policy.
    explained: String,
}

/// Every admin policy names itself and says why; the capability policies' annotations mean
/// nothing here and refuse the set.
fn read_admin_annotations(
    policy: &cedar_policy::Policy,
    id: &str,
    file: &str,
    line: Option<usize>,
) -> Result<AdminPolicyMeta, PolicyProblem> {
    let problem = |message: String| PolicyProblem {
        file: file.to_string(),
        line,
        message,
    };
    if policy.annotation("id").is_none() {
        return Err(problem(format!(
            "admin policy `{id}` has no @id(\"...\"): every admin policy names itself"
        )));
    }
    let Some(reason) = policy.annotation("reason") else {
        return Err(problem(format!(
            "admin policy `{id}` has no @reason(\"...\"): every admin policy says why"
        )));
    };
    for (name, _) in policy.annotations() {
        if !["id", "reason"].contains(&name) {
            return Err(problem(format!(
                "admin policy `{id}`: @{name} has no meaning in the admin policy set (only @id and @reason)"
            )));
        }
    }
    Ok(AdminPolicyMeta {
        ordinal: 0,
        explained: format!("`{id}` ({reason})"),
    })
}

/// The loaded, validated admin policy set.
pub struct AdminPolicySet {
    schema: Schema,
    policies: PolicySet,
    meta: HashMap<PolicyId, AdminPolicyMeta>,
    /// Content digest of the schema and policies.
    pub digest: String,
    pub warnings: Vec<PolicyProblem>,
    /// "under admin policy set <digest>", which every reason ends with.
    under: String,
    authorizer: Authorizer,
}

impl AdminPolicySet {
    /// Loads and strictly validates an admin policy directory; refuses it on any problem,
    /// naming the file and line.
    pub fn load(dir: &Path) -> Result<Self, PolicyLoadError> {
        let mut digest = Sha256::new();
        let schema_path = dir.join(ADMIN_SCHEMA_FILE);
        let schema = read_schema(&schema_path, &mut digest)?;
        let schema_problem = |message: String| PolicyLoadError {
            problems: vec![PolicyProblem {
                file: schema_path.display().to_string(),
                line: None,
                message,
            }],
        };
        let declared: Vec<String> = schema.entity_types().map(|t| t.to_string()).collect();
        for required in ADMIN_TYPES {
            if !declared.iter().any(|d| d == required) {
                return Err(schema_problem(format!(
                    "the admin schema does not declare entity type `{required}`, which capgate builds for admin requests"
                )));
            }
        }
        let actions = schema
            .action_entities()
            .map_err(|e| schema_problem(e.to_string()))?;
        for action in AdminAction::ALL {
            let action_uid = uid("Action", action.as_str()).map_err(&schema_problem)?;
            if actions.get(&action_uid).is_none() {
                return Err(schema_problem(format!(
                    "the admin schema does not declare action \"{}\", which capgate asks for that admin operation",
                    action.as_str()
                )));
            }
        }
        let ParsedPolicies {
            policies,
            mut meta,
            warnings,
        } = parse_policy_files(dir, &schema, &mut digest, read_admin_annotations)?;
        for (ordinal, policy) in policies.policies().enumerate() {
            if let Some(info) = meta.get_mut(policy.id()) {
                info.ordinal = ordinal;
            }
        }
        let digest = format!("sha256:{}", &hex::encode(digest.finalize())[..16]);
        Ok(Self {
            under: format!("under admin policy set {digest}"),
            digest,
            schema,
            policies,
            meta,
            warnings,
            authorizer: Authorizer::new(),
        })
    }

    /// Loads `<policies>/admin/` when it exists.
    pub fn load_beside(policies_dir: &Path) -> Result<Option<Self>, PolicyLoadError> {
        let dir = policies_dir.join(ADMIN_DIR);
        if dir.is_dir() {
            Self::load(&dir).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn policy_count(&self) -> usize {
        self.policies.num_of_policies()
    }

    fn deny(&self, reason: String, policy_ids: Vec<String>) -> AdminDecision {
        AdminDecision {
            outcome: AdminOutcome::Deny,
            policy_ids,
            reason,
        }
    }

    /// Decides one admin request (see the module documentation for the rule).
    pub fn decide(&self, request: &AdminRequest, roles: &AdminRoles) -> AdminDecision {
        let what = request.describe();
        let under = &self.under;
        let built = self.build(request, roles);
        let (cedar_request, entities) = match built {
            Ok(built) => built,
            Err(problem) => {
                return self.deny(format!("denied {what}: {problem} ({under})"), vec![])
            }
        };
        let response = self
            .authorizer
            .is_authorized(&cedar_request, &self.policies, &entities);
        let ordered = |ids: Vec<&PolicyId>| {
            let mut ids: Vec<(usize, String, String)> = ids
                .into_iter()
                .map(|id| match self.meta.get(id) {
                    Some(meta) => (meta.ordinal, id.to_string(), meta.explained.clone()),
                    None => (usize::MAX, id.to_string(), format!("`{id}`")),
                })
                .collect();
            ids.sort();
            let explained = ids
                .iter()
                .map(|(_, _, e)| e.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            (ids.into_iter().map(|(_, id, _)| id).collect(), explained)
        };
        // An admin policy that cannot be evaluated may have been a forbid: fail closed.
        let errors: Vec<_> = response.diagnostics().errors().collect();
        if !errors.is_empty() {
            let (erring, _) = ordered(
                errors
                    .iter()
                    .map(|error| {
                        let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
                        e.policy_id()
                    })
                    .collect(),
            );
            let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            return self.deny(
                format!(
                    "denied {what}: an admin policy could not be evaluated, so capgate fails closed: {} ({under})",
                    messages.join("; ")
                ),
                erring,
            );
        }
        let (determining, explained) = ordered(response.diagnostics().reason().collect());
        match response.decision() {
            cedar_policy::Decision::Allow => AdminDecision {
                outcome: AdminOutcome::Allow,
                reason: format!("allowed {what} by {explained} ({under})"),
                policy_ids: determining,
            },
            cedar_policy::Decision::Deny if determining.is_empty() => self.deny(
                format!("denied {what}: no admin policy permits it (deny by default) ({under})"),
                determining,
            ),
            cedar_policy::Decision::Deny => self.deny(
                format!("denied {what} by forbid {explained} ({under})"),
                determining,
            ),
        }
    }

    /// The Cedar request and entities, validated against the admin schema.
    fn build(
        &self,
        request: &AdminRequest,
        roles: &AdminRoles,
    ) -> Result<(Request, Entities), String> {
        let (principal, principal_entity) = request.principal(roles)?;
        let resource = request.resource.entity()?;
        let resource_uid = resource.uid();
        let action = uid("Action", request.action.as_str())?;
        let cedar_request = Request::new(
            principal,
            action,
            resource_uid,
            Context::empty(),
            Some(&self.schema),
        )
        .map_err(|e| format!("the request does not fit the admin schema: {e}"))?;
        let entities = Entities::from_entities([principal_entity, resource], Some(&self.schema))
            .map_err(|e| format!("the request's entities do not fit the admin schema: {e}"))?;
        Ok((cedar_request, entities))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::contract::{ActorFacts, AgentFacts, UserFacts};

    fn admin_dir() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/admin")
    }

    fn person(user: &str, tenant: &str, roles: &[&str]) -> (ActorFacts, String) {
        (
            ActorFacts {
                user: UserFacts {
                    id: user.into(),
                    roles: roles.iter().map(|r| r.to_string()).collect(),
                    scopes: Vec::new(),
                },
                agent: None,
                service: None,
                delegation_chain: vec![user.into()],
            },
            tenant.into(),
        )
    }

    fn ask(
        set: &AdminPolicySet,
        (actor, tenant): &(ActorFacts, String),
        action: AdminAction,
        resource: AdminResource,
    ) -> AdminDecision {
        set.decide(
            &AdminRequest {
                actor: actor.clone(),
                tenant: tenant.clone(),
                action,
                resource,
            },
            &AdminRoles::default(),
        )
    }

    /// Every action is decided for the kinds of resource the schema says it takes; a request
    /// that does not fit the schema is denied, naming why.
    #[test]
    fn a_request_outside_the_schema_is_denied_with_its_reason() {
        let set = AdminPolicySet::load(&admin_dir()).expect("the admin policies load");
        let platform = person("pat", "ops", &["capgate-platform-admin"]);
        let allowed = ask(
            &set,
            &platform,
            AdminAction::ReloadPolicy,
            AdminResource::Platform,
        );
        assert!(allowed.is_allow(), "{}", allowed.reason);
        let misfit = ask(
            &set,
            &platform,
            AdminAction::ReloadPolicy,
            AdminResource::Tenant { id: "acme".into() },
        );
        assert!(!misfit.is_allow());
        assert!(misfit.reason.contains("admin schema"), "{}", misfit.reason);
    }

    #[test]
    fn an_agent_never_administers_whatever_its_user_holds() {
        let set = AdminPolicySet::load(&admin_dir()).expect("the admin policies load");
        let (mut actor, tenant) =
            person("pat", "acme", &["capgate-platform-admin", "capgate-admin"]);
        actor.agent = Some(AgentFacts {
            id: "ops-bot".into(),
            role: "ops-bot".into(),
        });
        for (action, resource) in [
            (AdminAction::ViewPolicy, AdminResource::Platform),
            (
                AdminAction::ListApprovals,
                AdminResource::Tenant { id: "acme".into() },
            ),
        ] {
            let decision = ask(&set, &(actor.clone(), tenant.clone()), action, resource);
            assert!(!decision.is_allow(), "{}", decision.reason);
            assert_eq!(
                decision.policy_id(),
                Some("admins-are-people"),
                "{}",
                decision.reason
            );
        }
    }

    #[test]
    fn a_policy_without_id_or_reason_or_with_a_capability_annotation_is_refused() {
        for (text, expected) in [
            ("permit (principal, action, resource is Platform);", "no @id"),
            (
                "@id(\"p\")\npermit (principal, action, resource is Platform);",
                "no @reason",
            ),
            (
                "@id(\"p\")\n@reason(\"r\")\n@break_glass(\"never\")\nforbid (principal, action, resource is Platform);",
                "@break_glass has no meaning",
            ),
            (
                "@id(\"p\")\n@reason(\"r\")\npermit (principal, action == Action::\"view_policy\", resource is Platform)\nwhen { resource.owner == \"x\" };",
                "p.cedar:4",
            ),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::copy(
                admin_dir().join(ADMIN_SCHEMA_FILE),
                dir.path().join(ADMIN_SCHEMA_FILE),
            )
            .expect("schema");
            std::fs::write(dir.path().join("p.cedar"), text).expect("policy");
            let error = AdminPolicySet::load(dir.path())
                .err()
                .unwrap_or_else(|| panic!("{text} must be refused"));
            let shown = error.to_string();
            assert!(shown.contains(expected), "{expected}: {shown}");
        }
    }
}
