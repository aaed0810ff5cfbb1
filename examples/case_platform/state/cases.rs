//! Cases, their evidence and risk proposals: reading a case, searching and deleting evidence,
//! proposing a risk change (which never changes the case) and setting a case's status.

use serde_json::{json, Value};

use super::error::{require_text, DomainError, DomainResult};
use super::model::{Actor, CaseStatus, Evidence, Proposal, Risk};
use super::platform::Platform;

impl Platform {
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
}
