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
//! A refusal says whether a break-glass grant may override it
//! ([`Decision::break_glass_may_override`]): a `deny` or `require_approval` may be, unless a
//! forbid marked `@break_glass("never")` (tenant isolation) matched or could not be evaluated;
//! `require_more_context`, and a request that could not be built, never.
//!
//! The PDP is pure and does no I/O per decision. Versions swap atomically on reload; the
//! version in effect is chosen by the manifest's effective window; a shadow (candidate) set can
//! be evaluated beside the enforced one on every decision.
//!
//! Per decision, the PDP builds only what depends on the request (`request.rs`): whatever can
//! be known from the policy set alone (type names, action uids and entities, policy slices, each
//! policy's rendered id and reason) is prepared when the set is loaded. Cedar is asked once;
//! a second time, over the permits alone, only when a forbid with an `@outcome` matched and
//! its answer depends on whether anything would permit the request.

pub mod admin;
pub mod contract;
pub mod entities;
mod guards;
pub mod load;
pub mod obligation;
#[cfg(test)]
mod reference;
mod request;
pub mod slice;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use cedar_policy::{Authorizer, Entity, EvaluationError, PolicyId, Schema};

pub use admin::{
    AdminAction, AdminDecision, AdminOutcome, AdminPolicySet, AdminRequest, AdminResource,
    AdminRoles,
};
pub use contract::{
    Action, ActorFacts, AttributeValue, CapabilityKind, Decision, EntityRef, Outcome,
    PolicyRequest, ResourceFacts, ShadowDecision,
};
use entities::{types, uid, RelationshipStore};
pub use load::{
    load_policies, EffectiveWindow, LoadedPolicies, Manifest, PolicyLoadError, PolicyMeta,
    PolicyProblem,
};
pub use obligation::{Obligation, ObligationParseError, Obligations, Pattern};
use request::{BoundEntity, RequestParts};
use slice::PolicySlices;

/// What a set knows about one of its policies, rendered once at load.
#[derive(Clone)]
struct PolicyInfo {
    /// Position in the set (files in name order, policies in file order). Determining policies
    /// are listed in this order: Cedar reports them as an unordered set.
    ordinal: usize,
    id: String,
    /// "`id` (reason)", as decision reasons name the policy.
    explained: String,
    meta: Option<PolicyMeta>,
}

impl PolicyInfo {
    fn new(ordinal: usize, id: &PolicyId, meta: Option<PolicyMeta>) -> Self {
        Self {
            ordinal,
            id: id.to_string(),
            explained: match meta.as_ref().and_then(|m| m.reason.as_deref()) {
                Some(reason) => format!("`{id}` ({reason})"),
                None => format!("`{id}`"),
            },
            meta,
        }
    }

    fn outcome(&self) -> Option<Outcome> {
        self.meta.as_ref().and_then(|m| m.outcome)
    }

    fn break_glass_never(&self) -> bool {
        self.meta.as_ref().is_some_and(|m| m.break_glass_never)
    }

    fn is_plain_forbid(&self) -> bool {
        self.meta
            .as_ref()
            .is_some_and(|m| m.is_forbid && m.outcome.is_none())
    }
}

/// One loaded, validated, sliced version of a policy directory.
pub struct CompiledPolicySet {
    pub manifest: Manifest,
    pub window: EffectiveWindow,
    pub digest: String,
    pub warnings: Vec<PolicyProblem>,
    schema: Schema,
    slices: PolicySlices,
    policies: HashMap<PolicyId, PolicyInfo>,
    parts: RequestParts,
    policy_count: usize,
    label: String,
    /// "under policy set <label>", which every reason ends with.
    under: String,
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
        let mut action_uids = Vec::with_capacity(Action::ALL.len());
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
            action_uids.push(action_uid);
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
        // Action entities matter only for action groups (`action in Action::"group"`); without
        // groups, copying them into every request would only cost time.
        let has_groups = action_entities.iter().any(|a| {
            schema_actions
                .ancestors(&a.uid())
                .is_some_and(|mut up| up.next().is_some())
        });
        let parts = RequestParts::new(
            &loaded.schema,
            action_uids
                .try_into()
                .map_err(|_| schema_problem(dir, "capgate decides six actions".into()))?,
            if has_groups {
                action_entities
            } else {
                Vec::new()
            },
        )
        .map_err(|m| schema_problem(dir, m))?;
        let policies = loaded
            .policies
            .policies()
            .enumerate()
            .map(|(ordinal, policy)| {
                let info =
                    PolicyInfo::new(ordinal, policy.id(), loaded.meta.get(policy.id()).cloned());
                (policy.id().clone(), info)
            })
            .collect();
        let label = format!("{}@{}", loaded.manifest.id, loaded.manifest.version);
        Ok(Self {
            under: format!("under policy set {label}"),
            label,
            policy_count: loaded.policies.num_of_policies(),
            manifest: loaded.manifest,
            window: loaded.window,
            digest: loaded.digest,
            warnings: loaded.warnings,
            schema: loaded.schema,
            slices,
            policies,
            parts,
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
            break_glass_may_override: false,
            shadow: None,
        }
    }

    fn info(&self, id: &PolicyId) -> Cow<'_, PolicyInfo> {
        match self.policies.get(id) {
            Some(info) => Cow::Borrowed(info),
            // Every policy Cedar can name comes from this set; an unknown one is listed last.
            None => Cow::Owned(PolicyInfo::new(usize::MAX, id, None)),
        }
    }

    /// The decision rule (see the module documentation).
    pub fn decide(&self, request: &PolicyRequest, store: &RelationshipStore) -> Decision {
        // Who asks for what, for reasons; formatted only once a reason is.
        let what = || {
            format!(
                "{} {} `{}`",
                request.actor.describe(),
                request.action.as_str(),
                request.resource.id
            )
        };
        let under = &self.under;

        // 1. Completeness.
        let bound = self.parts.bind(request, store);
        let missing = missing_context(request, &bound);
        if !missing.is_empty() {
            let mut decision = self.decision(
                Outcome::RequireMoreContext,
                format!(
                    "{} needs more context: missing {} ({under})",
                    what(),
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

        let cedar = match self.parts.build(request, &bound, store) {
            Ok(built) => built,
            Err(problem) => {
                return self.decision(
                    Outcome::Deny,
                    format!("denied {}: {problem} ({under})", what()),
                    Vec::new(),
                )
            }
        };
        let Some(slice) = self.slices.slice(request.action, &cedar.resource) else {
            let mut decision = self.decision(
                Outcome::Deny,
                format!("denied {}: no policies for this action ({under})", what()),
                Vec::new(),
            );
            decision.break_glass_may_override = true;
            return decision;
        };
        let policies = slice.for_request(&cedar.facts());
        let authorizer = &self.authorizer;
        let response = authorizer.is_authorized(&cedar.request, &policies.all, &cedar.entities);
        let allowed = response.decision() == cedar_policy::Decision::Allow;
        let mut determining: Vec<Cow<'_, PolicyInfo>> = response
            .diagnostics()
            .reason()
            .map(|id| self.info(id))
            .collect();
        determining.sort_by_key(|p| p.ordinal);
        // Approval, more context and evaluation errors matter only if something would permit
        // the request: without a permit the answer is deny, whatever else happened. Cedar's
        // answer settles it unless a forbid decided it: an allow was decided by a permit; a
        // deny that no policy decided had no permit (nor forbid) match. Residuals, which would
        // hide a match, only come from unknowns, and show as errors.
        let no_residuals = || {
            !response.diagnostics().errors().any(|error| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
                matches!(e.inner(), EvaluationError::NonValue(_))
            })
        };
        let some_permit_applies = || {
            if allowed {
                return true;
            }
            if determining.is_empty() && no_residuals() {
                return false;
            }
            authorizer
                .is_authorized(&cedar.request, &policies.permits, &cedar.entities)
                .decision()
                == cedar_policy::Decision::Allow
        };

        // 3 and 4. Cedar's answer, refined by the determining policies' annotations.
        let plain_forbid = !allowed && determining.iter().any(|p| p.is_plain_forbid());

        // 2. Evaluation errors never drop a policy silently (a plain forbid still wins: it
        //    cannot be made less restrictive by what failed to evaluate).
        if !plain_forbid && response.diagnostics().errors().next().is_some() {
            // What failed to evaluate may be a forbid no grant may override.
            let erring_never = response.diagnostics().errors().any(|error| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
                self.info(e.policy_id()).break_glass_never()
            });
            if !some_permit_applies() {
                let mut decision = self.decision(
                    Outcome::Deny,
                    format!("denied {}: no policy permits it (deny by default; some policies could not be evaluated) ({under})", what()),
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
            let outcome = if missing_data {
                Outcome::RequireMoreContext
            } else {
                Outcome::Deny
            };
            let mut decision = self.decision(
                outcome,
                format!(
                    "{} {}: a policy could not be evaluated, so capgate fails closed: {} ({under})",
                    outcome.as_str(),
                    what(),
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

        let advice: Vec<String> = determining
            .iter()
            .filter_map(|p| p.meta.as_ref())
            .flat_map(|m| m.advice.iter())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .cloned()
            .collect();
        let outcome = if allowed {
            Outcome::Allow
        } else if determining.is_empty()
            || determining.iter().any(|p| p.outcome().is_none())
            || !some_permit_applies()
        {
            Outcome::Deny
        } else if determining
            .iter()
            .any(|p| p.outcome() == Some(Outcome::RequireMoreContext))
        {
            Outcome::RequireMoreContext
        } else {
            Outcome::RequireApproval
        };
        // The ids of the policies that produced this outcome come first; a default deny has
        // none (annotated forbids that matched did not decide it).
        let policy_ids: Vec<String> = if outcome == Outcome::Deny && !plain_forbid {
            Vec::new()
        } else {
            let mut ordered: Vec<&PolicyInfo> = determining.iter().map(|p| p.as_ref()).collect();
            ordered.sort_by_key(|p| match (outcome, p.outcome()) {
                (Outcome::Deny, None) | (Outcome::Allow, _) => 0,
                (o, Some(annotated)) if o == annotated => 0,
                _ => 1,
            });
            ordered.into_iter().map(|p| p.id.clone()).collect()
        };
        let explained = || {
            determining
                .iter()
                .map(|p| p.explained.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let reason = match outcome {
            Outcome::Allow => format!("allowed {} by {} ({under})", what(), explained()),
            Outcome::Deny if !plain_forbid => {
                format!(
                    "denied {}: no policy permits it (deny by default) ({under})",
                    what()
                )
            }
            Outcome::Deny => format!("denied {} by forbid {} ({under})", what(), explained()),
            Outcome::RequireApproval => {
                format!("{} requires approval: {} ({under})", what(), explained())
            }
            Outcome::RequireMoreContext => {
                format!(
                    "{} requires more context: {} ({under})",
                    what(),
                    explained()
                )
            }
        };
        let obligations: Vec<String> = if outcome == Outcome::Allow {
            determining
                .iter()
                .filter_map(|p| p.meta.as_ref())
                .flat_map(|m| m.obligations.iter())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let approver_role = if outcome == Outcome::RequireApproval {
            determining
                .iter()
                .find_map(|p| p.meta.as_ref().and_then(|m| m.approver_role.clone()))
        } else {
            None
        };
        let break_glass_may_override = matches!(outcome, Outcome::Deny | Outcome::RequireApproval)
            && !determining.iter().any(|p| p.break_glass_never());
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
}

/// What the request lacks that its capability is decided on.
fn missing_context(request: &PolicyRequest, bound: &[BoundEntity<'_, '_>]) -> Vec<String> {
    let mut missing = missing_facts(request);
    for (entity, (key, named)) in bound.iter().zip(&request.entities) {
        if entity.known.is_none() {
            missing.push(format!(
                "context.{key} ({}::\"{}\" is unknown to the relationship store)",
                named.entity_type, named.id
            ));
        }
    }
    missing
}

/// What the request itself fails to state (before any entity is looked up).
fn missing_facts(request: &PolicyRequest) -> Vec<String> {
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

/// The PDP as the gateway holds it: the enforced version(s), an optional shadow set, the
/// relationship store, and the admin policy set (`<dir>/admin/`, when there is one), each
/// swappable atomically.
pub struct PolicyEngine {
    dir: PathBuf,
    shadow_dir: Option<PathBuf>,
    /// Loaded versions; the one in effect is the newest whose window contains `now`.
    versions: ArcSwap<Vec<Arc<CompiledPolicySet>>>,
    shadow: ArcSwapOption<CompiledPolicySet>,
    relationships: ArcSwap<RelationshipStore>,
    /// Who may administer what; decided apart from the capability set, never per call.
    admin: ArcSwapOption<AdminPolicySet>,
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
        let admin = AdminPolicySet::load_beside(dir)?.map(Arc::new);
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            shadow_dir: shadow_dir.map(Path::to_path_buf),
            versions: ArcSwap::from_pointee(vec![Arc::new(set)]),
            shadow: ArcSwapOption::new(shadow),
            relationships: ArcSwap::from_pointee(relationships),
            admin: ArcSwapOption::new(admin),
        }))
    }

    /// The admin policy set, when the policies directory has one.
    pub fn admin(&self) -> Option<Arc<AdminPolicySet>> {
        self.admin.load_full()
    }

    /// An entity of a relationship update as the admin PDP judges it, against the relationship
    /// store in force now.
    pub fn relationship_resource(&self, entity: &serde_json::Value) -> AdminResource {
        AdminResource::relationship(entity, &self.relationships.load())
    }

    /// Decides an admin request; without an admin policy set, everything is denied.
    pub fn decide_admin(&self, request: &AdminRequest, roles: &AdminRoles) -> AdminDecision {
        match self.admin.load().as_ref() {
            Some(set) => set.decide(request, roles),
            None => AdminDecision {
                outcome: AdminOutcome::Deny,
                policy_ids: Vec::new(),
                reason: format!(
                    "denied: there is no admin policy set ({}/{})",
                    self.dir.display(),
                    admin::ADMIN_DIR
                ),
            },
        }
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
                    break_glass_may_override: false,
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

    /// Re-reads the policy directory (policies, schema, entity files, the admin set) and the
    /// shadow one: validates everything, replays `updates` (the durable relationship updates,
    /// oldest first) over the entity files, then swaps atomically. On any problem the running
    /// versions stay and the error says why.
    pub fn reload(&self, updates: &[Vec<serde_json::Value>]) -> Result<String, PolicyLoadError> {
        let (set, files) = CompiledPolicySet::load(&self.dir)?;
        let relationships =
            replay_updates(files, updates, set.schema()).map_err(|message| PolicyLoadError {
                problems: vec![PolicyProblem {
                    file: self.dir.join(load::ENTITIES_DIR).display().to_string(),
                    line: None,
                    message: format!(
                        "the stored relationship updates do not fit the entity files and schema: {message}"
                    ),
                }],
            })?;
        let shadow = match &self.shadow_dir {
            Some(dir) => Some(Arc::new(CompiledPolicySet::load(dir)?.0)),
            None => None,
        };
        let admin = AdminPolicySet::load_beside(&self.dir)?.map(Arc::new);
        if admin.is_none() && self.admin.load().is_some() {
            return Err(PolicyLoadError {
                problems: vec![PolicyProblem {
                    file: self.dir.join(admin::ADMIN_DIR).display().to_string(),
                    line: None,
                    message: "the admin policy set is gone; without it every admin request would be refused".into(),
                }],
            });
        }
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
        self.admin.store(admin);
        Ok(label)
    }

    /// Adds or replaces relationship entities (Cedar entity JSON), validated against the
    /// schema; the store swaps atomically and the next decision sees it.
    /// The relationship store with `updates` applied, validated against the schema in force;
    /// nothing changes until [`PolicyEngine::set_relationships`].
    pub fn relationships_with(
        &self,
        updates: Vec<serde_json::Value>,
    ) -> Result<RelationshipStore, String> {
        self.relationships
            .load()
            .upsert(updates, self.latest().schema())
    }

    /// Puts a relationship store in force; its entity count.
    pub fn set_relationships(&self, store: RelationshipStore) -> usize {
        let count = store.len();
        self.relationships.store(Arc::new(store));
        count
    }

    /// Replays durable relationship updates over what is loaded now (at start).
    pub fn replay_relationships(
        &self,
        updates: &[Vec<serde_json::Value>],
    ) -> Result<usize, String> {
        let schema = self.latest().schema().clone();
        let current = self.relationships.load().revalidate(&schema)?;
        let store = replay_updates(current, updates, &schema)?;
        Ok(self.set_relationships(store))
    }
}

/// Applies relationship updates, oldest first.
fn replay_updates(
    mut store: RelationshipStore,
    updates: &[Vec<serde_json::Value>],
    schema: &cedar_policy::Schema,
) -> Result<RelationshipStore, String> {
    for update in updates {
        store = store.upsert(update.clone(), schema)?;
    }
    Ok(store)
}
