//! The policy decision point (PDP): Cedar policies from `policies/`, deny by default.
//!
//! The decision rule, in one place ([`PolicyEngine::decide`]):
//! 1. a request that cannot be formed (unknown entity type, context not matching the schema) is
//!    denied, saying why;
//! 2. a policy that errors during evaluation denies: Cedar would skip it, which could silently
//!    drop a `forbid`;
//! 3. otherwise Cedar's rule holds: a matching `forbid` wins over any `permit`, and without a
//!    matching `permit` the answer is deny.
//!
//! The PDP is pure: no I/O on the decision path. Stateful facts (budgets, approvals) will reach
//! it as trusted context from `enforce`.

pub mod entities;
pub mod load;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityUid, PolicyId, PolicySet, Request,
    RestrictedExpression, Schema,
};
use serde::Serialize;

use crate::identity::CompositeActor;
use crate::registry::{Effect, Risk};
use entities::{types, uid, ActorEntities, EntityStore};
pub use load::{load_policies, LoadedPolicies, PolicyLoadError, PolicyProblem};

/// The protected operations, one Cedar action each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    DiscoverTool,
    CallTool,
    DiscoverResource,
    ReadResource,
    DiscoverPrompt,
    GetPrompt,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DiscoverTool => "discover_tool",
            Action::CallTool => "call_tool",
            Action::DiscoverResource => "discover_resource",
            Action::ReadResource => "read_resource",
            Action::DiscoverPrompt => "discover_prompt",
            Action::GetPrompt => "get_prompt",
        }
    }

    const ALL: [Action; 6] = [
        Action::DiscoverTool,
        Action::CallTool,
        Action::DiscoverResource,
        Action::ReadResource,
        Action::DiscoverPrompt,
        Action::GetPrompt,
    ];
}

/// The capability a request is about, with its contract attributes.
#[derive(Debug, Clone)]
pub struct CapabilityFacts<'a> {
    pub kind: CapabilityKind,
    /// Exposed name (tools, prompts) or URI (resources).
    pub id: &'a str,
    pub server: &'a str,
    /// The downstream's own name (for resources: the contract's resource name).
    pub name: &'a str,
    pub effect: Option<Effect>,
    pub risk: Risk,
    pub cost: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapabilityKind {
    Tool,
    Resource,
    Prompt,
}

/// A domain entity named by an argument: `case_id = "case-101"` bound to `Case` under
/// context key `case`.
#[derive(Debug, Clone)]
pub struct BoundEntity<'a> {
    pub context_key: &'a str,
    pub entity_type: &'a str,
    pub id: String,
}

/// Everything the PDP needs for one decision.
pub struct DecisionInput<'a> {
    pub actor: &'a CompositeActor,
    pub action: Action,
    pub capability: CapabilityFacts<'a>,
    pub bound: Vec<BoundEntity<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    Deny,
}

/// A decision, with a specific reason for admins and logs and a version to replay against.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// Specific reason: which policy decided, or what was missing.
    pub reason: String,
    /// The policies that determined the outcome (permits on allow, forbids on deny).
    pub policy_ids: Vec<String>,
    pub policy_version: String,
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// The refusal an agent sees: no policy internals unless the operator opted in.
    pub fn agent_message(&self, show_policy_ids: bool) -> String {
        if show_policy_ids {
            self.reason.clone()
        } else if self.policy_ids.is_empty() {
            "not permitted: no policy grants this actor this capability".into()
        } else {
            "not permitted by policy".into()
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.outcome, self.reason)
    }
}

/// A loaded, validated policy set and what decisions need alongside it.
pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    store: EntityStore,
    reasons: HashMap<PolicyId, String>,
    action_uids: HashMap<Action, EntityUid>,
    action_entities: Vec<Entity>,
    version: String,
    authorizer: Authorizer,
}

impl PolicyEngine {
    /// Loads `policies/`; refuses the set if any file has a problem.
    pub fn load(dir: &std::path::Path) -> Result<Arc<Self>, PolicyLoadError> {
        let loaded = load_policies(dir)?;
        Self::from_loaded(loaded, dir)
    }

    fn from_loaded(
        loaded: LoadedPolicies,
        dir: &std::path::Path,
    ) -> Result<Arc<Self>, PolicyLoadError> {
        let schema_problem = |message: String| PolicyLoadError {
            problems: vec![PolicyProblem {
                file: dir.join(load::SCHEMA_FILE).display().to_string(),
                line: None,
                message,
            }],
        };
        let action_entities: Vec<Entity> = loaded
            .schema
            .action_entities()
            .map_err(|e| schema_problem(e.to_string()))?
            .iter()
            .cloned()
            .collect();
        let mut action_uids = HashMap::new();
        for action in Action::ALL {
            let action_uid = uid("Action", action.as_str()).map_err(schema_problem)?;
            if !action_entities.iter().any(|e| e.uid() == action_uid) {
                return Err(schema_problem(format!(
                    "the schema does not declare action \"{}\"; capgate decides it on every {} request",
                    action.as_str(),
                    action.as_str().replace('_', " ")
                )));
            }
            action_uids.insert(action, action_uid);
        }
        let declared: Vec<String> = loaded
            .schema
            .entity_types()
            .map(|t| t.to_string())
            .collect();
        for required in [
            types::USER,
            types::ROLE,
            types::AGENT,
            types::AGENT_ROLE,
            types::SERVICE,
            types::TENANT,
            types::SERVER,
            types::TOOL,
            types::RESOURCE,
            types::PROMPT,
        ] {
            if !declared.iter().any(|d| d == required) {
                return Err(schema_problem(format!(
                    "the schema does not declare entity type `{required}`, which capgate builds for every request"
                )));
            }
        }
        Ok(Arc::new(Self {
            schema: loaded.schema,
            policies: loaded.policies,
            store: loaded.entities,
            reasons: loaded.reasons,
            action_uids,
            action_entities,
            version: loaded.version,
            authorizer: Authorizer::new(),
        }))
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn policy_count(&self) -> usize {
        self.policies.num_of_policies()
    }

    /// Whether the schema declares an entity type (contracts are checked against it at start).
    pub fn declares_entity_type(&self, name: &str) -> bool {
        self.schema.entity_types().any(|t| t.to_string() == name)
    }

    fn deny(&self, reason: String, policy_ids: Vec<String>) -> Decision {
        Decision {
            outcome: Outcome::Deny,
            reason,
            policy_ids,
            policy_version: self.version.clone(),
        }
    }

    /// Decides one request. Never panics and never allows by accident: every failure denies.
    pub fn decide(&self, input: &DecisionInput<'_>) -> Decision {
        let what = format!(
            "{} {} `{}`",
            describe_actor(input.actor),
            input.action.as_str(),
            input.capability.id
        );
        let (request, entities) = match self.build_request(input) {
            Ok(built) => built,
            Err(problem) => return self.deny(format!("denied {what}: {problem}"), Vec::new()),
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        let determining: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        if !errors.is_empty() {
            let ids = response
                .diagnostics()
                .errors()
                .map(|e| match e {
                    cedar_policy::AuthorizationError::PolicyEvaluationError(p) => {
                        p.policy_id().to_string()
                    }
                })
                .collect();
            return self.deny(
                format!(
                    "denied {what}: a policy could not be evaluated, so capgate fails closed: {}",
                    errors.join("; ")
                ),
                ids,
            );
        }
        match response.decision() {
            cedar_policy::Decision::Allow => Decision {
                outcome: Outcome::Allow,
                reason: format!("allowed {what} by {}", quoted(&determining)),
                policy_ids: determining,
                policy_version: self.version.clone(),
            },
            cedar_policy::Decision::Deny if determining.is_empty() => self.deny(
                format!(
                    "denied {what}: no policy permits it (deny by default){}",
                    missing_entities_hint(&self.store, input)
                ),
                Vec::new(),
            ),
            cedar_policy::Decision::Deny => {
                let explanations: Vec<String> = response
                    .diagnostics()
                    .reason()
                    .filter_map(|id| self.reasons.get(id).map(|r| format!("{id}: {r}")))
                    .collect();
                let detail = if explanations.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", explanations.join("; "))
                };
                self.deny(
                    format!("denied {what} by forbid {}{detail}", quoted(&determining)),
                    determining,
                )
            }
        }
    }

    fn build_request(&self, input: &DecisionInput<'_>) -> Result<(Request, Entities), String> {
        let actor = ActorEntities::build(input.actor)?;
        let capability = capability_entity(&input.capability)?;
        let resource_uid = capability.uid();

        let mut entities: Vec<Entity> = actor.entities;
        entities.push(capability);
        entities.extend(self.action_entities.iter().cloned());

        let mut context: Vec<(String, RestrictedExpression)> = vec![
            (
                "user".into(),
                RestrictedExpression::new_entity_uid(actor.user.clone()),
            ),
            (
                "tenant".into(),
                RestrictedExpression::new_entity_uid(actor.tenant.clone()),
            ),
            (
                "delegation_depth".into(),
                RestrictedExpression::new_long(
                    input.actor.delegation_chain.len().saturating_sub(1) as i64,
                ),
            ),
        ];
        if let Some(service) = &actor.service {
            context.push((
                "service".into(),
                RestrictedExpression::new_entity_uid(service.clone()),
            ));
        }
        if let Some(run_id) = &input.actor.run_id {
            context.push((
                "run_id".into(),
                RestrictedExpression::new_string(run_id.clone()),
            ));
        }
        for bound in &input.bound {
            let bound_uid = uid(bound.entity_type, &bound.id)?;
            if let Some(known) = self.store.with_ancestors(&bound_uid) {
                for entity in known {
                    if !entities.iter().any(|e| e.uid() == entity.uid()) {
                        entities.push(entity.clone());
                    }
                }
            }
            context.push((
                bound.context_key.to_string(),
                RestrictedExpression::new_entity_uid(bound_uid),
            ));
        }

        let action = self
            .action_uids
            .get(&input.action)
            .cloned()
            .ok_or_else(|| format!("action {} is not declared", input.action.as_str()))?;
        let context = Context::from_pairs(context)
            .map_err(|e| format!("the request context is invalid: {e}"))?;
        let request = Request::new(
            actor.principal,
            action,
            resource_uid,
            context,
            Some(&self.schema),
        )
        .map_err(|e| format!("the request does not match the policy schema: {e}"))?;
        let entities = Entities::from_entities(entities, None)
            .map_err(|e| format!("the request's entities are inconsistent: {e}"))?;
        Ok((request, entities))
    }
}

fn capability_entity(capability: &CapabilityFacts<'_>) -> Result<Entity, String> {
    let type_name = match capability.kind {
        CapabilityKind::Tool => types::TOOL,
        CapabilityKind::Resource => types::RESOURCE,
        CapabilityKind::Prompt => types::PROMPT,
    };
    let mut attrs = HashMap::from([
        (
            "server".to_string(),
            RestrictedExpression::new_string(capability.server.to_string()),
        ),
        (
            "name".to_string(),
            RestrictedExpression::new_string(capability.name.to_string()),
        ),
        (
            "risk".to_string(),
            RestrictedExpression::new_string(capability.risk.as_str().to_string()),
        ),
        (
            "risk_level".to_string(),
            RestrictedExpression::new_long(capability.risk.level()),
        ),
    ]);
    match capability.kind {
        CapabilityKind::Tool => {
            let effect = capability
                .effect
                .ok_or_else(|| format!("tool `{}` has no effect in its contract", capability.id))?;
            attrs.insert(
                "effect".into(),
                RestrictedExpression::new_string(effect.as_str().to_string()),
            );
            attrs.insert(
                "cost".into(),
                RestrictedExpression::new_long(i64::from(capability.cost)),
            );
        }
        CapabilityKind::Resource => {
            attrs.insert(
                "uri".into(),
                RestrictedExpression::new_string(capability.id.to_string()),
            );
        }
        CapabilityKind::Prompt => {}
    }
    Entity::new(
        uid(type_name, capability.id)?,
        attrs,
        std::collections::HashSet::from([uid(types::SERVER, capability.server)?]),
    )
    .map_err(|e| e.to_string())
}

fn describe_actor(actor: &CompositeActor) -> String {
    match &actor.agent {
        Some(agent) => format!(
            "{} (agent {}) for user {} in tenant {}",
            agent.role, agent.id, actor.user.id, actor.tenant
        ),
        None => format!("user {} in tenant {}", actor.user.id, actor.tenant),
    }
}

fn quoted(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names bound entities the store does not know: the usual cause of a surprising deny.
fn missing_entities_hint(store: &EntityStore, input: &DecisionInput<'_>) -> String {
    let missing: Vec<String> = input
        .bound
        .iter()
        .filter(|b| {
            uid(b.entity_type, &b.id)
                .map(|u| store.with_ancestors(&u).is_none())
                .unwrap_or(true)
        })
        .map(|b| format!("{}::\"{}\"", b.entity_type, b.id))
        .collect();
    if missing.is_empty() {
        String::new()
    } else {
        format!(
            "; no entity data for {} (unknown to the entity store)",
            missing.join(", ")
        )
    }
}
