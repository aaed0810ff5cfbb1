//! Admission: the rule a call passes inside its one store transaction. It sees what the store
//! holds for the call (its run's usage, its idempotency key's record, its approval), asks the
//! PDP with that as trusted context, and says what to write: the budget debit, the idempotency
//! claim, the approval's use. Nothing is written unless the call is admitted.

use sha2::{Digest, Sha256};

use crate::audit::Mode;
use crate::identity::CompositeActor;
use crate::policy::{Decision, Outcome, PolicyRequest};
use crate::store::{
    canonical_json, AdmissionState, AdmissionWrites, BreakGlassGrant, ClaimState, IdempotencyScope,
    NewClaim,
};

use super::approval_rules::{problem_for, ActionDigest, ApprovalProblem};
use super::capability::Target;
use super::obligations::Obligations;
use super::refusal::Refusal;
use super::Gateway;

/// What the admission rule concluded.
pub(super) enum Verdict {
    /// The key's call completed before: answer with its stored result.
    Replay {
        result: String,
        original: String,
    },
    Refused(Refusal),
    Admitted(Box<Admitted>),
}

/// An admitted call: its decision (possibly overridden by break-glass or dry-run) and what
/// must happen to it after forwarding.
pub(super) struct Admitted {
    pub decision: Decision,
    pub obligations: Obligations,
    pub claim: Option<IdempotencyScope>,
    pub grant: Option<BreakGlassGrant>,
    pub mode: Mode,
}

/// One call's admission inputs.
pub(super) struct Admission<'a> {
    pub gateway: &'a Gateway,
    pub actor: &'a CompositeActor,
    pub target: &'a Target,
    pub key: Option<&'a str>,
    pub approval: Option<&'a str>,
    pub digest: &'a ActionDigest,
    pub arguments: &'a serde_json::Map<String, serde_json::Value>,
    pub request_id: &'a str,
    pub now: i64,
    /// The store is down and the contract fails open: no budget, no writes.
    pub degraded: bool,
}

impl Admission<'_> {
    /// The key's scope: tenant, user, agent, capability, key — each its own field.
    pub fn scope(&self) -> Option<IdempotencyScope> {
        let key = self.key.filter(|k| !k.trim().is_empty())?;
        Some(IdempotencyScope {
            tenant: self.actor.tenant.clone(),
            user: self.actor.user.id.clone(),
            agent: self.actor.agent.as_ref().map(|a| a.id.clone()),
            tool: self.target.name.clone(),
            key: key.to_string(),
        })
    }

    /// Digest of the call an idempotency key stands for.
    fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(
            canonical_json(&serde_json::json!({
                "tool": self.target.name,
                "arguments": self.arguments,
            }))
            .as_bytes(),
        ))
    }

    /// The rule. `request` gains the trusted context (budget, approval) before the PDP sees it.
    pub fn rule(
        &self,
        state: &AdmissionState,
        request: &mut PolicyRequest,
    ) -> (Verdict, AdmissionWrites) {
        let nothing = AdmissionWrites::default();
        let refused = |refusal| (Verdict::Refused(refusal), AdmissionWrites::default());
        let fingerprint = self.fingerprint();
        let scope = self.scope();

        // A completed key replays before anything else; a live claim or another call refuses.
        if let (Some(record), Some(scope)) = (&state.idempotency, &scope) {
            if record.fingerprint != fingerprint {
                return refused(Refusal::KeyReused(scope.key.clone()));
            }
            match &record.state {
                ClaimState::Done { result } => {
                    let verdict = Verdict::Replay {
                        result: result.clone(),
                        original: record.request_id.clone(),
                    };
                    return (verdict, nothing);
                }
                ClaimState::InFlight { lease_until } if self.now < *lease_until => {
                    return refused(Refusal::InFlight(scope.key.clone()));
                }
                // The lease has passed: the claimer died; this call takes the key over.
                ClaimState::InFlight { .. } => {}
            }
        }

        // An approval reference counts only for this exact call.
        let approval = match self.approval {
            None => None,
            Some(id) => match &state.approval {
                None => return refused(Refusal::Approval(ApprovalProblem::Unknown(id.into()))),
                Some(approval) => {
                    match problem_for(approval, &self.actor.tenant, self.digest, self.now) {
                        Some(problem) => return refused(Refusal::Approval(problem)),
                        None => Some(approval),
                    }
                }
            },
        };
        if approval.is_some() {
            request.runtime.approval_granted = Some(true);
        }
        if !self.degraded {
            request.runtime.budget_remaining = Some(self.gateway.controls.remaining(&state.usage));
        }

        let (mut decision, mut obligations) = self.gateway.decide(request, &self.target.name);
        let mut mode = if self.degraded {
            Mode::Degraded
        } else {
            Mode::Enforce
        };
        // Break-glass: a time-limited grant allows what policy refused, never silently, and
        // only where the decision allows it (never across tenants, never without context).
        let mut grant = None;
        if !decision.is_allow() && decision.break_glass_may_override {
            if let Some(found) = self
                .gateway
                .controls
                .break_glass_for(self.actor, &self.target.name)
            {
                decision.reason = format!("break-glass grant {}: {}", found.id, decision.reason);
                decision.outcome = Outcome::Allow;
                decision.obligations.clear();
                mode = Mode::BreakGlass;
                grant = Some(found);
            }
        }
        // Dry-run: decided and logged as if enforcing (the record keeps the refusal), but the
        // call goes through, marked, without the refused decision's obligations.
        if !decision.is_allow()
            && self
                .gateway
                .audit
                .dry_run_for(&self.target.server, &self.target.name)
        {
            mode = Mode::DryRun;
        } else if !decision.is_allow() {
            return refused(Refusal::Policy(Box::new(decision)));
        }
        // The obligations are the allow's, parsed when decided (an allow whose obligations
        // cannot be enforced was turned into a deny there); a break-glass or dry-run pass
        // carries none.
        match mode {
            Mode::Enforce | Mode::Degraded => {}
            Mode::BreakGlass | Mode::DryRun => obligations = Obligations::default(),
        }
        if let Some(limit) = obligations.max_calls() {
            if state.usage.tool_calls >= limit {
                return refused(Refusal::MaxCalls {
                    capability: self.target.name.clone(),
                    limit,
                });
            }
        }
        let needs_key = self.target.effect.is_side_effect() || obligations.requires_idempotency();
        if needs_key && scope.is_none() {
            return refused(Refusal::MissingIdempotencyKey {
                capability: self.target.name.clone(),
            });
        }
        if let Some(approval) = approval {
            if approval.policy_version != decision.policy_version {
                return refused(Refusal::Approval(ApprovalProblem::PolicyChanged {
                    id: approval.id.clone(),
                    granted: approval.policy_version.clone(),
                    current: decision.policy_version.clone(),
                }));
            }
        }
        if !self.degraded {
            if let Some(reason) = self.exhausted(state) {
                return refused(Refusal::BudgetExhausted(reason));
            }
        }

        let config = self.gateway.controls.config();
        let claim = scope.filter(|_| needs_key);
        let writes = AdmissionWrites {
            debit: (!self.degraded).then_some(u64::from(self.target.cost)),
            claim: claim.as_ref().map(|_| NewClaim {
                fingerprint,
                request_id: self.request_id.to_string(),
                created_at: self.now,
                lease_until: self.now + config.idempotency_lease_seconds,
            }),
            consume_approval: approval.is_some(),
        };
        let admitted = Admitted {
            decision,
            obligations,
            claim,
            grant,
            mode,
        };
        (Verdict::Admitted(Box::new(admitted)), writes)
    }

    /// Why one more call of this cost does not fit the run's budget, if it does not.
    fn exhausted(&self, state: &AdmissionState) -> Option<String> {
        let config = self.gateway.controls.config();
        let used = state.usage;
        let cost = u64::from(self.target.cost);
        let name = &self.target.name;
        if used.calls + 1 > config.max_calls_per_run {
            Some(format!(
                "the run has used all {} calls of its budget",
                config.max_calls_per_run
            ))
        } else if used.tool_calls + 1 > config.max_calls_per_tool {
            Some(format!(
                "the run has used all {} calls of {name} its budget allows",
                config.max_calls_per_tool
            ))
        } else if used.cost + cost > config.max_cost_per_run {
            Some(format!(
                "the run has used {} of {} cost units; {name} costs {cost}",
                used.cost, config.max_cost_per_run
            ))
        } else {
            None
        }
    }
}
