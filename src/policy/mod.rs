//! The policy decision point (PDP): Cedar policies from `policies/`, deny by default.
//!
//! The decision rule, in one place ([`CompiledPolicySet::decide`]):
//! 1. a request that lacks what the capability is decided on (tenant, a contract attribute, a
//!    bound entity, an entity the relationship store does not know) is `require_more_context`,
//!    naming what is missing; it is never decided without it;
//! 2. a policy that errors during evaluation never silently drops out: an error about missing
//!    data is `require_more_context`, any other error is `deny`;
//! 3. a matching plain `forbid` is `deny`; a matching `@outcome("require_more_context")` forbid
//!    comes next, then `@outcome("require_approval")`;
//! 4. otherwise a matching `permit` is `allow`, with the union of the determining permits'
//!    `@obligation`s; without one, `deny` (deny by default).
//!
//! The PDP is pure and does no I/O per decision. Versions swap atomically on reload; the
//! version in effect is chosen by the manifest's effective window; a shadow (candidate) set can
//! be evaluated beside the enforced one on every decision.

pub mod contract;
pub mod entities;
pub mod load;
pub mod slice;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityUid, EvaluationError, PolicyId, Request,
    RestrictedExpression, Schema,
};

pub use contract::{
    Action, ActorFacts, AttributeValue, CapabilityKind, Decision, EntityRef, Outcome,
    PolicyRequest, ResourceFacts, ShadowDecision,
};
use entities::{types, uid, ActorEntities, RelationshipStore};
pub use load::{
    load_policies, EffectiveWindow, LoadedPolicies, Manifest, PolicyLoadError, PolicyMeta,
    PolicyProblem,
};
use slice::PolicySlices;

/// One loaded, validated, sliced version of a policy directory.
pub struct CompiledPolicySet {
    pub manifest: Manifest,
    pub window: EffectiveWindow,
    pub digest: String,
    pub warnings: Vec<PolicyProblem>,
    schema: Schema,
    slices: PolicySlices,
    meta: HashMap<PolicyId, PolicyMeta>,
    action_uids: HashMap<Action, EntityUid>,
    action_entities: Vec<Entity>,
    policy_count: usize,
    label: String,
    authorizer: Authorizer,
}

fn schema_problem(dir: &Path, message: String) -> PolicyLoadError {
    PolicyLoadError {
        problems: vec![PolicyProblem {
            file: dir.join(load::SCHEMA_FILE).display().to_string(),
            line: None,
            message,
        }],
    }
}

impl CompiledPolicySet {
    /// Loads a policies directory and its relationship data; refuses it on any problem.
    pub fn load(dir: &Path) -> Result<(Self, RelationshipStore), PolicyLoadError> {
        let loaded = load_policies(dir)?;
        let relationships =
            RelationshipStore::from_json(loaded.entity_json.clone(), &loaded.schema).map_err(
                |message| PolicyLoadError {
                    problems: vec![PolicyProblem {
                        file: dir.join(load::ENTITIES_DIR).display().to_string(),
                        line: None,
                        message,
                    }],
                },
            )?;
        Ok((Self::compile(loaded, dir)?, relationships))
    }

    fn compile(loaded: LoadedPolicies, dir: &Path) -> Result<Self, PolicyLoadError> {
        let schema_actions = loaded
            .schema
            .action_entities()
            .map_err(|e| schema_problem(dir, e.to_string()))?;
        let action_entities: Vec<Entity> = schema_actions.iter().cloned().collect();
        let mut action_uids = HashMap::new();
        for action in Action::ALL {
            let action_uid = uid("Action", action.as_str()).map_err(|m| schema_problem(dir, m))?;
            if !action_entities.iter().any(|e| e.uid() == action_uid) {
                return Err(schema_problem(
                    dir,
                    format!(
                        "the schema does not declare action \"{}\", which capgate decides on every such request",
                        action.as_str()
                    ),
                ));
            }
            action_uids.insert(action, action_uid);
        }
        let declared: Vec<String> = loaded
            .schema
            .entity_types()
            .map(|t| t.to_string())
            .collect();
        for required in types::GATEWAY_TYPES {
            if !declared.iter().any(|d| d == required) {
                return Err(schema_problem(
                    dir,
                    format!("the schema does not declare entity type `{required}`, which capgate builds for every request"),
                ));
            }
        }
        let slices = PolicySlices::build(&loaded.policies).map_err(|m| schema_problem(dir, m))?;
        Ok(Self {
            label: format!("{}@{}", loaded.manifest.id, loaded.manifest.version),
            policy_count: loaded.policies.num_of_policies(),
            manifest: loaded.manifest,
            window: loaded.window,
            digest: loaded.digest,
            warnings: loaded.warnings,
            schema: loaded.schema,
            slices,
            meta: loaded.meta,
            action_uids,
            // Action entities matter only for action groups (`action in Action::"group"`);
            // without groups, copying them into every request would only cost time.
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
        })
    }

    /// `<policy set id>@<version>`, carried by every decision.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn policy_count(&self) -> usize {
        self.policy_count
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn declares_entity_type(&self, name: &str) -> bool {
        self.schema.entity_types().any(|t| t.to_string() == name)
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
            shadow: None,
        }
    }

    /// The decision rule (see the module documentation).
    pub fn decide(&self, request: &PolicyRequest, store: &RelationshipStore) -> Decision {
        let what = format!(
            "{} {} `{}`",
            request.actor.describe(),
            request.action.as_str(),
            request.resource.id
        );
        let under = format!("under policy set {}", self.label);

        // 1. Completeness.
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
            return self.decision(
                Outcome::Deny,
                format!("denied {what}: no policies for this action ({under})"),
                Vec::new(),
            );
        };
        let authorizer = &self.authorizer;
        let response = authorizer.is_authorized(&cedar_request, &slice.all, &entities);
        // Approval, more context and evaluation errors matter only if something would permit
        // the request: without a permit the answer is deny, whatever else happened.
        let some_permit_applies = || {
            authorizer
                .is_authorized(&cedar_request, &slice.permits, &entities)
                .decision()
                == cedar_policy::Decision::Allow
        };

        // 3 and 4. Cedar's answer, refined by the determining policies' annotations.
        let determining: Vec<(&PolicyId, Option<&PolicyMeta>)> = response
            .diagnostics()
            .reason()
            .map(|id| (id, self.meta.get(id)))
            .collect();
        let ids: Vec<String> = determining.iter().map(|(id, _)| id.to_string()).collect();
        let plain_forbid = response.decision() == cedar_policy::Decision::Deny
            && determining
                .iter()
                .any(|(_, m)| m.is_some_and(|m| m.is_forbid && m.outcome.is_none()));

        // 2. Evaluation errors never drop a policy silently (a plain forbid still wins: it
        //    cannot be made less restrictive by what failed to evaluate).
        if !plain_forbid && response.diagnostics().errors().next().is_some() {
            if !some_permit_applies() {
                return self.decision(
                    Outcome::Deny,
                    format!("denied {what}: no policy permits it (deny by default; some policies could not be evaluated) ({under})"),
                    Vec::new(),
                );
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
        // The ids of the policies that produced this outcome come first; a default deny has
        // none (annotated forbids that matched did not decide it).
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
            for known in store.with_ancestors(entity_uid).unwrap_or_default() {
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
        // Not re-validated against the schema per call: every part is built here with typed
        // constructors, and what a request must state is checked by `missing_context` first.
        let cedar_request =
            Request::new(actor.principal, action, resource_uid.clone(), context, None)
                .map_err(|e| format!("the request is malformed: {e}"))?;
        let entities = Entities::from_entities(entities, None)
            .map_err(|e| format!("the request's entities are inconsistent: {e}"))?;
        Ok((cedar_request, entities, resource_uid))
    }
}

/// What the request lacks that its capability is decided on.
fn missing_context(request: &PolicyRequest, store: &RelationshipStore) -> Vec<String> {
    let mut missing = Vec::new();
    if request.tenant.as_deref().is_none_or(str::is_empty) {
        missing.push("tenant".to_string());
    }
    for attribute in request.action.kind().required_attributes() {
        if !request.resource.attributes.contains_key(*attribute) {
            missing.push(format!("resource.{attribute}"));
        }
    }
    for key in &request.resource.requires {
        if !request.entities.contains_key(key) {
            missing.push(format!("context.{key}"));
        }
    }
    // Runtime facts capgate always states; unknown is not the same as "none".
    if request.runtime.workflow_node.is_none() {
        missing.push("runtime.workflow_node".to_string());
    }
    if request.risk.score.is_none() {
        missing.push("risk.score".to_string());
    }
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

/// The agent-facing reason: outcome and advice, no policy ids, no other tenant's data.
fn agent_reason(outcome: Outcome, advice: &[String], missing: &[String]) -> String {
    let base = match outcome {
        Outcome::Allow => "allowed".to_string(),
        Outcome::Deny => "not permitted by policy".to_string(),
        Outcome::RequireApproval => "this action requires an approval first".to_string(),
        Outcome::RequireMoreContext if missing.is_empty() => {
            "more context is needed before this can be decided".to_string()
        }
        Outcome::RequireMoreContext => format!("more context is needed: {}", missing.join(", ")),
    };
    if advice.is_empty() {
        base
    } else {
        format!("{base}; {}", advice.join("; "))
    }
}

fn attribute_expression(value: &AttributeValue) -> RestrictedExpression {
    match value {
        AttributeValue::Bool(b) => RestrictedExpression::new_bool(*b),
        AttributeValue::Long(n) => RestrictedExpression::new_long(*n),
        AttributeValue::String(s) => RestrictedExpression::new_string(s.clone()),
        AttributeValue::Set(items) => RestrictedExpression::new_set(
            items.iter().cloned().map(RestrictedExpression::new_string),
        ),
    }
}

fn new_record(
    fields: impl IntoIterator<Item = (String, RestrictedExpression)>,
) -> Result<RestrictedExpression, String> {
    RestrictedExpression::new_record(fields).map_err(|e| format!("building a context record: {e}"))
}

fn record(
    values: &std::collections::BTreeMap<String, AttributeValue>,
) -> Result<RestrictedExpression, String> {
    new_record(
        values
            .iter()
            .map(|(k, v)| (k.clone(), attribute_expression(v))),
    )
}

fn risk_record(request: &PolicyRequest) -> Result<RestrictedExpression, String> {
    let mut fields = vec![(
        "signals".to_string(),
        RestrictedExpression::new_set(
            request
                .risk
                .signals
                .iter()
                .cloned()
                .map(RestrictedExpression::new_string),
        ),
    )];
    if let Some(score) = request.risk.score {
        fields.push(("score".into(), RestrictedExpression::new_long(score)));
    }
    new_record(fields)
}

fn runtime_record(request: &PolicyRequest) -> Result<RestrictedExpression, String> {
    let runtime = &request.runtime;
    let mut fields = Vec::new();
    if let Some(n) = runtime.budget_remaining {
        fields.push((
            "budget_remaining".to_string(),
            RestrictedExpression::new_long(n),
        ));
    }
    if let Some(n) = runtime.pending_approvals {
        fields.push((
            "pending_approvals".to_string(),
            RestrictedExpression::new_long(n),
        ));
    }
    if let Some(node) = &runtime.workflow_node {
        fields.push((
            "workflow_node".to_string(),
            RestrictedExpression::new_string(node.clone()),
        ));
    }
    if let Some(granted) = runtime.approval_granted {
        fields.push((
            "approval_granted".to_string(),
            RestrictedExpression::new_bool(granted),
        ));
    }
    new_record(fields)
}

/// The capability as a Cedar entity: contract attributes, parent = its server.
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
        std::collections::HashSet::from([uid(types::SERVER, &server)?]),
    )
    .map_err(|e| e.to_string())
}

/// The PDP as the gateway holds it: the enforced version(s), an optional shadow set, and the
/// relationship store, each swappable atomically.
pub struct PolicyEngine {
    dir: PathBuf,
    shadow_dir: Option<PathBuf>,
    /// Loaded versions; the one in effect is the newest whose window contains `now`.
    versions: ArcSwap<Vec<Arc<CompiledPolicySet>>>,
    shadow: ArcSwapOption<CompiledPolicySet>,
    relationships: ArcSwap<RelationshipStore>,
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl PolicyEngine {
    /// Loads the enforced set (and the shadow set, if any); refuses start on any problem.
    pub fn load(dir: &Path, shadow_dir: Option<&Path>) -> Result<Arc<Self>, PolicyLoadError> {
        let (set, relationships) = CompiledPolicySet::load(dir)?;
        let shadow = match shadow_dir {
            Some(shadow_dir) => Some(Arc::new(CompiledPolicySet::load(shadow_dir)?.0)),
            None => None,
        };
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            shadow_dir: shadow_dir.map(Path::to_path_buf),
            versions: ArcSwap::from_pointee(vec![Arc::new(set)]),
            shadow: ArcSwapOption::new(shadow),
            relationships: ArcSwap::from_pointee(relationships),
        }))
    }

    /// The version in effect at `now`, if any.
    pub fn effective(&self, now: i64) -> Option<Arc<CompiledPolicySet>> {
        self.versions
            .load()
            .iter()
            .filter(|v| v.window.contains(now))
            .max_by_key(|v| v.window.from.unwrap_or(i64::MIN))
            .cloned()
    }

    /// The newest loaded version (in effect or not), for status and startup checks.
    pub fn latest(&self) -> Arc<CompiledPolicySet> {
        let versions = self.versions.load();
        versions
            .last()
            .cloned()
            .expect("the engine always holds at least the version it was loaded with")
    }

    /// The shadow set's label, when one is configured.
    pub fn shadow_label(&self) -> Option<String> {
        self.shadow.load().as_ref().map(|s| s.label().to_string())
    }

    pub fn relationship_count(&self) -> usize {
        self.relationships.load().len()
    }

    /// Decides one request, and its shadow decision when a candidate set is configured.
    pub fn decide(&self, request: &PolicyRequest) -> Decision {
        let now = request.environment.now.unwrap_or_else(now_unix);
        let store = self.relationships.load();
        let mut decision = match self.effective(now) {
            Some(set) => set.decide(request, &store),
            None => {
                let latest = self.latest();
                Decision {
                    outcome: Outcome::Deny,
                    obligations: Vec::new(),
                    advice: Vec::new(),
                    reason: format!(
                        "denied: no policy set is in effect at {now} (latest loaded: {}, effective {:?} to {:?})",
                        latest.label(),
                        latest.manifest.effective_from,
                        latest.manifest.effective_until
                    ),
                    agent_reason: agent_reason(Outcome::Deny, &[], &[]),
                    policy_id: None,
                    policy_ids: Vec::new(),
                    policy_version: latest.label().to_string(),
                    missing: Vec::new(),
                    approver_role: None,
                    shadow: None,
                }
            }
        };
        if let Some(shadow) = self.shadow.load_full() {
            let candidate = shadow.decide(request, &store);
            decision.shadow = Some(ShadowDecision {
                differs: candidate.outcome != decision.outcome
                    || candidate.obligations != decision.obligations,
                policy_version: candidate.policy_version,
                outcome: candidate.outcome,
                policy_ids: candidate.policy_ids,
            });
        }
        decision
    }

    /// Re-reads the policy directory (and the shadow one): validates, then swaps atomically.
    /// On any problem the running version stays and the error says why.
    pub fn reload(&self) -> Result<String, PolicyLoadError> {
        let (set, _) = CompiledPolicySet::load(&self.dir)?;
        let relationships =
            self.relationships
                .load()
                .revalidate(set.schema())
                .map_err(|message| PolicyLoadError {
                    problems: vec![PolicyProblem {
                        file: self.dir.join(load::ENTITIES_DIR).display().to_string(),
                        line: None,
                        message: format!(
                            "the relationship store does not fit the new schema: {message}"
                        ),
                    }],
                })?;
        let shadow = match &self.shadow_dir {
            Some(dir) => Some(Arc::new(CompiledPolicySet::load(dir)?.0)),
            None => None,
        };
        let label = set.label().to_string();
        let now = now_unix();
        let set = Arc::new(set);
        // Keep what is in effect now while a new version waits for its effective_from.
        let mut versions: Vec<Arc<CompiledPolicySet>> = self
            .effective(now)
            .into_iter()
            .filter(|current| !set.window.contains(now) && current.label() != set.label())
            .collect();
        versions.push(set);
        self.versions.store(Arc::new(versions));
        self.relationships.store(Arc::new(relationships));
        self.shadow.store(shadow);
        Ok(label)
    }

    /// Adds or replaces relationship entities (Cedar entity JSON), validated against the
    /// schema; the store swaps atomically and the next decision sees it.
    pub fn update_relationships(&self, updates: Vec<serde_json::Value>) -> Result<usize, String> {
        let latest = self.latest();
        let store = self.relationships.load().upsert(updates, latest.schema())?;
        let count = store.len();
        self.relationships.store(Arc::new(store));
        Ok(count)
    }
}
