//! In-memory, per-tenant state of the case platform and the domain operations on it.
//!
//! Every operation takes the calling [`Actor`] and works only on that actor's tenant: an
//! identifier that belongs to another tenant is indistinguishable from one that does not
//! exist. Operations return the JSON document that the tool layer hands back as structured
//! content, or a [`DomainError`] that becomes a tool error.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Deepest entity-graph traversal the platform performs; deeper requests are clamped.
pub const MAX_GRAPH_DEPTH: u32 = 3;

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

/// Why an operation failed; shown to the caller as a tool error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The object does not exist in the caller's tenant.
    #[error("{kind} not found: {id}")]
    NotFound {
        /// Kind of object.
        kind: &'static str,
        /// Identifier asked for.
        id: String,
    },
    /// `send_approved_notice` on a draft that is not approved.
    #[error("draft not approved")]
    DraftNotApproved,
    /// The object is in the wrong state for the operation.
    #[error("{0}")]
    InvalidState(String),
    /// An argument is unacceptable.
    #[error("{0}")]
    InvalidArgument(String),
}

impl DomainError {
    /// Short machine-readable code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::DraftNotApproved => "draft_not_approved",
            Self::InvalidState(_) => "invalid_state",
            Self::InvalidArgument(_) => "invalid_argument",
        }
    }

    fn not_found(kind: &'static str, id: &str) -> Self {
        Self::NotFound {
            kind,
            id: id.to_owned(),
        }
    }
}

/// Result of a domain operation: the structured JSON result or an error.
pub type DomainResult = Result<Value, DomainError>;

/// The whole platform: all tenants plus process-wide identifier counters.
///
/// Identifiers (`prop-N`, `draft-N`, `notice-N`, `grant-N`) count per kind from 1 across the
/// whole process, so they are unique across tenants: an identifier minted in one tenant can
/// never name an object of another.
#[derive(Debug, Default)]
pub struct Platform {
    tenants: HashMap<String, TenantState>,
    empty: TenantState,
    counters: HashMap<&'static str, u64>,
}

fn require_text(field: &str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        Err(DomainError::InvalidArgument(format!(
            "{field} must not be empty"
        )))
    } else {
        Ok(())
    }
}

impl Platform {
    /// A platform holding the given tenants.
    pub fn with_tenants(tenants: HashMap<String, TenantState>) -> Self {
        Self {
            tenants,
            empty: TenantState::default(),
            counters: HashMap::new(),
        }
    }

    /// Read-only view of a tenant; an unknown tenant has no objects.
    pub fn tenant(&self, tenant: &str) -> &TenantState {
        self.tenants.get(tenant).unwrap_or(&self.empty)
    }

    fn tenant_mut(&mut self, tenant: &str) -> &mut TenantState {
        self.tenants.entry(tenant.to_owned()).or_default()
    }

    fn mint(&mut self, prefix: &'static str) -> String {
        let n = self.counters.entry(prefix).or_insert(0);
        *n += 1;
        format!("{prefix}-{n}")
    }

    /// Evidence ids of a case, in id order.
    fn evidence_ids(state: &TenantState, case_id: &str) -> Vec<String> {
        state
            .evidence
            .values()
            .filter(|e| e.case_id == case_id)
            .map(|e| e.id.clone())
            .collect()
    }

    /// The case record as JSON (with its evidence ids), if the tenant has it.
    pub fn case_document(&self, tenant: &str, case_id: &str) -> Option<Value> {
        let state = self.tenant(tenant);
        let case = state.cases.get(case_id)?;
        Some(json!({
            "id": case.id,
            "tenant": tenant,
            "title": case.title,
            "status": case.status,
            "risk": case.risk,
            "assigned_users": case.assigned_users,
            "evidence_ids": Self::evidence_ids(state, case_id),
        }))
    }

    /// `read_case`: the case record plus its evidence ids.
    pub fn read_case(&self, actor: &Actor, case_id: &str) -> DomainResult {
        let case = self
            .case_document(&actor.tenant, case_id)
            .ok_or_else(|| DomainError::not_found("case", case_id))?;
        Ok(json!({ "case": case }))
    }

    /// `search_evidence`: evidence of the case whose title or text contains `query`
    /// (case-insensitive).
    pub fn search_evidence(&self, actor: &Actor, case_id: &str, query: &str) -> DomainResult {
        require_text("query", query)?;
        let state = self.tenant(&actor.tenant);
        if !state.cases.contains_key(case_id) {
            return Err(DomainError::not_found("case", case_id));
        }
        let needle = query.trim().to_lowercase();
        let matches: Vec<&Evidence> = state
            .evidence
            .values()
            .filter(|e| e.case_id == case_id)
            .filter(|e| {
                e.title.to_lowercase().contains(&needle) || e.text.to_lowercase().contains(&needle)
            })
            .collect();
        Ok(json!({
            "case_id": case_id,
            "query": query,
            "count": matches.len(),
            "matches": matches,
        }))
    }

    /// `propose_risk_update`: records a proposal; the case is not changed.
    pub fn propose_risk_update(
        &mut self,
        actor: &Actor,
        case_id: &str,
        risk: Risk,
        rationale: &str,
    ) -> DomainResult {
        require_text("rationale", rationale)?;
        let current_risk = self
            .tenant(&actor.tenant)
            .cases
            .get(case_id)
            .map(|c| c.risk)
            .ok_or_else(|| DomainError::not_found("case", case_id))?;
        let proposal = Proposal {
            id: self.mint("prop"),
            case_id: case_id.to_owned(),
            current_risk,
            proposed_risk: risk,
            rationale: rationale.to_owned(),
            proposed_by: actor.user.clone(),
            agent: actor.agent.clone(),
        };
        let out = json!({ "proposal": proposal, "case_changed": false });
        self.tenant_mut(&actor.tenant).proposals.push(proposal);
        Ok(out)
    }

    /// `create_notice_draft`: a new draft in status `drafted`.
    pub fn create_notice_draft(
        &mut self,
        actor: &Actor,
        case_id: &str,
        body: &str,
    ) -> DomainResult {
        require_text("body", body)?;
        if !self.tenant(&actor.tenant).cases.contains_key(case_id) {
            return Err(DomainError::not_found("case", case_id));
        }
        let draft = Draft {
            id: self.mint("draft"),
            case_id: case_id.to_owned(),
            body: body.to_owned(),
            status: DraftStatus::Drafted,
            created_by: actor.user.clone(),
            approval_requested_by: None,
            approved_by: None,
            sent_by: None,
        };
        let out = json!({ "draft": draft });
        self.tenant_mut(&actor.tenant)
            .drafts
            .insert(draft.id.clone(), draft);
        Ok(out)
    }

    fn draft_mut<'a>(
        state: &'a mut TenantState,
        draft_id: &str,
    ) -> Result<&'a mut Draft, DomainError> {
        state
            .drafts
            .get_mut(draft_id)
            .ok_or_else(|| DomainError::not_found("draft", draft_id))
    }

    /// `request_approval`: `drafted` → `approval_requested`.
    pub fn request_approval(&mut self, actor: &Actor, draft_id: &str) -> DomainResult {
        let state = self.tenant_mut(&actor.tenant);
        let draft = Self::draft_mut(state, draft_id)?;
        if draft.status != DraftStatus::Drafted {
            return Err(DomainError::InvalidState(format!(
                "approval can only be requested for a drafted draft (status: {})",
                draft.status.as_str()
            )));
        }
        draft.status = DraftStatus::ApprovalRequested;
        draft.approval_requested_by = actor.user.clone();
        Ok(json!({ "draft": draft }))
    }

    /// `approve_notice_draft`: `approval_requested` → `approved`.
    pub fn approve_notice_draft(&mut self, actor: &Actor, draft_id: &str) -> DomainResult {
        let state = self.tenant_mut(&actor.tenant);
        let draft = Self::draft_mut(state, draft_id)?;
        if draft.status != DraftStatus::ApprovalRequested {
            return Err(DomainError::InvalidState(format!(
                "draft approval not requested (status: {})",
                draft.status.as_str()
            )));
        }
        draft.status = DraftStatus::Approved;
        draft.approved_by = actor.user.clone();
        Ok(json!({ "draft": draft }))
    }

    /// `send_approved_notice`: only an `approved` draft is sent; it becomes `sent` and a notice
    /// is appended to the tenant's sent notices.
    pub fn send_approved_notice(&mut self, actor: &Actor, draft_id: &str) -> DomainResult {
        let status = Self::draft_mut(self.tenant_mut(&actor.tenant), draft_id)?.status;
        if status != DraftStatus::Approved {
            return Err(DomainError::DraftNotApproved);
        }
        let notice_id = self.mint("notice");
        let state = self.tenant_mut(&actor.tenant);
        let draft = Self::draft_mut(state, draft_id)?;
        draft.status = DraftStatus::Sent;
        draft.sent_by = actor.user.clone();
        let draft = draft.clone();
        let notice = SentNotice {
            id: notice_id,
            draft_id: draft.id.clone(),
            case_id: draft.case_id.clone(),
            body: draft.body.clone(),
            sent_by: actor.user.clone(),
        };
        state.sent_notices.push(notice.clone());
        Ok(json!({
            "draft": draft,
            "notice": notice,
            "sent_notices_total": state.sent_notices.len(),
        }))
    }

    /// `update_case_status`: sets the case's status.
    pub fn update_case_status(
        &mut self,
        actor: &Actor,
        case_id: &str,
        status: CaseStatus,
    ) -> DomainResult {
        let state = self.tenant_mut(&actor.tenant);
        let case = state
            .cases
            .get_mut(case_id)
            .ok_or_else(|| DomainError::not_found("case", case_id))?;
        let previous = case.status;
        case.status = status;
        Ok(json!({
            "case_id": case_id,
            "previous_status": previous,
            "status": status,
        }))
    }

    fn memory_key(
        actor: &Actor,
        scope: MemoryScope,
        key: &str,
    ) -> (MemoryScope, Option<String>, String) {
        let owner = match scope {
            MemoryScope::User => actor.user.clone(),
            _ => None,
        };
        (scope, owner, key.to_owned())
    }

    /// `write_memory`: stores (or overwrites) an entry.
    pub fn write_memory(
        &mut self,
        actor: &Actor,
        scope: MemoryScope,
        key: &str,
        value: &str,
        sensitivity: MemorySensitivity,
    ) -> DomainResult {
        require_text("key", key)?;
        let map_key = Self::memory_key(actor, scope, key);
        let entry = MemoryEntry {
            scope,
            key: key.to_owned(),
            owner: map_key.1.clone(),
            value: value.to_owned(),
            sensitivity,
            written_by: actor.user.clone(),
            agent: actor.agent.clone(),
        };
        let replaced = self
            .tenant_mut(&actor.tenant)
            .memory
            .insert(map_key, entry.clone())
            .is_some();
        Ok(json!({ "stored": true, "replaced": replaced, "entry": entry }))
    }

    /// `read_memory`: the stored entry, or not found.
    pub fn read_memory(&self, actor: &Actor, scope: MemoryScope, key: &str) -> DomainResult {
        let map_key = Self::memory_key(actor, scope, key);
        let entry = self
            .tenant(&actor.tenant)
            .memory
            .get(&map_key)
            .ok_or_else(|| DomainError::NotFound {
                kind: "memory",
                id: format!("{}/{key}", scope.as_str()),
            })?;
        Ok(json!({ "found": true, "value": entry.value, "entry": entry }))
    }

    /// `traverse_entity_graph`: breadth-first walk along outgoing edges, up to `depth`
    /// (clamped to [`MAX_GRAPH_DEPTH`]).
    pub fn traverse_entity_graph(
        &self,
        actor: &Actor,
        entity_id: &str,
        depth: u32,
    ) -> DomainResult {
        let state = self.tenant(&actor.tenant);
        let start = state
            .entities
            .get(entity_id)
            .ok_or_else(|| DomainError::not_found("entity", entity_id))?;
        let depth_applied = depth.min(MAX_GRAPH_DEPTH);
        let mut visited = BTreeSet::from([start.id.clone()]);
        let mut queue = VecDeque::from([(start.id.clone(), 0u32)]);
        let mut nodes =
            vec![json!({ "id": start.id, "kind": start.kind, "label": start.label, "depth": 0 })];
        let mut edges = Vec::new();
        while let Some((id, d)) = queue.pop_front() {
            if d >= depth_applied {
                continue;
            }
            for edge in state.edges.iter().filter(|e| e.from == id) {
                edges.push(edge.clone());
                if visited.insert(edge.to.clone()) {
                    let (kind, label) = state
                        .entities
                        .get(&edge.to)
                        .map(|e| (e.kind.clone(), e.label.clone()))
                        .unwrap_or_else(|| ("unknown".to_owned(), edge.to.clone()));
                    nodes.push(
                        json!({ "id": edge.to, "kind": kind, "label": label, "depth": d + 1 }),
                    );
                    queue.push_back((edge.to.clone(), d + 1));
                }
            }
        }
        Ok(json!({
            "start": entity_id,
            "depth_requested": depth,
            "depth_applied": depth_applied,
            "clamped": depth > MAX_GRAPH_DEPTH,
            "nodes": nodes,
            "edges": edges,
        }))
    }

    /// `delete_evidence`: removes the document.
    pub fn delete_evidence(&mut self, actor: &Actor, evidence_id: &str) -> DomainResult {
        let state = self.tenant_mut(&actor.tenant);
        let removed = state
            .evidence
            .remove(evidence_id)
            .ok_or_else(|| DomainError::not_found("evidence", evidence_id))?;
        Ok(json!({
            "deleted": true,
            "evidence_id": removed.id,
            "case_id": removed.case_id,
            "title": removed.title,
            "remaining_in_case": Self::evidence_ids(state, &removed.case_id),
        }))
    }

    /// `grant_tool_access`: records a grant of `tool` to `agent`.
    pub fn grant_tool_access(&mut self, actor: &Actor, agent: &str, tool: &str) -> DomainResult {
        require_text("agent", agent)?;
        require_text("tool", tool)?;
        let grant = Grant {
            id: self.mint("grant"),
            agent: agent.to_owned(),
            tool: tool.to_owned(),
            granted_by: actor.user.clone(),
        };
        let out = json!({ "grant": grant });
        self.tenant_mut(&actor.tenant).grants.push(grant);
        Ok(out)
    }

    /// `state_snapshot`: the tenant's whole state.
    pub fn state_snapshot(&self, actor: &Actor) -> DomainResult {
        let state = self.tenant(&actor.tenant);
        let cases: Vec<Value> = state
            .cases
            .values()
            .map(|c| {
                json!({
                    "id": c.id,
                    "title": c.title,
                    "status": c.status,
                    "risk": c.risk,
                    "assigned_users": c.assigned_users,
                    "evidence_ids": Self::evidence_ids(state, &c.id),
                })
            })
            .collect();
        let memory: Vec<&MemoryEntry> = state.memory.values().collect();
        let drafts: Vec<&Draft> = state.drafts.values().collect();
        Ok(json!({
            "tenant": actor.tenant,
            "counts": {
                "cases": state.cases.len(),
                "evidence": state.evidence.len(),
                "drafts": state.drafts.len(),
                "sent_notices": state.sent_notices.len(),
                "proposals": state.proposals.len(),
                "memory_entries": state.memory.len(),
                "grants": state.grants.len(),
            },
            "cases": cases,
            "drafts": drafts,
            "sent_notices": state.sent_notices,
            "proposals": state.proposals,
            "memory": memory,
            "grants": state.grants,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed;

    fn acme() -> Actor {
        Actor::new("acme", "alice")
    }

    fn globex() -> Actor {
        Actor::new("globex", "carol")
    }

    #[test]
    fn seed_matches_the_spec() {
        let p = seed::platform();
        let acme = p.tenant("acme");
        assert_eq!(
            acme.cases.keys().collect::<Vec<_>>(),
            ["case-101", "case-102", "case-103", "case-104"]
        );
        assert_eq!(acme.cases["case-103"].risk, Risk::Critical);
        assert_eq!(acme.cases["case-102"].assigned_users, ["alice", "bob"]);
        assert!(acme.cases["case-104"].assigned_users.is_empty());
        assert_eq!(
            p.tenant("globex").cases.keys().collect::<Vec<_>>(),
            ["case-201"]
        );
        let ev: Vec<_> = acme.evidence.keys().collect();
        assert_eq!(ev, ["ev-1001", "ev-1002", "ev-1021", "ev-1031"]);
        assert_eq!(
            acme.evidence["ev-1002"].sensitivity,
            EvidenceSensitivity::Restricted
        );
        assert_eq!(
            acme.evidence["ev-1031"].sensitivity,
            EvidenceSensitivity::Confidential
        );
    }

    #[test]
    fn read_case_lists_evidence() {
        let p = seed::platform();
        let v = p.read_case(&acme(), "case-101").expect("case");
        assert_eq!(v["case"]["title"], "Unlicensed lending — Northwind");
        assert_eq!(v["case"]["evidence_ids"], json!(["ev-1001", "ev-1002"]));
        assert_eq!(v["case"]["status"], "open");
    }

    #[test]
    fn tenants_are_isolated() {
        let mut p = seed::platform();
        let nf = |kind: &'static str, id: &str| DomainError::NotFound {
            kind,
            id: id.to_owned(),
        };
        assert_eq!(
            p.read_case(&globex(), "case-101"),
            Err(nf("case", "case-101"))
        );
        assert_eq!(
            p.read_case(&acme(), "case-201"),
            Err(nf("case", "case-201"))
        );
        assert_eq!(
            p.search_evidence(&globex(), "case-101", "loan"),
            Err(nf("case", "case-101"))
        );
        assert_eq!(
            p.delete_evidence(&globex(), "ev-1001"),
            Err(nf("evidence", "ev-1001"))
        );
        assert_eq!(
            p.traverse_entity_graph(&globex(), "northwind", 2),
            Err(nf("entity", "northwind"))
        );
        // A draft made in acme cannot be touched from globex.
        let d = p
            .create_notice_draft(&acme(), "case-101", "Notice of breach")
            .expect("draft");
        let id = d["draft"]["id"].as_str().expect("id").to_owned();
        assert_eq!(p.request_approval(&globex(), &id), Err(nf("draft", &id)));
        assert_eq!(
            p.send_approved_notice(&globex(), &id),
            Err(nf("draft", &id))
        );
        // Memory too.
        p.write_memory(
            &acme(),
            MemoryScope::Tenant,
            "k",
            "v",
            MemorySensitivity::Internal,
        )
        .expect("write");
        assert!(p.read_memory(&globex(), MemoryScope::Tenant, "k").is_err());
        assert!(p.read_memory(&acme(), MemoryScope::Tenant, "k").is_ok());
        // Snapshots only count the caller's objects.
        let g = p.state_snapshot(&globex()).expect("snapshot");
        // Only globex's own seeded draft (draft-951); acme's drafts are not counted.
        assert_eq!(g["counts"]["drafts"], 1);
        assert_eq!(g["counts"]["memory_entries"], 0);
        assert_eq!(g["counts"]["cases"], 1);
        // An unknown tenant sees nothing.
        let other = Actor::new("initech", "x");
        assert!(p.read_case(&other, "case-101").is_err());
        assert_eq!(
            p.state_snapshot(&other).expect("snap")["counts"]["cases"],
            0
        );
    }

    #[test]
    fn draft_lifecycle_and_send_only_when_approved() {
        let mut p = seed::platform();
        let a = acme();
        let d = p
            .create_notice_draft(&a, "case-102", "You are required to respond.")
            .expect("draft");
        assert_eq!(d["draft"]["status"], "drafted");
        let id = d["draft"]["id"].as_str().expect("id").to_owned();
        assert!(id.starts_with("draft-"));

        assert_eq!(
            p.send_approved_notice(&a, &id),
            Err(DomainError::DraftNotApproved)
        );
        // Approval must be requested first.
        assert!(matches!(
            p.approve_notice_draft(&a, &id),
            Err(DomainError::InvalidState(_))
        ));
        let r = p.request_approval(&a, &id).expect("request");
        assert_eq!(r["draft"]["status"], "approval_requested");
        assert_eq!(
            p.send_approved_notice(&a, &id),
            Err(DomainError::DraftNotApproved)
        );
        assert_eq!(
            p.state_snapshot(&a).expect("s")["counts"]["sent_notices"],
            0
        );

        let ap = p
            .approve_notice_draft(&Actor::new("acme", "bob"), &id)
            .expect("approve");
        assert_eq!(ap["draft"]["status"], "approved");
        assert_eq!(ap["draft"]["approved_by"], "bob");

        let sent = p.send_approved_notice(&a, &id).expect("send");
        assert_eq!(sent["draft"]["status"], "sent");
        assert_eq!(sent["sent_notices_total"], 1);
        // Sending twice is refused.
        assert_eq!(
            p.send_approved_notice(&a, &id),
            Err(DomainError::DraftNotApproved)
        );
        let snap = p.state_snapshot(&a).expect("snapshot");
        assert_eq!(snap["counts"]["sent_notices"], 1);
        assert_eq!(snap["sent_notices"][0]["draft_id"], json!(id));
        assert_eq!(
            DomainError::DraftNotApproved.to_string(),
            "draft not approved"
        );
    }

    #[test]
    fn proposals_do_not_change_the_case() {
        let mut p = seed::platform();
        let a = acme();
        let v = p
            .propose_risk_update(&a, "case-101", Risk::High, "new evidence")
            .expect("proposal");
        assert!(v["proposal"]["id"]
            .as_str()
            .is_some_and(|s| s.starts_with("prop-")));
        assert_eq!(v["proposal"]["current_risk"], "medium");
        assert_eq!(p.tenant("acme").cases["case-101"].risk, Risk::Medium);
        assert!(p
            .propose_risk_update(&a, "case-101", Risk::High, "  ")
            .is_err());
        assert_eq!(p.state_snapshot(&a).expect("s")["counts"]["proposals"], 1);
    }

    #[test]
    fn ids_are_unique_across_tenants() {
        let mut p = seed::platform();
        let a = p.create_notice_draft(&acme(), "case-101", "a").expect("a");
        let g = p
            .create_notice_draft(&globex(), "case-201", "g")
            .expect("g");
        assert_eq!(a["draft"]["id"], "draft-1");
        assert_eq!(g["draft"]["id"], "draft-2");
        let prop = p
            .propose_risk_update(&acme(), "case-101", Risk::Low, "settled")
            .expect("proposal");
        assert_eq!(prop["proposal"]["id"], "prop-1");
    }

    #[test]
    fn case_status_and_evidence_changes() {
        let mut p = seed::platform();
        let a = acme();
        let v = p
            .update_case_status(&a, "case-104", CaseStatus::UnderReview)
            .expect("update");
        assert_eq!(v["previous_status"], "open");
        assert_eq!(
            p.tenant("acme").cases["case-104"].status,
            CaseStatus::UnderReview
        );

        let s = p
            .search_evidence(&a, "case-101", "J. SMITH")
            .expect("search");
        assert_eq!(s["count"], 2);
        let s = p
            .search_evidence(&a, "case-101", "whistleblower")
            .expect("s");
        assert_eq!(s["matches"][0]["id"], "ev-1002");
        assert!(p.search_evidence(&a, "case-101", "").is_err());

        p.delete_evidence(&a, "ev-1002").expect("delete");
        let c = p.read_case(&a, "case-101").expect("case");
        assert_eq!(c["case"]["evidence_ids"], json!(["ev-1001"]));
        assert!(p.delete_evidence(&a, "ev-1002").is_err());
    }

    #[test]
    fn user_memory_is_per_user() {
        let mut p = seed::platform();
        let alice = acme();
        let bob = Actor::new("acme", "bob");
        p.write_memory(
            &alice,
            MemoryScope::User,
            "pref",
            "terse",
            MemorySensitivity::Public,
        )
        .expect("w");
        assert_eq!(
            p.read_memory(&alice, MemoryScope::User, "pref").expect("r")["value"],
            "terse"
        );
        assert!(p.read_memory(&bob, MemoryScope::User, "pref").is_err());
        assert!(p.read_memory(&alice, MemoryScope::Team, "pref").is_err());
    }

    #[test]
    fn graph_traversal_is_bounded() {
        let p = seed::platform();
        let a = acme();
        let one = p.traverse_entity_graph(&a, "case-101", 1).expect("1");
        let ids = |v: &Value| -> Vec<String> {
            v["nodes"]
                .as_array()
                .map(|n| {
                    n.iter()
                        .filter_map(|x| x["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(ids(&one), ["case-101", "northwind"]);
        let three = p.traverse_entity_graph(&a, "case-101", 3).expect("3");
        assert_eq!(
            ids(&three),
            ["case-101", "northwind", "j.smith", "contoso", "acct-5520"]
        );
        let big = p.traverse_entity_graph(&a, "case-101", 10).expect("10");
        assert_eq!(big["depth_applied"], 3);
        assert_eq!(big["clamped"], true);
        assert_eq!(ids(&big), ids(&three));
    }

    #[test]
    fn grants_are_recorded() {
        let mut p = seed::platform();
        let v = p
            .grant_tool_access(&acme(), "triage-bot", "read_case")
            .expect("grant");
        assert_eq!(v["grant"]["agent"], "triage-bot");
        assert_eq!(p.tenant("acme").grants.len(), 1);
        assert!(p.tenant("globex").grants.is_empty());
    }
}
