//! The reference PDP, for tests only: the decision rule as capgate implemented it before the
//! per-request work was trimmed (entities rebuilt from scratch, every reason formatted up front,
//! the permits re-evaluated whenever the rule asks whether one applies). The optimised
//! [`super::CompiledPolicySet::decide`] must give exactly the same [`Decision`] for every request.
//!
//! One deliberate difference from that code: Cedar reports the determining policies as an
//! unordered set, and the old code listed them in the set's iteration order, which varies from
//! run to run. Both paths now list them in policy-set order, so decisions can be compared whole.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityUid, EvaluationError, PolicyId, Request,
    RestrictedExpression,
};

use super::compiled::CompiledPolicySet;
use super::contract::{
    Action, ActorFacts, AttributeValue, CapabilityKind, Decision, Outcome, PolicyRequest,
};
use super::decide::{agent_reason, missing_facts};
use super::entities::{types, uid, RelationshipStore};
use super::load::{load_policies, PolicyMeta};
use super::request::{attribute_expression, record, risk_record, runtime_record, string_set};
use super::slice::PolicySlices;

pub struct ReferencePdp {
    slices: PolicySlices,
    meta: HashMap<PolicyId, PolicyMeta>,
    ordinal: HashMap<PolicyId, usize>,
    action_uids: HashMap<Action, EntityUid>,
    action_entities: Vec<Entity>,
    label: String,
    authorizer: Authorizer,
}

impl ReferencePdp {
    /// The reference PDP over a policies directory, beside the optimised set and its store.
    pub fn load(dir: &Path) -> (Self, CompiledPolicySet, RelationshipStore) {
        let loaded = load_policies(dir).expect("the test policies load");
        let schema_actions = loaded.schema.action_entities().expect("action entities");
        let action_entities: Vec<Entity> = schema_actions.iter().cloned().collect();
        let mut action_uids = HashMap::new();
        for action in Action::ALL {
            action_uids.insert(action, uid("Action", action.as_str()).expect("action uid"));
        }
        let reference = Self {
            label: format!("{}@{}", loaded.manifest.id, loaded.manifest.version),
            slices: PolicySlices::build(&loaded.policies).expect("slices"),
            meta: loaded.meta,
            ordinal: loaded
                .policies
                .policies()
                .enumerate()
                .map(|(i, p)| (p.id().clone(), i))
                .collect(),
            action_uids,
            action_entities: if action_entities.iter().any(|a| {
                schema_actions
                    .ancestors(&a.uid())
                    .is_some_and(|mut up| up.next().is_some())
            }) {
                action_entities
            } else {
                Vec::new()
            },
            authorizer: Authorizer::new(),
        };
        let (set, store) = CompiledPolicySet::load(dir).expect("the test policies load");
        (reference, set, store)
    }

    fn decision(&self, outcome: Outcome, reason: String, policy_ids: Vec<String>) -> Decision {
        Decision {
            outcome,
            obligations: Vec::new(),
            advice: Vec::new(),
            agent_reason: agent_reason(outcome, &[], &[]),
            reason,
            policy_id: policy_ids.first().cloned(),
            policy_ids,
            policy_version: self.label.clone(),
            missing: Vec::new(),
            approver_role: None,
            break_glass_may_override: false,
            shadow: None,
        }
    }

    pub fn decide(&self, request: &PolicyRequest, store: &RelationshipStore) -> Decision {
        let what = format!(
            "{} {} `{}`",
            request.actor.describe(),
            request.action.as_str(),
            request.resource.id
        );
        let under = format!("under policy set {}", self.label);

        let missing = missing_context(request, store);
        if !missing.is_empty() {
            let mut decision = self.decision(
                Outcome::RequireMoreContext,
                format!(
                    "{what} needs more context: missing {} ({under})",
                    missing.join(", ")
                ),
                Vec::new(),
            );
            decision.agent_reason = format!(
                "more context is needed before this can be decided: {}",
                missing.join(", ")
            );
            decision.missing = missing;
            return decision;
        }

        let (cedar_request, entities, resource_uid) = match self.build_request(request, store) {
            Ok(built) => built,
            Err(problem) => {
                return self.decision(
                    Outcome::Deny,
                    format!("denied {what}: {problem} ({under})"),
                    Vec::new(),
                )
            }
        };
        let Some(slice) = self.slices.slice(request.action, &resource_uid) else {
            let mut decision = self.decision(
                Outcome::Deny,
                format!("denied {what}: no policies for this action ({under})"),
                Vec::new(),
            );
            decision.break_glass_may_override = true;
            return decision;
        };
        let slice = slice.whole();
        let authorizer = &self.authorizer;
        let response = authorizer.is_authorized(&cedar_request, &slice.all, &entities);
        let some_permit_applies = || {
            authorizer
                .is_authorized(&cedar_request, &slice.permits, &entities)
                .decision()
                == cedar_policy::Decision::Allow
        };

        let mut determining: Vec<(&PolicyId, Option<&PolicyMeta>)> = response
            .diagnostics()
            .reason()
            .map(|id| (id, self.meta.get(id)))
            .collect();
        determining.sort_by_key(|(id, _)| self.ordinal.get(*id).copied().unwrap_or(usize::MAX));
        let ids: Vec<String> = determining.iter().map(|(id, _)| id.to_string()).collect();
        let plain_forbid = response.decision() == cedar_policy::Decision::Deny
            && determining
                .iter()
                .any(|(_, m)| m.is_some_and(|m| m.is_forbid && m.outcome.is_none()));

        let never = |id: &PolicyId| self.meta.get(id).is_some_and(|m| m.break_glass_never);
        if !plain_forbid && response.diagnostics().errors().next().is_some() {
            let erring_never = response.diagnostics().errors().any(|error| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
                never(e.policy_id())
            });
            if !some_permit_applies() {
                let mut decision = self.decision(
                    Outcome::Deny,
                    format!("denied {what}: no policy permits it (deny by default; some policies could not be evaluated) ({under})"),
                    Vec::new(),
                );
                decision.break_glass_may_override = !erring_never;
                return decision;
            }
            let mut errors = Vec::new();
            let mut erring = Vec::new();
            let mut missing_data = true;
            for error in response.diagnostics().errors() {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
                missing_data &= matches!(
                    e.inner(),
                    EvaluationError::EntityDoesNotExist(_)
                        | EvaluationError::EntityAttrDoesNotExist(_)
                        | EvaluationError::RecordAttrDoesNotExist(_)
                );
                erring.push(e.policy_id().to_string());
                errors.push(error.to_string());
            }
            if !errors.is_empty() {
                let outcome = if missing_data {
                    Outcome::RequireMoreContext
                } else {
                    Outcome::Deny
                };
                let mut decision = self.decision(
                    outcome,
                    format!(
                        "{} {what}: a policy could not be evaluated, so capgate fails closed: {} ({under})",
                        outcome.as_str(),
                        errors.join("; ")
                    ),
                    erring,
                );
                if missing_data {
                    decision.missing = errors;
                }
                decision.break_glass_may_override = outcome == Outcome::Deny && !erring_never;
                return decision;
            }
        }

        let advice: Vec<String> = determining
            .iter()
            .flat_map(|(_, m)| m.map(|m| m.advice.clone()).unwrap_or_default())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let explained: Vec<String> = determining
            .iter()
            .map(|(id, m)| match m.and_then(|m| m.reason.as_deref()) {
                Some(reason) => format!("`{id}` ({reason})"),
                None => format!("`{id}`"),
            })
            .collect();
        let outcome = match response.decision() {
            cedar_policy::Decision::Allow => Outcome::Allow,
            cedar_policy::Decision::Deny if determining.is_empty() => Outcome::Deny,
            cedar_policy::Decision::Deny => {
                let outcome_of = |m: &Option<&PolicyMeta>| m.and_then(|m| m.outcome);
                if determining.iter().any(|(_, m)| outcome_of(m).is_none())
                    || !some_permit_applies()
                {
                    Outcome::Deny
                } else if determining
                    .iter()
                    .any(|(_, m)| outcome_of(m) == Some(Outcome::RequireMoreContext))
                {
                    Outcome::RequireMoreContext
                } else {
                    Outcome::RequireApproval
                }
            }
        };
        let mut policy_ids = if outcome == Outcome::Deny && !plain_forbid {
            Vec::new()
        } else {
            ids.clone()
        };
        policy_ids.sort_by_key(|id| {
            let meta = self.meta.get(&PolicyId::new(id));
            match (outcome, meta.and_then(|m| m.outcome)) {
                (Outcome::Deny, None) | (Outcome::Allow, _) => 0,
                (o, Some(annotated)) if o == annotated => 0,
                _ => 1,
            }
        });
        let reason = match outcome {
            Outcome::Allow => format!("allowed {what} by {} ({under})", explained.join(", ")),
            Outcome::Deny if !plain_forbid => {
                format!("denied {what}: no policy permits it (deny by default) ({under})")
            }
            Outcome::Deny => format!("denied {what} by forbid {} ({under})", explained.join(", ")),
            Outcome::RequireApproval => format!(
                "{what} requires approval: {} ({under})",
                explained.join(", ")
            ),
            Outcome::RequireMoreContext => format!(
                "{what} requires more context: {} ({under})",
                explained.join(", ")
            ),
        };
        let obligations: Vec<String> = if outcome == Outcome::Allow {
            determining
                .iter()
                .flat_map(|(_, m)| m.map(|m| m.obligations.clone()).unwrap_or_default())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        let approver_role = (outcome == Outcome::RequireApproval)
            .then(|| {
                determining
                    .iter()
                    .find_map(|(_, m)| m.and_then(|m| m.approver_role.clone()))
            })
            .flatten();
        let break_glass_may_override = matches!(outcome, Outcome::Deny | Outcome::RequireApproval)
            && !determining.iter().any(|(id, _)| never(id));
        Decision {
            outcome,
            agent_reason: agent_reason(outcome, &advice, &[]),
            obligations,
            advice,
            reason,
            policy_id: policy_ids.first().cloned(),
            policy_ids,
            policy_version: self.label.clone(),
            missing: Vec::new(),
            approver_role,
            break_glass_may_override,
            shadow: None,
        }
    }

    fn build_request(
        &self,
        request: &PolicyRequest,
        store: &RelationshipStore,
    ) -> Result<(Request, Entities, EntityUid), String> {
        let tenant = request
            .tenant
            .as_deref()
            .ok_or_else(|| "the request has no tenant".to_string())?;
        let actor = ActorEntities::build(&request.actor, tenant)?;
        let capability = capability_entity(request)?;
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
                    request.actor.delegation_chain.len().saturating_sub(1) as i64,
                ),
            ),
            ("arguments".into(), record(&request.arguments)?),
            ("risk".into(), risk_record(request)?),
            ("runtime".into(), runtime_record(request)?),
        ];
        if let Some(service) = &actor.service {
            context.push((
                "service".into(),
                RestrictedExpression::new_entity_uid(service.clone()),
            ));
        }
        if let Some(run_id) = &request.run_id {
            context.push((
                "run_id".into(),
                RestrictedExpression::new_string(run_id.clone()),
            ));
        }
        let add_known = |entity_uid: &EntityUid, entities: &mut Vec<Entity>| {
            for (_, known) in store.with_ancestors(entity_uid).unwrap_or_default() {
                if !entities.iter().any(|e| e.uid() == known.uid()) {
                    entities.push(known.clone());
                }
            }
        };
        if let Some(role) = &actor.agent_role {
            add_known(role, &mut entities);
        }
        for (key, entity) in &request.entities {
            let entity_uid = uid(&entity.entity_type, &entity.id)?;
            add_known(&entity_uid, &mut entities);
            context.push((
                key.clone(),
                RestrictedExpression::new_entity_uid(entity_uid),
            ));
        }
        let action = self
            .action_uids
            .get(&request.action)
            .cloned()
            .ok_or_else(|| format!("action {} is not declared", request.action.as_str()))?;
        let context = Context::from_pairs(context)
            .map_err(|e| format!("the request context is invalid: {e}"))?;
        let cedar_request =
            Request::new(actor.principal, action, resource_uid.clone(), context, None)
                .map_err(|e| format!("the request is malformed: {e}"))?;
        let entities = Entities::from_entities(entities, None)
            .map_err(|e| format!("the request's entities are inconsistent: {e}"))?;
        Ok((cedar_request, entities, resource_uid))
    }
}

fn missing_context(request: &PolicyRequest, store: &RelationshipStore) -> Vec<String> {
    let mut missing = missing_facts(request);
    for (key, entity) in &request.entities {
        let known = uid(&entity.entity_type, &entity.id)
            .map(|u| store.with_ancestors(&u).is_some())
            .unwrap_or(false);
        if !known {
            missing.push(format!(
                "context.{key} ({}::\"{}\" is unknown to the relationship store)",
                entity.entity_type, entity.id
            ));
        }
    }
    missing
}

struct ActorEntities {
    principal: EntityUid,
    agent_role: Option<EntityUid>,
    user: EntityUid,
    tenant: EntityUid,
    service: Option<EntityUid>,
    entities: Vec<Entity>,
}

impl ActorEntities {
    fn build(actor: &ActorFacts, tenant: &str) -> Result<Self, String> {
        let tenant = uid(types::TENANT, tenant)?;
        let user = uid(types::USER, &actor.user.id)?;
        let role_parents = actor
            .user
            .roles
            .iter()
            .map(|role| uid(types::ROLE, role))
            .collect::<Result<HashSet<_>, _>>()?;
        let user_entity = Entity::new(
            user.clone(),
            HashMap::from([
                (
                    "tenant".to_string(),
                    RestrictedExpression::new_entity_uid(tenant.clone()),
                ),
                ("scopes".to_string(), string_set(&actor.user.scopes)),
            ]),
            role_parents,
        )
        .map_err(|e| e.to_string())?;
        let mut entities = vec![user_entity];
        let mut agent_role = None;
        let principal = match &actor.agent {
            Some(agent) => {
                let agent_uid = uid(types::AGENT, &agent.id)?;
                let role = uid(types::AGENT_ROLE, &agent.role)?;
                entities.push(
                    Entity::new(
                        agent_uid.clone(),
                        HashMap::from([
                            (
                                "role".to_string(),
                                RestrictedExpression::new_string(agent.role.clone()),
                            ),
                            (
                                "profile".to_string(),
                                RestrictedExpression::new_entity_uid(role.clone()),
                            ),
                        ]),
                        HashSet::from([role.clone()]),
                    )
                    .map_err(|e| e.to_string())?,
                );
                agent_role = Some(role);
                agent_uid
            }
            None => user.clone(),
        };
        let service = actor
            .service
            .as_deref()
            .map(|s| uid(types::SERVICE, s))
            .transpose()?;
        Ok(Self {
            principal,
            agent_role,
            user,
            tenant,
            service,
            entities,
        })
    }
}

fn capability_entity(request: &PolicyRequest) -> Result<Entity, String> {
    let kind = request.action.kind();
    let mut attrs: HashMap<String, RestrictedExpression> = request
        .resource
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), attribute_expression(v)))
        .collect();
    if let Some(AttributeValue::String(risk)) = request.resource.attributes.get("risk") {
        let level = match risk.as_str() {
            "low" => 0,
            "medium" => 1,
            "high" => 2,
            "critical" => 3,
            other => {
                return Err(format!(
                    "risk `{other}` is not low, medium, high or critical"
                ))
            }
        };
        attrs.insert("risk_level".into(), RestrictedExpression::new_long(level));
    }
    if kind == CapabilityKind::Resource {
        attrs.insert(
            "uri".into(),
            RestrictedExpression::new_string(request.resource.id.clone()),
        );
    }
    let server = match request.resource.attributes.get("server") {
        Some(AttributeValue::String(server)) => server.clone(),
        _ => return Err("the resource has no server attribute".into()),
    };
    Entity::new(
        uid(kind.entity_type(), &request.resource.id)?,
        attrs,
        HashSet::from([uid(types::SERVER, &server)?]),
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
