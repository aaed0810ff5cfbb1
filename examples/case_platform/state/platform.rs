//! The whole platform ([`Platform`]): every tenant's state and the process-wide identifier
//! counters; the per-tenant views every operation starts from, and the tenant's snapshot.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::error::DomainResult;
use super::model::{Actor, Draft, MemoryEntry, TenantState};

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

    pub(super) fn tenant_mut(&mut self, tenant: &str) -> &mut TenantState {
        self.tenants.entry(tenant.to_owned()).or_default()
    }

    pub(super) fn mint(&mut self, prefix: &'static str) -> String {
        let n = self.counters.entry(prefix).or_insert(0);
        *n += 1;
        format!("{prefix}-{n}")
    }

    /// Evidence ids of a case, in id order.
    pub(super) fn evidence_ids(state: &TenantState, case_id: &str) -> Vec<String> {
        state
            .evidence
            .values()
            .filter(|e| e.case_id == case_id)
            .map(|e| e.id.clone())
            .collect()
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
