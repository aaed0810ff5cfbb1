//! Durable enforcement state behind one trait: kill switches, run budgets and idempotency
//! records. SQLite (embedded, WAL) is the default implementation ([`SqliteStore`]).
//!
//! Every operation that checks and changes state does both in one transaction, so concurrent
//! calls cannot both pass a check that only one of them should.

mod sqlite;

use serde::{Deserialize, Serialize};

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
#[error("the enforcement store failed: {0}")]
pub struct StoreError(pub String);

/// What a kill switch covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "scope", content = "target", rename_all = "snake_case")]
pub enum KillScope {
    Global,
    Tenant(String),
    Server(String),
    /// An exposed tool name (`case__send_approved_notice`).
    Tool(String),
    AgentRole(String),
    User(String),
}

impl KillScope {
    fn kind(&self) -> &'static str {
        match self {
            KillScope::Global => "global",
            KillScope::Tenant(_) => "tenant",
            KillScope::Server(_) => "server",
            KillScope::Tool(_) => "tool",
            KillScope::AgentRole(_) => "agent_role",
            KillScope::User(_) => "user",
        }
    }

    fn target(&self) -> &str {
        match self {
            KillScope::Global => "",
            KillScope::Tenant(t)
            | KillScope::Server(t)
            | KillScope::Tool(t)
            | KillScope::AgentRole(t)
            | KillScope::User(t) => t,
        }
    }

    fn from_parts(kind: &str, target: String) -> Option<Self> {
        Some(match kind {
            "global" => KillScope::Global,
            "tenant" => KillScope::Tenant(target),
            "server" => KillScope::Server(target),
            "tool" => KillScope::Tool(target),
            "agent_role" => KillScope::AgentRole(target),
            "user" => KillScope::User(target),
            _ => return None,
        })
    }

    /// Whether this switch stops `tool` (exposed name) on `server` for the given actor.
    pub fn covers(
        &self,
        tenant: &str,
        server: &str,
        tool: &str,
        agent_role: Option<&str>,
        user: &str,
    ) -> bool {
        match self {
            KillScope::Global => true,
            KillScope::Tenant(t) => t == tenant,
            KillScope::Server(s) => s == server,
            KillScope::Tool(name) => name == tool,
            KillScope::AgentRole(role) => agent_role == Some(role.as_str()),
            KillScope::User(u) => u == user,
        }
    }
}

/// A kill switch that is on: who flipped it, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KillSwitch {
    #[serde(flatten)]
    pub scope: KillScope,
    pub reason: String,
    pub set_by: String,
    pub set_at: i64,
}

/// Limits for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    pub max_calls: u64,
    pub max_calls_per_tool: u64,
    pub max_cost: u64,
}

/// What a run has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUsage {
    pub calls: u64,
    pub tool_calls: u64,
    pub cost: u64,
}

/// The result of trying to debit one call from a run's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetDebit {
    Debited(BudgetUsage),
    Exhausted { usage: BudgetUsage, reason: String },
}

/// Where an idempotency key is unique: tenant + actor + tool + key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyScope {
    pub tenant: String,
    pub actor: String,
    pub tool: String,
    pub key: String,
}

/// The result of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// First use: the caller runs the call and then completes (or releases) the claim.
    Claimed,
    /// Same key, same call, already done: the stored result (JSON).
    Replay(String),
    /// Same key, same call, still running.
    InFlight,
    /// Same key, different call.
    Mismatch,
}

/// Where an approval request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Consumed,
}

impl ApprovalStatus {
    fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Consumed => "consumed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "rejected" => ApprovalStatus::Rejected,
            "consumed" => ApprovalStatus::Consumed,
            _ => return None,
        })
    }
}

/// An approval request, bound to one exact call by its action digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Approval {
    pub id: String,
    pub tenant: String,
    pub requester: String,
    pub tool: String,
    /// SHA-256 of the canonical call: tenant, actor, tool, tool definition, arguments, run.
    pub action_digest: String,
    /// The call's arguments, for the approver to read.
    pub arguments: String,
    pub approver_role: String,
    pub policy_version: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub status: ApprovalStatus,
    pub decided_by: Option<String>,
}

impl Approval {
    /// Why this approval cannot authorize the call with `digest` in `tenant` at `now`, if it
    /// cannot (the policy version is checked where the decision is known).
    pub fn problem_for(&self, tenant: &str, digest: &str, now: i64) -> Option<ApprovalProblem> {
        let id = || self.id.clone();
        if self.tenant != tenant {
            return Some(ApprovalProblem::OtherTenant(id()));
        }
        if self.action_digest != digest {
            return Some(ApprovalProblem::OtherCall(id()));
        }
        match self.status {
            ApprovalStatus::Approved if now >= self.expires_at => {
                Some(ApprovalProblem::Expired(id()))
            }
            ApprovalStatus::Approved => None,
            ApprovalStatus::Pending => Some(ApprovalProblem::Pending(id())),
            ApprovalStatus::Rejected => Some(ApprovalProblem::Rejected(id())),
            ApprovalStatus::Consumed => Some(ApprovalProblem::AlreadyUsed(id())),
        }
    }
}

/// Why an approval cannot be used or decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalProblem {
    #[error("approval `{0}` does not exist")]
    Unknown(String),
    #[error("approval `{0}` belongs to another tenant")]
    OtherTenant(String),
    #[error("approval `{0}` was granted for a different call (another action digest)")]
    OtherCall(String),
    #[error("approval `{0}` has expired")]
    Expired(String),
    #[error("approval `{0}` was already used")]
    AlreadyUsed(String),
    #[error("approval `{0}` was rejected")]
    Rejected(String),
    #[error("approval `{0}` is still pending")]
    Pending(String),
    #[error("approval `{0}` was decided already")]
    AlreadyDecided(String),
    #[error("approval `{id}` was granted under policy {granted}; the policy in force is {current}: request a new approval")]
    PolicyChanged {
        id: String,
        granted: String,
        current: String,
    },
}

/// A break-glass grant: for a limited time, calls of `tool` (or all tools) by `user` (optionally
/// only through one agent role) are allowed even where policy refuses them, loudly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BreakGlassGrant {
    pub id: String,
    pub tenant: String,
    pub user: String,
    pub agent_role: Option<String>,
    /// An exposed tool name; `None` covers every tool.
    pub tool: Option<String>,
    pub reason: String,
    pub opened_by: String,
    pub opened_at: i64,
    pub expires_at: i64,
    pub uses: i64,
}

impl BreakGlassGrant {
    pub fn covers(
        &self,
        tenant: &str,
        user: &str,
        agent_role: Option<&str>,
        tool: &str,
        now: i64,
    ) -> bool {
        now < self.expires_at
            && self.tenant == tenant
            && self.user == user
            && self
                .agent_role
                .as_deref()
                .is_none_or(|r| Some(r) == agent_role)
            && self.tool.as_deref().is_none_or(|t| t == tool)
    }
}

/// The store's operations.
pub trait Store: Send + Sync {
    fn open_grant(&self, grant: &BreakGlassGrant) -> Result<(), StoreError>;
    fn grants(&self) -> Result<Vec<BreakGlassGrant>, StoreError>;
    fn record_grant_use(&self, id: &str) -> Result<(), StoreError>;

    fn create_approval(&self, approval: &Approval) -> Result<(), StoreError>;
    fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError>;
    fn approvals(&self, tenant: &str) -> Result<Vec<Approval>, StoreError>;
    /// Approvals still waiting for a decision and not yet expired at `now`, in every tenant.
    fn pending_approval_count(&self, now: i64) -> Result<u64, StoreError>;
    /// Grants or rejects a pending, unexpired approval (who may do so is checked by the caller).
    fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        approver: &str,
        now: i64,
    ) -> Result<Result<Approval, ApprovalProblem>, StoreError>;
    /// In one transaction: checks the approval (digest, expiry, single use, policy version),
    /// claims the idempotency key when there is one, and marks the approval used.
    #[allow(clippy::too_many_arguments)]
    fn consume_approval(
        &self,
        id: &str,
        tenant: &str,
        action_digest: &str,
        policy_version: &str,
        now: i64,
        idempotency: Option<(&IdempotencyScope, &str, i64)>,
    ) -> Result<Result<Option<IdempotencyClaim>, ApprovalProblem>, StoreError>;

    fn kill_switches(&self) -> Result<Vec<KillSwitch>, StoreError>;
    fn set_kill_switch(&self, switch: &KillSwitch) -> Result<(), StoreError>;
    /// Removes a switch; `false` when none was on for that scope.
    fn lift_kill_switch(&self, scope: &KillScope) -> Result<bool, StoreError>;

    fn budget_usage(&self, run: &str, tool: &str) -> Result<BudgetUsage, StoreError>;
    /// Checks and debits one call atomically.
    fn debit_budget(
        &self,
        run: &str,
        tool: &str,
        cost: u64,
        limits: BudgetLimits,
    ) -> Result<BudgetDebit, StoreError>;

    /// Claims a key for a call with `fingerprint`, forgetting records older than `retain_secs`.
    fn claim_idempotency(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        now: i64,
        retain_secs: i64,
    ) -> Result<IdempotencyClaim, StoreError>;
    /// The stored result of a completed call with this key and fingerprint, if any.
    fn completed_result(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Stores the result of a claimed call for replays.
    fn complete_idempotency(
        &self,
        scope: &IdempotencyScope,
        result: &str,
    ) -> Result<(), StoreError>;
    /// Gives a claim back (the call was not performed), so the caller may retry.
    fn release_idempotency(&self, scope: &IdempotencyScope) -> Result<(), StoreError>;
}

/// JSON with object keys sorted at every level: the canonical form digests are taken over.
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let ordered: std::collections::BTreeMap<&String, serde_json::Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                serde_json::Value::Object(
                    ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a = serde_json::json!({"b": 1, "a": {"d": [1, {"y": 2, "x": 1}], "c": null}});
        let b = serde_json::json!({"a": {"c": null, "d": [1, {"x": 1, "y": 2}]}, "b": 1});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}"#
        );
    }

    #[test]
    fn kill_scopes_cover_what_they_name() {
        let covers = |s: KillScope| {
            s.covers(
                "acme",
                "case",
                "case__read_case",
                Some("risk-agent"),
                "alice",
            )
        };
        assert!(covers(KillScope::Global));
        assert!(covers(KillScope::Tenant("acme".into())));
        assert!(!covers(KillScope::Tenant("globex".into())));
        assert!(covers(KillScope::Tool("case__read_case".into())));
        assert!(!covers(KillScope::Tool(
            "case__send_approved_notice".into()
        )));
        assert!(covers(KillScope::AgentRole("risk-agent".into())));
        assert!(!covers(KillScope::User("bob".into())));
    }
}
