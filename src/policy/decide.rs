//! The decision rule ([`CompiledPolicySet::decide`]) as the `policy` module documentation
//! states it, in plain code: completeness, then evaluation errors, then forbids, then permits;
//! deny by default. Also the agent-facing reason that every decision carries.

use std::borrow::Cow;
use std::collections::BTreeSet;

use cedar_policy::{EvaluationError, PolicyId};

use super::compiled::{CompiledPolicySet, PolicyInfo};
use super::contract::{Decision, Outcome, PolicyRequest};
use super::entities::RelationshipStore;
use super::request::BoundEntity;

impl CompiledPolicySet {
    fn decision(&self, outcome: Outcome, reason: String, policy_ids: Vec<String>) -> Decision {
        Decision {
            outcome,
            obligations: Vec::new(),
            advice: Vec::new(),
            agent_reason: agent_reason(outcome, &[], &[]),
            reason,
            policy_id: policy_ids.first().cloned(),
            policy_ids,
            policy_version: self.label.clone(),
            missing: Vec::new(),
            approver_role: None,
            break_glass_may_override: false,
            shadow: None,
        }
    }

    fn info(&self, id: &PolicyId) -> Cow<'_, PolicyInfo> {
        match self.policies.get(id) {
            Some(info) => Cow::Borrowed(info),
            // Every policy Cedar can name comes from this set; an unknown one is listed last.
            None => Cow::Owned(PolicyInfo::new(usize::MAX, id, None)),
        }
    }

    /// The decision rule (see the module documentation).
    pub fn decide(&self, request: &PolicyRequest, store: &RelationshipStore) -> Decision {
        // Who asks for what, for reasons; formatted only once a reason is.
        let what = || {
            format!(
                "{} {} `{}`",
                request.actor.describe(),
                request.action.as_str(),
                request.resource.id
            )
        };
        let under = &self.under;

        // 1. Completeness.
        let bound = self.parts.bind(request, store);
        let missing = missing_context(request, &bound);
        if !missing.is_empty() {
            let mut decision = self.decision(
                Outcome::RequireMoreContext,
                format!(
                    "{} needs more context: missing {} ({under})",
                    what(),
                    missing.join(", ")
                ),
                Vec::new(),
            );
            decision.agent_reason = format!(
                "more context is needed before this can be decided: {}",
                missing.join(", ")
            );
            decision.missing = missing;
            return decision;
        }

        let cedar = match self.parts.build(request, &bound, store) {
            Ok(built) => built,
            Err(problem) => {
                return self.decision(
                    Outcome::Deny,
                    format!("denied {}: {problem} ({under})", what()),
                    Vec::new(),
                )
            }
        };
        let Some(slice) = self.slices.slice(request.action, &cedar.resource) else {
            let mut decision = self.decision(
                Outcome::Deny,
                format!("denied {}: no policies for this action ({under})", what()),
                Vec::new(),
            );
            decision.break_glass_may_override = true;
            return decision;
        };
        let policies = slice.for_request(&cedar.facts());
        let authorizer = &self.authorizer;
        let response = authorizer.is_authorized(&cedar.request, &policies.all, &cedar.entities);
        let allowed = response.decision() == cedar_policy::Decision::Allow;
        let mut determining: Vec<Cow<'_, PolicyInfo>> = response
            .diagnostics()
            .reason()
            .map(|id| self.info(id))
            .collect();
        determining.sort_by_key(|p| p.ordinal);
        // Approval, more context and evaluation errors matter only if something would permit
        // the request: without a permit the answer is deny, whatever else happened. Cedar's
        // answer settles it unless a forbid decided it: an allow was decided by a permit; a
        // deny that no policy decided had no permit (nor forbid) match. Residuals, which would
        // hide a match, only come from unknowns, and show as errors.
        let no_residuals = || {
            !response.diagnostics().errors().any(|error| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
                matches!(e.inner(), EvaluationError::NonValue(_))
            })
        };
        let some_permit_applies = || {
            if allowed {
                return true;
            }
            if determining.is_empty() && no_residuals() {
                return false;
            }
            authorizer
                .is_authorized(&cedar.request, &policies.permits, &cedar.entities)
                .decision()
                == cedar_policy::Decision::Allow
        };

        // 3 and 4. Cedar's answer, refined by the determining policies' annotations.
        let plain_forbid = !allowed && determining.iter().any(|p| p.is_plain_forbid());

        // 2. Evaluation errors never drop a policy silently (a plain forbid still wins: it
        //    cannot be made less restrictive by what failed to evaluate).
        if !plain_forbid && response.diagnostics().errors().next().is_some() {
            // What failed to evaluate may be a forbid no grant may override.
            let erring_never = response.diagnostics().errors().any(|error| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
                self.info(e.policy_id()).break_glass_never()
            });
            if !some_permit_applies() {
                let mut decision = self.decision(
                    Outcome::Deny,
                    format!("denied {}: no policy permits it (deny by default; some policies could not be evaluated) ({under})", what()),
                    Vec::new(),
                );
                decision.break_glass_may_override = !erring_never;
                return decision;
            }
            let mut errors = Vec::new();
            let mut erring = Vec::new();
            let mut missing_data = true;
            for error in response.diagnostics().errors() {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
                missing_data &= matches!(
                    e.inner(),
                    EvaluationError::EntityDoesNotExist(_)
                        | EvaluationError::EntityAttrDoesNotExist(_)
                        | EvaluationError::RecordAttrDoesNotExist(_)
                );
                erring.push(e.policy_id().to_string());
                errors.push(error.to_string());
            }
            let outcome = if missing_data {
                Outcome::RequireMoreContext
            } else {
                Outcome::Deny
            };
            let mut decision = self.decision(
                outcome,
                format!(
                    "{} {}: a policy could not be evaluated, so capgate fails closed: {} ({under})",
                    outcome.as_str(),
                    what(),
                    errors.join("; ")
                ),
                erring,
            );
            if missing_data {
                decision.missing = errors;
            }
            decision.break_glass_may_override = outcome == Outcome::Deny && !erring_never;
            return decision;
        }

        let advice: Vec<String> = determining
            .iter()
            .filter_map(|p| p.meta.as_ref())
            .flat_map(|m| m.advice.iter())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .cloned()
            .collect();
        let outcome = if allowed {
            Outcome::Allow
        } else if determining.is_empty()
            || determining.iter().any(|p| p.outcome().is_none())
            || !some_permit_applies()
        {
            Outcome::Deny
        } else if determining
            .iter()
            .any(|p| p.outcome() == Some(Outcome::RequireMoreContext))
        {
            Outcome::RequireMoreContext
        } else {
            Outcome::RequireApproval
        };
        // The ids of the policies that produced this outcome come first; a default deny has
        // none (annotated forbids that matched did not decide it).
        let policy_ids: Vec<String> = if outcome == Outcome::Deny && !plain_forbid {
            Vec::new()
        } else {
            let mut ordered: Vec<&PolicyInfo> = determining.iter().map(|p| p.as_ref()).collect();
            ordered.sort_by_key(|p| match (outcome, p.outcome()) {
                (Outcome::Deny, None) | (Outcome::Allow, _) => 0,
                (o, Some(annotated)) if o == annotated => 0,
                _ => 1,
            });
            ordered.into_iter().map(|p| p.id.clone()).collect()
        };
        let explained = || {
            determining
                .iter()
                .map(|p| p.explained.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let reason = match outcome {
            Outcome::Allow => format!("allowed {} by {} ({under})", what(), explained()),
            Outcome::Deny if !plain_forbid => {
                format!(
                    "denied {}: no policy permits it (deny by default) ({under})",
                    what()
                )
            }
            Outcome::Deny => format!("denied {} by forbid {} ({under})", what(), explained()),
            Outcome::RequireApproval => {
                format!("{} requires approval: {} ({under})", what(), explained())
            }
            Outcome::RequireMoreContext => {
                format!(
                    "{} requires more context: {} ({under})",
                    what(),
                    explained()
                )
            }
        };
        let obligations: Vec<String> = if outcome == Outcome::Allow {
            determining
                .iter()
                .filter_map(|p| p.meta.as_ref())
                .flat_map(|m| m.obligations.iter())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let approver_role = if outcome == Outcome::RequireApproval {
            determining
                .iter()
                .find_map(|p| p.meta.as_ref().and_then(|m| m.approver_role.clone()))
        } else {
            None
        };
        let break_glass_may_override = matches!(outcome, Outcome::Deny | Outcome::RequireApproval)
            && !determining.iter().any(|p| p.break_glass_never());
        Decision {
            outcome,
            agent_reason: agent_reason(outcome, &advice, &[]),
            obligations,
            advice,
            reason,
            policy_id: policy_ids.first().cloned(),
            policy_ids,
            policy_version: self.label.clone(),
            missing: Vec::new(),
            approver_role,
            break_glass_may_override,
            shadow: None,
        }
    }
}

/// What the request lacks that its capability is decided on.
fn missing_context(request: &PolicyRequest, bound: &[BoundEntity<'_, '_>]) -> Vec<String> {
    let mut missing = missing_facts(request);
    for (entity, (key, named)) in bound.iter().zip(&request.entities) {
        if entity.known.is_none() {
            missing.push(format!(
                "context.{key} ({}::\"{}\" is unknown to the relationship store)",
                named.entity_type, named.id
            ));
        }
    }
    missing
}

/// What the request itself fails to state (before any entity is looked up).
pub(super) fn missing_facts(request: &PolicyRequest) -> Vec<String> {
    let mut missing = Vec::new();
    if request.tenant.as_deref().is_none_or(str::is_empty) {
        missing.push("tenant".to_string());
    }
    for attribute in request.action.kind().required_attributes() {
        if !request.resource.attributes.contains_key(*attribute) {
            missing.push(format!("resource.{attribute}"));
        }
    }
    for key in &request.resource.requires {
        if !request.entities.contains_key(key) {
            missing.push(format!("context.{key}"));
        }
    }
    // Runtime facts capgate always states; unknown is not the same as "none".
    if request.runtime.workflow_node.is_none() {
        missing.push("runtime.workflow_node".to_string());
    }
    if request.risk.score.is_none() {
        missing.push("risk.score".to_string());
    }
    missing
}

/// The agent-facing reason: outcome and advice, no policy ids, no other tenant's data.
pub(super) fn agent_reason(outcome: Outcome, advice: &[String], missing: &[String]) -> String {
    let base = match outcome {
        Outcome::Allow => "allowed".to_string(),
        Outcome::Deny => "not permitted by policy".to_string(),
        Outcome::RequireApproval => "this action requires an approval first".to_string(),
        Outcome::RequireMoreContext if missing.is_empty() => {
            "more context is needed before this can be decided".to_string()
        }
        Outcome::RequireMoreContext => format!("more context is needed: {}", missing.join(", ")),
    };
    if advice.is_empty() {
        base
    } else {
        format!("{base}; {}", advice.join("; "))
    }
}
