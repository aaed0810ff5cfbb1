//! What an approval reference must meet to authorize a call: the call's action digest, and
//! the reasons an approval cannot authorize it. Pure rules over stored approvals, used by the
//! admission rule and by refusals alike.

use sha2::{Digest, Sha256};

use crate::identity::CompositeActor;
use crate::store::{canonical_json, Approval, ApprovalStatus, RunKey};

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
                super::echo::echo(id)
            ),
            ApprovalProblem::OtherTenant(id) => {
                format!("approval `{}` does not exist", super::echo::echo(id))
            }
            ApprovalProblem::Unknown(_)
            | ApprovalProblem::OtherCall(_)
            | ApprovalProblem::Expired(_)
            | ApprovalProblem::AlreadyUsed(_)
            | ApprovalProblem::Rejected(_)
            | ApprovalProblem::Pending(_)
            | ApprovalProblem::AlreadyDecided(_) => {
                let text = self.to_string();
                super::echo::echo(&text)
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
