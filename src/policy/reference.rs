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

use super::contract::{
    Action, ActorFacts, AttributeValue, CapabilityKind, Decision, Outcome, PolicyRequest,
};
use super::entities::{types, uid, RelationshipStore};
use super::load::{load_policies, PolicyMeta};
use super::request::{attribute_expression, record, risk_record, runtime_record, string_set};
use super::slice::PolicySlices;
use super::{agent_reason, CompiledPolicySet};

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
    let mut missing = super::missing_facts(request);
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
mod tests {
    //! The optimised decision path against the reference, on every scenario request of
    //! `policies/tests/` and variations of each (attributes dropped, other actors, other
    //! actions, malformed contracts), over the repository's policies, each of their forbids
    //! turned into a permit, and a set that exercises evaluation errors and action groups.

    use std::path::{Path, PathBuf};

    use super::ReferencePdp;
    use crate::policy::contract::{AgentFacts, AttributeValue, EntityRef, PolicyRequest};
    use crate::policy::{Action, Outcome};
    use crate::registry::Registry;
    use crate::scenarios::{parse_file, scenario_files, scenario_request};

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn scenario_requests() -> Vec<(String, PolicyRequest)> {
        let registry =
            Registry::load(&repo().join("capabilities"), None).expect("load capabilities");
        let mut requests = Vec::new();
        for path in scenario_files(&repo().join("policies/tests")).expect("scenario files") {
            for scenario in parse_file(&path).expect("scenario file").scenarios {
                let request = scenario_request(&scenario, &registry)
                    .unwrap_or_else(|e| panic!("`{}`: {e}", scenario.name));
                requests.push((scenario.name, request));
            }
        }
        assert!(requests.len() >= 100, "only {} scenarios", requests.len());
        requests
    }

    /// `request` and requests near it: one thing dropped, changed or malformed at a time.
    fn variants(name: &str, request: &PolicyRequest) -> Vec<(String, PolicyRequest)> {
        let mut out = vec![(name.to_string(), request.clone())];
        let mut add = |what: &str, edit: &dyn Fn(&mut PolicyRequest)| {
            let mut changed = request.clone();
            edit(&mut changed);
            if changed != *request {
                out.push((format!("{name} / {what}"), changed));
            }
        };
        add("no tenant", &|r| r.tenant = None);
        add("empty tenant", &|r| r.tenant = Some(String::new()));
        add("other tenant", &|r| r.tenant = Some("globex".into()));
        for key in request.resource.attributes.keys() {
            add(&format!("without resource.{key}"), &|r| {
                r.resource.attributes.remove(key);
            });
        }
        for key in request.entities.keys() {
            add(&format!("without entity {key}"), &|r| {
                r.entities.remove(key);
            });
            add(&format!("unknown entity {key}"), &|r| {
                if let Some(e) = r.entities.get_mut(key) {
                    e.id = "no-such-entity".into();
                }
            });
            add(&format!("entity {key} of a malformed type"), &|r| {
                if let Some(e) = r.entities.get_mut(key) {
                    e.entity_type = "Not A Type".into();
                }
            });
            add(
                &format!("entity {key} of a type spelled with spaces"),
                &|r| {
                    if let Some(e) = r.entities.get_mut(key) {
                        e.entity_type = format!(" {} ", e.entity_type);
                    }
                },
            );
        }
        for key in request.arguments.keys() {
            add(&format!("without argument {key}"), &|r| {
                r.arguments.remove(key);
            });
        }
        add("no runtime facts", &|r| r.runtime = Default::default());
        add("approval granted", &|r| {
            r.runtime.approval_granted = Some(true)
        });
        add("approval not granted", &|r| {
            r.runtime.approval_granted = Some(false)
        });
        add("at workflow node draft", &|r| {
            r.runtime.workflow_node = Some("draft".into())
        });
        add("at an unknown workflow node", &|r| {
            r.runtime.workflow_node = Some("nowhere".into())
        });
        add("budget", &|r| {
            r.runtime.budget_remaining = Some(3);
            r.runtime.pending_approvals = Some(1);
        });
        add("high risk score", &|r| r.risk.score = Some(95));
        add("no risk score", &|r| r.risk.score = None);
        add("risk signals", &|r| {
            r.risk.signals = vec!["prompt_injection".into()]
        });
        add("no service", &|r| r.actor.service = None);
        add("notification service", &|r| {
            r.actor.service = Some("notification-service".into())
        });
        add("run id", &|r| r.run_id = Some("run-7".into()));
        add("no run id", &|r| r.run_id = None);
        add("in person", &|r| r.actor.agent = None);
        for role in [
            "drafting-agent",
            "risk-agent",
            "supervisor-agent",
            "memory-curator-agent",
            "notification-service",
            "rogue-agent",
        ] {
            add(&format!("as {role}"), &|r| {
                r.actor.agent = Some(AgentFacts {
                    id: format!("{role}-1"),
                    role: role.into(),
                })
            });
        }
        add("senior reviewer", &|r| {
            r.actor.user.roles = vec!["senior_reviewer".into(), "analyst".into()]
        });
        add("no roles", &|r| r.actor.user.roles.clear());
        add("scopes", &|r| {
            r.actor.user.scopes = vec!["cases:read".into(), "cases:read".into()]
        });
        add("user dana", &|r| r.actor.user.id = "dana".into());
        add("long delegation chain", &|r| {
            r.actor.delegation_chain = vec!["a".into(), "b".into(), "c".into()]
        });
        let other_action = match request.action {
            Action::DiscoverTool => Action::CallTool,
            Action::CallTool => Action::DiscoverTool,
            Action::DiscoverResource => Action::ReadResource,
            Action::ReadResource => Action::DiscoverResource,
            Action::DiscoverPrompt => Action::GetPrompt,
            Action::GetPrompt => Action::DiscoverPrompt,
        };
        add("the other action of its kind", &|r| r.action = other_action);
        add("an unknown risk level", &|r| {
            r.resource
                .attributes
                .insert("risk".into(), AttributeValue::String("extreme".into()));
        });
        add("risk that is not a string", &|r| {
            r.resource
                .attributes
                .insert("risk".into(), AttributeValue::Long(2));
        });
        add("an effect that is not a string", &|r| {
            r.resource
                .attributes
                .insert("effect".into(), AttributeValue::Bool(true));
        });
        add("a server that is not a string", &|r| {
            r.resource
                .attributes
                .insert("server".into(), AttributeValue::Long(1));
        });
        add("a contract risk_level and uri", &|r| {
            r.resource
                .attributes
                .insert("risk_level".into(), AttributeValue::Long(0));
            r.resource
                .attributes
                .insert("uri".into(), AttributeValue::String("x://y".into()));
        });
        add("a set attribute", &|r| {
            r.resource.attributes.insert(
                "tags".into(),
                AttributeValue::Set(vec!["a".into(), "b".into()]),
            );
            r.arguments
                .insert("flag".into(), AttributeValue::Bool(true));
        });
        for key in ["user", "service", "arguments"] {
            add(&format!("an entity bound as context.{key}"), &|r| {
                r.entities.insert(
                    key.into(),
                    EntityRef {
                        entity_type: "Case".into(),
                        id: "case-101".into(),
                    },
                );
            });
        }
        add("a second case", &|r| {
            r.entities.insert(
                "draft".into(),
                EntityRef {
                    entity_type: "Draft".into(),
                    id: "draft-1".into(),
                },
            );
        });
        out
    }

    fn assert_same(dir: &Path, requests: &[(String, PolicyRequest)]) -> usize {
        let (reference, optimised, store) = ReferencePdp::load(dir);
        for (name, request) in requests {
            let expected = reference.decide(request, &store);
            let actual = optimised.decide(request, &store);
            assert_eq!(
                actual,
                expected,
                "`{name}` over {}: the optimised decision differs from the reference",
                dir.display()
            );
        }
        requests.len()
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("create dir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("dir entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                if entry.file_name() != "tests" {
                    copy_dir(&entry.path(), &target);
                }
            } else {
                std::fs::copy(entry.path(), &target).expect("copy file");
            }
        }
    }

    fn all_requests() -> Vec<(String, PolicyRequest)> {
        scenario_requests()
            .iter()
            .flat_map(|(name, request)| variants(name, request))
            .collect()
    }

    #[test]
    fn every_scenario_and_its_variants_are_decided_as_the_reference_decides() {
        let requests = all_requests();
        let decided = assert_same(&repo().join("policies"), &requests);
        assert!(decided > 2_000, "only {decided} requests compared");
    }

    /// The forbid `id` in `text` turned into a permit, its `@outcome`, `@approver` and
    /// `@break_glass` dropped.
    fn forbid_to_permit(text: &str, id: &str) -> Option<String> {
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.trim() == format!("@id(\"{id}\")"))?;
        let mut out: Vec<String> = Vec::new();
        let mut in_head = false;
        for (i, line) in lines.iter().enumerate() {
            let annotation = line.trim_start().starts_with('@');
            if i == at {
                in_head = true;
            }
            if in_head
                && annotation
                && (line.contains("@outcome")
                    || line.contains("@approver")
                    || line.contains("@break_glass"))
            {
                continue;
            }
            if in_head && line.trim_start().starts_with("forbid") {
                out.push(line.replacen("forbid", "permit", 1));
                in_head = false;
                continue;
            }
            out.push(line.to_string());
        }
        Some(out.join("\n"))
    }

    #[test]
    fn each_forbid_turned_into_a_permit_is_decided_as_the_reference_decides() {
        let requests: Vec<(String, PolicyRequest)> = scenario_requests();
        let policies = repo().join("policies");
        let mut mutations = 0;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&policies)
            .expect("read policies")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read policy file");
            let ids: Vec<String> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("@id(\""))
                .filter_map(|l| l.strip_suffix("\")"))
                .map(str::to_string)
                .collect();
            for id in ids {
                let Some(mutated) = forbid_to_permit(&text, &id) else {
                    continue;
                };
                if mutated == text {
                    continue;
                }
                let dir = tempfile::tempdir().expect("tempdir");
                copy_dir(&policies, dir.path());
                let name = file.file_name().expect("file name");
                std::fs::write(dir.path().join(name), mutated).expect("write mutation");
                if crate::policy::load_policies(dir.path()).is_err() {
                    continue;
                }
                assert_same(dir.path(), &requests);
                mutations += 1;
            }
        }
        assert!(mutations >= 10, "only {mutations} mutations compared");
    }

    /// Policies whose evaluation errors (missing data, overflow), overlapping permits and
    /// forbids, and an action group, which the repository's policies do not have.
    const EXOTIC: &str = r#"
@id("exotic-overflow")
@reason("costs overflow")
@break_glass("never")
forbid (principal, action == Action::"call_tool", resource is Tool)
when { context.arguments has scope && resource.cost * 4611686018427387904 > 0 };

@id("exotic-unknown-profile")
@obligation("audit:exotic")
permit (principal is Agent, action in Action::"tool_actions", resource is Tool)
when { !principal.profile.workflow_nodes.contains("nowhere") && resource.server == "case" };

@id("exotic-second-permit")
@obligation("redact:exotic")
@advice("exotic advice")
permit (principal, action in [Action::"discover_tool", Action::"call_tool"], resource is Tool)
when { resource.server == "case" && resource.effect == "read" };

@id("exotic-approval")
@reason("exotic approval")
@advice("ask someone")
@approver("exotic_approver")
@outcome("require_approval")
forbid (principal, action in Action::"tool_actions", resource is Tool)
when { context has run_id && context.run_id == "run-7" };

@id("exotic-more-context")
@outcome("require_more_context")
forbid (principal, action, resource)
when { context.risk.signals.contains("prompt_injection") };

@id("exotic-draft-status")
@reason("drafts in review")
forbid (principal, action, resource)
when { context has draft && context.draft.status == "approval_requested" && context.delegation_depth > 1 };

@id("exotic-unless-service")
@reason("no runtime service stated")
forbid (principal is User, action == Action::"discover_tool", resource)
unless { context has service && context.service == Service::"agent-runtime" };

@id("exotic-late-guard")
@break_glass("never")
forbid (principal is Agent, action == Action::"call_tool", resource)
when { principal.profile.workflow_nodes.contains("closing") && context has draft };

@id("exotic-either-guard")
@outcome("require_more_context")
forbid (principal, action == Action::"call_tool", resource)
when { context has draft || context.delegation_depth > 1 };

@id("exotic-uri")
@reason("resource attributes as capgate derives them")
forbid (principal, action == Action::"read_resource", resource is Resource)
when { resource.uri == "x://y" || resource.risk_level == 0 };

@id("exotic-senior-prompts")
@obligation("audit:senior-prompt")
permit (principal in Role::"senior_reviewer", action == Action::"get_prompt", resource);

@id("exotic-writes-by-analysts")
@advice("writes by analysts are reviewed")
@outcome("require_more_context")
forbid (principal, action == Action::"call_tool", resource is Tool)
when
{
  resource.effect != "read" &&
  (context.user in Role::"analyst" || principal in AgentRole::"risk-agent") &&
  resource.risk == "medium"
};

@id("exotic-other-uri")
@reason("a resource read by another uri than its contract states")
forbid (principal, action == Action::"read_resource", resource is Resource)
when { resource.uri != "x://y" && context.delegation_depth > 5 };

@id("exotic-dana")
permit (principal == User::"dana", action, resource is Tool)
when { context has case && resource.server == "case" };
"#;

    #[test]
    fn errors_overlaps_and_action_groups_are_decided_as_the_reference_decides() {
        let policies = repo().join("policies");
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&policies, dir.path());
        let schema_path = dir.path().join(crate::policy::load::SCHEMA_FILE);
        let schema = std::fs::read_to_string(&schema_path).expect("read schema");
        let grouped = schema.replacen(
            "action discover_tool, call_tool appliesTo",
            "action tool_actions;\naction discover_tool, call_tool in [tool_actions] appliesTo",
            1,
        );
        assert_ne!(
            grouped, schema,
            "the schema's tool actions are where this test expects"
        );
        std::fs::write(&schema_path, grouped).expect("write schema");
        std::fs::write(dir.path().join("zz-exotic.cedar"), EXOTIC).expect("write policies");
        if let Err(e) = crate::policy::load_policies(dir.path()) {
            panic!("the exotic policies load: {e}");
        }
        let requests = all_requests();
        assert_same(dir.path(), &requests);

        // The set exercises what it is for.
        let (_, optimised, store) = ReferencePdp::load(dir.path());
        let decisions: Vec<_> = requests
            .iter()
            .map(|(_, r)| optimised.decide(r, &store))
            .collect();
        let reason_has = |text: &str| decisions.iter().any(|d| d.reason.contains(text));
        assert!(reason_has(
            "could not be evaluated, so capgate fails closed"
        ));
        assert!(reason_has("some policies could not be evaluated"));
        assert!(decisions
            .iter()
            .any(|d| d.approver_role.as_deref() == Some("exotic_approver")));
        assert!(decisions.iter().any(|d| d.policy_ids.len() > 1));
        assert!(decisions
            .iter()
            .any(|d| d.obligations.contains(&"audit:exotic".to_string())));
        // A refusal a forbid marked `@break_glass("never")` took part in, by matching or by
        // failing to evaluate, is not for break-glass; other denials are.
        let refused = |overridable: bool| {
            decisions
                .iter()
                .any(|d| d.outcome == Outcome::Deny && d.break_glass_may_override == overridable)
        };
        assert!(refused(true) && refused(false));
        assert!(decisions.iter().any(|d| d.outcome == Outcome::Deny
            && !d.break_glass_may_override
            && d.reason.contains("could not be evaluated")));
    }
}
