//! The platform's records: what one tenant owns (cases, evidence, drafts and notices, risk
//! proposals, agent memory, the entity graph, tool grants), and the [`Actor`] that calls.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The caller of an operation, as injected by the gateway in `_meta["dev.capgate/actor"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// Tenant whose state the call may touch.
    pub tenant: String,
    /// Human user on whose behalf the agent acts.
    pub user: Option<String>,
    /// Agent identity.
    pub agent: Option<String>,
    /// Agent run identifier, if any.
    pub run_id: Option<String>,
}

impl Actor {
    /// An actor of `tenant` acting for `user` (used by tests and seed helpers).
    #[cfg(test)]
    pub fn new(tenant: &str, user: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            user: Some(user.to_owned()),
            agent: Some("test-agent".to_owned()),
            run_id: None,
        }
    }
}

/// Lifecycle status of an enforcement case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Case is open.
    Open,
    /// Case is being reviewed.
    UnderReview,
    /// Case is closed.
    Closed,
}

impl CaseStatus {
    /// Wire name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::UnderReview => "under_review",
            Self::Closed => "closed",
        }
    }
}

/// Risk rating of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Low risk.
    Low,
    /// Medium risk.
    Medium,
    /// High risk.
    High,
    /// Critical risk.
    Critical,
}

impl Risk {
    /// Wire name of the risk rating.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// Sensitivity label of an evidence document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSensitivity {
    /// Internal to the regulator.
    Internal,
    /// Restricted to the case team.
    Restricted,
    /// Confidential (named individuals only).
    Confidential,
}

/// Lifecycle status of a notice draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftStatus {
    /// Freshly written.
    Drafted,
    /// Waiting for an approver.
    ApprovalRequested,
    /// Approved, may be sent.
    Approved,
    /// Sent to the recipient.
    Sent,
}

impl DraftStatus {
    /// Wire name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drafted => "drafted",
            Self::ApprovalRequested => "approval_requested",
            Self::Approved => "approved",
            Self::Sent => "sent",
        }
    }
}

/// Scope of a memory entry.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MemoryScope {
    /// Private to the calling user (keyed by the actor's user).
    User,
    /// Shared by the user's team.
    Team,
    /// Shared by the whole tenant.
    Tenant,
    /// Shared within the tenant's business domain.
    Domain,
    /// The widest scope (still confined to the tenant).
    Global,
}

impl MemoryScope {
    /// Wire name of the scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Team => "team",
            Self::Tenant => "tenant",
            Self::Domain => "domain",
            Self::Global => "global",
        }
    }
}

/// Sensitivity label of a memory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemorySensitivity {
    /// May be shown to anyone.
    Public,
    /// Internal to the tenant.
    Internal,
    /// Restricted.
    Restricted,
}

/// An enforcement case.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// Case identifier.
    pub id: String,
    /// Case title.
    pub title: String,
    /// Current status.
    pub status: CaseStatus,
    /// Current risk rating.
    pub risk: Risk,
    /// Users assigned to the case.
    pub assigned_users: Vec<String>,
}

/// An evidence document attached to a case.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// Evidence identifier.
    pub id: String,
    /// Case the document belongs to.
    pub case_id: String,
    /// Document title.
    pub title: String,
    /// Sensitivity label.
    pub sensitivity: EvidenceSensitivity,
    /// Document text.
    pub text: String,
}

/// A proposed change of a case's risk rating (the case itself is not changed).
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    /// Proposal identifier (`prop-N`).
    pub id: String,
    /// Case concerned.
    pub case_id: String,
    /// Risk at the time of the proposal.
    pub current_risk: Risk,
    /// Proposed risk.
    pub proposed_risk: Risk,
    /// Why the change is proposed.
    pub rationale: String,
    /// User who proposed it.
    pub proposed_by: Option<String>,
    /// Agent that proposed it.
    pub agent: Option<String>,
}

/// A notice draft and its approval trail.
#[derive(Debug, Clone, Serialize)]
pub struct Draft {
    /// Draft identifier (`draft-N`).
    pub id: String,
    /// Case concerned.
    pub case_id: String,
    /// Notice text.
    pub body: String,
    /// Lifecycle status.
    pub status: DraftStatus,
    /// User who created the draft.
    pub created_by: Option<String>,
    /// User who requested approval.
    pub approval_requested_by: Option<String>,
    /// User who approved the draft.
    pub approved_by: Option<String>,
    /// User who sent the notice.
    pub sent_by: Option<String>,
}

/// A notice that has left the platform.
#[derive(Debug, Clone, Serialize)]
pub struct SentNotice {
    /// Notice identifier (`notice-N`).
    pub id: String,
    /// Draft it was sent from.
    pub draft_id: String,
    /// Case concerned.
    pub case_id: String,
    /// Notice text.
    pub body: String,
    /// User who sent it.
    pub sent_by: Option<String>,
}

/// A stored memory entry.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryEntry {
    /// Scope of the entry.
    pub scope: MemoryScope,
    /// Key within the scope.
    pub key: String,
    /// Owner for `user` scope entries.
    pub owner: Option<String>,
    /// Stored value.
    pub value: String,
    /// Sensitivity label.
    pub sensitivity: MemorySensitivity,
    /// User who wrote it last.
    pub written_by: Option<String>,
    /// Agent that wrote it last.
    pub agent: Option<String>,
}

/// A recorded tool grant.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    /// Grant identifier (`grant-N`).
    pub id: String,
    /// Agent that receives access.
    pub agent: String,
    /// Tool the agent may use.
    pub tool: String,
    /// User who granted it.
    pub granted_by: Option<String>,
}

/// A node of the tenant's entity graph.
#[derive(Debug, Clone, Serialize)]
pub struct Entity {
    /// Entity identifier.
    pub id: String,
    /// Kind: case, company, person, account.
    pub kind: String,
    /// Display label.
    pub label: String,
}

/// A directed edge of the tenant's entity graph.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// Source entity.
    pub from: String,
    /// Target entity.
    pub to: String,
    /// Relation name.
    pub relation: String,
}

/// Everything one tenant owns.
#[derive(Debug, Default, Clone)]
pub struct TenantState {
    /// Cases by id.
    pub cases: BTreeMap<String, Case>,
    /// Evidence by id.
    pub evidence: BTreeMap<String, Evidence>,
    /// Entity graph nodes by id.
    pub entities: BTreeMap<String, Entity>,
    /// Entity graph edges.
    pub edges: Vec<Edge>,
    /// Risk proposals in creation order.
    pub proposals: Vec<Proposal>,
    /// Notice drafts by id.
    pub drafts: BTreeMap<String, Draft>,
    /// Sent notices in sending order.
    pub sent_notices: Vec<SentNotice>,
    /// Memory entries by (scope, owner, key).
    pub memory: BTreeMap<(MemoryScope, Option<String>, String), MemoryEntry>,
    /// Tool grants in creation order.
    pub grants: Vec<Grant>,
}
