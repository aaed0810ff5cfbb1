//! The PDP as the gateway holds it ([`PolicyEngine`]): the enforced version(s), the one in
//! effect chosen by its window; an optional shadow set decided beside it; and the relationship
//! store; and the admin policy set (`<dir>/admin/`, when there is one), decided apart from
//! capabilities. Each is swapped atomically, on reload or on a relationship update.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

use super::admin::{
    self, AdminDecision, AdminOutcome, AdminPolicySet, AdminRequest, AdminResource, AdminRoles,
};
use super::compiled::CompiledPolicySet;
use super::contract::{Decision, Outcome, PolicyRequest, ShadowDecision};
use super::decide::agent_reason;
use super::decision_cache::DecisionCache;
use super::entities::RelationshipStore;
use super::load::{self, PolicyLoadError, PolicyProblem};

/// The PDP as the gateway holds it: the enforced version(s), an optional shadow set, and the
/// relationship store, each swappable atomically.
pub struct PolicyEngine {
    dir: PathBuf,
    shadow_dir: Option<PathBuf>,
    /// Loaded versions; the one in effect is the newest whose window contains `now`.
    versions: ArcSwap<Vec<Arc<CompiledPolicySet>>>,
    shadow: ArcSwapOption<CompiledPolicySet>,
    relationships: ArcSwap<RelationshipStore>,
    /// Who may administer what; decided apart from the capability set, never per call.
    admin: ArcSwapOption<AdminPolicySet>,
    /// Answers already given, valid while what is in force stays.
    cache: DecisionCache,
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
            cache: DecisionCache::new(),
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
        let versions = self.versions.load();
        effective_index(&versions, now).map(|i| versions[i].clone())
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

    /// Decides one request, and its shadow decision when a candidate set is configured. An
    /// answer given before, to the same question under the same state, is given again.
    pub fn decide(&self, request: &PolicyRequest) -> Decision {
        let generation = self.cache.generation();
        let now = request.environment.now.unwrap_or_else(now_unix);
        let versions = self.versions.load_full();
        let effective = effective_index(&versions, now);
        let shadow = self.shadow.load_full();
        let reads_budget = effective.is_some_and(|i| versions[i].reads_budget)
            || shadow.as_ref().is_some_and(|s| s.reads_budget);
        let key = DecisionCache::key(generation, effective, request, reads_budget);
        if let Some(answer) = self.cache.get(&key) {
            return answer;
        }
        let decision = self.decide_now(
            request,
            now,
            effective.map(|i| &versions[i]),
            shadow.as_deref(),
        );
        // Without a version in effect the answer names the time asked: not worth keeping.
        if effective.is_some() {
            self.cache.insert(key, decision.clone());
        }
        decision
    }

    /// Answers held by the decision cache now.
    pub fn cached_decisions(&self) -> usize {
        self.cache.len()
    }

    /// Decides one request against the given state, without the cache.
    fn decide_now(
        &self,
        request: &PolicyRequest,
        now: i64,
        effective: Option<&Arc<CompiledPolicySet>>,
        shadow: Option<&CompiledPolicySet>,
    ) -> Decision {
        let store = self.relationships.load();
        let mut decision = match effective {
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
        if let Some(shadow) = shadow {
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
    /// Reloads policies, schema and entity files from disk, then replays `updates` (the durable
    /// relationship updates, oldest first) over the entity files.
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
        self.cache.next_generation();
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
        self.cache.next_generation();
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

/// Which of `versions` is in effect at `now`: the newest whose window contains it.
fn effective_index(versions: &[Arc<CompiledPolicySet>], now: i64) -> Option<usize> {
    versions
        .iter()
        .enumerate()
        .filter(|(_, v)| v.window.contains(now))
        .max_by_key(|(_, v)| v.window.from.unwrap_or(i64::MIN))
        .map(|(i, _)| i)
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
