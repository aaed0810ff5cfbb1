//! Durable enforcement state behind one async trait: kill switches, break-glass grants,
//! approvals, run budgets, idempotency claims and relationship updates. SQLite (embedded, WAL)
//! is the default implementation ([`SqliteStore`]); [`PostgresStore`] is shared by several
//! replicas and tells each of them what other replicas changed ([`Store::changes`]).
//!
//! The store holds data and keeps it consistent; it knows no domain rules. What a call may do
//! (budgets, approvals, idempotency) is decided in `enforce`: [`Store::admit`] reads the call's
//! state and hands it to enforce's rule inside one transaction, then writes what the rule
//! returned, so no concurrent call can pass a check that only one of them should.
//!
//! Every scope key is a structure ([`RunKey`], [`IdempotencyScope`]) stored in an unambiguous
//! encoding (a JSON array), never strings joined with a separator.

mod canonical;
#[cfg(test)]
#[macro_use]
mod conformance;
mod postgres;
mod sqlite;

use serde::{Deserialize, Serialize};

pub use canonical::{canonical_json, canonical_json_of};

pub(crate) use postgres::{failed as postgres_failure, lock_key as advisory_key};
pub use postgres::{
    migrate_postgres, test_db, PostgresOptions, PostgresStore, MIGRATIONS_POSTGRES,
};
pub use sqlite::{SqliteLocking, SqliteStore};

#[derive(Debug, thiserror::Error)]
#[error("the enforcement store failed: {0}")]
pub struct StoreError(pub String);

/// What a kill switch covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "scope", content = "target", rename_all = "snake_case")]
pub enum KillScope {
    Global,
    Tenant(String),
    Server(String),
    /// An exposed capability name (`case__send_approved_notice`, `case__case`, `case__triage`).
    Tool(String),
    AgentRole(String),
    User(String),
}

impl KillScope {
    /// The scope's kind as stored and shown (`global`, `tenant`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            KillScope::Global => "global",
            KillScope::Tenant(_) => "tenant",
            KillScope::Server(_) => "server",
            KillScope::Tool(_) => "tool",
            KillScope::AgentRole(_) => "agent_role",
            KillScope::User(_) => "user",
        }
    }

    /// What the scope names (`""` for global).
    pub fn target(&self) -> &str {
        match self {
            KillScope::Global => "",
            KillScope::Tenant(t)
            | KillScope::Server(t)
            | KillScope::Tool(t)
            | KillScope::AgentRole(t)
            | KillScope::User(t) => t,
        }
    }

    /// The tenant a switch of this scope is limited to, given the tenant asked for: a tenant
    /// switch is limited to its own tenant (asking for another one is an error).
    pub fn tenant_qualifier(&self, asked: Option<String>) -> Result<Option<String>, String> {
        match (self, asked) {
            (KillScope::Tenant(own), None) => Ok(Some(own.clone())),
            (KillScope::Tenant(own), Some(asked)) if asked == *own => Ok(Some(asked)),
            (KillScope::Tenant(own), Some(asked)) => Err(format!(
                "a tenant switch on `{own}` is limited to that tenant, not `{asked}`"
            )),
            (
                KillScope::Global
                | KillScope::Server(_)
                | KillScope::Tool(_)
                | KillScope::AgentRole(_)
                | KillScope::User(_),
                asked,
            ) => Ok(asked),
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
}

/// A kill switch that is on: what it covers, in which tenant, who flipped it, when and why.
///
/// Its key is the scope together with the tenant: `user bob in acme` and `user bob` (every
/// tenant) are two switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KillSwitch {
    #[serde(flatten)]
    pub scope: KillScope,
    /// The tenant the switch is limited to; `None` covers every tenant. A tenant switch is
    /// limited to its own tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    pub reason: String,
    pub set_by: String,
    pub set_at: i64,
}

/// The run a call is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKey {
    /// A run named by the token's run id, within its tenant.
    Run { tenant: String, run: String },
    /// Calls without a run id: one run per user and day.
    UserDay {
        tenant: String,
        user: String,
        day: i64,
    },
}

impl RunKey {
    /// The stored key: a JSON array, so no two distinct runs share one.
    pub fn encoded(&self) -> String {
        let value = match self {
            RunKey::Run { tenant, run } => serde_json::json!(["run", tenant, run]),
            RunKey::UserDay { tenant, user, day } => {
                serde_json::json!(["user_day", tenant, user, day])
            }
        };
        value.to_string()
    }

    /// A label for people (messages, logs); never used as a key.
    pub fn label(&self) -> String {
        match self {
            RunKey::Run { run, .. } => format!("run {run:?}"),
            RunKey::UserDay { user, day, .. } => format!("the day-{day} run of user {user:?}"),
        }
    }
}

/// What a run has used so far (of one capability: `tool_calls`; of all: `calls`, `cost`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUsage {
    pub calls: u64,
    pub tool_calls: u64,
    pub cost: u64,
}

/// Where an idempotency key is unique: tenant, user, agent, capability and key, each its own
/// field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyScope {
    pub tenant: String,
    pub user: String,
    pub agent: Option<String>,
    pub tool: String,
    pub key: String,
}

impl IdempotencyScope {
    /// The stored key: a JSON array of the fields.
    pub fn encoded(&self) -> String {
        serde_json::json!([self.tenant, self.user, self.agent, self.tool, self.key]).to_string()
    }
}

/// An idempotency key's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Digest of the call that claimed the key.
    pub fingerprint: String,
    /// The request that claimed it (replays point at it).
    pub request_id: String,
    pub state: ClaimState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimState {
    /// Claimed and not completed; the claim may be taken over once its lease has passed.
    InFlight { lease_until: i64 },
    /// Completed: the stored result (JSON).
    Done { result: String },
}

/// Where an approval request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// What the approver wrote with the decision.
    #[serde(default)]
    pub note: Option<String>,
}

/// A tool's pinned definition: the digest of its description, input and output schema and
/// annotations, with the definition itself (to show what changed) and who pinned it (`capgate`
/// on first sight, else the admin who accepted it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolPin {
    pub server: String,
    /// The downstream's own name for the tool.
    pub tool: String,
    pub digest: String,
    /// The pinned definition, canonical JSON.
    pub definition: String,
    pub pinned_by: String,
    pub pinned_at: i64,
}

/// A break-glass grant: for a limited time, calls of `tool` (or all capabilities) by `user`
/// (optionally only through one agent role) are allowed even where policy refuses them, loudly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BreakGlassGrant {
    pub id: String,
    pub tenant: String,
    pub user: String,
    pub agent_role: Option<String>,
    /// An exposed capability name; `None` covers every capability.
    pub tool: Option<String>,
    pub reason: String,
    pub opened_by: String,
    pub opened_at: i64,
    pub expires_at: i64,
    pub uses: i64,
    /// Who revoked the grant, and when; a revoked grant covers nothing.
    #[serde(default)]
    pub revoked_by: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

/// What one call's admission reads, under the transaction that may then write.
#[derive(Debug, Clone)]
pub struct AdmissionKeys {
    pub run: RunKey,
    /// The capability's exposed name (per-capability budget).
    pub capability: String,
    pub idempotency: Option<IdempotencyScope>,
    pub approval: Option<String>,
    /// Completed idempotency records created before this time are forgotten first.
    pub forget_before: i64,
}

/// The state the admission rule decides on.
#[derive(Debug, Clone, Default)]
pub struct AdmissionState {
    pub usage: BudgetUsage,
    pub idempotency: Option<IdempotencyRecord>,
    pub approval: Option<Approval>,
}

/// What the admission rule tells the store to write (nothing, when it refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionWrites {
    /// Debit one call of this cost from the run and capability.
    pub debit: Option<u64>,
    /// Claim (or take over) the idempotency key.
    pub claim: Option<NewClaim>,
    /// Mark the approval used.
    pub consume_approval: bool,
}

/// A new in-flight claim of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClaim {
    pub fingerprint: String,
    pub request_id: String,
    pub created_at: i64,
    pub lease_until: i64,
}

/// How a claimed call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Performed: keep the result for replays.
    Completed(String),
    /// Certainly not performed: give the key back.
    Released,
}

/// A durable relationship update, replayed over the entity files at start and reload.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationshipUpdate {
    pub seq: i64,
    /// Cedar entity JSON.
    pub entities: Vec<serde_json::Value>,
    pub by: String,
    pub at: i64,
}

/// What another replica (or this one) changed in the shared store: the in-memory view to
/// reload. `Resync` reloads every view: sent when the change feed (re)connects, since changes
/// made while it was away were not announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    KillSwitches,
    Grants,
    Relationships,
    ToolPins,
    Resync,
}

impl Change {
    /// The notification payload naming this change.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::KillSwitches => "kill_switches",
            Change::Grants => "grants",
            Change::Relationships => "relationships",
            Change::ToolPins => "tool_pins",
            Change::Resync => "resync",
        }
    }

    /// Reads a notification payload; an unknown one asks for a full resync rather than nothing.
    pub fn parse(payload: &str) -> Change {
        match payload {
            "kill_switches" => Change::KillSwitches,
            "grants" => Change::Grants,
            "relationships" => Change::Relationships,
            "tool_pins" => Change::ToolPins,
            _ => Change::Resync,
        }
    }
}

/// The admission rule: given the state read in the transaction, what to write.
pub type AdmissionRule<'a> = dyn FnMut(&AdmissionState) -> AdmissionWrites + Send + 'a;

/// The store's operations. Each is one transaction.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Transactions run since start (for `capgate_store_transactions_total`).
    fn transactions(&self) -> u64;

    /// Changes made by any replica sharing this store, as they commit; `None` when this
    /// process is the store's only user (SQLite), so its own changes are all there are.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }

    /// Whether the change feed is connected now; `None` without one.
    fn change_feed_up(&self) -> Option<bool> {
        None
    }

    async fn open_grant(&self, grant: &BreakGlassGrant) -> Result<(), StoreError>;
    async fn grants(&self) -> Result<Vec<BreakGlassGrant>, StoreError>;
    async fn record_grant_use(&self, id: &str) -> Result<(), StoreError>;
    /// Marks a grant revoked; `false` when there is no such grant or it was revoked already.
    async fn revoke_grant(&self, id: &str, by: &str, at: i64) -> Result<bool, StoreError>;

    async fn create_approval(&self, approval: &Approval) -> Result<(), StoreError>;
    async fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError>;
    async fn approvals(&self, tenant: &str) -> Result<Vec<Approval>, StoreError>;
    /// Approvals still waiting for a decision and not yet expired at `now`, in every tenant.
    async fn pending_approval_count(&self, now: i64) -> Result<u64, StoreError>;
    /// Sets a pending approval's status (with who decided and their note), unless its status
    /// changed since `expected` was read. `false` when it did (a concurrent decision won).
    async fn decide_approval(
        &self,
        id: &str,
        expected: ApprovalStatus,
        status: ApprovalStatus,
        decided_by: &str,
        note: Option<&str>,
    ) -> Result<bool, StoreError>;

    async fn tool_pins(&self) -> Result<Vec<ToolPin>, StoreError>;
    /// Pins a definition. First sight (`replace` false) pins only where nothing is pinned yet
    /// and answers whether it did; an admin's accept (`replace` true) replaces the pin.
    async fn pin_tool(&self, pin: &ToolPin, replace: bool) -> Result<bool, StoreError>;

    async fn kill_switches(&self) -> Result<Vec<KillSwitch>, StoreError>;
    /// Sets a switch, replacing the one of the same scope and tenant.
    async fn set_kill_switch(&self, switch: &KillSwitch) -> Result<(), StoreError>;
    /// Removes the switch of this scope and tenant (`None`: the one for every tenant); `false`
    /// when none was on.
    async fn lift_kill_switch(
        &self,
        scope: &KillScope,
        tenant: Option<&str>,
    ) -> Result<bool, StoreError>;

    async fn budget_usage(&self, run: &RunKey, capability: &str)
        -> Result<BudgetUsage, StoreError>;

    /// One call's admission, in one transaction: reads its [`AdmissionState`], asks `rule`,
    /// writes what the rule returned, commits. Returns the usage after the writes.
    async fn admit(
        &self,
        keys: &AdmissionKeys,
        rule: &mut AdmissionRule<'_>,
    ) -> Result<BudgetUsage, StoreError>;
    /// Ends a claim: stores the result or gives the key back.
    async fn settle(
        &self,
        scope: &IdempotencyScope,
        settlement: &Settlement,
    ) -> Result<(), StoreError>;

    async fn relationship_updates(&self) -> Result<Vec<RelationshipUpdate>, StoreError>;
    /// The updates after sequence number `seq`, in order (a replica catching up).
    async fn relationship_updates_after(
        &self,
        seq: i64,
    ) -> Result<Vec<RelationshipUpdate>, StoreError> {
        let mut updates = self.relationship_updates().await?;
        updates.retain(|update| update.seq > seq);
        Ok(updates)
    }
    /// Appends an update; its sequence number.
    async fn append_relationship_update(
        &self,
        entities: &[serde_json::Value],
        by: &str,
        at: i64,
    ) -> Result<i64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keys_never_collide_across_separators() {
        let scope = |user: &str, agent: &str| IdempotencyScope {
            tenant: "acme".into(),
            user: user.into(),
            agent: Some(agent.into()),
            tool: "case__create_notice_draft".into(),
            key: "k".into(),
        };
        assert_ne!(
            scope("org/alice", "bot").encoded(),
            scope("org", "alice/bot").encoded()
        );
        let run = |tenant: &str, run: &str| RunKey::Run {
            tenant: tenant.into(),
            run: run.into(),
        };
        assert_ne!(run("a/b", "c").encoded(), run("a", "b/c").encoded());
        let day = RunKey::UserDay {
            tenant: "a".into(),
            user: "b".into(),
            day: 1,
        };
        assert_ne!(day.encoded(), run("a", "b").encoded());
    }
}
