//! One policy set, compiled: a policies directory loaded, checked against what capgate decides
//! on (its six actions, the entity types it builds), sliced, and every policy's rendered id and
//! reason prepared, so that no decision repeats work the set alone determines.

use std::collections::HashMap;
use std::path::Path;

use cedar_policy::{Authorizer, Entity, PolicyId, Schema};

use super::contract::{Action, Outcome};
use super::decision_cache::BUDGET_FACT;
use super::entities::{types, uid, RelationshipStore};
use super::load::{
    self, load_policies, EffectiveWindow, LoadedPolicies, Manifest, PolicyLoadError, PolicyMeta,
    PolicyProblem,
};
use super::request::RequestParts;
use super::runtime_reads::RuntimeReads;
use super::slice::PolicySlices;

/// What a set knows about one of its policies, rendered once at load.
#[derive(Clone)]
pub(super) struct PolicyInfo {
    /// Position in the set (files in name order, policies in file order). Determining policies
    /// are listed in this order: Cedar reports them as an unordered set.
    pub(super) ordinal: usize,
    pub(super) id: String,
    /// "`id` (reason)", as decision reasons name the policy.
    pub(super) explained: String,
    pub(super) meta: Option<PolicyMeta>,
}

impl PolicyInfo {
    pub(super) fn new(ordinal: usize, id: &PolicyId, meta: Option<PolicyMeta>) -> Self {
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

    pub(super) fn outcome(&self) -> Option<Outcome> {
        self.meta.as_ref().and_then(|m| m.outcome)
    }

    pub(super) fn break_glass_never(&self) -> bool {
        self.meta.as_ref().is_some_and(|m| m.break_glass_never)
    }

    pub(super) fn is_plain_forbid(&self) -> bool {
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
    pub(super) slices: PolicySlices,
    pub(super) policies: HashMap<PolicyId, PolicyInfo>,
    pub(super) parts: RequestParts,
    policy_count: usize,
    pub(super) label: String,
    /// "under policy set <label>", which every reason ends with.
    pub(super) under: String,
    pub(super) authorizer: Authorizer,
    /// Whether some policy reads the run budget (`context.runtime.budget_remaining`), which
    /// changes on every call: only then is it part of a cached decision's key.
    pub(super) reads_budget: bool,
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
            if action.required_in_schema() && !action_entities.iter().any(|e| e.uid() == action_uid)
            {
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
        let reads_budget = RuntimeReads::of(&loaded.policies).reads(BUDGET_FACT);
        Ok(Self {
            reads_budget,
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
}
