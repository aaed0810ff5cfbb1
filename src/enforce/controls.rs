//! Enforcement controls that make decisions stick across calls, retries and restarts: kill
//! switches, run budgets and idempotency, all durable in the store.
//!
//! Kill switches are read from the store at start and after every change and kept in memory,
//! so checking them costs no I/O on the call path; budgets and idempotency claims are store
//! transactions (run off the async threads).

use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use crate::identity::CompositeActor;
use crate::registry::ToolContract;
use crate::store::{
    canonical_json, Approval, ApprovalProblem, ApprovalStatus, BreakGlassGrant, BudgetDebit,
    BudgetLimits, BudgetUsage, IdempotencyClaim, IdempotencyScope, KillScope, KillSwitch, Store,
    StoreError,
};

/// The `_meta` key carrying the agent's idempotency key on side-effecting calls.
pub const IDEMPOTENCY_META_KEY: &str = "dev.capgate/idempotency-key";
/// The `_meta` key carrying an approval reference on a retried call.
pub const APPROVAL_META_KEY: &str = "dev.capgate/approval";
/// The `_meta` key marking a result replayed from the idempotency record.
pub const REPLAY_META_KEY: &str = "dev.capgate/replay";

/// What to do with calls whose token carries no run id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithoutRunId {
    /// Refuse them.
    Deny,
    /// Count them against a per-user, per-day run (`user:<tenant>/<user>/<day>`).
    #[default]
    UserDay,
}

/// Budget and idempotency settings (the `[enforcement]` config table).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnforcementConfig {
    pub max_calls_per_run: u64,
    pub max_calls_per_tool: u64,
    pub max_cost_per_run: u64,
    pub without_run_id: WithoutRunId,
    pub idempotency_retention_seconds: i64,
    /// How long an approval request may be granted and used.
    pub approval_ttl_seconds: i64,
    /// The approver role when the deciding policy names none.
    pub default_approver_role: String,
    /// The role a person needs to open break-glass grants.
    pub break_glass_role: String,
    /// The longest a break-glass grant may last.
    pub break_glass_max_seconds: i64,
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        Self {
            max_calls_per_run: 1_000,
            max_calls_per_tool: 500,
            max_cost_per_run: 5_000,
            without_run_id: WithoutRunId::UserDay,
            idempotency_retention_seconds: 24 * 3600,
            approval_ttl_seconds: 3600,
            default_approver_role: "senior_reviewer".into(),
            break_glass_role: "break-glass".into(),
            break_glass_max_seconds: 4 * 3600,
        }
    }
}

/// Why a control refused a call.
#[derive(Debug, thiserror::Error)]
pub enum ControlRefusal {
    #[error("stopped by a {kind} kill switch: {reason}")]
    Killed { kind: String, reason: String },
    #[error("run budget exhausted: {0}")]
    BudgetExhausted(String),
    #[error("the policy allows at most {limit} calls of {tool} per run (obligation max_calls), and they are used")]
    MaxCalls { tool: String, limit: u64 },
    #[error("this call has no run id and the gateway refuses calls outside a run")]
    NoRun,
    #[error("`{tool}` has side effects: send an idempotency key in _meta[\"{IDEMPOTENCY_META_KEY}\"] (a unique string per intended action; reuse it only to retry the same call)")]
    MissingIdempotencyKey { tool: String },
    #[error("idempotency key `{0}` was already used for a different call; use a new key for a new action")]
    KeyReused(String),
    #[error(
        "a call with idempotency key `{0}` is still in progress; retry later with the same key"
    )]
    InFlight(String),
    #[error("the approval does not authorize this call: {0}")]
    Approval(#[from] ApprovalProblem),
    #[error("the enforcement store is unavailable, so capgate fails closed: {0}")]
    StoreUnavailable(#[from] StoreError),
    #[error("refused: this call's decision record could not be made durable, and capgate forwards no call it cannot account for ({0})")]
    DecisionLogUnavailable(String),
}

impl ControlRefusal {
    /// The refusal a kill switch makes.
    pub fn killed_by(switch: crate::store::KillSwitch) -> Self {
        ControlRefusal::Killed {
            kind: format!("{:?}", switch.scope),
            reason: switch.reason,
        }
    }

    /// A short name of the control that refused, for spans and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ControlRefusal::Killed { .. } => "kill_switch",
            ControlRefusal::BudgetExhausted(_) => "budget",
            ControlRefusal::MaxCalls { .. } => "max_calls",
            ControlRefusal::NoRun => "no_run",
            ControlRefusal::MissingIdempotencyKey { .. }
            | ControlRefusal::KeyReused(_)
            | ControlRefusal::InFlight(_) => "idempotency",
            ControlRefusal::Approval(_) => "approval",
            ControlRefusal::StoreUnavailable(_) => "store_unavailable",
            ControlRefusal::DecisionLogUnavailable(_) => "decision_log_unavailable",
        }
    }
}

/// A call's identity for approvals: what exactly was (or will be) approved.
pub struct ActionDigest(pub String);

impl ActionDigest {
    /// SHA-256 over the canonical JSON of tenant, actor, tool, tool definition, arguments, run.
    pub fn of(
        actor: &CompositeActor,
        tool: &str,
        definition_hash: &str,
        arguments: &serde_json::Map<String, serde_json::Value>,
        run: &str,
    ) -> Self {
        let canonical = canonical_json(&serde_json::json!({
            "tenant": actor.tenant,
            "user": actor.user.id,
            "agent": actor.agent.as_ref().map(|a| a.id.clone()),
            "tool": tool,
            "tool_definition": definition_hash,
            "arguments": arguments,
            "run": run,
        }));
        Self(hex::encode(Sha256::digest(canonical.as_bytes())))
    }
}

/// The controls and their durable state.
pub struct Controls {
    store: Arc<dyn Store>,
    switches: ArcSwap<Vec<KillSwitch>>,
    grants: ArcSwap<Vec<BreakGlassGrant>>,
    config: EnforcementConfig,
    /// Fires when what agents may see changes (kill switches, break-glass grants).
    visibility: tokio::sync::watch::Sender<u64>,
}

/// Why a break-glass grant could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BreakGlassError {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a person asks for when opening a break-glass grant.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassRequest {
    pub user: String,
    pub agent_role: Option<String>,
    pub tool: Option<String>,
    pub reason: String,
    pub expires_in_seconds: i64,
}

/// The outcome of claiming an idempotency key for a call.
pub enum IdempotencyStart {
    /// Perform the call, then `complete` it.
    Perform(IdempotencyScope),
    /// Return this stored result (JSON of the earlier `CallToolResult`).
    Replay(String),
}

impl Controls {
    pub fn new(store: Arc<dyn Store>, config: EnforcementConfig) -> Result<Self, StoreError> {
        let switches = store.kill_switches()?;
        let grants = store.grants()?;
        Ok(Self {
            store,
            switches: ArcSwap::from_pointee(switches),
            grants: ArcSwap::from_pointee(grants),
            config,
            visibility: tokio::sync::watch::channel(0).0,
        })
    }

    /// Approvals waiting for a decision (every tenant), for the `/metrics` gauge.
    pub fn pending_approvals(&self) -> Result<u64, StoreError> {
        self.store.pending_approval_count(crate::policy::now_unix())
    }

    /// Kill switches currently on.
    pub fn active_kill_switches(&self) -> usize {
        self.switches.load().len()
    }

    /// Break-glass grants not yet expired.
    pub fn active_break_glass_grants(&self) -> usize {
        let now = crate::policy::now_unix();
        self.grants
            .load()
            .iter()
            .filter(|g| now < g.expires_at)
            .count()
    }

    /// A receiver that changes whenever a control changes what agents may see.
    pub fn visibility_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.visibility.subscribe()
    }

    fn visibility_changed(&self) {
        self.visibility.send_modify(|generation| *generation += 1);
    }

    /// Opens a break-glass grant: a person with the break-glass role, in the grant's tenant,
    /// for a reason, for at most the configured time. Loudly logged.
    pub fn open_break_glass(
        &self,
        opener: &CompositeActor,
        request: BreakGlassRequest,
    ) -> Result<BreakGlassGrant, BreakGlassError> {
        if opener.agent.is_some() || !opener.user.roles.contains(&self.config.break_glass_role) {
            return Err(BreakGlassError::Forbidden(format!(
                "opening break-glass needs a person with role `{}`",
                self.config.break_glass_role
            )));
        }
        if request.reason.trim().len() < 10 {
            return Err(BreakGlassError::Invalid(
                "a break-glass grant needs a reason (at least 10 characters)".into(),
            ));
        }
        if request.expires_in_seconds <= 0
            || request.expires_in_seconds > self.config.break_glass_max_seconds
        {
            return Err(BreakGlassError::Invalid(format!(
                "expires_in_seconds must be between 1 and {}",
                self.config.break_glass_max_seconds
            )));
        }
        let now = crate::policy::now_unix();
        let grant = BreakGlassGrant {
            id: format!("bg-{:016x}", rand::random::<u64>()),
            tenant: opener.tenant.clone(),
            user: request.user,
            agent_role: request.agent_role,
            tool: request.tool,
            reason: request.reason,
            opened_by: opener.user.id.clone(),
            opened_at: now,
            expires_at: now + request.expires_in_seconds,
            uses: 0,
        };
        self.store.open_grant(&grant)?;
        self.grants.store(Arc::new(self.store.grants()?));
        self.visibility_changed();
        tracing::warn!(target: "capgate::break_glass", grant = %grant.id, opened_by = %grant.opened_by, user = %grant.user, tool = ?grant.tool, reason = %grant.reason, expires_at = grant.expires_at, "BREAK-GLASS grant opened");
        Ok(grant)
    }

    /// Every grant, open and expired, with its uses (for review).
    pub fn break_glass_grants(&self) -> Result<Vec<BreakGlassGrant>, StoreError> {
        self.store.grants()
    }

    /// The unexpired grant covering this call, if any (no I/O).
    pub fn break_glass_for(&self, actor: &CompositeActor, tool: &str) -> Option<BreakGlassGrant> {
        let now = crate::policy::now_unix();
        let role = actor.agent.as_ref().map(|a| a.role.as_str());
        self.grants
            .load()
            .iter()
            .find(|g| g.covers(&actor.tenant, &actor.user.id, role, tool, now))
            .cloned()
    }

    /// Counts a use of a grant.
    pub async fn record_break_glass_use(
        &self,
        grant: &BreakGlassGrant,
    ) -> Result<(), ControlRefusal> {
        let (store, id) = (self.store.clone(), grant.id.clone());
        blocking(move || store.record_grant_use(&id)).await
    }

    pub fn config(&self) -> &EnforcementConfig {
        &self.config
    }

    /// The kill switch that stops this tool for this actor, if any (no I/O).
    pub fn kill_switch_for(
        &self,
        actor: &CompositeActor,
        server: &str,
        tool: &str,
    ) -> Option<KillSwitch> {
        let agent_role = actor.agent.as_ref().map(|a| a.role.as_str());
        self.switches
            .load()
            .iter()
            .find(|s| {
                s.scope
                    .covers(&actor.tenant, server, tool, agent_role, &actor.user.id)
            })
            .cloned()
    }

    pub fn kill_switches(&self) -> Vec<KillSwitch> {
        self.switches.load().as_ref().clone()
    }

    pub fn set_kill_switch(&self, switch: KillSwitch) -> Result<(), StoreError> {
        self.store.set_kill_switch(&switch)?;
        self.switches.store(Arc::new(self.store.kill_switches()?));
        self.visibility_changed();
        Ok(())
    }

    pub fn lift_kill_switch(&self, scope: &KillScope) -> Result<bool, StoreError> {
        let lifted = self.store.lift_kill_switch(scope)?;
        self.switches.store(Arc::new(self.store.kill_switches()?));
        self.visibility_changed();
        Ok(lifted)
    }

    /// The run a call is counted against, per the configured rule for calls without a run id.
    pub fn run_of(&self, actor: &CompositeActor) -> Result<String, ControlRefusal> {
        match (&actor.run_id, self.config.without_run_id) {
            (Some(run), _) => Ok(format!("{}/{run}", actor.tenant)),
            (None, WithoutRunId::Deny) => Err(ControlRefusal::NoRun),
            (None, WithoutRunId::UserDay) => Ok(format!(
                "user:{}/{}/{}",
                actor.tenant,
                actor.user.id,
                crate::policy::now_unix() / 86_400
            )),
        }
    }

    fn limits(&self) -> BudgetLimits {
        BudgetLimits {
            max_calls: self.config.max_calls_per_run,
            max_calls_per_tool: self.config.max_calls_per_tool,
            max_cost: self.config.max_cost_per_run,
        }
    }

    /// What the run has used (for policies as trusted context).
    pub async fn usage(&self, run: &str, tool: &str) -> Result<BudgetUsage, ControlRefusal> {
        let (store, run, tool) = (self.store.clone(), run.to_string(), tool.to_string());
        blocking(move || store.budget_usage(&run, &tool)).await
    }

    /// Calls left in the run after `usage`.
    pub fn remaining(&self, usage: &BudgetUsage) -> i64 {
        self.config.max_calls_per_run as i64 - usage.calls as i64
    }

    /// Debits one call of `contract` from the run, or refuses it.
    pub async fn debit(
        &self,
        run: &str,
        contract: &ToolContract,
    ) -> Result<BudgetUsage, ControlRefusal> {
        let (store, run, tool, limits) = (
            self.store.clone(),
            run.to_string(),
            contract.exposed_name.clone(),
            self.limits(),
        );
        let cost = u64::from(contract.cost);
        match blocking(move || store.debit_budget(&run, &tool, cost, limits)).await? {
            BudgetDebit::Debited(usage) => Ok(usage),
            BudgetDebit::Exhausted { reason, .. } => Err(ControlRefusal::BudgetExhausted(reason)),
        }
    }

    /// The scope and fingerprint of a side effect's idempotency key.
    fn idempotency_of(
        &self,
        actor: &CompositeActor,
        contract: &ToolContract,
        key: Option<&str>,
        arguments: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(IdempotencyScope, String), ControlRefusal> {
        let Some(key) = key.filter(|k| !k.trim().is_empty()) else {
            return Err(ControlRefusal::MissingIdempotencyKey {
                tool: contract.exposed_name.clone(),
            });
        };
        let scope = IdempotencyScope {
            tenant: actor.tenant.clone(),
            actor: format!(
                "{}/{}",
                actor.user.id,
                actor.agent.as_ref().map(|a| a.id.as_str()).unwrap_or("-")
            ),
            tool: contract.exposed_name.clone(),
            key: key.to_string(),
        };
        let fingerprint = hex::encode(Sha256::digest(
            canonical_json(&serde_json::json!({
                "tool": contract.exposed_name,
                "arguments": arguments,
            }))
            .as_bytes(),
        ));
        Ok((scope, fingerprint))
    }

    /// The stored result when this exact call already completed under this key: a retry is
    /// answered from the record, whatever approvals or budgets say now, and nothing runs again.
    pub async fn replay_of(
        &self,
        actor: &CompositeActor,
        contract: &ToolContract,
        key: Option<&str>,
        arguments: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<String>, ControlRefusal> {
        if key.is_none() {
            return Ok(None);
        }
        let (scope, fingerprint) = self.idempotency_of(actor, contract, key, arguments)?;
        let store = self.store.clone();
        blocking(move || store.completed_result(&scope, &fingerprint)).await
    }

    /// Claims the call's idempotency key: perform, replay, or refuse.
    pub async fn start_idempotent(
        &self,
        actor: &CompositeActor,
        contract: &ToolContract,
        key: Option<&str>,
        arguments: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<IdempotencyStart, ControlRefusal> {
        let (scope, fingerprint) = self.idempotency_of(actor, contract, key, arguments)?;
        let (store, claim_scope, retain) = (
            self.store.clone(),
            scope.clone(),
            self.config.idempotency_retention_seconds,
        );
        let now = crate::policy::now_unix();
        let claim =
            blocking(move || store.claim_idempotency(&claim_scope, &fingerprint, now, retain))
                .await?;
        claim_outcome(claim, scope)
    }

    /// Opens an approval request for a call the PDP wants approved.
    pub async fn request_approval(
        &self,
        actor: &CompositeActor,
        tool: &str,
        digest: &ActionDigest,
        arguments: &serde_json::Map<String, serde_json::Value>,
        approver_role: Option<&str>,
        policy_version: &str,
    ) -> Result<Approval, ControlRefusal> {
        let now = crate::policy::now_unix();
        let approval = Approval {
            id: format!("apr-{:016x}", rand::random::<u64>()),
            tenant: actor.tenant.clone(),
            requester: actor.user.id.clone(),
            tool: tool.to_string(),
            action_digest: digest.0.clone(),
            arguments: serde_json::Value::Object(arguments.clone()).to_string(),
            approver_role: approver_role
                .unwrap_or(&self.config.default_approver_role)
                .to_string(),
            policy_version: policy_version.to_string(),
            created_at: now,
            expires_at: now + self.config.approval_ttl_seconds,
            status: ApprovalStatus::Pending,
            decided_by: None,
        };
        let (store, record) = (self.store.clone(), approval.clone());
        blocking(move || store.create_approval(&record)).await?;
        Ok(approval)
    }

    /// Checks, without using it, that an approval is granted for exactly this call.
    pub async fn check_approval(
        &self,
        id: &str,
        actor: &CompositeActor,
        digest: &ActionDigest,
    ) -> Result<Approval, ControlRefusal> {
        let (store, lookup) = (self.store.clone(), id.to_string());
        let approval = blocking(move || store.approval(&lookup))
            .await?
            .ok_or_else(|| ApprovalProblem::Unknown(id.to_string()))?;
        let problem = approval.problem_for(&actor.tenant, &digest.0, crate::policy::now_unix());
        match problem {
            Some(problem) => Err(problem.into()),
            None => Ok(approval),
        }
    }

    /// Uses an approval, atomically with the call's idempotency claim (side effects).
    #[allow(clippy::too_many_arguments)]
    pub async fn consume_approval(
        &self,
        id: &str,
        actor: &CompositeActor,
        digest: &ActionDigest,
        policy_version: &str,
        contract: &ToolContract,
        key: Option<&str>,
        needs_key: bool,
        arguments: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<IdempotencyStart>, ControlRefusal> {
        let idempotency = if needs_key {
            Some(self.idempotency_of(actor, contract, key, arguments)?)
        } else {
            None
        };
        let (store, id, tenant, digest, version, retain) = (
            self.store.clone(),
            id.to_string(),
            actor.tenant.clone(),
            digest.0.clone(),
            policy_version.to_string(),
            self.config.idempotency_retention_seconds,
        );
        let now = crate::policy::now_unix();
        let claim_scope = idempotency.clone();
        let result = blocking(move || {
            store.consume_approval(
                &id,
                &tenant,
                &digest,
                &version,
                now,
                claim_scope.as_ref().map(|(s, f)| (s, f.as_str(), retain)),
            )
        })
        .await?;
        match (result?, idempotency) {
            (Some(claim), Some((scope, _))) => claim_outcome(claim, scope).map(Some),
            _ => Ok(None),
        }
    }

    pub async fn approval(&self, id: &str) -> Result<Option<Approval>, ControlRefusal> {
        let (store, id) = (self.store.clone(), id.to_string());
        blocking(move || store.approval(&id)).await
    }

    pub async fn approvals(&self, tenant: &str) -> Result<Vec<Approval>, ControlRefusal> {
        let (store, tenant) = (self.store.clone(), tenant.to_string());
        blocking(move || store.approvals(&tenant)).await
    }

    /// Grants or rejects a pending approval. `approver` must hold the approval's role, be in its
    /// tenant, and not be its requester: a person may not approve their own request.
    pub async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        approver: &CompositeActor,
    ) -> Result<Approval, ApprovalDecisionError> {
        let approval = self
            .approval(id)
            .await
            .map_err(ApprovalDecisionError::Store)?
            .ok_or_else(|| ApprovalDecisionError::Problem(ApprovalProblem::Unknown(id.into())))?;
        if approver.agent.is_some() {
            return Err(ApprovalDecisionError::Forbidden(
                "approvals are decided by people, not agents".into(),
            ));
        }
        if approver.tenant != approval.tenant {
            return Err(ApprovalDecisionError::Forbidden(
                "the approver belongs to another tenant".into(),
            ));
        }
        if approver.user.id == approval.requester {
            return Err(ApprovalDecisionError::Forbidden(
                "the requester cannot approve their own request".into(),
            ));
        }
        if !approver.user.roles.contains(&approval.approver_role) {
            return Err(ApprovalDecisionError::Forbidden(format!(
                "approving needs role `{}`",
                approval.approver_role
            )));
        }
        let (store, lookup, who) = (self.store.clone(), id.to_string(), approver.user.id.clone());
        let now = crate::policy::now_unix();
        blocking(move || store.decide_approval(&lookup, approve, &who, now))
            .await
            .map_err(ApprovalDecisionError::Store)?
            .map_err(ApprovalDecisionError::Problem)
    }

    /// Stores a performed call's result for replays.
    pub async fn complete(
        &self,
        scope: IdempotencyScope,
        result: String,
    ) -> Result<(), ControlRefusal> {
        let store = self.store.clone();
        blocking(move || store.complete_idempotency(&scope, &result)).await
    }

    /// Gives a claim back when the call was certainly not performed.
    pub async fn release(&self, scope: IdempotencyScope) -> Result<(), ControlRefusal> {
        let store = self.store.clone();
        blocking(move || store.release_idempotency(&scope)).await
    }
}

/// Why an approver's decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalDecisionError {
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Problem(ApprovalProblem),
    #[error(transparent)]
    Store(ControlRefusal),
}

fn claim_outcome(
    claim: IdempotencyClaim,
    scope: IdempotencyScope,
) -> Result<IdempotencyStart, ControlRefusal> {
    match claim {
        IdempotencyClaim::Claimed => Ok(IdempotencyStart::Perform(scope)),
        IdempotencyClaim::Replay(result) => Ok(IdempotencyStart::Replay(result)),
        IdempotencyClaim::InFlight => Err(ControlRefusal::InFlight(scope.key)),
        IdempotencyClaim::Mismatch => Err(ControlRefusal::KeyReused(scope.key)),
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ControlRefusal> {
    // Store work is short (well under a millisecond) but may wait on a lock: on the
    // multi-threaded runtime it runs in place, with the worker's other tasks handed to another
    // thread (cheaper than a round trip through the blocking pool); elsewhere on the pool.
    let in_place = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if in_place {
        return tokio::task::block_in_place(work).map_err(ControlRefusal::StoreUnavailable);
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ControlRefusal::StoreUnavailable(StoreError(e.to_string())))?
        .map_err(ControlRefusal::StoreUnavailable)
}
