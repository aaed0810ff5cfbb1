//! The one refusal type. Every way a request can be refused — the PDP's outcomes and every
//! control — is a [`Refusal`]; the pipeline turns each into exactly one decision record, one
//! counter increment and one agent message, rendered per `explain_to_agent`.
//!
//! Each refusal has two texts: `detailed` (for logs, admins, and agents when the operator
//! chose `explain_to_agent = "detailed"`) and `safe` (for agents by default): no policy ids,
//! admin reasons, other actors' scopes, store or downstream internals, or paths.

use crate::downstream::DownstreamError;
use crate::metrics::ToolEvent;
use crate::policy::{Decision, Outcome};
use crate::store::{KillSwitch, StoreError};

use super::approval_rules::ApprovalProblem;
use super::echo::echo;
use super::requests::BindError;
use super::IDEMPOTENCY_META_KEY;

/// Why a request was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The PDP refused (deny, require_more_context, require_approval).
    Policy(Box<Decision>),
    /// No contract covers the name or URI, or the name is unknown.
    Unknown {
        kind: &'static str,
        name: String,
    },
    /// Contracted, but the downstream does not offer it now.
    NotOffered {
        name: String,
        server: String,
    },
    /// An argument that names an entity could not be bound.
    Unbound(BindError),
    Killed(KillSwitch),
    BudgetExhausted(String),
    MaxCalls {
        capability: String,
        limit: u64,
    },
    NoRun,
    MissingIdempotencyKey {
        capability: String,
    },
    KeyReused(String),
    InFlight(String),
    /// The key's earlier call may have acted, but its outcome is unknown.
    Unfinished(String),
    Approval(ApprovalProblem),
    StoreUnavailable(StoreError),
    DecisionLogUnavailable(String),
    /// The allow carries an obligation this gateway cannot apply to the result.
    Obligation(String),
    DownstreamUnavailable(DownstreamError),
    /// Forwarded, but the downstream failed or did not answer in time (it may have acted).
    DownstreamFailed(DownstreamError),
    /// A downstream asked the client for something (elicitation, sampling) the client did not
    /// declare it supports.
    ClientUndeclared(&'static str),
    /// A 2026-07-28 client's retry whose request state or input responses are not what capgate
    /// asked for (forged, edited, of another call, expired, other inputs, or an answer refused).
    InputState(String),
    /// The tool's definition changed from its pin; an admin has not accepted the new one.
    Quarantined {
        name: String,
        pinned: String,
        seen: String,
    },
}

impl Refusal {
    /// The control (or `policy`) that refused: the `refused_by` of records, spans and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Policy(_) => "policy",
            Refusal::Unknown { .. } => "unknown_capability",
            Refusal::NotOffered { .. } => "not_offered",
            Refusal::Unbound(_) => "unbound_argument",
            Refusal::Killed(_) => "kill_switch",
            Refusal::BudgetExhausted(_) => "budget",
            Refusal::MaxCalls { .. } => "max_calls",
            Refusal::NoRun => "no_run",
            Refusal::MissingIdempotencyKey { .. }
            | Refusal::KeyReused(_)
            | Refusal::InFlight(_)
            | Refusal::Unfinished(_) => "idempotency",
            Refusal::Approval(_) => "approval",
            Refusal::StoreUnavailable(_) => "store_unavailable",
            Refusal::DecisionLogUnavailable(_) => "decision_log_unavailable",
            Refusal::Obligation(_) => "obligation",
            Refusal::DownstreamUnavailable(_) => "downstream_unavailable",
            Refusal::DownstreamFailed(_) => "downstream_failed",
            Refusal::ClientUndeclared(_) => "client_capability",
            Refusal::InputState(_) => "input_state",
            Refusal::Quarantined { .. } => "quarantine",
        }
    }

    /// The control that refused; `None` when the PDP did.
    pub fn control(&self) -> Option<&'static str> {
        match self {
            Refusal::Policy(_) => None,
            _ => Some(self.kind()),
        }
    }

    /// What the outcome record of a request refused after its decision record says happened
    /// downstream.
    pub fn downstream_outcome(&self) -> &'static str {
        match self {
            Refusal::DownstreamFailed(_) => "failed",
            Refusal::Obligation(_) => "withheld",
            Refusal::DownstreamUnavailable(_) => "unavailable",
            Refusal::Policy(_)
            | Refusal::Unknown { .. }
            | Refusal::NotOffered { .. }
            | Refusal::Unbound(_)
            | Refusal::Killed(_)
            | Refusal::BudgetExhausted(_)
            | Refusal::MaxCalls { .. }
            | Refusal::NoRun
            | Refusal::MissingIdempotencyKey { .. }
            | Refusal::KeyReused(_)
            | Refusal::InFlight(_)
            | Refusal::Unfinished(_)
            | Refusal::Approval(_)
            | Refusal::StoreUnavailable(_)
            | Refusal::DecisionLogUnavailable(_)
            | Refusal::ClientUndeclared(_)
            | Refusal::InputState(_)
            | Refusal::Quarantined { .. } => "not_forwarded",
        }
    }

    /// The request's final outcome.
    pub fn outcome(&self) -> Outcome {
        match self {
            Refusal::Policy(decision) => decision.outcome,
            Refusal::Unknown { .. }
            | Refusal::NotOffered { .. }
            | Refusal::Unbound(_)
            | Refusal::Killed(_)
            | Refusal::BudgetExhausted(_)
            | Refusal::MaxCalls { .. }
            | Refusal::NoRun
            | Refusal::MissingIdempotencyKey { .. }
            | Refusal::KeyReused(_)
            | Refusal::InFlight(_)
            | Refusal::Unfinished(_)
            | Refusal::Approval(_)
            | Refusal::StoreUnavailable(_)
            | Refusal::DecisionLogUnavailable(_)
            | Refusal::Obligation(_)
            | Refusal::DownstreamUnavailable(_)
            | Refusal::DownstreamFailed(_)
            | Refusal::ClientUndeclared(_)
            | Refusal::InputState(_)
            | Refusal::Quarantined { .. } => Outcome::Deny,
        }
    }

    /// The control counter it adds to, besides the decisions counter.
    pub fn counted_as(&self) -> Option<ToolEvent> {
        match self {
            Refusal::Killed(_) => Some(ToolEvent::KillSwitchHit),
            Refusal::BudgetExhausted(_) | Refusal::MaxCalls { .. } => {
                Some(ToolEvent::BudgetExhausted)
            }
            Refusal::Obligation(_) => Some(ToolEvent::ObligationFailure),
            Refusal::Policy(_)
            | Refusal::Unknown { .. }
            | Refusal::NotOffered { .. }
            | Refusal::Unbound(_)
            | Refusal::NoRun
            | Refusal::MissingIdempotencyKey { .. }
            | Refusal::KeyReused(_)
            | Refusal::InFlight(_)
            | Refusal::Unfinished(_)
            | Refusal::Approval(_)
            | Refusal::StoreUnavailable(_)
            | Refusal::DecisionLogUnavailable(_)
            | Refusal::DownstreamUnavailable(_)
            | Refusal::DownstreamFailed(_)
            | Refusal::ClientUndeclared(_)
            | Refusal::InputState(_)
            | Refusal::Quarantined { .. } => None,
        }
    }

    /// The decision, when the PDP made one.
    pub fn decision(&self) -> Option<&Decision> {
        match self {
            Refusal::Policy(decision) => Some(decision),
            _ => None,
        }
    }

    /// The full reason, for the decision log and admins.
    pub fn detailed(&self) -> String {
        match self {
            Refusal::Policy(decision) => decision.reason.clone(),
            Refusal::Unknown { kind, name } => format!("unknown {kind}: {}", echo(name)),
            Refusal::NotOffered { name, server } => format!(
                "`{}` is not currently offered by downstream server `{server}`",
                echo(name)
            ),
            Refusal::Unbound(error) => error.to_string(),
            Refusal::Killed(switch) => format!(
                "stopped by a {} kill switch ({}{}), set by {}: {}",
                switch.scope.kind(),
                scope_target(switch),
                match &switch.tenant {
                    Some(tenant) => format!(" in tenant {tenant:?}"),
                    None => String::new(),
                },
                switch.set_by,
                switch.reason
            ),
            Refusal::BudgetExhausted(reason) => format!("run budget exhausted: {reason}"),
            Refusal::MaxCalls { capability, limit } => format!(
                "the policy allows at most {limit} calls of {capability} per run (obligation max_calls), and they are used"
            ),
            Refusal::NoRun => self.safe(),
            Refusal::MissingIdempotencyKey { .. }
            | Refusal::KeyReused(_)
            | Refusal::InFlight(_)
            | Refusal::Unfinished(_) => self.safe(),
            Refusal::Approval(problem) => {
                format!("the approval does not authorize this call: {problem}")
            }
            Refusal::StoreUnavailable(error) => {
                format!("the enforcement store is unavailable, so capgate fails closed: {error}")
            }
            Refusal::DecisionLogUnavailable(error) => format!(
                "this call's decision record could not be made durable, and capgate forwards no call it cannot account for ({error})"
            ),
            Refusal::Obligation(failure) => format!(
                "denied: the allow's obligations could not be applied to the result: {failure}"
            ),
            Refusal::DownstreamUnavailable(error) | Refusal::DownstreamFailed(error) => {
                error.to_string()
            }
            Refusal::ClientUndeclared(_) => self.safe(),
            Refusal::InputState(problem) => format!("the retry's input was refused: {problem}"),
            Refusal::Quarantined { name, pinned, seen } => format!(
                "`{}` is quarantined: its definition changed from the pinned {pinned} to {seen}, and no admin has accepted the new one",
                echo(name)
            ),
        }
    }

    /// The reason an agent may read: actionable, without internals.
    pub fn safe(&self) -> String {
        match self {
            Refusal::Policy(decision) => decision.agent_reason.clone(),
            Refusal::Unknown { kind, name } => format!("unknown {kind}: {}", echo(name)),
            Refusal::NotOffered { name, .. } => {
                format!("`{}` is not available right now; retry later", echo(name))
            }
            Refusal::Unbound(error) => error.to_string(),
            Refusal::Killed(_) => {
                "this capability is stopped by an administrator for now".to_string()
            }
            Refusal::BudgetExhausted(_) => {
                "this run's budget does not allow this call".to_string()
            }
            Refusal::MaxCalls { .. } => {
                "the policy's limit on calls of this capability in this run is reached".to_string()
            }
            Refusal::NoRun => {
                "this call has no run id and the gateway refuses calls outside a run".to_string()
            }
            Refusal::MissingIdempotencyKey { capability } => format!(
                "`{capability}` has side effects: send an idempotency key in _meta[\"{IDEMPOTENCY_META_KEY}\"] (a unique string per intended action; reuse it only to retry the same call)"
            ),
            Refusal::KeyReused(key) => format!(
                "idempotency key `{}` was already used for a different call; use a new key for a new action",
                echo(key)
            ),
            Refusal::InFlight(key) => format!(
                "a call with idempotency key `{}` is still in progress; retry later with the same key",
                echo(key)
            ),
            Refusal::Unfinished(key) => format!(
                "the earlier call with idempotency key `{}` did not complete and may have acted; capgate will not perform it again under this key",
                echo(key)
            ),
            Refusal::Approval(problem) => {
                format!("the approval does not authorize this call: {}", problem.safe())
            }
            Refusal::StoreUnavailable(_) => {
                "capgate cannot reach its enforcement store, so it refuses the call; retry later"
                    .to_string()
            }
            Refusal::DecisionLogUnavailable(_) => {
                "capgate could not record this call, so it refuses it; retry later".to_string()
            }
            Refusal::Obligation(_) => {
                "not permitted: a required safeguard could not be applied to the result".to_string()
            }
            Refusal::DownstreamUnavailable(_) => {
                "the server behind this capability is unavailable; retry later".to_string()
            }
            Refusal::DownstreamFailed(_) => {
                "the server behind this capability did not complete the request; it may have acted, so retry only with the same idempotency key".to_string()
            }
            Refusal::Quarantined { name, .. } => format!(
                "`{}` is not available: its server changed its definition and an administrator must review it",
                echo(name)
            ),
            Refusal::ClientUndeclared(what) => format!(
                "the client did not declare that it supports this {what}, so capgate does not send it"
            ),
            Refusal::InputState(_) => "the input responses or request state of this retry are not the ones capgate asked for, or have expired; call the tool again from the start".to_string(),
        }
    }
}

fn scope_target(switch: &KillSwitch) -> String {
    serde_json::to_value(&switch.scope)
        .ok()
        .and_then(|v| v.get("target").cloned())
        .map(|t| t.to_string())
        .unwrap_or_else(|| "everything".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_truncated_when_echoed() {
        let long = "x".repeat(10_000);
        let message = Refusal::Unknown {
            kind: "tool",
            name: long,
        }
        .safe();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn safe_texts_carry_no_internals() {
        let switch = KillSwitch {
            scope: crate::store::KillScope::User("alice".into()),
            tenant: Some("acme".into()),
            reason: "incident INC-7 in /var/lib/capgate".into(),
            set_by: "root-admin".into(),
            set_at: 1,
        };
        let refusals = [
            Refusal::Killed(switch),
            Refusal::StoreUnavailable(StoreError(
                "SELECT calls FROM run_usage: disk I/O error at /data/capgate.db".into(),
            )),
            Refusal::DecisionLogUnavailable("/data/audit.db: database or disk is full".into()),
            Refusal::DownstreamUnavailable(DownstreamError::Unavailable {
                server: "case".into(),
                reason: "spawn /opt/case-platform: No such file".into(),
            }),
            Refusal::BudgetExhausted("run r1 of alice has used 5/5".into()),
        ];
        for refusal in refusals {
            let safe = refusal.safe();
            for leak in ["alice", "INC-7", "/", "SELECT", "root-admin", "disk"] {
                assert!(
                    !safe.contains(leak),
                    "{} leaks {leak}: {safe}",
                    refusal.kind()
                );
            }
        }
    }
}
