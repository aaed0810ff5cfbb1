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
    canonical_json, BudgetDebit, BudgetLimits, BudgetUsage, IdempotencyClaim, IdempotencyScope,
    KillScope, KillSwitch, Store, StoreError,
};

/// The `_meta` key carrying the agent's idempotency key on side-effecting calls.
pub const IDEMPOTENCY_META_KEY: &str = "dev.capgate/idempotency-key";
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
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        Self {
            max_calls_per_run: 200,
            max_calls_per_tool: 50,
            max_cost_per_run: 500,
            without_run_id: WithoutRunId::UserDay,
            idempotency_retention_seconds: 24 * 3600,
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
    #[error("the enforcement store is unavailable, so capgate fails closed: {0}")]
    StoreUnavailable(#[from] StoreError),
}

/// The controls and their durable state.
pub struct Controls {
    store: Arc<dyn Store>,
    switches: ArcSwap<Vec<KillSwitch>>,
    config: EnforcementConfig,
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
        Ok(Self {
            store,
            switches: ArcSwap::from_pointee(switches),
            config,
        })
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
        Ok(())
    }

    pub fn lift_kill_switch(&self, scope: &KillScope) -> Result<bool, StoreError> {
        let lifted = self.store.lift_kill_switch(scope)?;
        self.switches.store(Arc::new(self.store.kill_switches()?));
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

    /// Claims the call's idempotency key: perform, replay, or refuse.
    pub async fn start_idempotent(
        &self,
        actor: &CompositeActor,
        contract: &ToolContract,
        key: Option<&str>,
        arguments: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<IdempotencyStart, ControlRefusal> {
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
        let (store, claim_scope, retain) = (
            self.store.clone(),
            scope.clone(),
            self.config.idempotency_retention_seconds,
        );
        let now = crate::policy::now_unix();
        let claim =
            blocking(move || store.claim_idempotency(&claim_scope, &fingerprint, now, retain))
                .await?;
        match claim {
            IdempotencyClaim::Claimed => Ok(IdempotencyStart::Perform(scope)),
            IdempotencyClaim::Replay(result) => Ok(IdempotencyStart::Replay(result)),
            IdempotencyClaim::InFlight => Err(ControlRefusal::InFlight(scope.key)),
            IdempotencyClaim::Mismatch => Err(ControlRefusal::KeyReused(scope.key)),
        }
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

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ControlRefusal> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ControlRefusal::StoreUnavailable(StoreError(e.to_string())))?
        .map_err(ControlRefusal::StoreUnavailable)
}
