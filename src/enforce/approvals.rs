//! Approvals: a `require_approval` decision opens a request bound to the call's action digest;
//! a person with the approver role, in the same tenant and not the requester, grants or rejects
//! it; the agent's retry uses it once, atomically with the rest of its admission.

use crate::identity::CompositeActor;
use crate::store::{Approval, ApprovalStatus, StoreError};

use super::approval_rules::{ActionDigest, ApprovalProblem};
use super::controls::Controls;

/// Why an approver's decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalDecisionError {
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Problem(ApprovalProblem),
    #[error(transparent)]
    Store(StoreError),
}

impl Controls {
    /// Opens an approval request for a call the PDP wants approved.
    pub async fn request_approval(
        &self,
        actor: &CompositeActor,
        capability: &str,
        digest: &ActionDigest,
        arguments: &serde_json::Map<String, serde_json::Value>,
        approver_role: Option<&str>,
        policy_version: &str,
    ) -> Result<Approval, StoreError> {
        let now = self.now();
        let approval = Approval {
            id: format!("apr-{:016x}", rand::random::<u64>()),
            tenant: actor.tenant.clone(),
            requester: actor.user.id.clone(),
            tool: capability.to_string(),
            action_digest: digest.0.clone(),
            arguments: serde_json::Value::Object(arguments.clone()).to_string(),
            approver_role: approver_role
                .unwrap_or(&self.config().default_approver_role)
                .to_string(),
            policy_version: policy_version.to_string(),
            created_at: now,
            expires_at: now + self.config().approval_ttl_seconds,
            status: ApprovalStatus::Pending,
            decided_by: None,
            note: None,
        };
        self.store().create_approval(&approval).await?;
        Ok(approval)
    }

    pub async fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.store().approval(id).await
    }

    pub async fn approvals(&self, tenant: &str) -> Result<Vec<Approval>, StoreError> {
        self.store().approvals(tenant).await
    }

    /// Approvals waiting for a decision (every tenant), for the `/metrics` gauge.
    pub async fn pending_approvals(&self) -> Result<u64, StoreError> {
        self.store().pending_approval_count(self.now()).await
    }

    /// Grants or rejects a pending approval, keeping the approver's note. `approver` must hold
    /// the approval's role, be in its tenant, and not be its requester: a person may not
    /// approve their own request.
    pub async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        approver: &CompositeActor,
        note: Option<&str>,
    ) -> Result<Approval, ApprovalDecisionError> {
        let unknown = || ApprovalDecisionError::Problem(ApprovalProblem::Unknown(id.into()));
        let approval = self
            .approval(id)
            .await
            .map_err(ApprovalDecisionError::Store)?
            .ok_or_else(unknown)?;
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
        if approval.status != ApprovalStatus::Pending {
            return Err(ApprovalDecisionError::Problem(
                ApprovalProblem::AlreadyDecided(id.into()),
            ));
        }
        if self.now() >= approval.expires_at {
            return Err(ApprovalDecisionError::Problem(ApprovalProblem::Expired(
                id.into(),
            )));
        }
        let status = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        let decided = self
            .store()
            .decide_approval(id, ApprovalStatus::Pending, status, &approver.user.id, note)
            .await
            .map_err(ApprovalDecisionError::Store)?;
        if !decided {
            return Err(ApprovalDecisionError::Problem(
                ApprovalProblem::AlreadyDecided(id.into()),
            ));
        }
        Ok(Approval {
            status,
            decided_by: Some(approver.user.id.clone()),
            note: note.map(str::to_string),
            ..approval
        })
    }
}
