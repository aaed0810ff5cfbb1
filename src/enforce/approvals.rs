//! Approvals: a `require_approval` decision opens a request bound to the call's action digest;
//! a person with the approver role, in the same tenant and not the requester, grants or rejects
//! it; the agent's retry uses it once, atomically with the rest of its admission.

use sha2::{Digest, Sha256};

use crate::identity::CompositeActor;
use crate::store::{canonical_json, Approval, ApprovalStatus, RunKey, StoreError};

use super::controls::Controls;

/// A call's identity for approvals: what exactly was (or will be) approved.
#[derive(Debug, Clone)]
pub struct ActionDigest(pub String);

impl ActionDigest {
    /// SHA-256 over the canonical JSON of tenant, actor, capability, its definition, arguments
    /// and run.
    pub fn of(
        actor: &CompositeActor,
        capability: &str,
        definition_hash: &str,
        arguments: &serde_json::Map<String, serde_json::Value>,
        run: &RunKey,
    ) -> Self {
        let canonical = canonical_json(&serde_json::json!({
            "tenant": actor.tenant,
            "user": actor.user.id,
            "agent": actor.agent.as_ref().map(|a| a.id.clone()),
            "tool": capability,
            "tool_definition": definition_hash,
            "arguments": arguments,
            "run": run,
        }));
        Self(hex::encode(Sha256::digest(canonical.as_bytes())))
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

impl ApprovalProblem {
    /// The problem as an agent may read it (no policy versions).
    pub fn safe(&self) -> String {
        match self {
            ApprovalProblem::PolicyChanged { id, .. } => format!(
                "approval `{}` was granted under an earlier policy: request a new approval",
                super::refusal::echo(id)
            ),
            ApprovalProblem::OtherTenant(id) => {
                format!("approval `{}` does not exist", super::refusal::echo(id))
            }
            ApprovalProblem::Unknown(_)
            | ApprovalProblem::OtherCall(_)
            | ApprovalProblem::Expired(_)
            | ApprovalProblem::AlreadyUsed(_)
            | ApprovalProblem::Rejected(_)
            | ApprovalProblem::Pending(_)
            | ApprovalProblem::AlreadyDecided(_) => {
                let text = self.to_string();
                super::refusal::echo(&text)
            }
        }
    }
}

/// Why `approval` cannot authorize the call with `digest` in `tenant` at `now`, if it cannot
/// (the policy version is checked where the decision is known).
pub fn problem_for(
    approval: &Approval,
    tenant: &str,
    digest: &ActionDigest,
    now: i64,
) -> Option<ApprovalProblem> {
    let id = || approval.id.clone();
    if approval.tenant != tenant {
        return Some(ApprovalProblem::OtherTenant(id()));
    }
    if approval.action_digest != digest.0 {
        return Some(ApprovalProblem::OtherCall(id()));
    }
    match approval.status {
        ApprovalStatus::Approved if now >= approval.expires_at => {
            Some(ApprovalProblem::Expired(id()))
        }
        ApprovalStatus::Approved => None,
        ApprovalStatus::Pending => Some(ApprovalProblem::Pending(id())),
        ApprovalStatus::Rejected => Some(ApprovalProblem::Rejected(id())),
        ApprovalStatus::Consumed => Some(ApprovalProblem::AlreadyUsed(id())),
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

    /// Grants or rejects a pending approval. `approver` must hold the approval's role, be in its
    /// tenant, and not be its requester: a person may not approve their own request.
    pub async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        approver: &CompositeActor,
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
            .decide_approval(id, ApprovalStatus::Pending, status, &approver.user.id)
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
            ..approval
        })
    }
}
