//! The notice workflow: a draft is `drafted`, then `approval_requested`, then `approved`, and only
//! an approved draft is sent.

use serde_json::json;

use super::error::{require_text, DomainError, DomainResult};
use super::model::{Actor, Draft, DraftStatus, SentNotice, TenantState};
use super::platform::Platform;

impl Platform {
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
}
